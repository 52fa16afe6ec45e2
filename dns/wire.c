/* dns/wire.c - parsing queries and writing replies with a bounds-checked cursor.
 *
 * Invariant: nothing here reads or writes outside [buf, buf + len); a failed access sets
 * cursor.err and returns zeros, so malformed input can only produce FORMERR, never a fault.
 * Compression pointers must point strictly backwards, which bounds every name walk. */
#include "dns/wire.h"

#include <string.h>

void dns_cursor_init(struct dns_cursor *c, const uint8_t *buf, size_t len)
{
    /* Readers and writers share the struct; a reader never writes through buf. */
    c->buf = (uint8_t *)(uintptr_t)buf; // NOLINT(performance-no-int-to-ptr): drops const only
    c->len = len;
    c->pos = 0;
    c->err = false;
}

static bool has_room(struct dns_cursor *c, size_t n)
{
    if (c->err || c->len - c->pos < n) {
        c->err = true;
        return false;
    }
    return true;
}

uint8_t dns_cursor_u8(struct dns_cursor *c)
{
    if (!has_room(c, 1))
        return 0;
    return c->buf[c->pos++];
}

uint16_t dns_cursor_u16(struct dns_cursor *c)
{
    if (!has_room(c, 2))
        return 0;
    uint16_t v = dns_wire_get_u16(c->buf + c->pos);
    c->pos += 2;
    return v;
}

uint32_t dns_cursor_u32(struct dns_cursor *c)
{
    if (!has_room(c, 4))
        return 0;
    uint32_t v = dns_wire_get_u32(c->buf + c->pos);
    c->pos += 4;
    return v;
}

void dns_cursor_skip(struct dns_cursor *c, size_t n)
{
    if (has_room(c, n))
        c->pos += n;
}

void dns_cursor_put_u8(struct dns_cursor *c, uint8_t v)
{
    if (has_room(c, 1))
        c->buf[c->pos++] = v;
}

void dns_cursor_put_u16(struct dns_cursor *c, uint16_t v)
{
    if (!has_room(c, 2))
        return;
    dns_wire_put_u16(c->buf + c->pos, v);
    c->pos += 2;
}

void dns_cursor_put_u32(struct dns_cursor *c, uint32_t v)
{
    if (!has_room(c, 4))
        return;
    dns_wire_put_u32(c->buf + c->pos, v);
    c->pos += 4;
}

void dns_cursor_put(struct dns_cursor *c, const void *data, size_t n)
{
    if (!has_room(c, n))
        return;
    memcpy(c->buf + c->pos, data, n);
    c->pos += n;
}

static uint8_t to_lower(uint8_t ch)
{
    /* RFC 4343: only ASCII letters fold; other octets are compared as they are. */
    return (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch + 32) : ch;
}

/* The compression pointer at *pos: moves *pos to its target, which must lie strictly before
 * the start of the current run (*limit; so no loops) and after the header. The first pointer
 * sets where the cursor resumes. */
static bool follow_pointer(const struct dns_cursor *c, size_t *pos, size_t *limit, size_t *resume)
{
    if (*pos + 1 >= c->len)
        return false;
    size_t target = (size_t)((c->buf[*pos] & 0x3f) << 8 | c->buf[*pos + 1]);
    if (target >= *limit || target < DNS_HEADER_SIZE)
        return false;
    if (*resume == 0)
        *resume = *pos + 2;
    *limit = target;
    *pos = target;
    return true;
}

void dns_cursor_name(struct dns_cursor *c, struct dns_name *out, bool lower)
{
    size_t pos = c->pos; /* where we read the next label */
    size_t limit = pos;  /* a pointer must go strictly before this */
    size_t resume = 0;   /* where the cursor ends: after the first pointer */
    size_t n = 0;

    out->len = 0;
    if (c->err)
        return;
    for (;;) {
        if (pos >= c->len)
            goto bad;
        uint8_t len = c->buf[pos];
        if ((len & 0xc0) == 0xc0) {
            if (!follow_pointer(c, &pos, &limit, &resume))
                goto bad;
            continue;
        }
        if (len & 0xc0) /* 0x40 and 0x80: reserved label types (RFC 6891 §5) */
            goto bad;
        if (n + 1 + len > DNS_MAX_NAME || pos + 1 + len > c->len)
            goto bad;
        out->wire[n++] = len;
        if (len == 0)
            break;
        for (size_t i = 0; i < len; i++) {
            uint8_t ch = c->buf[pos + 1 + i];
            out->wire[n++] = lower ? to_lower(ch) : ch;
        }
        pos += 1 + (size_t)len;
    }
    out->len = (uint8_t)n;
    c->pos = resume ? resume : pos + 1;
    return;
bad:
    out->len = 0;
    c->err = true;
}

/* Reads the OPT RR of the additional section (RFC 6891) into q. Other additional records
 * (TSIG, for instance) are skipped: we do not sign, and ignoring them is what NSD does. */
static enum dns_parse_result parse_additional(struct dns_cursor *c, struct dns_query *q,
                                              uint16_t arcount)
{
    for (uint16_t i = 0; i < arcount; i++) {
        struct dns_name owner;
        dns_cursor_name(c, &owner, true);
        uint16_t type = dns_cursor_u16(c);
        uint16_t klass = dns_cursor_u16(c);
        uint32_t ttl = dns_cursor_u32(c);
        uint16_t rdlen = dns_cursor_u16(c);
        dns_cursor_skip(c, rdlen);
        if (c->err)
            return DNS_PARSE_FORMERR;
        if (type != DNS_TYPE_OPT)
            continue;
        if (q->has_edns || owner.len != 1) /* one OPT, owned by the root */
            return DNS_PARSE_FORMERR;
        q->has_edns = true;
        q->udp_size = klass < DNS_MIN_UDP ? DNS_MIN_UDP : klass;
        q->edns_version = (uint8_t)(ttl >> 16);
        q->edns_flags = (uint16_t)ttl;
    }
    return DNS_PARSE_OK;
}

/* A query we answer without taking it in (a header that breaks the rules: FORMERR; another
 * opcode: NOTIMP) still has its OPT read, because a reply to an EDNS query carries OPT (RFC
 * 6891 §7), and a query with QDCOUNT=0 and an OPT holding only a COOKIE is how a client asks
 * a server for its cookie (RFC 7873 §5.4). So the sections are walked to the additional one;
 * the question is not echoed, as there is not exactly one that parsed. We keep no cookies, so
 * the reply has no COOKIE option, which tells the client that we do not support them. */
static void find_opt(struct dns_cursor *c, struct dns_query *q, uint16_t qdcount, unsigned records,
                     uint16_t arcount)
{
    struct dns_name skip;
    for (unsigned i = 0; i < qdcount && !c->err; i++) {
        dns_cursor_name(c, &skip, false);
        dns_cursor_skip(c, 4);
    }
    for (unsigned i = 0; i < records && !c->err; i++) {
        dns_cursor_name(c, &skip, false);
        dns_cursor_skip(c, 8);
        dns_cursor_skip(c, dns_cursor_u16(c));
    }
    if (!c->err)
        (void)parse_additional(c, q, arcount);
}

enum dns_parse_result dns_wire_parse_query(struct dns_query *q, const uint8_t *pkt, size_t len)
{
    struct dns_cursor c;

    memset(q, 0, offsetof(struct dns_query, qname));
    q->qname.len = 0;
    q->question_end = DNS_HEADER_SIZE;
    q->udp_size = DNS_MIN_UDP;
    q->edns_flags = 0;
    q->edns_version = 0;
    q->has_question = false;
    q->has_edns = false;
    if (len < DNS_HEADER_SIZE)
        return DNS_PARSE_DROP;
    dns_cursor_init(&c, pkt, len);
    q->id = dns_cursor_u16(&c);
    q->flags = dns_cursor_u16(&c);
    uint16_t qdcount = dns_cursor_u16(&c);
    uint16_t ancount = dns_cursor_u16(&c);
    uint16_t nscount = dns_cursor_u16(&c);
    uint16_t arcount = dns_cursor_u16(&c);
    if (q->flags & DNS_FLAG_QR)
        return DNS_PARSE_DROP; /* never answer a response: that is how reflection loops start */
    if (DNS_OPCODE(q->flags) != DNS_OPCODE_QUERY) {
        find_opt(&c, q, qdcount, (unsigned)ancount + nscount, arcount);
        return DNS_PARSE_NOTIMP;
    }
    /* RFC 9619: QDCOUNT must be 1. A query carries no answer or authority records. */
    if (qdcount != 1 || ancount != 0 || nscount != 0) {
        find_opt(&c, q, qdcount, (unsigned)ancount + nscount, arcount);
        return DNS_PARSE_FORMERR;
    }
    dns_cursor_name(&c, &q->qname, true);
    q->qtype = dns_cursor_u16(&c);
    q->qclass = dns_cursor_u16(&c);
    if (c.err)
        return DNS_PARSE_FORMERR;
    q->has_question = true;
    q->question_end = (uint16_t)c.pos;
    enum dns_parse_result r = parse_additional(&c, q, arcount);
    if (r != DNS_PARSE_OK)
        return r;
    /* Bytes after the last record are ignored, as NSD, Unbound and dnsmasq do. */
    if (q->has_edns && q->edns_version > 0)
        return DNS_PARSE_BADVERS;
    if (q->qtype == DNS_TYPE_OPT) /* a meta-type is no question (RFC 6891 §6.1.1) */
        return DNS_PARSE_FORMERR;
    return DNS_PARSE_OK;
}

void dns_name_lower(struct dns_name *n)
{
    for (size_t i = 0; i < n->len;) {
        uint8_t l = n->wire[i];
        for (size_t j = 1; j <= l && i + j < n->len; j++)
            n->wire[i + j] = to_lower(n->wire[i + j]);
        i += (size_t)l + 1;
        if (l == 0)
            break;
    }
}

bool dns_name_equal(const struct dns_name *a, const struct dns_name *b)
{
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        if (to_lower(a->wire[i]) != to_lower(b->wire[i]))
            return false;
    }
    return true;
}

unsigned dns_name_labels(const struct dns_name *n)
{
    unsigned count = 0;
    for (size_t i = 0; i < n->len && n->wire[i] != 0; i += (size_t)n->wire[i] + 1)
        count++;
    return count;
}

bool dns_name_is_subdomain(const struct dns_name *name, const struct dns_name *suffix)
{
    if (suffix->len > name->len)
        return false;
    /* The suffix must start on a label boundary of name. */
    size_t start = (size_t)(name->len - suffix->len);
    size_t i = 0;
    while (i < start)
        i += (size_t)name->wire[i] + 1;
    return i == start && memcmp(name->wire + start, suffix->wire, suffix->len) == 0;
}

int dns_name_from_text(struct dns_name *out, const char *text)
{
    size_t n = 0;
    const char *p = text;

    out->len = 0;
    if (strcmp(text, ".") == 0) {
        out->wire[0] = 0;
        out->len = 1;
        return 0;
    }
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > DNS_MAX_LABEL || n + 1 + l + 1 > DNS_MAX_NAME)
            return -1;
        out->wire[n++] = (uint8_t)l;
        for (size_t i = 0; i < l; i++)
            out->wire[n++] = to_lower((uint8_t)p[i]);
        p += l;
        if (*p == '.')
            p++;
    }
    if (n == 0)
        return -1;
    out->wire[n++] = 0;
    out->len = (uint8_t)n;
    return 0;
}

/* One label byte in presentation form, as dig prints it (RFC 1035 section 5.1): the bytes
 * that mean something in a name or a zone file behind a backslash, anything outside printable
 * ASCII (space too) as \DDD. A label that holds "\n2026-... level=error" can then never break a
 * log line or pass for a field. Returns the bytes written (at most 4). */
static size_t put_text_byte(uint8_t c, char *out)
{
    if (c <= 0x20 || c >= 0x7f) {
        out[0] = '\\';
        out[1] = (char)('0' + c / 100);
        out[2] = (char)('0' + c / 10 % 10);
        out[3] = (char)('0' + c % 10);
        return 4;
    }
    if (strchr(".\\\"();@$", c) != NULL) {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    out[0] = (char)c;
    return 1;
}

int dns_name_to_text(const struct dns_name *n, char *out, size_t cap)
{
    size_t o = 0;
    if (n->len <= 1) {
        if (cap < 2)
            return -1;
        memcpy(out, ".", 2);
        return 1;
    }
    for (size_t i = 0; i < n->len && n->wire[i] != 0; i += (size_t)n->wire[i] + 1) {
        size_t l = n->wire[i];
        for (size_t k = 0; k < l && i + 1 + k < n->len; k++) {
            if (o + 4 + 2 > cap)
                return -1;
            o += put_text_byte(n->wire[i + 1 + k], out + o);
        }
        if (o + 2 > cap)
            return -1;
        out[o++] = '.';
    }
    out[o] = '\0';
    return (int)o;
}

int dns_name_concat(struct dns_name *out, const struct dns_name *prefix,
                    const struct dns_name *suffix)
{
    size_t plen = prefix->len ? (size_t)prefix->len - 1 : 0; /* drop prefix's root */
    if (plen + suffix->len > DNS_MAX_NAME)
        return -1;
    memmove(out->wire, prefix->wire, plen);
    memmove(out->wire + plen, suffix->wire, suffix->len);
    out->len = (uint8_t)(plen + suffix->len);
    return 0;
}

void dns_wire_reply_begin(struct dns_cursor *c, const struct dns_query *q, const uint8_t *pkt,
                          uint16_t extra_flags, unsigned rcode)
{
    /* Copy opcode, RD and CD; never Z, AD or unknown bits (RFC 8906, genreport). */
    uint16_t flags = (uint16_t)(DNS_FLAG_QR | (q->flags & (0x7800 | DNS_FLAG_RD | DNS_FLAG_CD)));
    flags = (uint16_t)(flags | extra_flags | (rcode & 0xf));
    dns_cursor_put_u16(c, q->id);
    dns_cursor_put_u16(c, flags);
    dns_cursor_put_u16(c, q->has_question ? 1 : 0);
    dns_cursor_put_u16(c, 0);
    dns_cursor_put_u16(c, 0);
    dns_cursor_put_u16(c, 0);
    if (q->has_question)
        dns_cursor_put(c, pkt + DNS_HEADER_SIZE, (size_t)q->question_end - DNS_HEADER_SIZE);
}

void dns_wire_reply_counts(uint8_t *reply, uint16_t an, uint16_t ns, uint16_t ar)
{
    dns_wire_put_u16(reply + 6, an);
    dns_wire_put_u16(reply + 8, ns);
    dns_wire_put_u16(reply + 10, ar);
}

size_t dns_wire_put_opt(struct dns_cursor *c, const struct dns_query *q, unsigned rcode, int ede)
{
    size_t start = c->pos;
    dns_cursor_put_u8(c, 0); /* root owner */
    dns_cursor_put_u16(c, DNS_TYPE_OPT);
    dns_cursor_put_u16(c, DNS_MAX_UDP);
    dns_cursor_put_u8(c, (uint8_t)(rcode >> 4));
    dns_cursor_put_u8(c, 0); /* version 0 */
    dns_cursor_put_u16(c, (uint16_t)(q->edns_flags & DNS_EDNS_DO));
    if (ede >= 0) {
        dns_cursor_put_u16(c, 6);
        dns_cursor_put_u16(c, DNS_EDNS_OPT_EDE);
        dns_cursor_put_u16(c, 2);
        dns_cursor_put_u16(c, (uint16_t)ede);
    } else {
        dns_cursor_put_u16(c, 0);
    }
    return c->err ? 0 : c->pos - start;
}

size_t dns_wire_error_reply(uint8_t *out, size_t cap, const struct dns_query *q, const uint8_t *pkt,
                            unsigned rcode, uint16_t extra_flags, int ede)
{
    struct dns_cursor c;
    dns_cursor_init(&c, out, cap);
    dns_wire_reply_begin(&c, q, pkt, extra_flags, rcode);
    uint16_t ar = 0;
    if (q->has_edns) {
        dns_wire_put_opt(&c, q, rcode, ede);
        ar = 1;
    }
    if (c.err)
        return 0;
    dns_wire_reply_counts(out, 0, 0, ar);
    return c.pos;
}

static void copy_name(struct dns_cursor *out, struct dns_cursor *in)
{
    struct dns_name n;
    dns_cursor_name(in, &n, false);
    if (!in->err)
        dns_cursor_put(out, n.wire, n.len);
}

/* Where the names lie in the RDATA of the types whose names may be compressed: one letter per
 * field. 'N' a name, '2' and '4' fixed fields of that many octets, 'S' a character-string,
 * '*' the rest, as it is. RFC 3597 §4: the RFC 1035 types must be decompressed (the obsolete
 * MD, MF, MB, MG, MR and MINFO too), and RP, AFSDB, RT, SIG, PX, NXT, NAPTR and SRV should
 * be, as should DNAME (RFC 6672). Copied as they are, a pointer in them would point into
 * whatever the new message holds at that offset. */
static const char *rdata_layout(uint16_t type)
{
    switch (type) {
    case DNS_TYPE_NS:
    case 3: /* MD */
    case 4: /* MF */
    case DNS_TYPE_CNAME:
    case 7: /* MB */
    case 8: /* MG */
    case 9: /* MR */
    case DNS_TYPE_PTR:
    case 39: /* DNAME */
        return "N";
    case DNS_TYPE_SOA:
        return "NN44444";
    case 14: /* MINFO */
    case 17: /* RP */
        return "NN";
    case DNS_TYPE_MX:
    case 18: /* AFSDB */
    case 21: /* RT */
        return "2N";
    case 24: /* SIG: type, algorithm + labels, TTL, expiration, inception, key tag, signer */
        return "224442N*";
    case 26: /* PX */
        return "2NN";
    case 30: /* NXT */
        return "N*";
    case DNS_TYPE_SRV:
        return "222N";
    case 35: /* NAPTR: order, preference, flags, services, regexp, replacement */
        return "22SSSN";
    default:
        return "*";
    }
}

static void copy_bytes(struct dns_cursor *out, struct dns_cursor *in, size_t n)
{
    if (!has_room(in, n))
        return;
    dns_cursor_put(out, in->buf + in->pos, n);
    in->pos += n;
}

static void copy_rdata(struct dns_cursor *out, struct dns_cursor *in, uint16_t type, uint16_t rdlen)
{
    size_t end = in->pos + rdlen;
    if (end > in->len) {
        in->err = true;
        return;
    }
    /* Fields are read only within the RDATA: a name running past it is an error. */
    size_t whole = in->len;
    in->len = end;
    for (const char *f = rdata_layout(type); *f != '\0' && !in->err && !out->err; f++) {
        switch (*f) {
        case 'N':
            copy_name(out, in);
            break;
        case 'S':
            copy_bytes(out, in, in->pos < end ? 1U + in->buf[in->pos] : 1U);
            break;
        case '*':
            copy_bytes(out, in, end - in->pos);
            break;
        default:
            copy_bytes(out, in, (size_t)(*f - '0'));
        }
    }
    in->len = whole;
    if (in->pos != end) /* the names and fields must fill RDATA exactly */
        in->err = true;
}

void dns_wire_copy_rr(struct dns_cursor *out, struct dns_cursor *in, uint16_t *type)
{
    copy_name(out, in);
    *type = dns_cursor_u16(in);
    uint16_t klass = dns_cursor_u16(in);
    uint32_t ttl = dns_cursor_u32(in);
    uint16_t rdlen = dns_cursor_u16(in);
    if (in->err)
        return;
    dns_cursor_put_u16(out, *type);
    dns_cursor_put_u16(out, klass);
    dns_cursor_put_u32(out, ttl);
    size_t len_at = out->pos;
    dns_cursor_put_u16(out, 0);
    size_t start = out->pos;
    copy_rdata(out, in, *type, rdlen);
    if (!out->err && out->pos - start <= UINT16_MAX)
        dns_wire_put_u16(out->buf + len_at, (uint16_t)(out->pos - start));
}

const char *dns_wire_rcode_name(unsigned rcode)
{
    static const char *const names[] = {"NOERROR", "FORMERR",  "SERVFAIL", "NXDOMAIN", "NOTIMP",
                                        "REFUSED", "YXDOMAIN", "YXRRSET",  "NXRRSET",  "NOTAUTH",
                                        "NOTZONE", "RCODE11",  "RCODE12",  "RCODE13",  "RCODE14",
                                        "RCODE15", "BADVERS"};
    return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "RCODE?";
}
