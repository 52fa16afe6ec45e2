/* tests/resolver/test_scrub.c - upstream reply validation and scrubbing on hand-made hostile
 * messages: what is a mismatch, what is malformed, what survives the rewrite. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <ldns/ldns.h>

#include "resolver/scrub.h"
#include "tests/resolver/upstream_fake.h"
#include "tests/support/support.h"

static struct dns_name qname;
static struct resolver_scrub_question question;
/* "www.example.test A IN" in wire form, as the client sent it. */
static const uint8_t client_question[] = "\3WwW\7example\4test\0\0\1\0\1";
#define CLIENT_QLEN (sizeof(client_question) - 1)

static void setup(void)
{
    dns_name_from_text(&qname, "www.example.test");
    question.qname = &qname;
    question.qtype = DNS_TYPE_A;
    question.qclass = DNS_CLASS_IN;
    question.dnssec_ok = false;
    question.own = NULL;
}

static enum resolver_scrub_result check(const uint8_t *msg, size_t len, uint16_t id)
{
    struct resolver_scrub_reply info;
    return resolver_scrub_check(msg, len, id, &question, &info);
}

/* A header, the question (lower-case) and raw record bytes after it. */
static size_t raw(uint8_t *out, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
                  uint16_t ar, const uint8_t *records, size_t rlen)
{
    static const uint8_t q[] = "\3www\7example\4test\0\0\1\0\1";
    size_t n = 0;
    dns_wire_put_u16(out, id);
    dns_wire_put_u16(out + 2, flags);
    dns_wire_put_u16(out + 4, qd);
    dns_wire_put_u16(out + 6, an);
    dns_wire_put_u16(out + 8, ns);
    dns_wire_put_u16(out + 10, ar);
    n = DNS_HEADER_SIZE;
    if (qd) {
        memcpy(out + n, q, sizeof(q) - 1);
        n += sizeof(q) - 1;
    }
    if (rlen > 0)
        memcpy(out + n, records, rlen);
    return n + rlen;
}

START_TEST(scrub_matches_id_question_and_qr)
{
    uint8_t m[512];
    static const uint8_t a[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    size_t n = raw(m, 7, 0x8180, 1, 1, 0, 0, a, sizeof(a));
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_OK);
    ck_assert_int_eq(check(m, n, 8), RESOLVER_SCRUB_MISMATCH);
    ck_assert_int_eq(check(m, 11, 7), RESOLVER_SCRUB_MISMATCH); /* runt */
    n = raw(m, 7, 0x0180, 1, 1, 0, 0, a, sizeof(a));            /* QR clear: a query, not a reply */
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_MISMATCH);
    n = raw(m, 7, 0x8180, 1, 1, 0, 0, a, sizeof(a));
    m[DNS_HEADER_SIZE + 1] = 'v'; /* vww.example.test */
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_MISMATCH);
    n = raw(m, 7, 0x8180, 1, 1, 0, 0, a, sizeof(a));
    m[DNS_HEADER_SIZE + 1] = 'W'; /* case does not matter */
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_OK);
    n = raw(m, 7, 0x8180, 1, 1, 0, 0, a, sizeof(a));
    m[DNS_HEADER_SIZE + 19] = 28; /* qtype AAAA */
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_MISMATCH);
    n = raw(m, 7, 0x8180, 2, 1, 0, 0, a, sizeof(a)); /* QDCOUNT 2 */
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_MISMATCH);
    /* Errors may come without a question; answers may not. */
    n = raw(m, 7, 0x8181, 0, 0, 0, 0, NULL, 0);
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_OK);
    n = raw(m, 7, 0x8180, 0, 0, 0, 0, NULL, 0);
    ck_assert_int_eq(check(m, n, 7), RESOLVER_SCRUB_MISMATCH);
}
END_TEST

START_TEST(scrub_rejects_malformed_records)
{
    uint8_t m[512];
    /* rdlength beyond the message */
    static const uint8_t overrun[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 40, 192, 0, 2, 1};
    size_t n = raw(m, 1, 0x8180, 1, 1, 0, 0, overrun, sizeof(overrun));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    /* A record with 3 bytes of RDATA */
    static const uint8_t short_a[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 3, 192, 0, 2};
    n = raw(m, 1, 0x8180, 1, 1, 0, 0, short_a, sizeof(short_a));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    /* a pointer to itself */
    static const uint8_t self_ptr[] = {0xc0, 34, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4};
    n = raw(m, 1, 0x8180, 1, 1, 0, 0, self_ptr, sizeof(self_ptr));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    /* a forward pointer inside CNAME RDATA */
    static const uint8_t fwd_ptr[] = {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 60};
    n = raw(m, 1, 0x8180, 1, 1, 0, 0, fwd_ptr, sizeof(fwd_ptr));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    /* a CNAME whose name runs past its RDATA */
    static const uint8_t long_name[] = {0xc0, 12, 0, 5, 0,   1,   0,   0, 0,
                                        60,   0,  2, 3, 'a', 'b', 'c', 0};
    n = raw(m, 1, 0x8180, 1, 1, 0, 0, long_name, sizeof(long_name));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    /* an OPT in the answer section, and two OPTs */
    static const uint8_t opt[] = {0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0};
    n = raw(m, 1, 0x8180, 1, 1, 0, 0, opt, sizeof(opt));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    uint8_t two[sizeof(opt) * 2];
    memcpy(two, opt, sizeof(opt));
    memcpy(two + sizeof(opt), opt, sizeof(opt));
    n = raw(m, 1, 0x8180, 1, 0, 0, 2, two, sizeof(two));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
    n = raw(m, 1, 0x8180, 1, 0, 0, 1, opt, sizeof(opt));
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_OK);
    /* fewer records than the counts say */
    n = raw(m, 1, 0x8180, 1, 2, 0, 0, short_a, 0);
    ck_assert_int_eq(check(m, n, 1), RESOLVER_SCRUB_MALFORMED);
}
END_TEST

static ldns_pkt *rewrite(const uint8_t *msg, size_t len, struct resolver_scrub_out *out,
                         uint8_t *buf, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->buf = buf;
    out->cap = cap;
    if (resolver_scrub_rewrite(msg, len, &question, client_question, CLIENT_QLEN, 99, 0x8180, out) <
        0)
        return NULL;
    return support_pkt_from_wire(buf, out->len);
}

START_TEST(scrub_follows_cname_chain_and_drops_the_rest)
{
    uint8_t m[2048], buf[4096];
    static const char *const an[] = {"www.example.test. 300 IN CNAME a.example.test.",
                                     "a.example.test. 300 IN CNAME b.other.test.",
                                     "b.other.test. 60 IN A 192.0.2.1",
                                     "b.other.test. 30 IN A 192.0.2.2", /* one RRset: both get 30 */
                                     "b.other.test. 60 IN MX 10 mail.evil.test.",
                                     "www.example.test. 300 IN CNAME second.example.test.",
                                     "c.example.test. 60 IN A 6.6.6.6",
                                     NULL};
    size_t n =
        fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, 0, an, NULL, NULL, 0, true);
    struct resolver_scrub_out out;
    ldns_pkt *p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(ldns_pkt_id(p), 99);
    ck_assert_uint_eq(out.an, 4);
    ck_assert(!out.negative);
    ck_assert_uint_eq(out.min_ttl, 30);
    char *text = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(text, "WwW.example.test.\t300\tIN\tCNAME\ta.example.test.\n"
                           "a.example.test.\t300\tIN\tCNAME\tb.other.test.\n"
                           "b.other.test.\t30\tIN\tA\t192.0.2.1\n"
                           "b.other.test.\t30\tIN\tA\t192.0.2.2");
    free(text);
    ck_assert_uint_eq(ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
}
END_TEST

START_TEST(scrub_stops_at_a_cname_loop)
{
    uint8_t m[2048], buf[4096];
    static const char *const an[] = {"www.example.test. 300 IN CNAME a.example.test.",
                                     "a.example.test. 300 IN CNAME www.example.test.", NULL};
    size_t n =
        fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, 0, an, NULL, NULL, 0, false);
    struct resolver_scrub_out out;
    ldns_pkt *p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(out.an, 1); /* www -> a; the edge back to www closes the loop */
    ck_assert(out.negative);      /* no A at the end of the chain */
    ck_assert(!out.has_soa);
    ldns_pkt_free(p);
}
END_TEST

START_TEST(scrub_decompresses_rdata_names)
{
    uint8_t m[2048], buf[4096];
    question.qtype = DNS_TYPE_MX;
    static const uint8_t q_mx[] = "\3www\7example\4test\0\0\17\0\1";
    static const char *const an[] = {"www.example.test. 300 IN MX 10 mail.example.test.",
                                     "www.example.test. 300 IN MX 20 www.example.test.", NULL};
    size_t n =
        fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_MX, 0, an, NULL, NULL, 0, false);
    struct resolver_scrub_out out = {.buf = buf, .cap = sizeof(buf)};
    ck_assert_int_eq(
        resolver_scrub_rewrite(m, n, &question, q_mx, sizeof(q_mx) - 1, 1, 0x8180, &out), 0);
    ldns_pkt *p = support_pkt_from_wire(buf, out.len);
    char *text = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(text, "www.example.test.\t300\tIN\tMX\t10 mail.example.test.\n"
                           "www.example.test.\t300\tIN\tMX\t20 www.example.test.");
    free(text);
    ldns_pkt_free(p);
    /* Compressed: far smaller than four spelled-out names. */
    ck_assert_uint_lt(out.len, 90);
}
END_TEST

START_TEST(scrub_records_ttl_offsets)
{
    uint8_t m[2048], buf[4096];
    uint16_t offs[8];
    static const char *const an[] = {"www.example.test. 300 IN A 192.0.2.1",
                                     "www.example.test. 300 IN A 192.0.2.2", NULL};
    size_t n =
        fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, 0, an, NULL, NULL, 0, false);
    struct resolver_scrub_out out = {.buf = buf, .cap = sizeof(buf), .ttl_off = offs, .ttl_cap = 8};
    ck_assert_int_eq(
        resolver_scrub_rewrite(m, n, &question, client_question, CLIENT_QLEN, 1, 0x8180, &out), 0);
    ck_assert_uint_eq(out.n_ttl, 2);
    for (size_t i = 0; i < out.n_ttl; i++)
        ck_assert_uint_eq(dns_wire_get_u32(buf + offs[i]), 300);
    out.ttl_cap = 1; /* too small: the rewrite refuses rather than losing a TTL */
    ck_assert_int_lt(
        resolver_scrub_rewrite(m, n, &question, client_question, CLIENT_QLEN, 1, 0x8180, &out), 0);
    out.ttl_cap = 8;
    out.cap = 40; /* and does not write past the buffer */
    ck_assert_int_lt(
        resolver_scrub_rewrite(m, n, &question, client_question, CLIENT_QLEN, 1, 0x8180, &out), 0);
}
END_TEST

/* RFC 4035 §3.2.1 (and RFC 3225 §3): a client without DO gets no signatures unless it asked
 * for them; an upstream may send them to a query without DO all the same. */
START_TEST(scrub_keeps_signatures_only_for_clients_that_want_them)
{
    uint8_t m[2048], buf[4096];
    static const char *const an[] = {
        "www.example.test. 300 IN A 192.0.2.1",
        "www.example.test. 300 IN RRSIG A 13 3 300 20300101000000 20200101000000 12345 "
        "example.test. dGVzdHNpZ25hdHVyZQ==",
        NULL};
    size_t n =
        fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, 0, an, NULL, NULL, 0, true);
    struct resolver_scrub_out out;
    ldns_pkt *p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert_ptr_nonnull(p);
    char *text = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(text, "WwW.example.test.\t300\tIN\tA\t192.0.2.1");
    free(text);
    ldns_pkt_free(p);
    question.dnssec_ok = true;
    p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert_uint_eq(out.an, 2);
    ck_assert_uint_eq(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(p), 1)), LDNS_RR_TYPE_RRSIG);
    ldns_pkt_free(p);
    /* Asked for explicitly, they are the answer whatever the DO bit says. */
    question.dnssec_ok = false;
    question.qtype = DNS_TYPE_ANY;
    static const uint8_t q_any[] = "\3WwW\7example\4test\0\0\377\0\1";
    n = fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_ANY, 0, an, NULL, NULL, 0, true);
    out = (struct resolver_scrub_out){.buf = buf, .cap = sizeof(buf)};
    ck_assert_int_eq(
        resolver_scrub_rewrite(m, n, &question, q_any, sizeof(q_any) - 1, 1, 0x8180, &out), 0);
    ck_assert_uint_eq(out.an, 2);
}
END_TEST

/* svcdns is the authority for its own zones: an upstream's CNAME into one ends the chain, and
 * nothing the upstream says of the name there is kept, its rcode included. */
START_TEST(scrub_ends_the_chain_at_a_name_of_our_own)
{
    uint8_t m[2048], buf[4096];
    static const char *const an[] = {"www.example.test. 300 IN CNAME a.example.test.",
                                     "a.example.test. 300 IN CNAME Echo.Default.svc.local.",
                                     "echo.default.svc.local. 86400 IN A 6.6.6.6",
                                     "echo.default.svc.local. 86400 IN CNAME evil.example.test.",
                                     "evil.example.test. 300 IN A 6.6.6.7",
                                     NULL};
    static const char *const ns[] = {
        "local. 3600 IN SOA ns.evil.test. h.evil.test. 1 7200 1800 86400 3600", NULL};
    static const char *const ar[] = {"echo.default.svc.local. 86400 IN A 6.6.6.6", NULL};
    question.own = &fake_own_names;
    size_t n = fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, an,
                          ns, ar, 0, true);
    struct resolver_scrub_out out;
    ldns_pkt *p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert_ptr_nonnull(p);
    ck_assert(out.own_end && !out.negative && !out.has_soa);
    struct dns_name echo;
    dns_name_from_text(&echo, "echo.default.svc.local");
    ck_assert(dns_name_equal(&out.own_target, &echo));
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    char *text = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(text, "WwW.example.test.\t300\tIN\tCNAME\ta.example.test.\n"
                           "a.example.test.\t300\tIN\tCNAME\tEcho.Default.svc.local.");
    free(text);
    ck_assert_uint_eq(ldns_pkt_nscount(p) + ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
    /* A question for a name of our own keeps nothing at all. */
    static const uint8_t q_own[] = "\1x\5local\0\0\1\0\1";
    struct dns_name x;
    dns_name_from_text(&x, "x.local");
    question.qname = &x;
    static const char *const own_a[] = {"x.local. 300 IN A 6.6.6.6", NULL};
    n = fake_reply(m, sizeof(m), 1, "x.local", DNS_TYPE_A, 0, own_a, NULL, NULL, 0, true);
    out = (struct resolver_scrub_out){.buf = buf, .cap = sizeof(buf)};
    ck_assert_int_eq(
        resolver_scrub_rewrite(m, n, &question, q_own, sizeof(q_own) - 1, 1, 0x8180, &out), 0);
    ck_assert(out.own_end && dns_name_equal(&out.own_target, &x));
    ck_assert_uint_eq(out.an, 0);
    /* Without names of our own, the chain runs on as the upstream tells it. */
    question.qname = &qname;
    question.own = NULL;
    n = fake_reply(m, sizeof(m), 1, "www.example.test", DNS_TYPE_A, 0, an, NULL, NULL, 0, true);
    p = rewrite(m, n, &out, buf, sizeof(buf));
    ck_assert(!out.own_end);
    ck_assert_uint_eq(out.an, 4); /* three CNAMEs and evil.example.test A */
    ldns_pkt_free(p);
}
END_TEST

Suite *scrub_suite(void); /* for tests/resolver/main.c */
Suite *scrub_suite(void)
{
    Suite *s = suite_create("scrub");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, scrub_matches_id_question_and_qr);
    tcase_add_test(tc, scrub_rejects_malformed_records);
    tcase_add_test(tc, scrub_follows_cname_chain_and_drops_the_rest);
    tcase_add_test(tc, scrub_stops_at_a_cname_loop);
    tcase_add_test(tc, scrub_decompresses_rdata_names);
    tcase_add_test(tc, scrub_records_ttl_offsets);
    tcase_add_test(tc, scrub_keeps_signatures_only_for_clients_that_want_them);
    tcase_add_test(tc, scrub_ends_the_chain_at_a_name_of_our_own);
    suite_add_tcase(s, tc);
    return s;
}
