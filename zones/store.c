/* zones/store.c - turns zones_objects into an immutable snapshot of wire-ready answers.
 *
 * Two passes. First every record is collected as (owner, type, rdata) in a builder and
 * sorted, which groups RRsets and nodes and drops duplicates; the ancestors of every owner
 * become empty non-terminals so NXDOMAIN never hides a name that has children (RFC 8020).
 * Then each node's answers are rendered once, with their glue and CNAME chains, into one
 * byte arena, and a hash table over the node names is built. Nothing is shared with objs. */
#include "zones/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldns/ldns.h>

#include "zones/store_layout.h"

#define ENT_TYPE 0         /* builder marker: the name exists, with no records */
#define CNAME_CHAIN_MAX 10 /* CoreDNS maxCnameChainLength */
#define DNS_VERSION_TTL 28800
#define SOA_RDATA_MAX (2 * DNS_MAX_NAME + 20)

struct brr {
    uint64_t key;   /* hash of the owner, for the owner table */
    uint32_t owner; /* offsets into builder.arena */
    uint32_t rdata;
    uint16_t rdlen;
    uint16_t type;
    uint32_t ttl;
    uint32_t node; /* the owner's number: the node it becomes */
    uint8_t owner_len;
    uint8_t zone;
};

struct arena {
    uint8_t *data;
    size_t len, cap;
    bool failed;
};

/* The distinct owners while the builder collects, numbered in the order first seen: an
 * open-addressing table keyed by the owner hash and compared by the owner's bytes. */
struct owners {
    uint32_t *slots; /* owner number + 1; 0 empty */
    size_t mask;
    uint32_t *first; /* owner number -> its first record */
    size_t n, cap;
};

struct builder {
    struct arena names; /* owners and rdata while collecting */
    struct brr *rrs;
    size_t n_rrs, cap_rrs;
    struct owners owners;
    const struct zones_store_config *cfg;
    struct zones_store *s;
    struct dns_name in_addr, ip6;
    struct dns_name svc_zone;        /* svc.<zone> */
    const char *last_ns;             /* the namespace add_namespace saw last */
    struct arena out;                /* the store's arena */
    char zone[DNS_MAX_NAME * 4 + 2]; /* the cluster domain as text, for name_fmt */
};

static uint32_t arena_put(struct arena *a, const void *data, size_t n)
{
    if (a->failed || a->len + n > UINT32_MAX) {
        a->failed = true;
        return 0;
    }
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        while (cap < a->len + n)
            cap *= 2;
        uint8_t *p = realloc(a->data, cap);
        if (!p) {
            a->failed = true;
            return 0;
        }
        a->data = p;
        a->cap = cap;
    }
    uint32_t off = (uint32_t)a->len;
    memcpy(a->data + a->len, data, n);
    a->len += n;
    return off;
}

static int name_fmt(struct dns_name *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int name_fmt(struct dns_name *out, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -1;
    return dns_name_from_text(out, text);
}

/* prefix and label as one label, lower-cased, under parent: the names of Services, ports,
 * endpoints and pods, built without printf (100k Services make half a million of them).
 * prefix is "" or "_" (SRV owners). -1 when the label or the name does not fit. */
static int name_under(struct dns_name *out, const char *prefix, const char *label,
                      const struct dns_name *parent)
{
    size_t p = strlen(prefix);
    size_t l = strlen(label);
    if (p + l == 0 || p + l > DNS_MAX_LABEL || 1 + p + l + parent->len > DNS_MAX_NAME)
        return -1;
    out->wire[0] = (uint8_t)(p + l);
    memcpy(out->wire + 1, prefix, p);
    for (size_t i = 0; i < l; i++) {
        uint8_t c = (uint8_t)label[i];
        if (c == '.')
            return -1;
        out->wire[1 + p + i] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
    }
    memcpy(out->wire + 1 + p + l, parent->wire, parent->len);
    out->len = (uint8_t)(1 + p + l + parent->len);
    return 0;
}

static const uint8_t *rr_owner(const struct builder *b, const struct brr *r)
{
    return b->names.data + r->owner;
}

static uint64_t hash_name(uint64_t seed, const uint8_t *wire, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed; /* FNV-1a, seeded per snapshot */
    for (size_t i = 0; i < len; i++) {
        h ^= wire[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static uint32_t *owner_slot(const struct owners *o, const struct builder *b, uint64_t key,
                            const uint8_t *wire, size_t len)
{
    for (size_t i = (size_t)key & o->mask;; i = (i + 1) & o->mask) {
        uint32_t *slot = &o->slots[i];
        if (*slot == 0)
            return slot;
        const struct brr *r = &b->rrs[o->first[*slot - 1]];
        if (r->key == key && r->owner_len == len && memcmp(rr_owner(b, r), wire, len) == 0)
            return slot;
    }
}

/* Room for one more owner: the table stays at most half full. */
static int owners_reserve(struct owners *o, const struct builder *b)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        uint32_t *first = realloc(o->first, cap * sizeof(*first));
        if (!first)
            return -ENOMEM;
        o->first = first;
        o->cap = cap;
    }
    if ((o->n + 1) * 2 <= o->mask + 1)
        return 0;
    size_t size = o->slots ? (o->mask + 1) * 2 : 4096;
    if (size == 0)
        return -ENOMEM; /* the table cannot double any more */
    struct owners bigger = {calloc(size, sizeof(uint32_t)), size - 1, o->first, o->n, o->cap};
    if (!bigger.slots)
        return -ENOMEM;
    for (size_t k = 0; k < o->n; k++) {
        const struct brr *r = &b->rrs[o->first[k]];
        *owner_slot(&bigger, b, r->key, rr_owner(b, r), r->owner_len) = (uint32_t)k + 1;
    }
    free(o->slots);
    *o = bigger;
    return 0;
}

/* Appends a record. Its owner is numbered on the way: the first record of an owner keeps
 * the owner's bytes, the others point at them. */
static void add_rr(struct builder *b, const struct dns_name *owner, uint16_t type, uint32_t ttl,
                   const void *rdata, size_t rdlen)
{
    if (b->names.failed)
        return; /* out of memory: the build fails; owners may point nowhere */
    if (b->n_rrs == b->cap_rrs) {
        size_t cap = b->cap_rrs ? b->cap_rrs * 2 : 1024;
        struct brr *p = realloc(b->rrs, cap * sizeof(*p));
        if (!p) {
            b->names.failed = true;
            return;
        }
        b->rrs = p;
        b->cap_rrs = cap;
    }
    struct owners *o = &b->owners;
    if (owners_reserve(o, b) < 0) {
        b->names.failed = true;
        return;
    }
    uint64_t key = hash_name(0, owner->wire, owner->len);
    uint32_t *slot = owner_slot(o, b, key, owner->wire, owner->len);
    size_t at = b->n_rrs++;
    struct brr *r = &b->rrs[at];
    r->key = key;
    r->owner_len = owner->len;
    if (*slot == 0) {
        r->owner = arena_put(&b->names, owner->wire, owner->len);
        o->first[o->n] = (uint32_t)at;
        *slot = (uint32_t)++o->n;
    } else {
        r->owner = b->rrs[o->first[*slot - 1]].owner;
    }
    r->node = *slot - 1;
    r->rdata = arena_put(&b->names, rdata, rdlen);
    r->rdlen = (uint16_t)rdlen;
    r->type = type;
    r->ttl = ttl;
    r->zone = (uint8_t)zones_store_zone_of(b->s, owner);
}

static void add_ent(struct builder *b, const struct dns_name *owner)
{
    add_rr(b, owner, ENT_TYPE, 0, "", 0);
}

static void add_addr(struct builder *b, const struct dns_name *owner, const struct zones_ip *ip)
{
    if (ip->family == 4)
        add_rr(b, owner, DNS_TYPE_A, b->cfg->ttl, ip->addr, 4);
    else
        add_rr(b, owner, DNS_TYPE_AAAA, b->cfg->ttl, ip->addr, 16);
}

static void add_name_rr(struct builder *b, const struct dns_name *owner, uint16_t type,
                        const struct dns_name *target)
{
    add_rr(b, owner, type, b->cfg->ttl, target->wire, target->len);
}

/* The reverse name of ip: d.c.b.a.in-addr.arpa or 32 nibbles under ip6.arpa. */
static void reverse_name(const struct builder *b, const struct zones_ip *ip, struct dns_name *out)
{
    static const char hex[] = "0123456789abcdef";
    const struct dns_name *apex = ip->family == 4 ? &b->in_addr : &b->ip6;
    size_t n = 0;
    for (int i = ip->family == 4 ? 3 : 15; i >= 0; i--) {
        uint8_t v = ip->addr[i];
        if (ip->family == 4) {
            uint8_t *len = &out->wire[n++];
            if (v >= 100)
                out->wire[n++] = (uint8_t)('0' + v / 100);
            if (v >= 10)
                out->wire[n++] = (uint8_t)('0' + v / 10 % 10);
            out->wire[n++] = (uint8_t)('0' + v % 10);
            *len = (uint8_t)(&out->wire[n] - len - 1);
        } else {
            out->wire[n++] = 1;
            out->wire[n++] = (uint8_t)hex[v & 0xf];
            out->wire[n++] = 1;
            out->wire[n++] = (uint8_t)hex[v >> 4];
        }
    }
    memcpy(out->wire + n, apex->wire, apex->len);
    out->len = (uint8_t)(n + apex->len);
}

static void add_ptr(struct builder *b, const struct zones_ip *ip, const struct dns_name *target)
{
    struct dns_name rev;
    reverse_name(b, ip, &rev);
    add_name_rr(b, &rev, DNS_TYPE_PTR, target);
}

/* "10-244-1-7" for IPv4; for IPv6 the compressed text with ':' as '-' ("fd00--7"). */
static void dashed_ip(const struct zones_ip *ip, char *out, size_t cap)
{
    zones_ip_format(ip, out, cap);
    for (char *p = out; *p; p++) {
        if (*p == '.' || *p == ':')
            *p = '-';
    }
}

static void add_srv(struct builder *b, const struct dns_name *owner, uint16_t port,
                    const struct dns_name *target)
{
    uint8_t rdata[6 + DNS_MAX_NAME];
    dns_wire_put_u16(rdata, 0);     /* priority */
    dns_wire_put_u16(rdata + 2, 0); /* weight: set at render time, 100 / RRset size */
    dns_wire_put_u16(rdata + 4, port);
    memcpy(rdata + 6, target->wire, target->len);
    add_rr(b, owner, DNS_TYPE_SRV, b->cfg->ttl, rdata, 6 + (size_t)target->len);
}

/* _<port>._<proto>.<svc> and the bare service name, for one named port and target. */
static void add_port_srv(struct builder *b, const struct dns_name *svc,
                         const struct zones_port *port, uint16_t number,
                         const struct dns_name *target)
{
    struct dns_name proto;
    struct dns_name owner;
    if (!port->name || name_under(&proto, "_", port->protocol ? port->protocol : "tcp", svc) < 0 ||
        name_under(&owner, "_", port->name, &proto) < 0)
        return;
    add_srv(b, &owner, number, target);
    add_srv(b, svc, number, target);
}

/* The apex SOA's rdata; returns its length. */
static size_t soa_rdata(const struct builder *b, uint8_t *rdata)
{
    struct dns_name mname;
    struct dns_name rname;
    name_fmt(&mname, "ns.dns.%s", b->zone);
    name_fmt(&rname, "hostmaster.%s", b->zone);
    size_t n = 0;
    memcpy(rdata, mname.wire, mname.len);
    n += mname.len;
    memcpy(rdata + n, rname.wire, rname.len);
    n += rname.len;
    uint32_t vals[5] = {b->s->serial, 7200, 1800, 86400, b->cfg->ttl};
    for (int i = 0; i < 5; i++, n += 4)
        dns_wire_put_u32(rdata + n, vals[i]);
    return n;
}

static void add_apex(struct builder *b)
{
    struct dns_name name;
    const char *zone = b->zone;
    uint8_t soa[SOA_RDATA_MAX];
    add_rr(b, &b->s->zone, DNS_TYPE_SOA, b->cfg->ttl, soa, soa_rdata(b, soa));
    name_fmt(&name, "ns.dns.%s", zone);
    add_name_rr(b, &b->s->zone, DNS_TYPE_NS, &name);
    name_fmt(&name, "dns-version.%s", zone);
    static const uint8_t version[] = {5, '1', '.', '1', '.', '0'};
    add_rr(b, &name, DNS_TYPE_TXT, DNS_VERSION_TTL, version, sizeof(version));
    add_ent(b, &b->svc_zone);
    add_ent(b, &b->s->pod_zone);
}

static void add_namespace(struct builder *b, const char *ns)
{
    struct dns_name name;
    if (b->last_ns && strcmp(b->last_ns, ns) == 0)
        return; /* objects come namespace by namespace: most repeats stop here, the rest later */
    b->last_ns = ns;
    if (name_under(&name, "", ns, &b->svc_zone) == 0)
        add_ent(b, &name);
    if (name_under(&name, "", ns, &b->s->pod_zone) == 0)
        add_ent(b, &name);
}

static int svc_name(const struct builder *b, const char *name, const char *ns, struct dns_name *out)
{
    struct dns_name ns_name;
    return name_under(&ns_name, "", ns, &b->svc_zone) < 0 ? -1
                                                          : name_under(out, "", name, &ns_name);
}

/* One ready endpoint of a Service: its own name, its PTRs and, for a headless Service, its
 * share of the Service's addresses and SRV records. */
static void add_endpoint(struct builder *b, const struct zones_service *svc,
                         const struct dns_name *svcname, const struct zones_endpoint *e,
                         const struct zones_port *ports, size_t n_ports)
{
    char label[64];
    struct dns_name epname;

    if (!e->ready)
        return;
    for (size_t i = 0; i < e->n_ips; i++) {
        if (!e->hostname)
            dashed_ip(&e->ips[i], label, sizeof(label));
        if (name_under(&epname, "", e->hostname ? e->hostname : label, svcname) < 0)
            continue;
        add_addr(b, &epname, &e->ips[i]);
        add_ptr(b, &e->ips[i], &epname);
        b->s->counts.endpoints++;
        if (svc->kind != ZONES_SVC_HEADLESS)
            continue;
        add_addr(b, svcname, &e->ips[i]);
        for (size_t p = 0; p < n_ports; p++)
            add_port_srv(b, svcname, &ports[p], ports[p].port, &epname);
    }
}

static bool selector_matches(const struct zones_service *svc, const struct zones_pod *pod)
{
    if (svc->n_selector == 0)
        return false; /* no selector: endpoints are managed by hand, never derived */
    for (size_t i = 0; i < svc->n_selector; i++) {
        bool found = false;
        for (size_t j = 0; j < pod->n_labels && !found; j++) {
            found = strcmp(svc->selector[i].key, pod->labels[j].key) == 0 &&
                    strcmp(svc->selector[i].value, pod->labels[j].value) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

/* Without an EndpointSlice for the Service, do what the endpoints controller would: the ready
 * Pods its selector picks are its endpoints, named by spec.hostname when spec.subdomain is the
 * Service's name. */
static void add_pod_endpoints(struct builder *b, const struct zones_objects *objs,
                              const struct zones_service *svc, const struct dns_name *svcname)
{
    for (size_t i = 0; i < objs->n_pods; i++) {
        const struct zones_pod *pod = &objs->pods[i];
        if (strcmp(pod->ns, svc->ns) != 0 || !selector_matches(svc, pod))
            continue;
        struct zones_endpoint e = {
            .ips = pod->ips,
            .n_ips = pod->n_ips,
            .hostname =
                (pod->subdomain && strcmp(pod->subdomain, svc->name) == 0) ? pod->hostname : NULL,
            .ready = pod->ready,
        };
        add_endpoint(b, svc, svcname, &e, svc->ports, svc->n_ports);
    }
}

static int cmp_slice(const void *a, const void *b)
{
    const struct zones_slice *x = *(const struct zones_slice *const *)a;
    const struct zones_slice *y = *(const struct zones_slice *const *)b;
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->service, y->service);
}

/* The EndpointSlices of every Service, found by binary search in slices sorted by
 * (namespace, service). */
static void add_service(struct builder *b, const struct zones_objects *objs,
                        const struct zones_service *svc, struct zones_slice **sorted)
{
    struct dns_name name;
    struct dns_name target;
    if (svc_name(b, svc->name, svc->ns, &name) < 0)
        return;
    if (svc->kind == ZONES_SVC_EXTERNAL_NAME) {
        b->s->counts.external_name++;
        /* "x CNAME x" would loop at once; CoreDNS drops it, and so do we. */
        if (dns_name_from_text(&target, svc->external_name) == 0 && !dns_name_equal(&target, &name))
            add_name_rr(b, &name, DNS_TYPE_CNAME, &target);
        return;
    }
    if (svc->kind == ZONES_SVC_HEADLESS) {
        b->s->counts.headless++;
    } else {
        b->s->counts.cluster_ip++;
        for (size_t i = 0; i < svc->n_ips; i++) {
            add_addr(b, &name, &svc->ips[i]);
            add_ptr(b, &svc->ips[i], &name);
        }
        for (size_t p = 0; p < svc->n_ports; p++)
            add_port_srv(b, &name, &svc->ports[p], svc->ports[p].port, &name);
    }
    struct zones_slice key = {.ns = svc->ns, .service = svc->name};
    struct zones_slice *keyp = &key;
    size_t lo = 0;
    size_t hi = objs->n_slices;
    while (lo < hi) { /* lower bound */
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_slice(&sorted[mid], &keyp) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == objs->n_slices || cmp_slice(&sorted[lo], &keyp) != 0) {
        add_pod_endpoints(b, objs, svc, &name);
        return;
    }
    for (size_t i = lo; i < objs->n_slices && cmp_slice(&sorted[i], &keyp) == 0; i++) {
        const struct zones_slice *sl = sorted[i];
        for (size_t e = 0; e < sl->n_endpoints; e++)
            add_endpoint(b, svc, &name, &sl->endpoints[e], sl->ports, sl->n_ports);
    }
}

static void add_pod(struct builder *b, const struct zones_pod *pod)
{
    char label[64];
    struct dns_name ns_name;
    struct dns_name name;
    b->s->counts.pods++;
    if (b->cfg->pods != ZONES_PODS_VERIFIED ||
        name_under(&ns_name, "", pod->ns, &b->s->pod_zone) < 0)
        return;
    for (size_t i = 0; i < pod->n_ips; i++) {
        dashed_ip(&pod->ips[i], label, sizeof(label));
        if (name_under(&name, "", label, &ns_name) == 0)
            add_addr(b, &name, &pod->ips[i]);
    }
}

static void add_objects(struct builder *b, const struct zones_objects *objs)
{
    add_apex(b);
    for (size_t i = 0; i < objs->n_namespaces; i++)
        add_namespace(b, objs->namespaces[i].name);
    for (size_t i = 0; i < objs->n_services; i++)
        add_namespace(b, objs->services[i].ns);
    for (size_t i = 0; i < objs->n_slices; i++)
        add_namespace(b, objs->slices[i].ns);
    for (size_t i = 0; i < objs->n_pods; i++) {
        add_namespace(b, objs->pods[i].ns);
        add_pod(b, &objs->pods[i]);
    }
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sized as one
    struct zones_slice **sorted = malloc((objs->n_slices + 1) * sizeof(*sorted));
    if (!sorted) {
        b->names.failed = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < objs->n_slices; i++) {
        if (objs->slices[i].service)
            sorted[n++] = &objs->slices[i];
    }
    qsort(sorted, n, sizeof(*sorted), cmp_slice); // NOLINT(bugprone-sizeof-expression)
    struct zones_objects view = *objs;
    view.n_slices = n;
    for (size_t i = 0; i < objs->n_services; i++)
        add_service(b, &view, &objs->services[i], sorted);
    free(sorted);
}

/* Every name between an owner and its zone's apex exists as an empty non-terminal. The
 * reverse apexes themselves are not ours: in-addr.arpa belongs to the upstream. Each walk up
 * stops at the first name already known, so every ancestor is added once. */
static int add_ancestors(struct builder *b)
{
    const struct owners *o = &b->owners;
    for (size_t k = 0, n = o->n; k < n && !b->names.failed; k++) {
        const struct brr *rr = &b->rrs[o->first[k]];
        struct dns_name name = {.len = rr->owner_len};
        memcpy(name.wire, rr_owner(b, rr), name.len);
        const struct dns_name *apex = rr->zone == ZONES_ZONE_CLUSTER    ? &b->s->zone
                                      : rr->zone == ZONES_ZONE_REVERSE4 ? &b->in_addr
                                                                        : &b->ip6;
        for (size_t at = name.wire[0] + 1U; name.len - at > apex->len; at += name.wire[at] + 1U) {
            const uint8_t *parent = name.wire + at;
            size_t len = name.len - at;
            if (*owner_slot(o, b, hash_name(0, parent, len), parent, len) != 0)
                break; /* known: its own ancestors are walked from there */
            struct dns_name ent = {.len = (uint8_t)len};
            memcpy(ent.wire, parent, len);
            add_ent(b, &ent);
        }
    }
    return b->names.failed ? -ENOMEM : 0;
}

/* Within one owner: by type, then data, so each type is a run and duplicates are adjacent. */
static int cmp_rr_ctx(const struct builder *b, const struct brr *x, const struct brr *y)
{
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    if (x->rdlen != y->rdlen)
        return x->rdlen < y->rdlen ? -1 : 1;
    return memcmp(b->names.data + x->rdata, b->names.data + y->rdata, x->rdlen);
}

/* qsort has no context argument in C11; the builder being sorted is set just before (per
 * thread, so builds on different threads do not meet). */
static _Thread_local const struct builder *sort_builder;
static int cmp_rr(const void *a, const void *b)
{
    return cmp_rr_ctx(sort_builder, a, b);
}

/* Per node, while rendering: where its records are in the grouped builder. */
struct span {
    size_t first, end;
};

/* Puts the records in owner order (a counting sort on the owner number, in place: each
 * owner's cursor takes the record that belongs there, swapping out the one in the way), sorts
 * each owner's few records, and drops exact duplicates (two slices may list one endpoint). */
static int group_rrs(struct builder *b, struct span **spans_out)
{
    const struct owners *o = &b->owners;
    struct span *spans = calloc(o->n + 1, sizeof(*spans));
    if (!spans)
        return -ENOMEM;
    for (size_t r = 0; r < b->n_rrs; r++)
        spans[b->rrs[r].node].end++;
    size_t at = 0;
    for (size_t k = 0; k < o->n; k++) {
        size_t count = spans[k].end;
        spans[k].first = spans[k].end = at;
        at += count;
    }
    for (size_t k = 0; k < o->n; k++) {
        size_t stop = k + 1 < o->n ? spans[k + 1].first : b->n_rrs;
        while (spans[k].end < stop) {
            struct brr *r = &b->rrs[spans[k].end];
            if (r->node == k) {
                spans[k].end++;
                continue;
            }
            size_t to = spans[r->node].end++;
            struct brr t = b->rrs[to];
            b->rrs[to] = *r;
            *r = t;
        }
    }
    sort_builder = b;
    size_t w = 0;
    for (size_t k = 0; k < o->n; k++) {
        struct span *sp = &spans[k];
        qsort(b->rrs + sp->first, sp->end - sp->first, sizeof(*b->rrs), cmp_rr);
        size_t first = w;
        for (size_t r = sp->first; r < sp->end; r++) {
            if (w > first && cmp_rr_ctx(b, &b->rrs[w - 1], &b->rrs[r]) == 0)
                continue;
            b->rrs[w++] = b->rrs[r];
        }
        *sp = (struct span){first, w};
    }
    sort_builder = NULL;
    b->n_rrs = w;
    *spans_out = spans;
    return 0;
}

/* names is where node names live: the store's arena, or the builder's while it still grows
 * (a realloc may move it, so it is passed in, never remembered). */
static const struct zones_node *find_node(const struct zones_store *s, const uint8_t *names,
                                          const uint8_t *wire, size_t len)
{
    size_t i = (size_t)hash_name(s->hash_seed, wire, len) & s->table_mask;
    for (;; i = (i + 1) & s->table_mask) {
        uint32_t slot = s->table[i];
        if (slot == 0)
            return NULL;
        const struct zones_node *n = &s->nodes[slot - 1];
        if (n->name_len == len && memcmp(names + n->name_off, wire, len) == 0)
            return n;
    }
}

const struct zones_node *zones_store_find(const struct zones_store *store,
                                          const struct dns_name *name)
{
    return find_node(store, store->bytes, name->wire, name->len);
}

/* One node per owner, then the table. */
static int make_nodes(struct builder *b, const struct span *spans, size_t n_nodes)
{
    struct zones_store *s = b->s;
    s->nodes = calloc(n_nodes + 1, sizeof(*s->nodes));
    size_t cap = 16;
    while (cap < n_nodes * 2)
        cap *= 2;
    s->table = calloc(cap, sizeof(*s->table));
    if (!s->nodes || !s->table)
        return -ENOMEM;
    s->table_mask = cap - 1;
    s->n_nodes = n_nodes;
    for (size_t k = 0; k < n_nodes; k++) {
        const struct brr *rr = &b->rrs[spans[k].first];
        struct zones_node *node = &s->nodes[k];
        node->name_off = arena_put(&b->out, rr_owner(b, rr), rr->owner_len);
        node->name_len = rr->owner_len;
        node->zone = rr->zone;
    }
    if (b->out.failed)
        return -ENOMEM;
    for (size_t i = 0; i < n_nodes; i++) {
        const struct zones_node *node = &s->nodes[i];
        size_t h = (size_t)hash_name(s->hash_seed, b->out.data + node->name_off, node->name_len);
        size_t slot = h & s->table_mask;
        while (s->table[slot])
            slot = (slot + 1) & s->table_mask;
        s->table[slot] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Type, class IN, TTL and rdata length: what follows a record's owner. */
static void put_rr_head(struct arena *out, uint16_t type, uint32_t ttl, uint16_t rdlen)
{
    uint8_t head[10];
    dns_wire_put_u16(head, type);
    dns_wire_put_u16(head + 2, DNS_CLASS_IN);
    dns_wire_put_u32(head + 4, ttl);
    dns_wire_put_u16(head + 8, rdlen);
    arena_put(out, head, sizeof(head));
}

/* Writes one record. owner NULL means the question name (pointer 0xc00c). */
static void put_rr(struct arena *out, const uint8_t *owner, size_t owner_len,
                   const struct builder *b, const struct brr *r, uint16_t srv_weight)
{
    if (owner) {
        arena_put(out, owner, owner_len);
    } else {
        uint8_t ptr[2];
        dns_wire_put_u16(ptr, DNS_QUESTION_PTR);
        arena_put(out, ptr, 2);
    }
    put_rr_head(out, r->type, r->ttl, r->rdlen);
    uint32_t at = arena_put(out, b->names.data + r->rdata, r->rdlen);
    if (r->type == DNS_TYPE_SRV && !out->failed)
        dns_wire_put_u16(out->data + at + 2, srv_weight);
}

/* The records of one type in a span; returns how many were written. */
static uint16_t put_rrset(struct arena *out, const struct builder *b, const struct span *sp,
                          uint16_t type, const uint8_t *owner, size_t owner_len)
{
    uint16_t count = 0;
    for (size_t r = sp->first; r < sp->end; r++)
        count = (uint16_t)(count + (b->rrs[r].type == type));
    if (count == 0)
        return 0;
    uint16_t weight = (uint16_t)(100 / count); /* CoreDNS: floor(100 / records) */
    for (size_t r = sp->first; r < sp->end; r++) {
        if (b->rrs[r].type == type)
            put_rr(out, owner, owner_len, b, &b->rrs[r], weight);
    }
    return count;
}

struct render {
    struct builder *b;
    const struct span *spans;
};

static const struct span *span_of(const struct render *rd, const uint8_t *wire, size_t len)
{
    const struct zones_node *n = find_node(rd->b->s, rd->b->out.data, wire, len);
    return n ? &rd->spans[n - rd->b->s->nodes] : NULL;
}

/* Glue: the addresses of every SRV target we know, owners written out in full. */
static uint16_t put_glue(const struct render *rd, const struct span *sp)
{
    struct builder *b = rd->b;
    uint16_t ar = 0;
    for (size_t r = sp->first; r < sp->end; r++) {
        const struct brr *rr = &b->rrs[r];
        if (rr->type != DNS_TYPE_SRV)
            continue;
        const uint8_t *target = b->names.data + rr->rdata + 6;
        size_t tlen = rr->rdlen - 6U;
        bool seen = false; /* two ports with one target: glue once */
        for (size_t q = sp->first; q < r && !seen; q++) {
            seen = b->rrs[q].type == DNS_TYPE_SRV && b->rrs[q].rdlen == rr->rdlen &&
                   memcmp(b->names.data + b->rrs[q].rdata + 6, target, tlen) == 0;
        }
        const struct span *tsp = seen ? NULL : span_of(rd, target, tlen);
        if (!tsp)
            continue;
        ar = (uint16_t)(ar + put_rrset(&b->out, b, tsp, DNS_TYPE_A, target, tlen));
        ar = (uint16_t)(ar + put_rrset(&b->out, b, tsp, DNS_TYPE_AAAA, target, tlen));
    }
    return ar;
}

static struct zones_entry *new_entry(struct zones_store *s, size_t *cap, uint16_t type,
                                     uint32_t off)
{
    if (s->n_entries == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        struct zones_entry *p = realloc(s->entries, ncap * sizeof(*p));
        if (!p)
            return NULL;
        s->entries = p;
        *cap = ncap;
    }
    struct zones_entry *e = &s->entries[s->n_entries++];
    *e = (struct zones_entry){.type = type, .off = off};
    return e;
}

/* An ExternalName answering A or AAAA: its CNAME, then the target's chain inside the zone,
 * at most CNAME_CHAIN_MAX links, stopping where the chain would revisit a name. */
static uint16_t put_cname_chain(const struct render *rd, const struct span *sp, uint16_t qtype,
                                const struct brr **outside)
{
    struct builder *b = rd->b;
    uint16_t an = put_rrset(&b->out, b, sp, DNS_TYPE_CNAME, NULL, 0);
    const struct brr *link = &b->rrs[sp->first];
    while (link->type != DNS_TYPE_CNAME)
        link++;
    const struct span *visited[CNAME_CHAIN_MAX + 1] = {sp};
    size_t n_visited = 1;
    for (;;) {
        const uint8_t *target = b->names.data + link->rdata;
        const struct span *tsp = span_of(rd, target, link->rdlen);
        if (!tsp) {
            struct dns_name t = {.len = (uint8_t)link->rdlen};
            memcpy(t.wire, target, link->rdlen);
            /* Outside our zones: the rest of the answer is the upstream's to give. */
            if (zones_store_zone_of(b->s, &t) == ZONES_ZONE_NONE)
                *outside = link;
            return an;
        }
        for (size_t i = 0; i < n_visited; i++) {
            if (visited[i] == tsp)
                return an; /* a loop: the chain so far is the answer */
        }
        const struct brr *next = NULL;
        for (size_t r = tsp->first; r < tsp->end && !next; r++)
            next = b->rrs[r].type == DNS_TYPE_CNAME ? &b->rrs[r] : NULL;
        if (!next)
            return (uint16_t)(an + put_rrset(&b->out, b, tsp, qtype, target, link->rdlen));
        if (n_visited == CNAME_CHAIN_MAX)
            return an;
        an = (uint16_t)(an + put_rrset(&b->out, b, tsp, DNS_TYPE_CNAME, target, link->rdlen));
        visited[n_visited++] = tsp;
        link = next;
    }
}

static int render_node(const struct render *rd, size_t i, size_t *entries_cap)
{
    struct builder *b = rd->b;
    struct zones_store *s = b->s;
    struct zones_node *node = &s->nodes[i];
    const struct span *sp = &rd->spans[i];
    node->first_entry = (uint32_t)s->n_entries;
    uint16_t types[16];
    size_t n_types = 0;
    for (size_t r = sp->first; r < sp->end; r++) {
        uint16_t t = b->rrs[r].type;
        if (t != ENT_TYPE && (n_types == 0 || types[n_types - 1] != t) && n_types < 16)
            types[n_types++] = t;
    }
    for (size_t t = 0; t < n_types; t++) {
        struct zones_entry *e = new_entry(s, entries_cap, types[t], (uint32_t)b->out.len);
        if (!e)
            return -ENOMEM;
        e->an = put_rrset(&b->out, b, sp, types[t], NULL, 0);
        e->an_len = (uint32_t)(b->out.len - e->off);
        if (types[t] == DNS_TYPE_SRV)
            e->ar = put_glue(rd, sp);
        if (types[t] == DNS_TYPE_CNAME)
            node->is_cname = 1;
        e->len = (uint32_t)(b->out.len - e->off);
    }
    if (node->is_cname) {
        static const uint16_t chased[] = {DNS_TYPE_A, DNS_TYPE_AAAA};
        for (size_t t = 0; t < 2; t++) {
            struct zones_entry *e = new_entry(s, entries_cap, chased[t], (uint32_t)b->out.len);
            if (!e)
                return -ENOMEM;
            const struct brr *outside = NULL;
            e->an = put_cname_chain(rd, sp, chased[t], &outside);
            e->len = e->an_len = (uint32_t)(b->out.len - e->off);
            if (outside) {
                e->chase_len = (uint8_t)outside->rdlen;
                e->chase_off = arena_put(&b->out, b->names.data + outside->rdata, outside->rdlen);
            }
        }
    }
    node->n_entries = (uint8_t)(s->n_entries - node->first_entry);
    return 0;
}

/* The SOA of each zone for negative answers, owner written out: not a record of the zone. */
static void add_negative_soas(struct builder *b)
{
    struct zones_store *s = b->s;
    const struct dns_name *apex[3] = {&s->zone, &b->in_addr, &b->ip6};
    uint8_t rdata[SOA_RDATA_MAX];
    size_t rdlen = soa_rdata(b, rdata);
    for (int z = 0; z < 3; z++) {
        s->soa_off[z] = arena_put(&b->out, apex[z]->wire, apex[z]->len);
        put_rr_head(&b->out, DNS_TYPE_SOA, b->cfg->ttl, (uint16_t)rdlen);
        arena_put(&b->out, rdata, rdlen);
        s->soa_len[z] = (uint16_t)(b->out.len - s->soa_off[z]);
    }
}

static int cmp_pod_ip(const void *a, const void *b)
{
    const struct zones_pod_ip *x = a;
    const struct zones_pod_ip *y = b;
    if (x->ip.family != y->ip.family)
        return x->ip.family < y->ip.family ? -1 : 1;
    return memcmp(x->ip.addr, y->ip.addr, 16);
}

static int index_pod_ips(struct builder *b, const struct zones_objects *objs)
{
    struct zones_store *s = b->s;
    size_t n = 0;
    for (size_t i = 0; i < objs->n_pods; i++)
        n += objs->pods[i].n_ips;
    s->pod_ips = calloc(n + 1, sizeof(*s->pod_ips));
    if (!s->pod_ips)
        return -ENOMEM;
    for (size_t i = 0; i < objs->n_pods; i++) {
        const struct zones_pod *pod = &objs->pods[i];
        uint8_t label[DNS_MAX_LABEL + 1];
        size_t l = strlen(pod->ns);
        label[0] = (uint8_t)(l > DNS_MAX_LABEL ? DNS_MAX_LABEL : l);
        memcpy(label + 1, pod->ns, label[0]);
        uint32_t off = arena_put(&b->out, label, (size_t)label[0] + 1);
        for (size_t j = 0; j < pod->n_ips; j++) {
            struct zones_pod_ip *p = &s->pod_ips[s->n_pod_ips++];
            p->ip = pod->ips[j];
            p->ns_off = off;
        }
    }
    qsort(s->pod_ips, s->n_pod_ips, sizeof(*s->pod_ips), cmp_pod_ip);
    return 0;
}

const uint8_t *zones_store_pod_namespace(const struct zones_store *store, const struct zones_ip *ip)
{
    struct zones_pod_ip key = {.ip = *ip};
    if (ip->family == 4)
        memset(key.ip.addr + 4, 0, 12);
    const struct zones_pod_ip *p =
        bsearch(&key, store->pod_ips, store->n_pod_ips, sizeof(key), cmp_pod_ip);
    return p ? store->bytes + p->ns_off : NULL;
}

/* The arrays grew by doubling; a snapshot lives long, so give the slack back. */
static void *shrink(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        return p; /* the larger block stays valid: keep it */
    return q;
}

static void shrink_to_fit(struct zones_store *s)
{
    s->bytes = shrink(s->bytes, s->n_bytes);
    s->nodes = shrink(s->nodes, s->n_nodes * sizeof(*s->nodes));
    s->entries = shrink(s->entries, s->n_entries * sizeof(*s->entries));
}

struct zones_store_builder {
    struct builder b;
};

/* Everything but the records: ancestors, grouping, nodes, rendering. */
static int finish(struct builder *b)
{
    struct span *spans = NULL;
    int rc = add_ancestors(b);
    size_t n_nodes = b->owners.n;
    if (rc == 0)
        rc = group_rrs(b, &spans);
    free(b->owners.slots);
    free(b->owners.first);
    b->owners = (struct owners){0};
    if (rc == 0)
        rc = make_nodes(b, spans, n_nodes);
    struct render rd = {b, spans};
    size_t entries_cap = 0;
    for (size_t i = 0; i < b->s->n_nodes && rc == 0; i++)
        rc = render_node(&rd, i, &entries_cap);
    free(spans);
    if (rc == 0)
        add_negative_soas(b);
    b->s->n_records = b->n_rrs;
    b->s->bytes = b->out.data;
    b->s->n_bytes = b->out.len;
    if (b->out.failed)
        return -ENOMEM;
    if (rc == 0) /* on failure the caller frees b->out.data: it must not move */
        shrink_to_fit(b->s);
    return rc;
}

static void builder_free(struct zones_store_builder *zb, bool with_store)
{
    struct builder *b = &zb->b;
    free(b->names.data);
    free(b->rrs);
    free(b->owners.slots);
    free(b->owners.first);
    if (with_store) {
        b->s->bytes = b->out.data;
        zones_store_free(b->s);
    }
    free(zb);
}

int zones_store_collect(struct zones_store_builder **out, const struct zones_objects *objs,
                        const struct zones_store_config *cfg)
{
    struct zones_store_builder *zb = calloc(1, sizeof(*zb));
    struct zones_store *s = calloc(1, sizeof(*s));
    if (!zb || !s) {
        free(zb);
        free(s);
        return -ENOMEM;
    }
    struct builder *b = &zb->b;
    *b = (struct builder){.cfg = cfg, .s = s};
    if (dns_name_from_text(&s->zone, cfg->cluster_domain) < 0 ||
        name_under(&s->pod_zone, "", "pod", &s->zone) < 0 ||
        name_under(&b->svc_zone, "", "svc", &s->zone) < 0) {
        builder_free(zb, true);
        return -EINVAL;
    }
    dns_name_to_text(&s->zone, b->zone, sizeof(b->zone));
    dns_name_from_text(&b->in_addr, "in-addr.arpa");
    dns_name_from_text(&b->ip6, "ip6.arpa");
    s->ttl = cfg->ttl;
    s->pods = cfg->pods;
    s->serial = objs->newest_mtime > 0 ? (uint32_t)objs->newest_mtime : 1;
    if (s->serial < cfg->min_serial)
        s->serial = cfg->min_serial;
    s->hash_seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)s;
    s->counts.namespaces = objs->n_namespaces;
    add_objects(b, objs);
    if (b->names.failed || index_pod_ips(b, objs) < 0) {
        builder_free(zb, true);
        return -ENOMEM;
    }
    *out = zb;
    return 0;
}

int zones_store_finish(struct zones_store_builder *builder, struct zones_store **out)
{
    int rc = finish(&builder->b);
    struct zones_store *s = builder->b.s;
    builder_free(builder, rc < 0);
    if (rc < 0)
        return rc;
    *out = s;
    return 0;
}

int zones_store_build(struct zones_store **out, const struct zones_objects *objs,
                      const struct zones_store_config *cfg)
{
    struct zones_store_builder *zb = NULL;
    int rc = zones_store_collect(&zb, objs, cfg);
    return rc < 0 ? rc : zones_store_finish(zb, out);
}

void zones_store_free(struct zones_store *store)
{
    if (!store)
        return;
    free(store->bytes);
    free(store->nodes);
    free(store->entries);
    free(store->table);
    free(store->pod_ips);
    free(store);
}

void zones_store_summarize(const struct zones_store *store, struct zones_store_summary *out)
{
    *out = (struct zones_store_summary){
        .records = store->n_records,
        .serial = store->serial,
        .cluster_ip = store->counts.cluster_ip,
        .headless = store->counts.headless,
        .external_name = store->counts.external_name,
        .endpoints = store->counts.endpoints,
        .pods = store->counts.pods,
        .namespaces = store->counts.namespaces,
    };
}

void zones_store_config_default(struct zones_store_config *cfg)
{
    cfg->cluster_domain = "local";
    cfg->ttl = 5;
    cfg->pods = ZONES_PODS_INSECURE;
    cfg->min_serial = 0;
}

int zones_store_parse_pods_mode(const char *text, enum zones_pods_mode *out)
{
    static const char *const names[] = {"disabled", "insecure", "verified"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (enum zones_pods_mode)i;
            return 0;
        }
    }
    return -1;
}

enum zones_zone zones_store_zone_of(const struct zones_store *store, const struct dns_name *name)
{
    static const struct dns_name in_addr = {14, "\7in-addr\4arpa"};
    static const struct dns_name ip6 = {10, "\3ip6\4arpa"};
    if (dns_name_is_subdomain(name, &store->zone))
        return ZONES_ZONE_CLUSTER;
    if (dns_name_is_subdomain(name, &in_addr))
        return ZONES_ZONE_REVERSE4;
    if (dns_name_is_subdomain(name, &ip6))
        return ZONES_ZONE_REVERSE6;
    return ZONES_ZONE_NONE;
}

const struct zones_entry *zones_store_entry(const struct zones_store *store,
                                            const struct zones_node *node, uint16_t qtype)
{
    const struct zones_entry *e = &store->entries[node->first_entry];
    const struct zones_entry *cname = NULL;
    for (unsigned i = 0; i < node->n_entries; i++) {
        if (e[i].type == qtype)
            return &e[i];
        if (e[i].type == DNS_TYPE_CNAME)
            cname = &e[i];
    }
    return cname; /* RFC 1034 §3.6.2: an alias answers every type with its CNAME */
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Renders one entry as a reply to a query for the node's own name, and prints the records the
 * node owns: the dump shows exactly what is served, read back through ldns. */
static void dump_entry(const struct zones_store *s, const struct zones_node *node,
                       const struct zones_entry *e, char ***lines, size_t *n, size_t *cap)
{
    static uint8_t msg[DNS_MAX_MSG];
    struct dns_cursor c;
    dns_cursor_init(&c, msg, sizeof(msg));
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, DNS_FLAG_QR);
    dns_cursor_put_u16(&c, 1);
    dns_cursor_put_u16(&c, e->an);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, e->ar);
    dns_cursor_put(&c, s->bytes + node->name_off, node->name_len);
    dns_cursor_put_u16(&c, e->type);
    dns_cursor_put_u16(&c, DNS_CLASS_IN);
    dns_cursor_put(&c, s->bytes + e->off, e->len);
    ldns_pkt *pkt = NULL;
    if (c.err || ldns_wire2pkt(&pkt, msg, c.pos) != LDNS_STATUS_OK)
        return;
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(an, 0));
    for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
        ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_dname_compare(ldns_rr_owner(rr), owner) != 0)
            continue; /* a CNAME chain's target: dumped at its own name */
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 256;
            *lines = realloc(*lines, *cap * sizeof(**lines));
        }
        (*lines)[(*n)++] = ldns_rr2str(rr);
    }
    ldns_pkt_free(pkt);
}

int zones_store_dump(const struct zones_store *s, FILE *out)
{
    char **lines = NULL;
    size_t n = 0;
    size_t cap = 0;
    for (size_t i = 0; i < s->n_nodes; i++) {
        const struct zones_node *node = &s->nodes[i];
        for (unsigned j = 0; j < node->n_entries; j++) {
            const struct zones_entry *e = &s->entries[node->first_entry + j];
            bool chased = node->is_cname && e->type != DNS_TYPE_CNAME;
            if (!chased)
                dump_entry(s, node, e, &lines, &n, &cap);
        }
    }
    if (n > 0)
        qsort(lines, n, sizeof(*lines), cmp_line);
    for (size_t i = 0; i < n; i++) {
        fputs(lines[i], out);
        free(lines[i]);
    }
    free(lines);
    return ferror(out) ? -1 : 0;
}
