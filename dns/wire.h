/* dns/wire.h - the wire codec of the per-query path.
 *
 * A sticky-error cursor over a caller's buffer (Knot's wire_ctx_t): every read and write is
 * bounds-checked, and the first failure latches so a sequence of calls needs one check at the
 * end. Nothing here allocates. Names are kept uncompressed in struct dns_name. */
#ifndef DNS_WIRE_H
#define DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_SIZE 12
#define DNS_MAX_NAME 255
#define DNS_MAX_LABEL 63
#define DNS_MAX_UDP 1232 /* DNS Flag Day 2020: what we advertise and the most we send */
#define DNS_MIN_UDP 512  /* RFC 1035 without EDNS; smaller EDNS sizes count as this */
#define DNS_MAX_MSG 65535
#define DNS_QUESTION_PTR 0xc00c /* compression pointer to the question name */

enum dns_type {
    DNS_TYPE_A = 1,
    DNS_TYPE_NS = 2,
    DNS_TYPE_CNAME = 5,
    DNS_TYPE_SOA = 6,
    DNS_TYPE_PTR = 12,
    DNS_TYPE_HINFO = 13,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_SRV = 33,
    DNS_TYPE_OPT = 41,
    DNS_TYPE_IXFR = 251,
    DNS_TYPE_AXFR = 252,
    DNS_TYPE_MAILB = 253,
    DNS_TYPE_MAILA = 254,
    DNS_TYPE_ANY = 255,
};

enum dns_class { DNS_CLASS_IN = 1, DNS_CLASS_CH = 3, DNS_CLASS_NONE = 254, DNS_CLASS_ANY = 255 };

enum dns_rcode {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_NOTIMP = 4,
    DNS_RCODE_REFUSED = 5,
    DNS_RCODE_BADVERS = 16, /* extended: header 0, OPT high bits 1 */
};

enum dns_opcode { DNS_OPCODE_QUERY = 0 };

/* Header flag bits, in the 16-bit flags word (bytes 2-3). */
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_FLAG_RA 0x0080
#define DNS_FLAG_Z 0x0040
#define DNS_FLAG_AD 0x0020
#define DNS_FLAG_CD 0x0010
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_RCODE(flags) ((flags)&0xf)
#define DNS_EDNS_DO 0x8000

/* EDNS option codes we emit. */
#define DNS_EDNS_OPT_EDE 15

/* Extended DNS Error info codes (RFC 8914) we send. */
#define DNS_EDE_STALE_ANSWER 3
#define DNS_EDE_NOT_READY 14 /* RFC 8914 4.15: still loading */
#define DNS_EDE_NO_REACHABLE_AUTHORITY 22
#define DNS_EDE_NETWORK_ERROR 23

/* An uncompressed name in wire form, root included: "\4echo\7default\0". len counts the root. */
struct dns_name {
    uint8_t len;
    uint8_t wire[DNS_MAX_NAME];
};

/* What dns_wire_parse_query() learnt of a query. */
struct dns_query {
    uint16_t id;
    uint16_t flags; /* as received */
    uint16_t qtype;
    uint16_t qclass;
    struct dns_name qname; /* lower-cased; the original case stays in the packet */
    uint16_t question_end; /* offset just past the question in the packet */
    uint16_t udp_size;     /* the client's EDNS buffer (>= 512), or 512 without EDNS */
    uint16_t edns_flags;   /* DO and friends, as received */
    uint8_t edns_version;
    bool has_question;
    bool has_edns;
};

/* How a query parsed. DNS_PARSE_OK goes on to the chain; the others are answered (with what
 * the header and, where it parsed, the question say) or dropped. */
enum dns_parse_result {
    DNS_PARSE_OK = 0,
    DNS_PARSE_DROP,    /* runt or a response (QR=1): never answered */
    DNS_PARSE_FORMERR, /* malformed: answer FORMERR */
    DNS_PARSE_NOTIMP,  /* opcode other than QUERY: answer NOTIMP */
    DNS_PARSE_BADVERS, /* EDNS version above 0: answer BADVERS */
};

enum dns_parse_result dns_wire_parse_query(struct dns_query *q, const uint8_t *pkt, size_t len);

/* A bounds-checked cursor. err latches on the first out-of-bounds or malformed access. */
struct dns_cursor {
    uint8_t *buf; /* writable for writers; readers never write through it */
    size_t len;   /* readers: bytes available; writers: capacity */
    size_t pos;
    bool err;
};

void dns_cursor_init(struct dns_cursor *c, const uint8_t *buf, size_t len);
uint8_t dns_cursor_u8(struct dns_cursor *c);
uint16_t dns_cursor_u16(struct dns_cursor *c);
uint32_t dns_cursor_u32(struct dns_cursor *c);
void dns_cursor_skip(struct dns_cursor *c, size_t n);
/* Reads a possibly compressed name at the cursor into out (lower-cased when lower is set),
 * following only pointers that go strictly backwards. The cursor ends after the name as it
 * stands in the message (after the first pointer, if any). */
void dns_cursor_name(struct dns_cursor *c, struct dns_name *out, bool lower);

void dns_cursor_put_u8(struct dns_cursor *c, uint8_t v);
void dns_cursor_put_u16(struct dns_cursor *c, uint16_t v);
void dns_cursor_put_u32(struct dns_cursor *c, uint32_t v);
void dns_cursor_put(struct dns_cursor *c, const void *data, size_t n);

static inline uint16_t dns_wire_get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline void dns_wire_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint32_t dns_wire_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void dns_wire_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Copies one resource record from the message under in (whose buf is the whole message, so
 * compression pointers resolve) to out, with every name written out in full: the owner and
 * the names inside the data of every type whose names may be compressed (RFC 3597 §4: NS,
 * MD, MF, CNAME, SOA, MB, MG, MR, PTR, MINFO, MX, and RP, AFSDB, RT, SIG, PX, NXT, NAPTR,
 * SRV, DNAME). Other data is copied as it is (no compression inside other types). Sets
 * in->err or out->err on failure; *type gets the record's type. */
void dns_wire_copy_rr(struct dns_cursor *out, struct dns_cursor *in, uint16_t *type);

/* "NOERROR", "NXDOMAIN", ... "BADVERS"; "RCODEn" for the rest. */
const char *dns_wire_rcode_name(unsigned rcode);

/* Names. */
void dns_name_lower(struct dns_name *n);
bool dns_name_equal(const struct dns_name *a, const struct dns_name *b); /* case-insensitive */
/* True when name is suffix or below it (both lower-cased). */
bool dns_name_is_subdomain(const struct dns_name *name, const struct dns_name *suffix);
unsigned dns_name_labels(const struct dns_name *n);
/* Parses presentation form ("echo.default.svc.local", trailing dot optional, "." for root;
 * no escapes) into wire form, lower-cased. Returns 0 or -1 when it is not a valid name. */
int dns_name_from_text(struct dns_name *out, const char *text);
/* Writes presentation form with a trailing dot, escaped as dig prints names: "\." for a dot
 * inside a label, "\\", "\"", "\(", "\)", "\;", "\@", "\$", and "\DDD" for a byte outside
 * printable ASCII (space too). So the text is one token of printable ASCII, safe in a log line.
 * Returns the length, or -1 if cap is short; DNS_NAME_TEXT_MAX always fits. */
#define DNS_NAME_TEXT_MAX (DNS_MAX_NAME * 4 + 2)
int dns_name_to_text(const struct dns_name *n, char *out, size_t cap);
/* Builds out = prefix (wire, without its root) + suffix; -1 when it would exceed 255. */
int dns_name_concat(struct dns_name *out, const struct dns_name *prefix,
                    const struct dns_name *suffix);

/* Replies.
 *
 * dns_wire_reply_begin() writes the header and echoes the question from the query packet
 * (original case), leaving the cursor ready for records; the counts are set at the end with
 * dns_wire_reply_counts(). The reply's flags: QR, the query's opcode, RD and CD copied, the
 * given extra flags (AA, RA, TC) and rcode (its low 4 bits). */
void dns_wire_reply_begin(struct dns_cursor *c, const struct dns_query *q, const uint8_t *pkt,
                          uint16_t extra_flags, unsigned rcode);
void dns_wire_reply_counts(uint8_t *reply, uint16_t an, uint16_t ns, uint16_t ar);
/* Appends our OPT record: payload DNS_MAX_UDP, version 0, DO echoed, the extended rcode bits
 * of rcode, and an Extended DNS Error option when ede >= 0. Returns the bytes written. */
size_t dns_wire_put_opt(struct dns_cursor *c, const struct dns_query *q, unsigned rcode, int ede);
/* A complete reply with no records: rcode, the question if it parsed, OPT if the query had
 * one. Used for FORMERR, NOTIMP, REFUSED, SERVFAIL, BADVERS. Returns the reply length. */
size_t dns_wire_error_reply(uint8_t *out, size_t cap, const struct dns_query *q, const uint8_t *pkt,
                            unsigned rcode, uint16_t extra_flags, int ede);

#endif
