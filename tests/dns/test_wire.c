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
    suite_add_tcase(s, tc);
    return s;
}
