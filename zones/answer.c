/* zones/answer.c - a query in, a reply out, from the pre-rendered store; and the dns_names
 * interface over the same store.
 *
 * The reply is the echoed question plus one pre-rendered entry (for ANY, the answer part of
 * each of the node's entries): its records refer to the question name with the pointer
 * 0xc00c, so copying them is all the work. Pod names under
 * pod.<zone> are the one synthesised answer: in insecure mode any dashed address in an
 * existing namespace resolves, and there are too many of those to store. */
#include "zones/answer.h"

#include <string.h>

#include "dns/addr.h"
#include "zones/objects.h"
#include "zones/store_layout.h"

static size_t finish(struct dns_cursor *c, const struct dns_query *q, uint16_t an, uint16_t ns,
                     uint16_t ar)
{
    if (q->has_edns) {
        dns_wire_put_opt(c, q, 0, -1);
        ar++;
    }
    if (c->err)
        return 0;
    dns_wire_reply_counts(c->buf, an, ns, ar);
    return c->pos;
}

static size_t negative(const struct zones_store *s, enum zones_zone zone, unsigned rcode,
                       const struct dns_query *q, const uint8_t *pkt, struct dns_cursor *c,
                       uint16_t flags)
{
    dns_wire_reply_begin(c, q, pkt, (uint16_t)(flags | DNS_FLAG_AA), rcode);
    dns_cursor_put(c, s->bytes + s->soa_off[zone], s->soa_len[zone]);
    return finish(c, q, 0, 1, 0);
}

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

/* <dashed-ip>.<ns>.pod.<zone>, for a namespace that exists. */
static bool pod_answer(const struct zones_store *s, const struct dns_query *q, const uint8_t *pkt,
                       struct dns_cursor *c, uint16_t flags, size_t *len)
{
    const struct dns_name *name = &q->qname;
    if (s->pods != ZONES_PODS_INSECURE || !dns_name_is_subdomain(name, &s->pod_zone) ||
        dns_name_labels(name) != dns_name_labels(&s->pod_zone) + 2)
        return false;
    const uint8_t *ns = name->wire + name->wire[0] + 1;
    struct dns_name parent;
    parent.len = (uint8_t)(name->len - name->wire[0] - 1);
    memcpy(parent.wire, ns, parent.len);
    struct zones_ip ip;
    if (!zones_store_find(s, &parent) || !parse_dashed(name->wire, &ip))
        return false;
    uint16_t type = ip.family == 4 ? DNS_TYPE_A : DNS_TYPE_AAAA;
    if (q->qtype != type && q->qtype != DNS_TYPE_ANY) {
        *len = negative(s, ZONES_ZONE_CLUSTER, DNS_RCODE_NOERROR, q, pkt, c, flags);
        return true;
    }
    dns_wire_reply_begin(c, q, pkt, (uint16_t)(flags | DNS_FLAG_AA), DNS_RCODE_NOERROR);
    dns_cursor_put_u16(c, DNS_QUESTION_PTR);
    dns_cursor_put_u16(c, type);
    dns_cursor_put_u16(c, DNS_CLASS_IN);
    dns_cursor_put_u32(c, s->ttl);
    dns_cursor_put_u16(c, ip.family == 4 ? 4 : 16);
    dns_cursor_put(c, ip.addr, ip.family == 4 ? 4 : 16);
    *len = finish(c, q, 1, 0, 0);
    return true;
}

/* ANY: the answer records of every type the node has, without glue. */
static size_t any_answer(const struct zones_store *s, const struct zones_node *node,
                         const struct dns_query *q, const uint8_t *pkt, struct dns_cursor *c,
                         uint16_t flags)
{
    dns_wire_reply_begin(c, q, pkt, (uint16_t)(flags | DNS_FLAG_AA), DNS_RCODE_NOERROR);
    unsigned an = 0;
    for (unsigned i = 0; i < node->n_entries; i++) {
        const struct zones_entry *e = &s->entries[node->first_entry + i];
        dns_cursor_put(c, s->bytes + e->off, e->an_len);
        an += e->an;
    }
    return finish(c, q, (uint16_t)(an > UINT16_MAX ? UINT16_MAX : an), 0, 0);
}

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
    uint16_t flags = cfg->recursion_available ? DNS_FLAG_RA : 0;
    struct dns_cursor c;
    dns_cursor_init(&c, out, cap);
    const struct zones_node *node = zones_store_find(s, &q->qname);
    bool reverse = zone != ZONES_ZONE_CLUSTER;
    if (!node || (reverse && node->n_entries == 0)) {
        if (reverse && cfg->fallthrough_reverse)
            return ZONES_ANSWER_NOT_OURS; /* CoreDNS: fallthrough in-addr.arpa ip6.arpa */
        if (!node && pod_answer(s, q, pkt, &c, flags, out_len))
            return ZONES_ANSWER_DONE;
        *out_len =
            negative(s, zone, node ? DNS_RCODE_NOERROR : DNS_RCODE_NXDOMAIN, q, pkt, &c, flags);
        return ZONES_ANSWER_DONE;
    }
    if (q->qtype == DNS_TYPE_ANY && node->n_entries > 0 && !node->is_cname) {
        *out_len = any_answer(s, node, q, pkt, &c, flags);
        return ZONES_ANSWER_DONE;
    }
    const struct zones_entry *e = node->n_entries ? zones_store_entry(s, node, q->qtype) : NULL;
    if (!e) {
        *out_len = negative(s, zone, DNS_RCODE_NOERROR, q, pkt, &c, flags);
        return ZONES_ANSWER_DONE;
    }
    dns_wire_reply_begin(&c, q, pkt, (uint16_t)(flags | DNS_FLAG_AA), DNS_RCODE_NOERROR);
    dns_cursor_put(&c, s->bytes + e->off, e->len);
    *out_len = finish(&c, q, e->an, 0, e->ar);
    if (chase && e->chase_len) {
        chase->target.len = e->chase_len;
        memcpy(chase->target.wire, s->bytes + e->chase_off, e->chase_len);
        chase->records = s->bytes + e->off;
        chase->len = e->len;
        chase->count = e->an;
    }
    return ZONES_ANSWER_DONE;
}

enum dns_verdict zones_answer_serve(void *self, struct dns_request *req)
{
    const struct zones_answer *za = self;
    const struct zones_store *store = atomic_load_explicit(za->current, memory_order_acquire);
    struct zones_chase chase;
    if (zones_answer_query(store, &za->cfg, &req->q, req->pkt, req->ans, req->ans_cap,
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

static const struct zones_store *names_store(const void *self)
{
    const struct zones_answer *za = self;
    return atomic_load_explicit(za->current, memory_order_acquire);
}

static enum dns_name_state names_lookup(const void *self, const struct dns_name *name)
{
    const struct zones_node *node = zones_store_find(names_store(self), name);
    if (!node)
        return DNS_NAME_ABSENT;
    return node->n_entries ? DNS_NAME_RECORDS : DNS_NAME_EMPTY;
}

static bool names_client_namespace(const void *self, const struct sockaddr_storage *client,
                                   uint8_t label[DNS_MAX_LABEL + 1])
{
    const uint8_t *bytes;
    struct zones_ip ip = {0};
    size_t n = dns_addr_bytes(client, &bytes);
    if (n == 0)
        return false;
    ip.family = n == 4 ? 4 : 6;
    memcpy(ip.addr, bytes, n);
    const uint8_t *ns = zones_store_pod_namespace(names_store(self), &ip);
    if (!ns)
        return false;
    memcpy(label, ns, (size_t)ns[0] + 1);
    return true;
}

static size_t names_answer(const void *self, const struct dns_query *q, const uint8_t *pkt,
                           uint8_t *out, size_t cap)
{
    const struct zones_answer *za = self;
    size_t len = 0;
    if (zones_answer_query(names_store(self), &za->cfg, q, pkt, out, cap, &len, NULL) ==
        ZONES_ANSWER_NOT_OURS)
        return 0;
    return len;
}

struct dns_names zones_answer_names(const struct zones_answer *za)
{
    return (struct dns_names){names_lookup, names_client_namespace, names_answer, za};
}
