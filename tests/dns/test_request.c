/* tests/dns/test_request.c - dns/request.c: following an alias on the client's behalf.
 *
 * A request for a client's question follows one or two aliases; the "answer" for the final
 * target is written the way a stage writes one (question echoed from req->pkt, records naming
 * it with 0xc00c); dns_request_end_alias() must give the client its own question, the CNAMEs
 * and the target's records, with every name written out. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/request.h"
#include "tests/support/support.h"

struct fixture {
    struct dns_request req;
    uint8_t pkt[DNS_MAX_MSG];
    uint8_t ans[DNS_MAX_MSG];
};

static struct fixture *new_request(const char *name)
{
    struct fixture *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    struct dns_request *req = &f->req;
    req->pkt = f->pkt;
    req->pkt_len =
        support_query_wire(f->pkt, sizeof(f->pkt), name, DNS_TYPE_A, DNS_CLASS_IN, 0x1234, 0);
    req->ans = f->ans;
    req->ans_cap = sizeof(f->ans);
    ck_assert_int_eq(dns_wire_parse_query(&req->q, req->pkt, req->pkt_len), DNS_PARSE_OK);
    return f;
}

/* "<0xc00c> CNAME target", as the search path and the zones write them. */
static size_t cname_to(const char *target, struct dns_name *name, uint8_t *rr)
{
    ck_assert_int_eq(dns_name_from_text(name, target), 0);
    dns_wire_put_u16(rr, DNS_QUESTION_PTR);
    dns_wire_put_u16(rr + 2, DNS_TYPE_CNAME);
    dns_wire_put_u16(rr + 4, DNS_CLASS_IN);
    dns_wire_put_u32(rr + 6, 5);
    dns_wire_put_u16(rr + 10, name->len);
    memcpy(rr + 12, name->wire, name->len);
    return 12u + name->len;
}

static void follow(struct dns_request *req, const char *target)
{
    struct dns_name name;
    uint8_t rr[12 + DNS_MAX_NAME];
    size_t len = cname_to(target, &name, rr);
    ck_assert_int_eq(dns_request_follow(req, &name, rr, len, 1), 0);
    ck_assert(req->alias.active);
    ck_assert(dns_name_equal(&req->q.qname, &name));
}

/* The stage's answer for the current (target) question: one A record, or just an rcode. */
static void answer(struct dns_request *req, unsigned rcode)
{
    struct dns_cursor c;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, &req->q, req->pkt, DNS_FLAG_AA, rcode);
    uint16_t an = 0;
    if (rcode == DNS_RCODE_NOERROR) {
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, DNS_TYPE_A);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, 5);
        dns_cursor_put_u16(&c, 4);
        dns_cursor_put(&c, "\x0a\x60\x00\x0a", 4);
        an = 1;
    }
    dns_wire_reply_counts(req->ans, an, 0, 0);
    ck_assert(!c.err);
    req->ans_len = c.pos;
}

static void assert_reply(const struct dns_request *req, const char *question, const char *answer)
{
    ldns_pkt *pkt = support_pkt_from_wire(req->ans, req->ans_len);
    char *q = support_section_text(pkt, LDNS_SECTION_QUESTION);
    char *an = support_section_text(pkt, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(q, question);
    ck_assert_str_eq(an, answer);
    ck_assert_uint_eq(ldns_pkt_id(pkt), 0x1234);
    free(q);
    free(an);
    ldns_pkt_free(pkt);
}

START_TEST(one_alias_is_spliced_under_the_clients_question)
{
    struct fixture *f = new_request("Echo.");
    struct dns_request *req = &f->req;
    follow(req, "echo.default.svc.local.");
    answer(req, DNS_RCODE_NOERROR);
    dns_request_end_alias(req);
    ck_assert(!req->alias.active);
    ck_assert_str_eq((char *)req->q.qname.wire + 1, "echo"); /* the client's query is back */
    assert_reply(req, "Echo.\tIN\tA",
                 "Echo.\t5\tIN\tCNAME\techo.default.svc.local.\n"
                 "echo.default.svc.local.\t5\tIN\tA\t10.96.0.10");
    free(f);
}
END_TEST

START_TEST(two_aliases_chain_with_every_name_written_out)
{
    struct fixture *f = new_request("ext.");
    struct dns_request *req = &f->req;
    follow(req, "ext.default.svc.local.");
    follow(req, "www.example.test.");
    answer(req, DNS_RCODE_NOERROR);
    dns_request_end_alias(req);
    assert_reply(req, "ext.\tIN\tA",
                 "ext.\t5\tIN\tCNAME\text.default.svc.local.\n"
                 "ext.default.svc.local.\t5\tIN\tCNAME\twww.example.test.\n"
                 "www.example.test.\t5\tIN\tA\t10.96.0.10");
    free(f);
}
END_TEST

START_TEST(an_error_for_the_target_keeps_the_cnames)
{
    struct fixture *f = new_request("ext.");
    struct dns_request *req = &f->req;
    follow(req, "gone.example.test.");
    answer(req, DNS_RCODE_NXDOMAIN);
    dns_request_end_alias(req);
    assert_reply(req, "ext.\tIN\tA", "ext.\t5\tIN\tCNAME\tgone.example.test.");
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(req->ans + 2)), DNS_RCODE_NXDOMAIN);
    free(f);
}
END_TEST

/* Fallbacks for the tests: the client's own question answered with an authoritative
 * NXDOMAIN, or with a CNAME to "x.default.svc.local." and its records. */
static bool fallback_nxdomain(void *self, struct dns_request *req)
{
    ck_assert_ptr_eq(self, req);
    answer(req, DNS_RCODE_NXDOMAIN);
    return true;
}

static bool fallback_follows(void *self, struct dns_request *req)
{
    (void)self;
    follow(req, "x.default.svc.local.");
    answer(req, DNS_RCODE_NOERROR);
    return true;
}

static bool fallback_declines(void *self, struct dns_request *req)
{
    (void)self;
    (void)req;
    return false;
}

/* The search path's last step: the reply to the client's own question is made at the end, and
 * sent instead of anything but NOERROR. */
START_TEST(the_fallback_replaces_a_negative_answer_and_is_counted)
{
    struct fixture *f = new_request("x.default.svc.local.");
    struct dns_request *req = &f->req;
    struct dns_counter used = {0};
    follow(req, "x.");
    dns_request_fallback(req, fallback_nxdomain, req, &used);
    answer(req, DNS_RCODE_SERVFAIL);
    dns_request_end_alias(req);
    assert_reply(req, "x.default.svc.local.\tIN\tA", "");
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(req->ans + 2)), DNS_RCODE_NXDOMAIN);
    ck_assert_uint_eq(dns_counter_get(&used), 1);
    free(f);
}
END_TEST

START_TEST(the_fallback_is_unused_when_the_target_resolves)
{
    struct fixture *f = new_request("x.default.svc.local.");
    struct dns_request *req = &f->req;
    struct dns_counter used = {0};
    follow(req, "x.");
    dns_request_fallback(req, fallback_nxdomain, req, &used);
    answer(req, DNS_RCODE_NOERROR);
    dns_request_end_alias(req);
    assert_reply(req, "x.default.svc.local.\tIN\tA",
                 "x.\t5\tIN\tA\t10.96.0.10\n"
                 "x.default.svc.local.\t5\tIN\tCNAME\tx.");
    ck_assert_uint_eq(dns_counter_get(&used), 0);
    free(f);
}
END_TEST

/* A name asked upstream first, that svcdns answers only when the upstream does not have it:
 * the question is never rewritten, the upstream's answer goes out as it is, and a failure
 * gives way to the fallback, which may follow an alias of its own. */
START_TEST(a_fallback_without_a_follow_keeps_the_question_until_it_is_needed)
{
    struct fixture *f = new_request("X.default.");
    struct dns_request *req = &f->req;
    struct dns_counter used = {0};
    dns_request_fallback(req, fallback_follows, NULL, &used);
    ck_assert(req->alias.active);
    ck_assert_int_eq(req->pkt[DNS_HEADER_SIZE + 1], 'X'); /* as the client wrote it */
    answer(req, DNS_RCODE_NOERROR);
    size_t len = req->ans_len;
    dns_request_end_alias(req);
    ck_assert(!req->alias.active);
    ck_assert_uint_eq(req->ans_len, len);
    assert_reply(req, "X.default.\tIN\tA", "X.default.\t5\tIN\tA\t10.96.0.10");
    ck_assert_uint_eq(dns_counter_get(&used), 0);
    free(f);

    f = new_request("X.default.");
    req = &f->req;
    dns_request_fallback(req, fallback_follows, NULL, &used);
    answer(req, DNS_RCODE_REFUSED);
    dns_request_end_alias(req);
    ck_assert(!req->alias.active);
    assert_reply(req, "X.default.\tIN\tA",
                 "X.default.\t5\tIN\tCNAME\tx.default.svc.local.\n"
                 "x.default.svc.local.\t5\tIN\tA\t10.96.0.10");
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(req->ans + 2)), DNS_RCODE_NOERROR);
    ck_assert_uint_eq(dns_counter_get(&used), 1);
    free(f);

    /* One that declines leaves the failure as it was. */
    f = new_request("X.default.");
    req = &f->req;
    dns_request_fallback(req, fallback_declines, NULL, &used);
    answer(req, DNS_RCODE_SERVFAIL);
    dns_request_end_alias(req);
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(req->ans + 2)), DNS_RCODE_SERVFAIL);
    ck_assert_uint_eq(dns_counter_get(&used), 1);
    free(f);
}
END_TEST

START_TEST(a_prefix_that_does_not_fit_leaves_the_request_unchanged)
{
    struct fixture *f = new_request("a.");
    struct dns_request *req = &f->req;
    char target[256];
    int hops = 0;
    for (;; hops++) {
        /* Long names fill the prefix after about a dozen hops. */
        snprintf(target, sizeof(target), "%02d.%s.%s.%s.test.", hops,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                 "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        struct dns_name name;
        uint8_t rr[12 + DNS_MAX_NAME];
        size_t len = cname_to(target, &name, rr);
        struct dns_name before = req->q.qname;
        uint16_t prefix_len = req->alias.prefix_len;
        if (dns_request_follow(req, &name, rr, len, 1) < 0) {
            ck_assert(dns_name_equal(&req->q.qname, &before));
            ck_assert_uint_eq(req->alias.prefix_len, prefix_len);
            break;
        }
        ck_assert_int_lt(hops, 100);
    }
    ck_assert_int_gt(hops, 5);
    free(f);
}
END_TEST

START_TEST(a_reply_that_does_not_parse_becomes_servfail)
{
    struct fixture *f = new_request("echo.");
    struct dns_request *req = &f->req;
    follow(req, "echo.default.svc.local.");
    answer(req, DNS_RCODE_NOERROR);
    req->ans_len -= 3; /* cut into the A record */
    dns_request_end_alias(req);
    assert_reply(req, "echo.\tIN\tA", "");
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(req->ans + 2)), DNS_RCODE_SERVFAIL);
    free(f);
}
END_TEST

Suite *request_suite(void); /* for tests/dns/main.c */
Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("alias");
    tcase_add_test(tc, one_alias_is_spliced_under_the_clients_question);
    tcase_add_test(tc, two_aliases_chain_with_every_name_written_out);
    tcase_add_test(tc, an_error_for_the_target_keeps_the_cnames);
    tcase_add_test(tc, the_fallback_replaces_a_negative_answer_and_is_counted);
    tcase_add_test(tc, the_fallback_is_unused_when_the_target_resolves);
    tcase_add_test(tc, a_fallback_without_a_follow_keeps_the_question_until_it_is_needed);
    tcase_add_test(tc, a_prefix_that_does_not_fit_leaves_the_request_unchanged);
    tcase_add_test(tc, a_reply_that_does_not_parse_becomes_servfail);
    suite_add_tcase(s, tc);
    return s;
}
