/* zones/answer.c - a query in, a reply out, from the store; and the dns_names interface over
 * the same store.
 *
 * A cluster name is read right to left: under svc.<zone> the two labels before "svc" name a
 * Service (one table lookup for its view), what is left names its endpoint or a named port;
 * under pod.<zone> a namespace and a dashed address; the reverse zones' labels are an
 * address, looked up for its PTR records. A Service's own A and AAAA answers are copied as
 * they were rendered when the view was built; the rest is written here from the view's
 * arrays. Records of the question name use the compression pointer 0xc00c; any other name is
 * written out in full. Record order follows RFC-style canonical order inside an RRset (by
 * rdata length, then bytes), so the same data always gives the same reply. No allocation. */
#include "zones/answer.h"

#include <stdlib.h>
#include <string.h>

#include "dns/addr.h"
#include "zones/objects.h"
#include "zones/store_layout.h"

#define DNS_VERSION_TTL 28800
#define CNAME_CHAIN_MAX 10 /* CoreDNS maxCnameChainLength */
#define MAX_LABELS 8       /* the deepest cluster name has six labels above the zone */
#define MAX_SRV 1024       /* SRV records in one answer; a UDP reply holds far fewer anyway */

/* --- writing ---------------------------------------------------------------------------- */

struct reply {
    struct dns_cursor c;
    const struct zones_store *s;
    const struct zones_answer_config *cfg;
    const struct dns_query *q;
    const uint8_t *pkt;
    uint16_t flags; /* RA when a forwarder follows */
    uint16_t an, ns, ar;
};

static void begin(struct reply *r, unsigned rcode)
{
    dns_wire_reply_begin(&r->c, r->q, r->pkt, (uint16_t)(r->flags | DNS_FLAG_AA), rcode);
}

static size_t finish(struct reply *r)
{
    if (r->q->has_edns) {
        dns_wire_put_opt(&r->c, r->q, 0, -1);
        r->ar++;
    }
    if (r->c.err)
        return 0;
    dns_wire_reply_counts(r->c.buf, r->an, r->ns, r->ar);
    return r->c.pos;
}

/* NXDOMAIN or NODATA: no answer, the zone's SOA in the authority section. */
static size_t negative(struct reply *r, enum zones_zone zone, unsigned rcode)
{
    const struct zones_soa *soa = zones_store_soa(r->s);
    begin(r, rcode);
    dns_cursor_put(&r->c, soa->bytes + soa->off[zone], soa->len[zone]);
    r->ns = 1;
    return finish(r);
}

/* An owner: the question (0xc00c) when name is NULL, else the name written out. */
static void put_owner(struct reply *r, const struct dns_name *name)
{
    if (name == NULL)
        dns_cursor_put_u16(&r->c, DNS_QUESTION_PTR);
    else
        dns_cursor_put(&r->c, name->wire, name->len);
}

static void put_head(struct reply *r, const struct dns_name *owner, uint16_t type, uint32_t ttl,
                     uint16_t rdlen)
{
    put_owner(r, owner);
    dns_cursor_put_u16(&r->c, type);
    dns_cursor_put_u16(&r->c, DNS_CLASS_IN);
    dns_cursor_put_u32(&r->c, ttl);
    dns_cursor_put_u16(&r->c, rdlen);
}

static void put_name_rr(struct reply *r, const struct dns_name *owner, uint16_t type,
                        const struct dns_name *target)
{
    put_head(r, owner, type, r->s->cfg.ttl, target->len);
    dns_cursor_put(&r->c, target->wire, target->len);
}

static void put_addr(struct reply *r, const struct dns_name *owner, const struct zones_ip *ip)
{
    uint16_t n = ip->family == 4 ? 4 : 16;
    put_head(r, owner, ip->family == 4 ? DNS_TYPE_A : DNS_TYPE_AAAA, r->s->cfg.ttl, n);
    dns_cursor_put(&r->c, ip->addr, n);
}

/* --- names ------------------------------------------------------------------------------ */

/* The labels of a name above its zone, left to right: offsets into the wire name. */
struct labels {
    unsigned n; /* labels above the zone; more than MAX_LABELS are not counted in off */
    uint8_t off[MAX_LABELS];
};

static void split(const struct dns_name *name, size_t zone_len, struct labels *out)
{
    out->n = 0;
    for (size_t at = 0; at + zone_len < name->len; at += name->wire[at] + 1U) {
        if (out->n < MAX_LABELS)
            out->off[out->n] = (uint8_t)at;
        out->n++;
    }
}

static const uint8_t *label(const struct dns_name *name, const struct labels *l, unsigned i)
{
    return name->wire + l->off[i];
}

static bool label_is(const uint8_t *label, const char *text)
{
    size_t n = strlen(text);
    return label[0] == n && memcmp(label + 1, text, n) == 0;
}

/* The name of a Service (e NULL) or of one of its endpoints: [label] + key + svc.<zone>.
 * Returns false when it would be longer than a name may be. */
static bool view_name(const struct zones_store *s, const struct zones_view *v,
                      const struct zones_view_endpoint *e, struct dns_name *out)
{
    size_t n = 0;
    size_t label_len = e ? (size_t)v->bytes[e->label] + 1 : 0;
    if (label_len + v->key_len + s->svc_zone.len > DNS_MAX_NAME)
        return false;
    for (size_t i = 0; i < label_len; i++)
        out->wire[n++] = v->bytes[e->label + i];
    for (size_t i = 0; i < v->key_len; i++)
        out->wire[n++] = v->bytes[i];
    memcpy(out->wire + n, s->svc_zone.wire, s->svc_zone.len);
    out->len = (uint8_t)(n + s->svc_zone.len);
    return true;
}

/* Labels order as wire bytes do: length first, then the characters. */
static int compare_label(const uint8_t *a, const uint8_t *b)
{
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return memcmp(a + 1, b + 1, a[0]);
}

static const struct zones_view_endpoint *find_endpoint(const struct zones_view *v,
                                                       const uint8_t *label)
{
    size_t lo = 0;
    size_t hi = v->n_endpoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_label(v->bytes + v->endpoints[mid].label, label);
        if (c == 0)
            return &v->endpoints[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* --- A and AAAA of names that are not a Service's own ---------------------------------- */

/* An endpoint's A or AAAA records (type 0: both), each address once. */
static uint16_t put_endpoint_addrs(struct reply *r, const struct zones_view *v,
                                   const struct zones_view_endpoint *e, uint16_t type,
                                   const struct dns_name *owner)
{
    uint16_t n = 0;
    for (int family = 4; family <= 6; family += 2) {
        uint16_t want = family == 4 ? DNS_TYPE_A : DNS_TYPE_AAAA;
        if (type != 0 && type != want)
            continue;
        const struct zones_ip *last = NULL;
        for (size_t i = e->first; i < (size_t)e->first + e->count; i++) {
            const struct zones_ip *ip = &v->addrs[i].ip;
            if (ip->family != family ||
                (last && memcmp(last->addr, ip->addr, family == 4 ? 4 : 16) == 0))
                continue;
            put_addr(r, owner, ip);
            last = ip;
            n++;
        }
    }
    return n;
}

/* The Service name's A or AAAA records with its name written out (glue, chains). */
static uint16_t put_view_addrs(struct reply *r, const struct zones_view *v, uint16_t type,
                               const struct dns_name *owner)
{
    uint16_t n = 0;
    uint32_t off = type == DNS_TYPE_A ? v->a_off : v->aaaa_off;
    uint16_t count = type == DNS_TYPE_A ? v->n_a : v->n_aaaa;
    size_t size = type == DNS_TYPE_A ? 16 : 28;
    for (uint16_t i = 0; i < count; i++) {
        const uint8_t *rr = v->bytes + off + i * size;
        put_owner(r, owner);
        dns_cursor_put(&r->c, rr + 2, size - 2);
        n++;
    }
    return n;
}

/* --- SRV ---------------------------------------------------------------------------------- */

struct srv {
    const struct zones_view_endpoint *target; /* NULL: the Service's own name */
    uint16_t port;
};

/* A named port's SRV records are (port, target) for each address of the name or endpoint
 * that uses its group. filter_name/filter_proto (NULL: any) pick the ports. */
static size_t collect_srv(const struct zones_view *v, const uint8_t *filter_name,
                          const uint8_t *filter_proto, struct srv *out, size_t cap)
{
    size_t n = 0;
    for (size_t p = 0; p < v->n_ports; p++) {
        const struct zones_view_port *port = &v->ports[p];
        if ((filter_name && compare_label(v->bytes + port->name, filter_name) != 0) ||
            (filter_proto && compare_label(v->bytes + port->proto, filter_proto) != 0))
            continue;
        if (v->kind != ZONES_SVC_HEADLESS) {
            if (port->group == 0 && n < cap)
                out[n++] = (struct srv){NULL, port->port};
            continue;
        }
        for (size_t e = 0; e < v->n_endpoints; e++) {
            const struct zones_view_endpoint *ep = &v->endpoints[e];
            bool uses = false;
            for (size_t i = ep->first; i < (size_t)ep->first + ep->count && !uses; i++)
                uses = v->addrs[i].ports == port->group;
            if (uses && n < cap)
                out[n++] = (struct srv){ep, port->port};
        }
    }
    return n;
}

static size_t target_len(const struct zones_store *s, const struct zones_view *v,
                         const struct srv *x)
{
    return (x->target ? v->bytes[x->target->label] + 1U : 0U) + v->key_len + s->svc_zone.len;
}

/* Canonical order inside the RRset: by rdata length, then rdata (priority and weight are
 * equal, so the port, then the target's bytes). */
static int compare_srv(const struct zones_store *s, const struct zones_view *v, const struct srv *x,
                       const struct srv *y)
{
    size_t lx = target_len(s, v, x);
    size_t ly = target_len(s, v, y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    if (x->target == y->target)
        return 0;
    if (x->target == NULL || y->target == NULL)
        return x->target == NULL ? -1 : 1;
    return compare_label(v->bytes + x->target->label, v->bytes + y->target->label);
}

/* Insertion sort with duplicates dropped: RRsets are small. */
static size_t sort_srv(const struct zones_store *s, const struct zones_view *v, struct srv *a,
                       size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        struct srv x = a[i];
        size_t j = w;
        bool dup = false;
        while (j > 0) {
            int c = compare_srv(s, v, &a[j - 1], &x);
            if (c == 0)
                dup = true;
            if (c <= 0)
                break;
            j--;
        }
        if (dup)
            continue;
        memmove(&a[j + 1], &a[j], (w - j) * sizeof(a[0]));
        a[j] = x;
        w++;
    }
    return w;
}

static void put_srv(struct reply *r, const struct zones_view *v, const struct dns_name *owner,
                    const struct srv *srv, uint16_t weight)
{
    struct dns_name target;
    if (!view_name(r->s, v, srv->target, &target))
        return;
    put_head(r, owner, DNS_TYPE_SRV, r->s->cfg.ttl, (uint16_t)(6 + target.len));
    dns_cursor_put_u16(&r->c, 0); /* priority */
    dns_cursor_put_u16(&r->c, weight);
    dns_cursor_put_u16(&r->c, srv->port);
    dns_cursor_put(&r->c, target.wire, target.len);
}

/* The SRV records, and with glue the A then AAAA records of each target, once. */
static void answer_srv(struct reply *r, const struct zones_view *v, const struct srv *srv, size_t n,
                       bool glue)
{
    if (n == 0)
        return;
    uint16_t weight = (uint16_t)(100 / n); /* CoreDNS: floor(100 / records) */
    for (size_t i = 0; i < n; i++)
        put_srv(r, v, NULL, &srv[i], weight);
    r->an = (uint16_t)n;
    for (size_t i = 0; glue && i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = srv[j].target == srv[i].target;
        struct dns_name target;
        if (seen || !view_name(r->s, v, srv[i].target, &target))
            continue;
        if (srv[i].target == NULL) {
            r->ar = (uint16_t)(r->ar + put_view_addrs(r, v, DNS_TYPE_A, &target));
            r->ar = (uint16_t)(r->ar + put_view_addrs(r, v, DNS_TYPE_AAAA, &target));
        } else {
            r->ar =
                (uint16_t)(r->ar + put_endpoint_addrs(r, v, srv[i].target, DNS_TYPE_A, &target));
            r->ar =
                (uint16_t)(r->ar + put_endpoint_addrs(r, v, srv[i].target, DNS_TYPE_AAAA, &target));
        }
    }
}

/* --- the cluster zone: names ------------------------------------------------------------ */

/* What a cluster name is. NODE_NONE does not exist (NXDOMAIN); NODE_EMPTY exists without
 * records (an empty non-terminal: svc.<zone>, a namespace, _tcp under a Service). */
enum node_kind {
    NODE_NONE,
    NODE_EMPTY,
    NODE_APEX,
    NODE_VERSION,
    NODE_SERVICE,  /* <svc>.<ns>.svc.<zone> */
    NODE_ENDPOINT, /* <endpoint>.<svc>.<ns>.svc.<zone> */
    NODE_PORT,     /* _<port>._<proto>.<svc>.<ns>.svc.<zone> */
    NODE_POD,      /* <dashed-address>.<ns>.pod.<zone> */
};

struct node {
    enum node_kind kind;
    const struct zones_view *view;
    const struct zones_view_endpoint *endpoint;
    const uint8_t *port, *proto; /* NODE_PORT: the labels asked for */
    struct zones_ip ip;          /* NODE_POD */
};

/* Parses the first label of a pod name: "10-244-1-7", or an IPv6 address with '-' for ':'
 * ("fd00--7"). Exactly three dashes between digits is IPv4; anything else is tried as IPv6. */
static bool parse_dashed(const uint8_t *label, struct zones_ip *ip)
{
    char v4[DNS_MAX_LABEL + 1];
    char v6[DNS_MAX_LABEL + 1];
    size_t len = label[0];
    size_t dashes = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = (char)label[1 + i];
        dashes += ch == '-';
        v4[i] = (char)(ch == '-' ? '.' : ch);
        v6[i] = (char)(ch == '-' ? ':' : ch);
    }
    v4[len] = v6[len] = '\0';
    if (dashes == 3 && zones_ip_parse(v4, ip) == 0 && ip->family == 4)
        return true;
    return zones_ip_parse(v6, ip) == 0 && ip->family == 6;
}

/* Whether label is the dashed form svcdns writes for ip: verified pod names are exact. */
static bool is_canonical_dashed(const uint8_t *label, const struct zones_ip *ip)
{
    char text[64];
    zones_ip_format(ip, text, sizeof(text));
    size_t n = strlen(text);
    if (label[0] != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char want = (char)(text[i] == '.' || text[i] == ':' ? '-' : text[i]);
        if (label[1 + i] != (uint8_t)want)
            return false;
    }
    return true;
}

/* Under svc.<zone>: a namespace, a Service, or a name below one. n: labels before "svc". */
static void resolve_svc_tree(const struct zones_store *s, const struct dns_name *name,
                             const struct labels *l, unsigned n, struct node *out)
{
    if (n == 0) {
        out->kind = NODE_EMPTY; /* svc.<zone> */
        return;
    }
    if (n == 1) {
        out->kind = zones_store_namespace(s, label(name, l, 0)) ? NODE_EMPTY : NODE_NONE;
        return;
    }
    if (n > 4)
        return;
    const struct zones_view *v =
        zones_store_service(s, label(name, l, n - 2), (size_t)(l->off[n] - l->off[n - 2]));
    if (v == NULL || !zones_view_exists(v) || (n > 2 && v->target_len > 0))
        return; /* nothing is below an ExternalName */
    out->view = v;
    if (n == 2) {
        out->kind = NODE_SERVICE;
    } else if (n == 3 && label(name, l, 0)[0] > 0 && label(name, l, 0)[1] == '_') {
        struct srv srv[1];
        out->kind = collect_srv(v, NULL, label(name, l, 0), srv, 1) > 0 ? NODE_EMPTY : NODE_NONE;
    } else if (n == 3) {
        out->endpoint = find_endpoint(v, label(name, l, 0));
        out->kind = out->endpoint ? NODE_ENDPOINT : NODE_NONE;
    } else {
        struct srv srv[1];
        out->port = label(name, l, 0);
        out->proto = label(name, l, 1);
        out->kind = collect_srv(v, out->port, out->proto, srv, 1) > 0 ? NODE_PORT : NODE_NONE;
    }
}

/* <dashed-address>.<ns>.pod.<zone>: --pods insecure has any address in a namespace that
 * exists; verified only a Pod's; disabled none. n: labels before "pod". */
static void resolve_pod_tree(const struct zones_store *s, const struct dns_name *name,
                             const struct labels *l, unsigned n, struct node *out)
{
    if (n == 0) {
        out->kind = NODE_EMPTY; /* pod.<zone> */
        return;
    }
    const struct zones_ns *ns = zones_store_namespace(s, label(name, l, n - 1));
    if (n == 1) {
        out->kind = ns ? NODE_EMPTY : NODE_NONE;
        return;
    }
    if (n > 2 || ns == NULL || s->cfg.pods == ZONES_PODS_DISABLED ||
        !parse_dashed(label(name, l, 0), &out->ip))
        return;
    bool found = s->cfg.pods == ZONES_PODS_INSECURE;
    size_t pos = SIZE_MAX;
    for (const struct zones_pod_addr *p; !found && (p = zones_store_next_pod(s, &out->ip, &pos));)
        found = p->ns == ns && is_canonical_dashed(label(name, l, 0), &out->ip);
    out->kind = found ? NODE_POD : NODE_NONE;
}

/* What a name under the cluster zone is; the one reading of a cluster name, for answers and
 * for the dns_names interface. */
static void resolve(const struct zones_store *s, const struct dns_name *name, struct node *out)
{
    memset(out, 0, sizeof(*out));
    struct labels l;
    split(name, s->zone.len, &l);
    if (l.n == 0) {
        out->kind = NODE_APEX;
        return;
    }
    if (l.n > MAX_LABELS)
        return;
    const uint8_t *top = label(name, &l, l.n - 1);
    if (label_is(top, "svc"))
        resolve_svc_tree(s, name, &l, l.n - 1, out);
    else if (label_is(top, "pod"))
        resolve_pod_tree(s, name, &l, l.n - 1, out);
    else if (l.n == 1 && label_is(top, "dns-version"))
        out->kind = NODE_VERSION;
}

/* --- the cluster zone: answers ---------------------------------------------------------- */

/* The records name has for type, with its name written out, for a CNAME chain; *alias gets an
 * ExternalName's target. Returns -1 when name is not a Service's or an endpoint's. */
static int chain_step(struct reply *r, const struct dns_name *name, uint16_t type,
                      struct dns_name *alias, const struct zones_view **view)
{
    struct node node;
    *view = NULL;
    if (!dns_name_is_subdomain(name, &r->s->zone))
        return -1;
    resolve(r->s, name, &node);
    *view = node.view;
    if (node.kind == NODE_ENDPOINT)
        return put_endpoint_addrs(r, node.view, node.endpoint, type, name);
    if (node.kind != NODE_SERVICE)
        return -1;
    if (node.view->target_len > 0) {
        alias->len = node.view->target_len;
        memcpy(alias->wire, node.view->bytes + node.view->target_off, node.view->target_len);
        put_name_rr(r, name, DNS_TYPE_CNAME, alias);
        return 1;
    }
    return put_view_addrs(r, node.view, type, name);
}

/* An ExternalName asked for A or AAAA: its CNAME, then the target's chain inside the cluster
 * zone, at most CNAME_CHAIN_MAX links, stopping where it would revisit a name (a loop answers
 * with the chain so far, as CoreDNS does). A target outside our zones is the upstream's. */
static void answer_chain(struct reply *r, const struct zones_view *v, struct zones_chase *chase)
{
    struct dns_name target = {.len = v->target_len};
    memcpy(target.wire, v->bytes + v->target_off, v->target_len);
    size_t records_at = r->c.pos;
    put_name_rr(r, NULL, DNS_TYPE_CNAME, &target);
    r->an = 1;
    const struct zones_view *visited[CNAME_CHAIN_MAX + 1] = {v};
    size_t n_visited = 1;
    for (;;) {
        struct dns_name alias;
        const struct zones_view *next = NULL;
        size_t before = r->c.pos;
        int n = chain_step(r, &target, r->q->qtype, &alias, &next);
        if (n < 0) {
            if (zones_store_zone_of(r->s, &target) == ZONES_ZONE_NONE && chase != NULL) {
                chase->target = target;
                chase->records = r->c.buf + records_at;
                chase->len = r->c.pos - records_at;
                chase->count = r->an;
            }
            return;
        }
        bool alias_next = next != NULL && next->target_len > 0;
        bool loop = false;
        for (size_t i = 0; i < n_visited && alias_next; i++)
            loop = loop || visited[i] == next;
        if (loop || (alias_next && n_visited == CNAME_CHAIN_MAX)) {
            r->c.pos = before; /* the CNAME that would go round again is not written */
            return;
        }
        r->an = (uint16_t)(r->an + n);
        if (!alias_next)
            return;
        visited[n_visited++] = next;
        target = alias;
    }
}

/* ANY, answer section only (no glue). In full (over TCP, and for --dump) every RRset the name
 * has: A, AAAA, SRV. Over UDP one RRset, the first of those the name has, as RFC 8482 §4.1
 * allows: a 40-byte ANY for a headless Service would otherwise draw every A, AAAA and SRV
 * record of its endpoints, the largest reply a small forged query can get from us, while
 * one RRset is no larger than the reply to a query for that one type. We chose a real RRset
 * over §4.2's synthesized HINFO "RFC8482" "" (Cloudflare's choice; BIND's minimal-any, like
 * this, sends one RRset): the client still learns something true, no invented record lands
 * in caches, and an alias answers with its CNAME as §4.2 requires anyway. The RFC lets a
 * server answer differently by transport; TCP proves the source address, so it gets the
 * conventional answer. */
static size_t answer_service_any(struct reply *r, const struct zones_view *v, const struct srv *srv,
                                 size_t n_srv)
{
    bool full = r->cfg->any_in_full;
    begin(r, DNS_RCODE_NOERROR);
    if (v->n_a > 0) {
        dns_cursor_put(&r->c, v->bytes + v->a_off, v->a_len);
        r->an = v->n_a;
    }
    if (v->n_aaaa > 0 && (full || r->an == 0)) {
        dns_cursor_put(&r->c, v->bytes + v->aaaa_off, v->aaaa_len);
        r->an = (uint16_t)(r->an + v->n_aaaa);
    }
    if (n_srv > 0 && (full || r->an == 0)) {
        uint16_t before = r->an;
        answer_srv(r, v, srv, n_srv, false);
        r->an = (uint16_t)(before + n_srv);
    }
    if (r->an == 0) {
        r->c.pos = 0;
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    }
    return finish(r);
}

/* <svc>.<ns>.svc.<zone> itself. */
static size_t answer_service(struct reply *r, const struct zones_view *v, struct zones_chase *chase)
{
    uint16_t qtype = r->q->qtype;
    if (v->target_len > 0) {
        begin(r, DNS_RCODE_NOERROR);
        if (qtype == DNS_TYPE_A || qtype == DNS_TYPE_AAAA) {
            answer_chain(r, v, chase);
        } else {
            /* RFC 1034 §3.6.2: an alias answers every other type with its CNAME. */
            struct dns_name target = {.len = v->target_len};
            memcpy(target.wire, v->bytes + v->target_off, v->target_len);
            put_name_rr(r, NULL, DNS_TYPE_CNAME, &target);
            r->an = 1;
        }
        return finish(r);
    }
    struct srv srv[MAX_SRV];
    size_t n_srv = 0;
    if (qtype == DNS_TYPE_SRV || qtype == DNS_TYPE_ANY) {
        n_srv = collect_srv(v, NULL, NULL, srv, MAX_SRV);
        n_srv = sort_srv(r->s, v, srv, n_srv);
    }
    switch (qtype) {
    case DNS_TYPE_A:
        if (v->n_a == 0)
            break;
        begin(r, DNS_RCODE_NOERROR);
        dns_cursor_put(&r->c, v->bytes + v->a_off, v->a_len);
        r->an = v->n_a;
        return finish(r);
    case DNS_TYPE_AAAA:
        if (v->n_aaaa == 0)
            break;
        begin(r, DNS_RCODE_NOERROR);
        dns_cursor_put(&r->c, v->bytes + v->aaaa_off, v->aaaa_len);
        r->an = v->n_aaaa;
        return finish(r);
    case DNS_TYPE_SRV:
        if (n_srv == 0)
            break;
        begin(r, DNS_RCODE_NOERROR);
        answer_srv(r, v, srv, n_srv, true);
        return finish(r);
    case DNS_TYPE_ANY:
        return answer_service_any(r, v, srv, n_srv);
    default:
        break;
    }
    return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
}

static size_t answer_endpoint(struct reply *r, const struct node *node)
{
    uint16_t qtype = r->q->qtype;
    if (qtype != DNS_TYPE_A && qtype != DNS_TYPE_AAAA && qtype != DNS_TYPE_ANY)
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    begin(r, DNS_RCODE_NOERROR);
    uint16_t type = qtype;
    if (qtype == DNS_TYPE_ANY) /* in full both; over UDP A, else AAAA (answer_service_any) */
        type = r->cfg->any_in_full ? 0 : DNS_TYPE_A;
    uint16_t n = put_endpoint_addrs(r, node->view, node->endpoint, type, NULL);
    if (n == 0 && type == DNS_TYPE_A && qtype == DNS_TYPE_ANY)
        n = put_endpoint_addrs(r, node->view, node->endpoint, DNS_TYPE_AAAA, NULL);
    if (n == 0) {
        r->c.pos = 0;
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    }
    r->an = n;
    return finish(r);
}

static size_t answer_port(struct reply *r, const struct node *node)
{
    if (r->q->qtype != DNS_TYPE_SRV && r->q->qtype != DNS_TYPE_ANY)
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    struct srv srv[MAX_SRV];
    size_t n = collect_srv(node->view, node->port, node->proto, srv, MAX_SRV);
    n = sort_srv(r->s, node->view, srv, n);
    begin(r, DNS_RCODE_NOERROR);
    answer_srv(r, node->view, srv, n, r->q->qtype == DNS_TYPE_SRV);
    return finish(r);
}

static size_t answer_pod(struct reply *r, const struct node *node)
{
    uint16_t type = node->ip.family == 4 ? DNS_TYPE_A : DNS_TYPE_AAAA;
    if (r->q->qtype != type && r->q->qtype != DNS_TYPE_ANY)
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    begin(r, DNS_RCODE_NOERROR);
    put_addr(r, NULL, &node->ip);
    r->an = 1;
    return finish(r);
}

/* The zone's apex: NS and SOA (ANY: by type, NS first; over UDP NS alone, as
 * answer_service_any says why). */
static size_t answer_apex(struct reply *r)
{
    uint16_t qtype = r->q->qtype;
    const struct zones_soa *soa = zones_store_soa(r->s);
    begin(r, DNS_RCODE_NOERROR);
    if (qtype == DNS_TYPE_NS || qtype == DNS_TYPE_ANY) {
        struct dns_name ns;
        struct dns_name prefix = {8, "\2ns\3dns"};
        dns_name_concat(&ns, &prefix, &r->s->zone);
        put_name_rr(r, NULL, DNS_TYPE_NS, &ns);
        r->an++;
    }
    if (qtype == DNS_TYPE_SOA || (qtype == DNS_TYPE_ANY && r->cfg->any_in_full)) {
        const uint8_t *rr = soa->bytes + soa->off[ZONES_ZONE_CLUSTER];
        dns_cursor_put_u16(&r->c, DNS_QUESTION_PTR);
        dns_cursor_put(&r->c, rr + r->s->zone.len, soa->len[ZONES_ZONE_CLUSTER] - r->s->zone.len);
        r->an++;
    }
    if (r->an == 0) {
        r->c.pos = 0;
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    }
    return finish(r);
}

static size_t answer_dns_version(struct reply *r)
{
    if (r->q->qtype != DNS_TYPE_TXT && r->q->qtype != DNS_TYPE_ANY)
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    static const uint8_t version[] = {5, '1', '.', '1', '.', '0'};
    begin(r, DNS_RCODE_NOERROR);
    put_head(r, NULL, DNS_TYPE_TXT, DNS_VERSION_TTL, sizeof(version));
    dns_cursor_put(&r->c, version, sizeof(version));
    r->an = 1;
    return finish(r);
}

static size_t answer_cluster(struct reply *r, struct zones_chase *chase)
{
    struct node node;
    resolve(r->s, &r->q->qname, &node);
    switch (node.kind) {
    case NODE_APEX:
        return answer_apex(r);
    case NODE_VERSION:
        return answer_dns_version(r);
    case NODE_SERVICE:
        return answer_service(r, node.view, chase);
    case NODE_ENDPOINT:
        return answer_endpoint(r, &node);
    case NODE_PORT:
        return answer_port(r, &node);
    case NODE_POD:
        return answer_pod(r, &node);
    case NODE_EMPTY:
        return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR);
    case NODE_NONE:
        break;
    }
    return negative(r, ZONES_ZONE_CLUSTER, DNS_RCODE_NXDOMAIN);
}

/* --- the reverse zones ------------------------------------------------------------------ */

/* One label of a reverse name: a decimal octet without leading zeros (in-addr.arpa) or one
 * hex digit (ip6.arpa, lower case as the query name is). -1 when svcdns could not have it. */
static int reverse_unit(const uint8_t *lab, int family)
{
    if (family == 6) {
        uint8_t c = lab[1];
        if (lab[0] != 1 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        return c <= '9' ? c - '0' : c - 'a' + 10;
    }
    if (lab[0] == 0 || lab[0] > 3 || (lab[0] > 1 && lab[1] == '0'))
        return -1;
    int v = 0;
    for (unsigned k = 1; k <= lab[0]; k++) {
        if (lab[k] < '0' || lab[k] > '9')
            return -1;
        v = v * 10 + (lab[k] - '0');
    }
    return v <= 255 ? v : -1;
}

/* The address (or its prefix) a reverse name spells, most significant unit last. Returns the
 * units read, or -1 when the name is not one svcdns could have. */
static int reverse_address(const struct dns_name *name, size_t apex_len, int family,
                           struct zones_ip *ip)
{
    struct labels l;
    split(name, apex_len, &l);
    unsigned max = family == 4 ? 4 : 32;
    if (l.n > max)
        return -1;
    memset(ip, 0, sizeof(*ip));
    ip->family = (uint8_t)family;
    size_t at = 0;
    for (unsigned i = 0; i < l.n; i++, at += name->wire[at] + 1U) {
        int u = reverse_unit(name->wire + at, family);
        if (u < 0)
            return -1;
        unsigned pos = l.n - 1 - i; /* the labels run from the least significant unit */
        if (family == 4)
            ip->addr[pos] = (uint8_t)u;
        else
            ip->addr[pos / 2] |= (uint8_t)(pos % 2 == 0 ? u << 4 : u);
    }
    return (int)l.n;
}

static int compare_name(const struct dns_name *a, const struct dns_name *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return memcmp(a->wire, b->wire, a->len);
}

/* The PTR records of a full address: the name of each Service or endpoint that has it. */
static uint16_t put_ptrs(struct reply *r, const struct zones_ip *ip)
{
    struct dns_name names[16];
    size_t n = 0;
    size_t pos = SIZE_MAX;
    for (const struct zones_view_addr *a; (a = zones_store_next_addr(r->s, ip, &pos));) {
        const struct zones_view *v = a->view;
        const struct zones_view_endpoint *e =
            a->endpoint == ZONES_VIEW_NAME ? NULL : &v->endpoints[a->endpoint];
        struct dns_name target;
        if (n == sizeof(names) / sizeof(names[0]) || !view_name(r->s, v, e, &target))
            continue;
        size_t j = n;
        bool dup = false;
        while (j > 0) {
            int c = compare_name(&names[j - 1], &target);
            dup = dup || c == 0;
            if (c <= 0)
                break;
            j--;
        }
        if (dup)
            continue;
        memmove(&names[j + 1], &names[j], (n - j) * sizeof(names[0]));
        names[j] = target;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        put_name_rr(r, NULL, DNS_TYPE_PTR, &names[i]);
    return (uint16_t)n;
}

static const size_t reverse_apex_len[] = {0, 14, 10}; /* in-addr.arpa., ip6.arpa. */

static size_t answer_reverse(struct reply *r, enum zones_zone zone, bool *ours)
{
    struct zones_ip ip;
    int units = reverse_address(&r->q->qname, reverse_apex_len[zone],
                                zone == ZONES_ZONE_REVERSE4 ? 4 : 6, &ip);
    unsigned full = zone == ZONES_ZONE_REVERSE4 ? 4 : 32;
    *ours = true;
    if (units == (int)full) {
        size_t at = r->c.pos;
        begin(r, DNS_RCODE_NOERROR);
        bool ptr = r->q->qtype == DNS_TYPE_PTR || r->q->qtype == DNS_TYPE_ANY;
        uint16_t n = ptr ? put_ptrs(r, &ip) : 0;
        if (n > 0) {
            r->an = n;
            return finish(r);
        }
        r->c.pos = at;
        size_t pos = SIZE_MAX;
        if (!ptr && zones_store_next_addr(r->s, &ip, &pos) != NULL)
            return negative(r, zone, DNS_RCODE_NOERROR);
    } else if (units > 0 && zones_store_reverse_exists(r->s, &ip, (unsigned)units)) {
        /* An empty non-terminal: the reverse names of the cluster's addresses are below. */
        if (r->cfg->fallthrough_reverse) {
            *ours = false;
            return 0;
        }
        return negative(r, zone, DNS_RCODE_NOERROR);
    }
    if (r->cfg->fallthrough_reverse) { /* CoreDNS: fallthrough in-addr.arpa ip6.arpa */
        *ours = false;
        return 0;
    }
    return negative(r, zone, DNS_RCODE_NXDOMAIN);
}

/* --- the stage ---------------------------------------------------------------------------- */

enum zones_answer_result zones_answer_query(const struct zones_store *s,
                                            const struct zones_answer_config *cfg,
                                            const struct dns_query *q, const uint8_t *pkt,
                                            uint8_t *out, size_t cap, size_t *out_len,
                                            struct zones_chase *chase)
{
    if (chase)
        chase->count = 0;
    if (q->qclass != DNS_CLASS_IN && q->qclass != DNS_CLASS_ANY)
        return ZONES_ANSWER_NOT_OURS;
    enum zones_zone zone = zones_store_zone_of(s, &q->qname);
    if (zone == ZONES_ZONE_NONE)
        return ZONES_ANSWER_NOT_OURS;
    if (!zones_store_is_complete(s)) {
        /* A source is still loading: a missing name may yet exist, so no NXDOMAIN (a client
         * would cache it). Reverse names the forwarder may answer go on as usual. */
        if (zone != ZONES_ZONE_CLUSTER && cfg->fallthrough_reverse)
            return ZONES_ANSWER_NOT_OURS;
        *out_len =
            dns_wire_error_reply(out, cap, q, pkt, DNS_RCODE_SERVFAIL,
                                 cfg->recursion_available ? DNS_FLAG_RA : 0, DNS_EDE_NOT_READY);
        return ZONES_ANSWER_DONE;
    }
    struct reply r = {.s = s, .cfg = cfg, .q = q, .pkt = pkt};
    r.flags = cfg->recursion_available ? DNS_FLAG_RA : 0;
    dns_cursor_init(&r.c, out, cap);
    if (zone == ZONES_ZONE_CLUSTER) {
        *out_len = answer_cluster(&r, chase);
        return ZONES_ANSWER_DONE;
    }
    bool ours;
    size_t len = answer_reverse(&r, zone, &ours);
    if (!ours)
        return ZONES_ANSWER_NOT_OURS;
    *out_len = len;
    return ZONES_ANSWER_DONE;
}

enum dns_verdict zones_answer_serve(void *self, struct dns_request *req)
{
    const struct zones_answer *za = self;
    struct zones_chase chase;
    struct zones_answer_config cfg = za->cfg;
    cfg.any_in_full = req->proto == DNS_PROTO_TCP;
    if (zones_answer_query(za->store, &cfg, &req->q, req->pkt, req->ans, req->ans_cap,
                           &req->ans_len, &chase) == ZONES_ANSWER_NOT_OURS)
        return DNS_NEXT;
    if (chase.count == 0 || !za->cfg.chase_outside)
        return DNS_DONE;
    /* An ExternalName leaving the cluster: the CNAMEs, then what the upstream says of the
     * target (CoreDNS resolves it through itself the same way). */
    if (dns_request_follow(req, &chase.target, chase.records, chase.len, chase.count) < 0)
        return DNS_DONE;
    return DNS_NEXT;
}

/* The dns_names interface. */

static enum dns_name_state names_lookup(const void *self, const struct dns_name *name)
{
    const struct zones_answer *za = self;
    if (!dns_name_is_subdomain(name, &za->store->zone))
        return DNS_NAME_ABSENT; /* the search path asks of cluster names only */
    struct node node;
    resolve(za->store, name, &node);
    if (node.kind == NODE_NONE)
        return DNS_NAME_ABSENT;
    return node.kind == NODE_EMPTY ? DNS_NAME_EMPTY : DNS_NAME_RECORDS;
}

static bool names_client_namespace(const void *self, const struct sockaddr_storage *client,
                                   uint8_t label[DNS_MAX_LABEL + 1])
{
    const struct zones_answer *za = self;
    const uint8_t *bytes;
    struct zones_ip ip = {0};
    if (!zones_store_is_complete(za->store))
        return false; /* the Pods may not be loaded yet: no autopath on half the data */
    size_t n = dns_addr_bytes(client, &bytes);
    if (n == 0)
        return false;
    ip.family = n == 4 ? 4 : 6;
    memcpy(ip.addr, bytes, n);
    size_t pos = SIZE_MAX;
    const struct zones_pod_addr *pod = zones_store_next_pod(za->store, &ip, &pos);
    if (pod == NULL)
        return false;
    memcpy(label, pod->ns->label, (size_t)pod->ns->label[0] + 1);
    return true;
}

static size_t names_answer(const void *self, const struct dns_query *q, const uint8_t *pkt,
                           uint8_t *out, size_t cap)
{
    const struct zones_answer *za = self;
    size_t len = 0;
    if (zones_answer_query(za->store, &za->cfg, q, pkt, out, cap, &len, NULL) ==
        ZONES_ANSWER_NOT_OURS)
        return 0;
    return len;
}

/* What zones_answer_query() answers rather than passes on: the cluster zone whole; in the
 * reverse zones, the name of a full address the cluster has (the rest falls through to the
 * forwarder when there is one). */
static bool names_is_authoritative(const void *self, const struct dns_name *name)
{
    const struct zones_answer *za = self;
    enum zones_zone zone = zones_store_zone_of(za->store, name);
    if (zone == ZONES_ZONE_NONE)
        return false;
    if (zone == ZONES_ZONE_CLUSTER || !za->cfg.fallthrough_reverse)
        return true;
    int family = zone == ZONES_ZONE_REVERSE4 ? 4 : 6;
    struct zones_ip ip;
    size_t pos = SIZE_MAX;
    return reverse_address(name, reverse_apex_len[zone], family, &ip) == (family == 4 ? 4 : 32) &&
           zones_store_next_addr(za->store, &ip, &pos) != NULL;
}

struct dns_names zones_answer_names(const struct zones_answer *za)
{
    return (struct dns_names){names_lookup, names_client_namespace, names_answer,
                              names_is_authoritative, za};
}
