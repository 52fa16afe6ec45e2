/* dns/request.c - following aliases on the client's behalf.
 *
 * dns_request_follow() rewrites the query in req->pkt to one for the target and keeps the
 * client's question and the CNAME records that lead there; dns_request_end_alias(), at the
 * chain's end, puts the client's question back and splices the reply together, or lets the
 * stage's fallback answer when the reply is not NOERROR. The query buffer is free by then, so
 * the splice is built there and copied back: no allocation. */
#include "dns/request.h"

#include <string.h>

/* Appends src's records to the prefix, expanding the pointer 0xc00c to the name it stood
 * for (current) on every follow but the first. */
static int append_prefix(struct dns_alias *alias, const struct dns_name *current,
                         const uint8_t *src, size_t len, uint16_t count, bool first)
{
    struct dns_cursor out;
    dns_cursor_init(&out, alias->prefix, sizeof(alias->prefix));
    out.pos = alias->prefix_len;
    for (size_t i = 0; i < len;) {
        bool ptr = i + 1 < len && dns_wire_get_u16(src + i) == DNS_QUESTION_PTR;
        if (!ptr) {
            /* An uncompressed owner, then the fixed fields and data. */
            size_t n = i;
            while (n < len && src[n] != 0)
                n += (size_t)src[n] + 1;
            n++;
            if (n + 10 > len)
                return -1;
            size_t end = n + 10 + dns_wire_get_u16(src + n + 8);
            dns_cursor_put(&out, src + i, end - i);
            i = end;
            continue;
        }
        /* The first follow keeps 0xc00c: in the final reply it is the client's question. */
        if (first)
            dns_cursor_put(&out, src + i, 2);
        else
            dns_cursor_put(&out, current->wire, current->len);
        if (i + 12 > len)
            return -1;
        size_t end = i + 12 + dns_wire_get_u16(src + i + 10);
        dns_cursor_put(&out, src + i + 2, end - i - 2);
        i = end;
    }
    if (out.err || out.pos > UINT16_MAX)
        return -1;
    alias->prefix_len = (uint16_t)out.pos;
    alias->prefix_count = (uint16_t)(alias->prefix_count + count);
    return 0;
}

/* Keeps the client's question; nothing is followed yet. */
static void begin(struct dns_request *req)
{
    struct dns_alias *alias = &req->alias;
    alias->q = req->q;
    alias->question_len = (uint16_t)(req->q.question_end - DNS_HEADER_SIZE);
    memcpy(alias->question, req->pkt + DNS_HEADER_SIZE, alias->question_len);
    alias->prefix_len = 0;
    alias->prefix_count = 0;
    alias->followed = false;
    alias->fallback = NULL;
    alias->fallback_self = NULL;
    alias->fallback_used = NULL;
    alias->active = true;
}

int dns_request_follow(struct dns_request *req, const struct dns_name *target,
                       const uint8_t *prefix, size_t prefix_len, uint16_t prefix_count)
{
    struct dns_alias *alias = &req->alias;
    bool first = !alias->active;
    if (first)
        begin(req);
    uint16_t saved_len = alias->prefix_len;
    uint16_t saved_count = alias->prefix_count;
    if (append_prefix(alias, &req->q.qname, prefix, prefix_len, prefix_count, first) < 0) {
        alias->prefix_len = saved_len;
        alias->prefix_count = saved_count;
        alias->active = !first;
        return -1;
    }
    /* The query becomes header + the target's question: what a client asking for target
     * would have sent, so the cache and the forwarder need to know nothing of this. */
    uint8_t *p = req->pkt + DNS_HEADER_SIZE;
    memcpy(p, target->wire, target->len);
    dns_wire_put_u16(p + target->len, req->q.qtype);
    dns_wire_put_u16(p + target->len + 2, req->q.qclass);
    dns_wire_reply_counts(req->pkt, 0, 0, 0);
    req->q.qname = *target;
    req->q.question_end = (uint16_t)(DNS_HEADER_SIZE + target->len + 4);
    req->pkt_len = req->q.question_end;
    alias->followed = true;
    return 0;
}

void dns_request_fallback(struct dns_request *req, dns_request_fallback_fn fn, void *self,
                          struct dns_counter *used)
{
    if (!req->alias.active)
        begin(req);
    req->alias.fallback = fn;
    req->alias.fallback_self = self;
    req->alias.fallback_used = used;
}

/* Copies count records from in to out with names expanded. The OPT record comes along as
 * it is: the reply was made for this client, so it has one exactly when the client did. */
static void copy_section(struct dns_cursor *out, struct dns_cursor *in, uint16_t count)
{
    for (uint16_t i = 0; i < count && !in->err && !out->err; i++) {
        uint16_t type;
        dns_wire_copy_rr(out, in, &type);
    }
}

/* question + prefix + the answer's sections, built over the query buffer, which nobody reads
 * any more; its question is the client's again, so error replies made from req->pkt stay
 * right. */
static void splice(struct dns_request *req)
{
    const struct dns_alias *alias = &req->alias;
    const uint8_t *old = req->ans;
    size_t old_len = req->ans_len;
    struct dns_cursor out;
    struct dns_cursor in;
    dns_cursor_init(&out, req->pkt, DNS_MAX_MSG);
    dns_cursor_put(&out, old, 4); /* ID and flags as answered */
    dns_cursor_put_u16(&out, 1);
    out.pos = DNS_HEADER_SIZE;
    dns_cursor_put(&out, alias->question, alias->question_len);
    dns_cursor_put(&out, alias->prefix, alias->prefix_len);
    dns_cursor_init(&in, old, old_len);
    in.pos = DNS_HEADER_SIZE;
    uint16_t qd = dns_wire_get_u16(old + 4);
    for (uint16_t i = 0; i < qd && !in.err; i++) {
        struct dns_name skip;
        dns_cursor_name(&in, &skip, false);
        dns_cursor_skip(&in, 4);
    }
    uint16_t an = dns_wire_get_u16(old + 6);
    uint16_t ns = dns_wire_get_u16(old + 8);
    uint16_t ar = dns_wire_get_u16(old + 10);
    copy_section(&out, &in, an);
    copy_section(&out, &in, ns);
    copy_section(&out, &in, ar);
    if (in.err || out.err) {
        /* A reply we cannot take apart: better an honest failure than half an answer. */
        req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt,
                                            DNS_RCODE_SERVFAIL, 0, -1);
        return;
    }
    dns_wire_reply_counts(req->pkt, (uint16_t)(alias->prefix_count + an), ns, ar);
    memcpy(req->ans, req->pkt, out.pos);
    req->ans_len = out.pos;
}

static void put_question_back(struct dns_request *req)
{
    struct dns_alias *alias = &req->alias;
    memcpy(req->pkt + DNS_HEADER_SIZE, alias->question, alias->question_len);
    req->q = alias->q;
    req->pkt_len = req->q.question_end;
    alias->active = false;
}

void dns_request_end_alias(struct dns_request *req)
{
    struct dns_alias *alias = &req->alias;
    if (!alias->active)
        return;
    put_question_back(req);
    if (req->ans_len < DNS_HEADER_SIZE)
        return;
    dns_request_fallback_fn fallback = alias->fallback;
    struct dns_counter *used = alias->fallback_used;
    alias->fallback = NULL;
    bool resolved = DNS_RCODE(dns_wire_get_u16(req->ans + 2)) == DNS_RCODE_NOERROR;
    if (!resolved && fallback && fallback(alias->fallback_self, req)) {
        if (used)
            dns_counter_inc(used);
        if (!alias->active)
            return;             /* a reply to the client's question as it is */
        put_question_back(req); /* the fallback followed an alias of its own */
    }
    if (alias->followed)
        splice(req);
}
