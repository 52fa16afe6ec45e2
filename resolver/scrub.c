/* resolver/scrub.c - checks an upstream reply against our question and rewrites what may be
 * kept of it.
 *
 * Invariant: every byte read comes through a bounds-checked cursor limited to the message (and
 * RDATA to its record), names only follow pointers that go strictly backwards, and every
 * write is bounds-checked against the caller's buffer. Hostile bytes end in MISMATCH,
 * MALFORMED or -1, never in a fault, and nothing outside the question's chain is written. */
#include "resolver/scrub.h"

#include <string.h>

#define TYPE_RRSIG 46
#define MAX_GROUPS 64    /* RRsets whose TTLs are unified; more than this keep their own */
#define MAX_COMPRESS 128 /* names remembered for compression in one message */
#define MAX_POINTER 0x3fff

struct rr {
    struct dns_name owner; /* as in the message, case kept */
    uint16_t type;
    uint16_t klass;
    uint32_t ttl;
    size_t rdata; /* offset of the RDATA in the message */
    uint16_t rdlen;
};

/* The chain of names a reply may speak about: the question name, then each CNAME target. */
struct chain {
    struct dns_name names[RESOLVER_SCRUB_MAX_CHAIN + 1]; /* lower-cased */
    unsigned n;
    bool own_end; /* the last name is svcdns's own: nothing is kept of it */
};

struct writer {
    struct dns_cursor c;
    struct {
        uint16_t off;
        uint32_t hash;
    } names[MAX_COMPRESS];
    unsigned n_names;
};

static uint8_t lower(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch + 32) : ch;
}

static bool read_rr(struct dns_cursor *c, struct rr *rr)
{
    dns_cursor_name(c, &rr->owner, false);
    rr->type = dns_cursor_u16(c);
    rr->klass = dns_cursor_u16(c);
    rr->ttl = dns_cursor_u32(c);
    rr->rdlen = dns_cursor_u16(c);
    rr->rdata = c->pos;
    dns_cursor_skip(c, rr->rdlen);
    return !c->err;
}

/* The RDATA layout of the types whose RDATA holds names (RFC 3597 §4 lists the ones that may be
 * compressed: 'n'; the others, 'N', are decompressed but written without compression):
 * '2' and '4' fixed bytes, 'S' a character-string, 'r' the rest, opaque. */
static const char *rdata_layout(uint16_t type)
{
    switch (type) {
    case DNS_TYPE_A:
        return "4";
    case DNS_TYPE_NS:
    case 3: /* MD */
    case 4: /* MF */
    case DNS_TYPE_CNAME:
    case 7: /* MB */
    case 8: /* MG */
    case 9: /* MR */
    case DNS_TYPE_PTR:
        return "n";
    case DNS_TYPE_SOA:
        return "nn44444";
    case 14: /* MINFO */
        return "nn";
    case DNS_TYPE_MX:
        return "2n";
    case 17: /* RP */
        return "NN";
    case 18: /* AFSDB */
    case 21: /* RT */
    case 36: /* KX */
        return "2N";
    case 26: /* PX */
        return "2NN";
    case DNS_TYPE_AAAA:
        return "4444";
    case DNS_TYPE_SRV:
        return "222N";
    case 35: /* NAPTR */
        return "22SSSN";
    case 39: /* DNAME */
        return "N";
    default:
        return "r";
    }
}

static uint32_t name_hash(const uint8_t *wire, size_t len)
{
    uint32_t h = 2166136261U; /* FNV-1a: the table is per message and bounded, no keying needed */
    for (size_t i = 0; i < len; i++)
        h = (h ^ lower(wire[i])) * 16777619U;
    return h;
}

/* Whether the name written at off in the output equals the suffix of n starting at i,
 * byte for byte or ignoring ASCII case. */
static bool written_name_equals(const struct writer *w, uint16_t off, const struct dns_name *n,
                                size_t i, bool any_case)
{
    struct dns_cursor c;
    struct dns_name there;
    dns_cursor_init(&c, w->c.buf, w->c.pos);
    c.pos = off;
    dns_cursor_name(&c, &there, any_case);
    if (c.err || there.len != n->len - i)
        return false;
    for (size_t k = 0; k < there.len; k++) {
        uint8_t ch = any_case ? lower(n->wire[i + k]) : n->wire[i + k];
        if (there.wire[k] != ch)
            return false;
    }
    return true;
}

static void remember_names(struct writer *w, size_t start, const struct dns_name *n, size_t upto)
{
    for (size_t j = 0; j < upto; j += (size_t)n->wire[j] + 1) {
        if (start + j > MAX_POINTER || w->n_names == MAX_COMPRESS)
            return;
        w->names[w->n_names].off = (uint16_t)(start + j);
        w->names[w->n_names].hash = name_hash(n->wire + j, n->len - j);
        w->n_names++;
    }
}

enum compression { NO_COMPRESSION, SAME_CASE, ANY_CASE };

/* Writes n, ending in a pointer to the longest suffix already written unless told not to.
 * Owners compress ignoring case, so they take the question's case as the client asked it;
 * names inside RDATA only onto the same bytes, so their case is the upstream's. */
static void put_name(struct writer *w, const struct dns_name *n, enum compression how)
{
    size_t start = w->c.pos;
    for (size_t i = 0; how != NO_COMPRESSION && i < n->len && n->wire[i] != 0;
         i += (size_t)n->wire[i] + 1) {
        uint32_t h = name_hash(n->wire + i, n->len - i);
        for (unsigned k = 0; k < w->n_names; k++) {
            if (w->names[k].hash != h ||
                !written_name_equals(w, w->names[k].off, n, i, how == ANY_CASE))
                continue;
            dns_cursor_put(&w->c, n->wire, i);
            dns_cursor_put_u16(&w->c, (uint16_t)(0xc000 | w->names[k].off));
            remember_names(w, start, n, i);
            return;
        }
    }
    dns_cursor_put(&w->c, n->wire, n->len);
    remember_names(w, start, n, n->len > 0 ? n->len - 1U : 0);
}

/* Walks the RDATA of rr by its layout; validates only when w is NULL, else copies it to w with
 * names decompressed (and compressed again where RFC 3597 allows). Names must stay inside the
 * record's RDATA, and the layout must use it up exactly. */
static bool walk_rdata(const uint8_t *msg, const struct rr *rr, struct writer *w)
{
    size_t end = rr->rdata + rr->rdlen;
    struct dns_cursor c;
    dns_cursor_init(&c, msg, end);
    c.pos = rr->rdata;
    for (const char *f = rdata_layout(rr->type); *f; f++) {
        size_t from = c.pos;
        size_t n = 0;
        switch (*f) {
        case 'n':
        case 'N': {
            struct dns_name name;
            dns_cursor_name(&c, &name, false);
            if (w && !c.err)
                put_name(w, &name, *f == 'n' ? SAME_CASE : NO_COMPRESSION);
            continue;
        }
        case '2':
            n = 2;
            break;
        case '4':
            n = 4;
            break;
        case 'S':
            n = 1 + (size_t)dns_cursor_u8(&c);
            c.pos = from;
            break;
        default: /* 'r' */
            n = end - from;
            break;
        }
        dns_cursor_skip(&c, n);
        if (w && !c.err)
            dns_cursor_put(&w->c, msg + from, n);
    }
    return !c.err && c.pos == end;
}

enum resolver_scrub_result resolver_scrub_check(const uint8_t *msg, size_t len, uint16_t id,
                                                const struct resolver_scrub_question *q,
                                                struct resolver_scrub_reply *info)
{
    struct dns_cursor c;
    memset(info, 0, sizeof(*info));
    if (len < DNS_HEADER_SIZE)
        return RESOLVER_SCRUB_MISMATCH;
    dns_cursor_init(&c, msg, len);
    uint16_t rid = dns_cursor_u16(&c);
    uint16_t flags = dns_cursor_u16(&c);
    uint16_t qd = dns_cursor_u16(&c);
    unsigned records = dns_cursor_u16(&c);
    records += dns_cursor_u16(&c);
    uint16_t ar = dns_cursor_u16(&c);
    unsigned rcode = DNS_RCODE(flags);
    if (rid != id || !(flags & DNS_FLAG_QR) || DNS_OPCODE(flags) != DNS_OPCODE_QUERY)
        return RESOLVER_SCRUB_MISMATCH;
    if (qd == 0) {
        /* Some servers drop the question from errors. Such a reply can only send us on to the
         * next upstream, so the ID (and the connected socket) is enough for it. */
        if (rcode != DNS_RCODE_FORMERR && rcode != DNS_RCODE_SERVFAIL &&
            rcode != DNS_RCODE_NOTIMP && rcode != DNS_RCODE_REFUSED)
            return RESOLVER_SCRUB_MISMATCH;
    } else {
        struct dns_name qname;
        dns_cursor_name(&c, &qname, true);
        uint16_t qtype = dns_cursor_u16(&c);
        uint16_t qclass = dns_cursor_u16(&c);
        /* Upstream may reuse our ID; match the question too, or a late reply poisons. */
        if (qd != 1 || c.err || qtype != q->qtype || qclass != q->qclass ||
            !dns_name_equal(&qname, q->qname))
            return RESOLVER_SCRUB_MISMATCH;
        info->has_question = true;
    }
    unsigned ext = 0;
    for (unsigned i = 0; i < records + ar; i++) {
        struct rr rr;
        if (!read_rr(&c, &rr) || !walk_rdata(msg, &rr, NULL))
            return RESOLVER_SCRUB_MALFORMED;
        if (rr.type != DNS_TYPE_OPT)
            continue;
        if (i < records || info->has_opt || rr.owner.len != 1)
            return RESOLVER_SCRUB_MALFORMED; /* one OPT, owned by the root, in additional */
        info->has_opt = true;
        ext = rr.ttl >> 24;
    }
    info->flags = flags;
    info->rcode = (ext << 4) | rcode;
    return RESOLVER_SCRUB_OK;
}

static int chain_index(const struct chain *ch, const struct dns_name *name)
{
    for (unsigned i = 0; i < ch->n; i++) {
        if (dns_name_equal(&ch->names[i], name))
            return (int)i;
    }
    return -1;
}

static bool rdata_name(const uint8_t *msg, const struct rr *rr, struct dns_name *out)
{
    struct dns_cursor c;
    dns_cursor_init(&c, msg, rr->rdata + rr->rdlen);
    c.pos = rr->rdata;
    dns_cursor_name(&c, out, true);
    return !c.err;
}

static bool is_own(const struct resolver_scrub_question *q, const struct dns_name *name)
{
    return q->own && q->own->is_authoritative(q->own->self, name);
}

/* Follows CNAMEs from the question name through the answer section, first match per owner,
 * stopping at a loop, after RESOLVER_SCRUB_MAX_CHAIN hops or at a name svcdns answers itself.
 * A CNAME question asks for the CNAME itself, so nothing is followed. */
static void follow_chain(const uint8_t *msg, size_t len, size_t an_start, uint16_t an,
                         const struct resolver_scrub_question *q, struct chain *ch)
{
    ch->names[0] = *q->qname;
    ch->n = 1;
    ch->own_end = is_own(q, q->qname);
    while (!ch->own_end && q->qtype != DNS_TYPE_CNAME && ch->n <= RESOLVER_SCRUB_MAX_CHAIN) {
        struct dns_cursor c;
        dns_cursor_init(&c, msg, len);
        c.pos = an_start;
        bool found = false;
        for (uint16_t i = 0; i < an && !found; i++) {
            struct rr rr;
            struct dns_name target;
            if (!read_rr(&c, &rr))
                return;
            if (rr.type != DNS_TYPE_CNAME || rr.klass != q->qclass ||
                !dns_name_equal(&rr.owner, &ch->names[ch->n - 1]) || !rdata_name(msg, &rr, &target))
                continue;
            if (chain_index(ch, &target) >= 0)
                return; /* a CNAME loop: keep what leads up to it */
            ch->names[ch->n++] = target;
            ch->own_end = is_own(q, &target);
            found = true;
        }
        if (!found)
            return;
    }
}

/* Whether an answer record belongs to the chain: the CNAME that links one chain name to the
 * next, or data of the asked type (any type for ANY) at the chain's end. Signatures of either
 * ride along only for a client that set DO or asked for them (RRSIG or ANY: RFC 3225 §3, RFC
 * 4035 §3.2.1); an upstream may send them to a query without DO all the same. Returns the
 * chain index, or -1 to drop the record. */
static int keep_answer(const uint8_t *msg, const struct chain *ch,
                       const struct resolver_scrub_question *q, const struct rr *rr,
                       bool *cname_used)
{
    if (rr->klass != q->qclass && q->qclass != DNS_CLASS_ANY)
        return -1;
    int idx = chain_index(ch, &rr->owner);
    if (idx < 0 || (ch->own_end && (unsigned)idx + 1 == ch->n))
        return -1;
    if (rr->type == TYPE_RRSIG)
        return q->dnssec_ok || q->qtype == TYPE_RRSIG || q->qtype == DNS_TYPE_ANY ? idx : -1;
    if ((unsigned)idx + 1 < ch->n) {
        struct dns_name target;
        if (rr->type != DNS_TYPE_CNAME || cname_used[idx] || !rdata_name(msg, rr, &target) ||
            !dns_name_equal(&target, &ch->names[idx + 1]))
            return -1;
        cname_used[idx] = true;
        return idx;
    }
    return (rr->type == q->qtype || q->qtype == DNS_TYPE_ANY) ? idx : -1;
}

static uint32_t sane_ttl(uint32_t ttl)
{
    return (ttl & 0x80000000U) ? 0 : ttl; /* RFC 2181 §8 */
}

struct groups {
    struct {
        uint32_t key;
        uint32_t ttl;
    } g[MAX_GROUPS];
    unsigned n;
};

static uint32_t group_key(int idx, uint16_t type)
{
    return ((uint32_t)idx << 16) | type;
}

static int group_find(const struct groups *gs, uint32_t key)
{
    for (unsigned i = 0; i < gs->n; i++) {
        if (gs->g[i].key == key)
            return (int)i;
    }
    return -1;
}

/* First pass over the answer: the lowest TTL of each kept RRset, and whether the chain's end
 * has data. Signatures keep their own TTLs (validators compare them with the original TTL). */
static bool scan_answer(const uint8_t *msg, size_t len, size_t an_start, uint16_t an,
                        const struct chain *ch, const struct resolver_scrub_question *q,
                        struct groups *gs)
{
    struct dns_cursor c;
    bool cname_used[RESOLVER_SCRUB_MAX_CHAIN + 1] = {false};
    bool has_data = false;
    dns_cursor_init(&c, msg, len);
    c.pos = an_start;
    gs->n = 0;
    for (uint16_t i = 0; i < an; i++) {
        struct rr rr;
        if (!read_rr(&c, &rr))
            break;
        int idx = keep_answer(msg, ch, q, &rr, cname_used);
        if (idx < 0 || rr.type == TYPE_RRSIG)
            continue;
        if ((unsigned)idx + 1 == ch->n)
            has_data = true;
        uint32_t key = group_key(idx, rr.type);
        int g = group_find(gs, key);
        if (g < 0 && gs->n < MAX_GROUPS) {
            g = (int)gs->n++;
            gs->g[g].key = key;
            gs->g[g].ttl = UINT32_MAX;
        }
        if (g >= 0 && sane_ttl(rr.ttl) < gs->g[g].ttl)
            gs->g[g].ttl = sane_ttl(rr.ttl);
    }
    return has_data;
}

/* Writes one record with this TTL; remembers where its TTL went (also in *ttl_pos). */
static bool put_rr(struct writer *w, const uint8_t *msg, const struct rr *rr, uint32_t ttl,
                   struct resolver_scrub_out *out, size_t *ttl_pos)
{
    put_name(w, &rr->owner, ANY_CASE);
    dns_cursor_put_u16(&w->c, rr->type);
    dns_cursor_put_u16(&w->c, rr->klass);
    *ttl_pos = w->c.pos;
    dns_cursor_put_u32(&w->c, ttl);
    size_t rdlen_pos = w->c.pos;
    dns_cursor_put_u16(&w->c, 0);
    if (!walk_rdata(msg, rr, w) || w->c.err)
        return false;
    size_t rdlen = w->c.pos - rdlen_pos - 2;
    if (rdlen > UINT16_MAX)
        return false;
    dns_wire_put_u16(w->c.buf + rdlen_pos, (uint16_t)rdlen);
    if (out->ttl_off) {
        if (out->n_ttl == out->ttl_cap || *ttl_pos > UINT16_MAX)
            return false;
        out->ttl_off[out->n_ttl++] = (uint16_t)*ttl_pos;
    }
    return true;
}

static bool write_answer(struct writer *w, const uint8_t *msg, size_t len, size_t an_start,
                         uint16_t an, const struct chain *ch,
                         const struct resolver_scrub_question *q, const struct groups *gs,
                         struct resolver_scrub_out *out)
{
    struct dns_cursor c;
    bool cname_used[RESOLVER_SCRUB_MAX_CHAIN + 1] = {false};
    dns_cursor_init(&c, msg, len);
    c.pos = an_start;
    for (uint16_t i = 0; i < an; i++) {
        struct rr rr;
        if (!read_rr(&c, &rr))
            return false;
        int idx = keep_answer(msg, ch, q, &rr, cname_used);
        if (idx < 0)
            continue;
        uint32_t ttl = sane_ttl(rr.ttl);
        int g = rr.type == TYPE_RRSIG ? -1 : group_find(gs, group_key(idx, rr.type));
        if (g >= 0)
            ttl = gs->g[g].ttl;
        size_t ttl_pos;
        if (!put_rr(w, msg, &rr, ttl, out, &ttl_pos))
            return false;
        if (ttl < out->min_ttl)
            out->min_ttl = ttl;
        out->an++;
    }
    return true;
}

/* The negative answer's SOA: the first one, in class, whose owner is at or above the chain's
 * end; its TTL becomes min(TTL, MINIMUM), the negative TTL of RFC 2308 §5. */
static bool write_soa(struct writer *w, const uint8_t *msg, struct dns_cursor *c, uint16_t ns,
                      const struct chain *ch, const struct resolver_scrub_question *q,
                      struct resolver_scrub_out *out)
{
    const struct dns_name *last = &ch->names[ch->n - 1];
    for (uint16_t i = 0; i < ns; i++) {
        struct rr rr;
        if (!read_rr(c, &rr))
            return false;
        struct dns_name owner = rr.owner;
        dns_name_lower(&owner);
        if (rr.type != DNS_TYPE_SOA || (rr.klass != q->qclass && q->qclass != DNS_CLASS_ANY) ||
            !dns_name_is_subdomain(last, &owner))
            continue;
        size_t ttl_pos;
        if (!put_rr(w, msg, &rr, sane_ttl(rr.ttl), out, &ttl_pos))
            return false;
        /* MINIMUM is the last field of the SOA RDATA just written. */
        uint32_t minimum = sane_ttl(dns_wire_get_u32(w->c.buf + w->c.pos - 4));
        uint32_t ttl = sane_ttl(rr.ttl) < minimum ? sane_ttl(rr.ttl) : minimum;
        dns_wire_put_u32(w->c.buf + ttl_pos, ttl);
        if (ttl < out->min_ttl)
            out->min_ttl = ttl;
        out->ns = 1;
        out->has_soa = true;
        return true;
    }
    return true;
}

static bool skip_records(struct dns_cursor *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct rr rr;
        if (!read_rr(c, &rr))
            return false;
    }
    return true;
}

int resolver_scrub_rewrite(const uint8_t *msg, size_t len, const struct resolver_scrub_question *q,
                           const uint8_t *question, size_t question_len, uint16_t id,
                           uint16_t flags, struct resolver_scrub_out *out)
{
    struct dns_cursor c;
    struct dns_name qname;
    struct chain ch;
    struct writer w;
    struct groups gs;

    out->len = 0;
    out->n_ttl = 0;
    out->an = 0;
    out->ns = 0;
    out->min_ttl = UINT32_MAX;
    out->negative = false;
    out->has_soa = false;
    out->own_end = false;
    if (len < DNS_HEADER_SIZE)
        return -1;
    /* The question we echo must be the one we check against. */
    dns_cursor_init(&c, question, question_len);
    dns_cursor_name(&c, &qname, false);
    if (c.err || question_len != (size_t)qname.len + 4 || !dns_name_equal(&qname, q->qname))
        return -1;
    uint16_t qd = dns_wire_get_u16(msg + 4);
    uint16_t an = dns_wire_get_u16(msg + 6);
    uint16_t ns = dns_wire_get_u16(msg + 8);
    dns_cursor_init(&c, msg, len);
    c.pos = DNS_HEADER_SIZE;
    if (qd > 0) {
        struct dns_name skip;
        dns_cursor_name(&c, &skip, false);
        dns_cursor_skip(&c, 4);
    }
    size_t an_start = c.pos;
    if (c.err || !skip_records(&c, an))
        return -1;
    follow_chain(msg, len, an_start, an, q, &ch);
    bool has_data = scan_answer(msg, len, an_start, an, &ch, q, &gs);
    if (ch.own_end) {
        /* The upstream's rcode speaks of the chain's end, which is ours to answer. */
        out->own_end = true;
        out->own_target = ch.names[ch.n - 1];
        flags = (uint16_t)(flags & ~0xfU);
    }

    dns_cursor_init(&w.c, out->buf, out->cap);
    w.n_names = 0;
    dns_cursor_put_u16(&w.c, id);
    dns_cursor_put_u16(&w.c, flags);
    dns_cursor_put_u16(&w.c, 1);
    dns_cursor_put_u16(&w.c, 0);
    dns_cursor_put_u16(&w.c, 0);
    dns_cursor_put_u16(&w.c, 0);
    dns_cursor_put(&w.c, question, question_len);
    remember_names(&w, DNS_HEADER_SIZE, &qname, qname.len - 1U);
    if (w.c.err || !write_answer(&w, msg, len, an_start, an, &ch, q, &gs, out))
        return -1;
    unsigned rcode = DNS_RCODE(dns_wire_get_u16(msg + 2));
    out->negative =
        !ch.own_end && (rcode == DNS_RCODE_NXDOMAIN || (rcode == DNS_RCODE_NOERROR && !has_data));
    if (out->negative && !write_soa(&w, msg, &c, ns, &ch, q, out))
        return -1;
    if (w.c.err)
        return -1;
    dns_wire_reply_counts(out->buf, out->an, out->ns, 0);
    out->len = w.c.pos;
    return 0;
}
