/* tests/dns/test_wire.c - the query parser and reply writer of dns/wire.c. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/wire.h"
#include "tests/support/support.h"

static uint8_t pkt[DNS_MAX_MSG];

static size_t query(const char *name, uint16_t type, int edns)
{
    return support_query_wire(pkt, sizeof(pkt), name, type, DNS_CLASS_IN, 0x1234, edns);
}

START_TEST(parse_reads_header_question_and_lowers_the_name)
{
    size_t len = query("Echo.Default.SVC.local.", DNS_TYPE_A, 0);
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert_uint_eq(q.id, 0x1234);
    ck_assert_uint_eq(q.qtype, DNS_TYPE_A);
    ck_assert_uint_eq(q.qclass, DNS_CLASS_IN);
    ck_assert(!q.has_edns);
    ck_assert_uint_eq(q.udp_size, 512);
    struct dns_name want;
    ck_assert_int_eq(dns_name_from_text(&want, "echo.default.svc.local"), 0);
    ck_assert_uint_eq(q.qname.len, want.len);
    ck_assert_mem_eq(q.qname.wire, want.wire, want.len);
    ck_assert_uint_eq(q.question_end, len);
    /* The packet keeps the client's case for the echo. */
    ck_assert_mem_eq(pkt + 13, "Echo", 4);
}
END_TEST

START_TEST(parse_reads_edns_size_version_and_do)
{
    size_t len = query("a.local.", DNS_TYPE_A, 4096);
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert(q.has_edns);
    ck_assert_uint_eq(q.udp_size, 4096);
    ck_assert_uint_eq(q.edns_version, 0);
    /* A buffer below 512 counts as 512 (RFC 6891 §6.2.5). */
    len = query("a.local.", DNS_TYPE_A, 100);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert_uint_eq(q.udp_size, 512);
    /* Version 1: BADVERS. The version is the second byte of the OPT TTL. */
    pkt[len - 11 + 6] = 1;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_BADVERS);
}
END_TEST

START_TEST(parse_drops_runts_and_responses)
{
    struct dns_query q;
    size_t len = query("a.local.", DNS_TYPE_A, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, 11), DNS_PARSE_DROP);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, 0), DNS_PARSE_DROP);
    pkt[2] |= 0x80; /* QR */
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_DROP);
}
END_TEST

START_TEST(parse_answers_notimp_for_other_opcodes)
{
    struct dns_query q;
    size_t len = query("a.local.", DNS_TYPE_A, 0);
    pkt[2] = (uint8_t)((pkt[2] & 0x87) | (15 << 3));
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_NOTIMP);
}
END_TEST

/* Header-level malformations, each a FORMERR (README, Protocol; RFC 1035 §4.1.1). */
static const struct {
    const char *what;
    uint8_t bytes[64];
    size_t len;
} formerr_cases[] = {
    {"no question", {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12},
    {"two questions",
     {0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'b', 0, 0, 1, 0, 1},
     26},
    {"answer in a query", {0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1}, 19},
    {"question cut short", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0}, 16},
    {"no question bytes", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 12},
    {"extended label type", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1}, 19},
    {"pointer to itself", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, 18},
    {"pointer forward", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 18, 0, 1, 0, 1, 0}, 19},
    {"pointer into the header", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 2, 0, 1, 0, 1}, 18},
    {"label past the end", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, 'a', 'b'}, 15},
    {"qtype OPT", {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 41, 0, 1}, 19},
    {"OPT owner not root",
     {0, 1, 0, 0, 0,   1, 0, 0,  0,  0, 0, 1, 1, 'a', 0, 0,
      1, 0, 1, 1, 'a', 0, 0, 41, 16, 0, 0, 0, 0, 0,   0, 0},
     32},
    {"two OPT records",
     {0,  1,  0, 0, 0, 1, 0, 0, 0, 0, 0, 2,  1,  'a', 0, 0, 1, 0, 1, 0, 0,
      41, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 16, 0,   0, 0, 0, 0, 0, 0},
     41},
    {"OPT rdata past the end",
     {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 'a', 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 9},
     30},
};

START_TEST(parse_rejects_malformed_queries)
{
    struct dns_query q;
    ck_assert_msg(dns_wire_parse_query(&q, formerr_cases[_i].bytes, formerr_cases[_i].len) ==
                      DNS_PARSE_FORMERR,
                  "%s", formerr_cases[_i].what);
}
END_TEST

START_TEST(parse_rejects_names_longer_than_255)
{
    uint8_t buf[400] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t n = 12;
    for (int i = 0; i < 5; i++) { /* 5 * 64 = 320 octets */
        buf[n++] = 63;
        memset(buf + n, 'a', 63);
        n += 63;
    }
    buf[n++] = 0;
    buf[n++] = 0, buf[n++] = 1, buf[n++] = 0, buf[n++] = 1;
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, buf, n), DNS_PARSE_FORMERR);
}
END_TEST

START_TEST(parse_ignores_trailing_bytes)
{
    size_t len = query("a.local.", DNS_TYPE_A, 0);
    memcpy(pkt + len, "\xde\xad\xbe\xef", 4);
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len + 4), DNS_PARSE_OK);
}
END_TEST

START_TEST(cursor_follows_backward_pointers)
{
    /* Header, then "a.b." at 12 and "c" + pointer to 12 at 17. */
    uint8_t msg[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 1, 'B', 0, 1, 'c', 0xc0, 12};
    struct dns_cursor c;
    struct dns_name n;
    dns_cursor_init(&c, msg, sizeof(msg));
    c.pos = 17;
    dns_cursor_name(&c, &n, true);
    ck_assert(!c.err);
    ck_assert_uint_eq(c.pos, sizeof(msg));
    char text[64];
    dns_name_to_text(&n, text, sizeof(text));
    ck_assert_str_eq(text, "c.a.b.");
}
END_TEST

/* dig's presentation form: a label's bytes can never end a log line or forge a field. */
START_TEST(name_to_text_escapes_as_dig_does)
{
    static const uint8_t wire[] = "\x0e"
                                  "a.b\\c\"d e;()@$"
                                  "\x15"
                                  "\n2026 level=error\x01"
                                  "\x7f"
                                  "\x80\xff"
                                  "\x00";
    struct dns_name n = {.len = sizeof(wire) - 1};
    memcpy(n.wire, wire, n.len);
    char text[DNS_NAME_TEXT_MAX];
    ck_assert_int_gt(dns_name_to_text(&n, text, sizeof(text)), 0);
    ck_assert_str_eq(text, "a\\.b\\\\c\\\"d\\032e\\;\\(\\)\\@\\$."
                           "\\0102026\\032level=error\\001\\127\\128\\255.");
    /* The longest text: 127 labels of one byte that must be written as \DDD. */
    struct dns_name worst = {.len = 255};
    for (size_t i = 0; i + 1 < 255; i += 2) {
        worst.wire[i] = 1;
        worst.wire[i + 1] = 0xff;
    }
    worst.wire[254] = 0;
    ck_assert_int_eq(dns_name_to_text(&worst, text, sizeof(text)), 127 * 5);
    ck_assert_int_eq(dns_name_to_text(&worst, text, 127 * 5), -1);
}
END_TEST

START_TEST(names_compare_and_nest_case_insensitively)
{
    struct dns_name a, b, zone;
    dns_name_from_text(&a, "echo.default.svc.local");
    dns_name_from_text(&b, "ECHO.default.svc.LOCAL.");
    dns_name_from_text(&zone, "local");
    ck_assert(dns_name_equal(&a, &b));
    ck_assert(dns_name_is_subdomain(&a, &zone));
    ck_assert(dns_name_is_subdomain(&zone, &zone));
    dns_name_from_text(&b, "notlocal");
    ck_assert(!dns_name_is_subdomain(&b, &zone));
    dns_name_from_text(&b, "xlocal.com");
    ck_assert(!dns_name_is_subdomain(&b, &zone));
    ck_assert_uint_eq(dns_name_labels(&a), 4);
    ck_assert_int_eq(dns_name_from_text(&b, "a..b"), -1);
    ck_assert_int_eq(dns_name_from_text(&b, ""), -1);
}
END_TEST

START_TEST(concat_joins_and_refuses_overlong_names)
{
    struct dns_name p, s, out;
    dns_name_from_text(&p, "echo");
    dns_name_from_text(&s, "default.svc.local");
    ck_assert_int_eq(dns_name_concat(&out, &p, &s), 0);
    char text[64];
    dns_name_to_text(&out, text, sizeof(text));
    ck_assert_str_eq(text, "echo.default.svc.local.");
    char longname[300];
    memset(longname, 0, sizeof(longname));
    for (int i = 0; i < 4; i++)
        strcat(longname, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
    ck_assert_int_eq(dns_name_from_text(&p, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                     0);
    longname[strlen(longname) - 1] = '\0';
    ck_assert_int_eq(dns_name_from_text(&s, longname), 0);
    ck_assert_int_eq(dns_name_concat(&out, &p, &s), -1);
}
END_TEST

START_TEST(error_reply_echoes_question_and_opt)
{
    size_t len = query("Some.Name.", DNS_TYPE_MX, 1232);
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    uint8_t out[512];
    size_t n = dns_wire_error_reply(out, sizeof(out), &q, pkt, DNS_RCODE_REFUSED, 0, 22);
    ldns_pkt *reply = support_pkt_from_wire(out, n);
    ck_assert_uint_eq(ldns_pkt_id(reply), 0x1234);
    ck_assert(ldns_pkt_qr(reply));
    ck_assert(ldns_pkt_rd(reply));
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_REFUSED);
    ck_assert_uint_eq(ldns_pkt_qdcount(reply), 1);
    ck_assert_uint_eq(ldns_pkt_edns_udp_size(reply), DNS_MAX_UDP);
    ck_assert(ldns_pkt_edns(reply));
    char *qtext = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(reply), 0)));
    ck_assert_str_eq(qtext, "Some.Name.");
    free(qtext);
    ldns_pkt_free(reply);
}
END_TEST

START_TEST(badvers_reply_sets_the_extended_rcode)
{
    size_t len = query("a.local.", DNS_TYPE_A, 1232);
    pkt[len - 11 + 6] = 1;
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_BADVERS);
    uint8_t out[512];
    size_t n = dns_wire_error_reply(out, sizeof(out), &q, pkt, DNS_RCODE_BADVERS, 0, -1);
    ck_assert_uint_eq(out[3] & 0xf, 0);
    /* OPT: owner 0, type 41, class 1232, ext-rcode 1, version 0. */
    ck_assert_uint_eq(out[n - 11 + 5], 1);
    ck_assert_uint_eq(out[n - 11 + 6], 0);
}
END_TEST

/* A query we answer without taking it in still gets OPT back when it sent one (RFC 6891 §7):
 * 0, QDCOUNT=0 with a COOKIE option, as a client asks for a server cookie (RFC 7873 §5.4);
 * 1, two questions; 2, an answer record; 3, opcode NOTIFY. */
START_TEST(a_rejected_query_with_opt_gets_opt_back)
{
    static const uint8_t cookie_opt[] = {0,  0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 12, 0,
                                         10, 0, 8,  1,    2,    3, 4, 5,    6, 7, 8};
    static const uint8_t heads[][12] = {
        {0x42, 0x42, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1},
        {0x42, 0x42, 1, 0, 0, 2, 0, 0, 0, 0, 0, 1},
        {0x42, 0x42, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1},
        {0x42, 0x42, 4 << 3, 0, 0, 1, 0, 0, 0, 0, 0, 1},
    };
    static const uint8_t question[] = {1, 'a', 0, 0, 1, 0, 1};
    static const uint8_t answer[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1};
    uint8_t msg[128];
    size_t len = sizeof(heads[_i]);
    memcpy(msg, heads[_i], len);
    unsigned questions = _i == 0 ? 0 : _i == 1 ? 2 : 1;
    for (unsigned i = 0; i < questions; i++, len += sizeof(question))
        memcpy(msg + len, question, sizeof(question));
    if (_i == 2) {
        memcpy(msg + len, answer, sizeof(answer));
        len += sizeof(answer);
    }
    memcpy(msg + len, cookie_opt, sizeof(cookie_opt));
    len += sizeof(cookie_opt);

    struct dns_query q;
    enum dns_parse_result want = _i == 3 ? DNS_PARSE_NOTIMP : DNS_PARSE_FORMERR;
    ck_assert_int_eq(dns_wire_parse_query(&q, msg, len), want);
    ck_assert(q.has_edns);
    ck_assert(!q.has_question);
    ck_assert_uint_eq(q.udp_size, 1232);
    ck_assert_uint_eq(q.edns_flags, DNS_EDNS_DO);
    uint8_t out[512];
    unsigned rcode = _i == 3 ? DNS_RCODE_NOTIMP : DNS_RCODE_FORMERR;
    size_t n = dns_wire_error_reply(out, sizeof(out), &q, msg, rcode, 0, -1);
    ldns_pkt *reply = support_pkt_from_wire(out, n);
    ck_assert_uint_eq(ldns_pkt_id(reply), 0x4242);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), rcode);
    ck_assert_uint_eq(ldns_pkt_qdcount(reply), 0);
    ck_assert(ldns_pkt_edns(reply));
    ck_assert(ldns_pkt_edns_do(reply));
    /* We keep no cookies: no COOKIE option comes back, so the client knows. */
    ck_assert_ptr_null(ldns_pkt_edns_data(reply));
    ldns_pkt_free(reply);
}
END_TEST

START_TEST(a_rejected_query_without_opt_gets_none)
{
    static const uint8_t msg[] = {0x42, 0x42, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, msg, sizeof(msg)), DNS_PARSE_FORMERR);
    ck_assert(!q.has_edns);
    uint8_t out[64];
    ck_assert_uint_eq(dns_wire_error_reply(out, sizeof(out), &q, msg, DNS_RCODE_FORMERR, 0, -1),
                      DNS_HEADER_SIZE);
    ck_assert_uint_eq(dns_wire_get_u16(out + 10), 0);
}
END_TEST

/* Copying records. The message: a header, the question "a.example." at 12 (so 0xc00e
 * points to "example."), then one record owned by 0xc00c whose data is under test. */

#define MAIL_PTR "\4mail\xc0\x0e"                        /* mail.example., compressed */
#define MAIL_FULL "\4mail\7example\0"                    /* and written out */
#define EXAMPLE_FULL "\7example\0"                       /* what 0xc00e stands for */
#define SIG_FIXED "\0\1\5\2\0\0\0\1\0\0\0\2\0\0\0\3\0\4" /* SIG's 18 octets before the signer */

static const struct {
    const char *what;
    uint16_t type;
    const char *rdata, *want; /* the data as sent, and as copied */
    size_t rdata_len, want_len;
} copy_cases[] = {
#define CASE(what, type, rdata, want)                                                              \
    {                                                                                              \
        what, type, rdata, want, sizeof(rdata) - 1, sizeof(want) - 1                               \
    }
    CASE("MD", 3, MAIL_PTR, MAIL_FULL),
    CASE("MF", 4, MAIL_PTR, MAIL_FULL),
    CASE("MB", 7, MAIL_PTR, MAIL_FULL),
    CASE("MG", 8, MAIL_PTR, MAIL_FULL),
    CASE("MR", 9, MAIL_PTR, MAIL_FULL),
    CASE("MINFO", 14, MAIL_PTR "\xc0\x0e", MAIL_FULL EXAMPLE_FULL),
    CASE("RP", 17, MAIL_PTR "\xc0\x0e", MAIL_FULL EXAMPLE_FULL),
    CASE("AFSDB", 18, "\0\1" MAIL_PTR, "\0\1" MAIL_FULL),
    CASE("RT", 21, "\0\2" MAIL_PTR, "\0\2" MAIL_FULL),
    CASE("PX", 26, "\0\3\xc0\x0e" MAIL_PTR, "\0\3" EXAMPLE_FULL MAIL_FULL),
    CASE("NAPTR", 35, "\0\1\0\2\1S\3SIP\0" MAIL_PTR, "\0\1\0\2\1S\3SIP\0" MAIL_FULL),
    CASE("SIG", 24, SIG_FIXED "\xc0\x0e\xaa\xbb", SIG_FIXED EXAMPLE_FULL "\xaa\xbb"),
    CASE("NXT", 30, MAIL_PTR "\x40\x01", MAIL_FULL "\x40\x01"),
    CASE("MX", 15, "\0\12" MAIL_PTR, "\0\12" MAIL_FULL),
    CASE("SRV", 33, "\0\1\0\2\0\65" MAIL_PTR, "\0\1\0\2\0\65" MAIL_FULL),
    CASE("SOA", 6,
         MAIL_PTR "\xc0\x0e"
                  "12345678901234567890",
         MAIL_FULL EXAMPLE_FULL "12345678901234567890"),
    /* Another type's data is opaque: what looks like a pointer stays as it is. */
    CASE("TYPE65280", 65280, MAIL_PTR, MAIL_PTR),
#undef CASE
};

/* Builds the message around one record of type with rdata; returns its length. */
static size_t message_with_record(uint8_t *msg, uint16_t type, const char *rdata, size_t rdlen)
{
    static const uint8_t head[] = {0,   1,   0x84, 0,   0,   1,   0,   1, 0, 0, 0, 0, 1,    'a', 7,
                                   'e', 'x', 'a',  'm', 'p', 'l', 'e', 0, 0, 1, 0, 1, 0xc0, 12};
    size_t n = sizeof(head);
    memcpy(msg, head, n);
    dns_wire_put_u16(msg + n, type);
    dns_wire_put_u16(msg + n + 2, DNS_CLASS_IN);
    dns_wire_put_u32(msg + n + 4, 300);
    dns_wire_put_u16(msg + n + 8, (uint16_t)rdlen);
    memcpy(msg + n + 10, rdata, rdlen);
    return n + 10 + rdlen;
}

START_TEST(copy_rr_writes_out_names_inside_the_data)
{
    uint8_t msg[256];
    size_t len = message_with_record(msg, copy_cases[_i].type, copy_cases[_i].rdata,
                                     copy_cases[_i].rdata_len);
    struct dns_cursor in;
    struct dns_cursor out;
    uint8_t copy[512];
    dns_cursor_init(&in, msg, len);
    in.pos = len - 10 - copy_cases[_i].rdata_len - 2; /* the owner */
    dns_cursor_init(&out, copy, sizeof(copy));
    uint16_t type = 0;
    dns_wire_copy_rr(&out, &in, &type);
    ck_assert_msg(!in.err && !out.err, "%s: copy failed", copy_cases[_i].what);
    ck_assert_uint_eq(in.pos, len);
    ck_assert_uint_eq(type, copy_cases[_i].type);
    /* Owner "a.example." written out, type, class, TTL, the new RDLENGTH, then the data. */
    size_t at = 11 + 8;
    ck_assert_mem_eq(copy, "\1a\7example\0", 11);
    ck_assert_uint_eq(dns_wire_get_u16(copy + at), copy_cases[_i].want_len);
    ck_assert_msg(out.pos == at + 2 + copy_cases[_i].want_len, "%s: %zu octets",
                  copy_cases[_i].what, out.pos);
    ck_assert_msg(memcmp(copy + at + 2, copy_cases[_i].want, copy_cases[_i].want_len) == 0,
                  "%s: data not written out", copy_cases[_i].what);
}
END_TEST

START_TEST(copy_rr_rejects_a_name_running_past_the_data)
{
    /* MINFO with room for only its first name: the second would be read from what follows. */
    uint8_t msg[256];
    size_t len = message_with_record(msg, 14, MAIL_PTR "\xc0\x0e", sizeof(MAIL_PTR) - 1);
    msg[len++] = 0xc0; /* bytes after the record that would make a name */
    msg[len++] = 0x0e;
    struct dns_cursor in;
    struct dns_cursor out;
    uint8_t copy[512];
    dns_cursor_init(&in, msg, len);
    in.pos = 27; /* the owner */
    dns_cursor_init(&out, copy, sizeof(copy));
    uint16_t type;
    dns_wire_copy_rr(&out, &in, &type);
    ck_assert(in.err);
}
END_TEST

Suite *wire_suite(void); /* for tests/dns/main.c */
Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, parse_reads_header_question_and_lowers_the_name);
    tcase_add_test(tc, parse_reads_edns_size_version_and_do);
    tcase_add_test(tc, parse_drops_runts_and_responses);
    tcase_add_test(tc, parse_answers_notimp_for_other_opcodes);
    tcase_add_loop_test(tc, parse_rejects_malformed_queries, 0,
                        (int)(sizeof(formerr_cases) / sizeof(formerr_cases[0])));
    tcase_add_test(tc, parse_rejects_names_longer_than_255);
    tcase_add_test(tc, parse_ignores_trailing_bytes);
    tcase_add_test(tc, cursor_follows_backward_pointers);
    tcase_add_test(tc, name_to_text_escapes_as_dig_does);
    tcase_add_test(tc, names_compare_and_nest_case_insensitively);
    tcase_add_test(tc, concat_joins_and_refuses_overlong_names);
    tcase_add_test(tc, error_reply_echoes_question_and_opt);
    tcase_add_test(tc, badvers_reply_sets_the_extended_rcode);
    tcase_add_loop_test(tc, a_rejected_query_with_opt_gets_opt_back, 0, 4);
    tcase_add_test(tc, a_rejected_query_without_opt_gets_none);
    tcase_add_loop_test(tc, copy_rr_writes_out_names_inside_the_data, 0,
                        (int)(sizeof(copy_cases) / sizeof(copy_cases[0])));
    tcase_add_test(tc, copy_rr_rejects_a_name_running_past_the_data);
    suite_add_tcase(s, tc);
    return s;
}
