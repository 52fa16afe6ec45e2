/* tests/dns/test_chain.c - dns/chain.c: the query plan.
 *
 * A chain of recording stages, each scripted to pass, answer or park; requests built from
 * ldns queries in buffers of their own; send() counts calls and keeps the reply. Every test
 * checks which stages ran, in what order, and that send() ran exactly once. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/chain.h"
#include "dns/wire.h"
#include "tests/support/support.h"

struct stage {
    enum dns_verdict verdict; /* what serve() returns */
    unsigned rcode;           /* for DNS_DONE: an empty reply with this rcode */
    size_t answer_len;        /* for DNS_DONE: pad the reply to this length (truncation) */
    const char *follow;       /* before returning: make the request follow this name */
};

struct world {
    struct dns_chain chain;
    struct stage stages[DNS_STAGE_COUNT];
    char order[DNS_STAGE_COUNT + 1]; /* stages in the order they ran: '0' + stage */
    size_t n_order;
    struct dns_request req;
    unsigned sent;
    uint8_t pkt[DNS_MAX_MSG];
    uint8_t ans[DNS_MAX_MSG];
};

static struct world *W;

static void record_send(struct dns_request *req)
{
    (void)req;
    W->sent++;
}

static enum dns_verdict serve(void *self, struct dns_request *req)
{
    struct stage *st = self;
    unsigned index = (unsigned)(st - W->stages);
    W->order[W->n_order++] = (char)('0' + index);
    ck_assert_uint_eq(req->stage, index);
    if (st->follow) {
        struct dns_name target;
        ck_assert_int_eq(dns_name_from_text(&target, st->follow), 0);
        uint8_t rr[12 + DNS_MAX_NAME];
        dns_wire_put_u16(rr, DNS_QUESTION_PTR);
        dns_wire_put_u16(rr + 2, DNS_TYPE_CNAME);
        dns_wire_put_u16(rr + 4, DNS_CLASS_IN);
        dns_wire_put_u32(rr + 6, 5);
        dns_wire_put_u16(rr + 10, target.len);
        memcpy(rr + 12, target.wire, target.len);
        ck_assert_int_eq(dns_request_follow(req, &target, rr, 12u + target.len, 1), 0);
    }
    if (st->verdict == DNS_DONE) {
        dns_chain_reply_error(req, st->rcode, -1);
        if (st->answer_len > req->ans_len) {
            memset(req->ans + req->ans_len, 0, st->answer_len - req->ans_len);
            req->ans_len = st->answer_len; /* bytes past the counts: only the size matters */
        }
    }
    return st->verdict;
}

static void world_init(const char *stages)
{
    W = calloc(1, sizeof(*W));
    ck_assert_ptr_nonnull(W);
    dns_chain_init(&W->chain);
    for (const char *p = stages; *p; p++) {
        unsigned i = (unsigned)(*p - '0');
        W->stages[i].verdict = DNS_NEXT;
        dns_chain_set(&W->chain, (enum dns_stage)i,
                      &(struct dns_stage_handler){serve, &W->stages[i]});
    }
}

static void world_free(void)
{
    free(W);
    W = NULL;
}

static struct dns_request *ask_as(const char *name, uint16_t type, uint16_t klass,
                                  enum dns_proto proto, int edns)
{
    struct dns_request *req = &W->req;
    memset(req, 0, sizeof(*req));
    req->pkt = W->pkt;
    req->pkt_len = support_query_wire(W->pkt, sizeof(W->pkt), name, type, klass, 0x4242, edns);
    req->ans = W->ans;
    req->ans_cap = sizeof(W->ans);
    req->proto = proto;
    req->send = record_send;
    W->n_order = 0;
    W->sent = 0;
    dns_chain_handle(&W->chain, req);
    W->order[W->n_order] = '\0';
    return req;
}

static struct dns_request *ask(const char *name, uint16_t type)
{
    return ask_as(name, type, DNS_CLASS_IN, DNS_PROTO_UDP, 1232);
}

static unsigned reply_rcode(void)
{
    ck_assert_uint_ge(W->req.ans_len, DNS_HEADER_SIZE);
    return DNS_RCODE(dns_wire_get_u16(W->req.ans + 2));
}

static const char plan[] = {'0' + DNS_STAGE_CHAOS, '0' + DNS_STAGE_SEARCH,  '0' + DNS_STAGE_ZONES,
                            '0' + DNS_STAGE_CACHE, '0' + DNS_STAGE_FORWARD, '\0'};

START_TEST(stages_run_in_plan_order_until_one_answers)
{
    world_init(plan);
    W->stages[DNS_STAGE_CACHE].verdict = DNS_DONE;
    struct dns_request *req = ask("example.test.", DNS_TYPE_A);
    ck_assert_str_eq(W->order, "234"); /* search, zones, cache; chaos is for class CH */
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(req->stage, DNS_STAGE_CACHE);
    ck_assert_str_eq(dns_stage_name(req->stage), "cache");
    ck_assert_uint_eq(reply_rcode(), DNS_RCODE_NOERROR);
    ck_assert_uint_eq(dns_counter_get(&W->chain.stats.queries), 1);
    world_free();
}
END_TEST

START_TEST(missing_stages_are_skipped)
{
    world_init("35"); /* zones and forward only */
    W->stages[DNS_STAGE_FORWARD].verdict = DNS_DONE;
    ask("example.test.", DNS_TYPE_A);
    ck_assert_str_eq(W->order, "35");
    ck_assert_uint_eq(W->sent, 1);
    world_free();
}
END_TEST

START_TEST(a_query_no_stage_takes_gets_refused)
{
    world_init(plan);
    struct dns_request *req = ask("example.test.", DNS_TYPE_A);
    ck_assert_str_eq(W->order, "2345");
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(reply_rcode(), DNS_RCODE_REFUSED);
    ck_assert_uint_eq(req->stage, DNS_STAGE_PROTOCOL);
    ck_assert_uint_eq(dns_counter_get(&W->chain.stats.by_rcode[DNS_RCODE_REFUSED]), 1);
    world_free();
}
END_TEST

START_TEST(chaos_class_sees_the_chaos_stage_only)
{
    world_init(plan);
    ask_as("version.bind.", DNS_TYPE_TXT, DNS_CLASS_CH, DNS_PROTO_UDP, 0);
    ck_assert_str_eq(W->order, "1");
    ck_assert_uint_eq(reply_rcode(), DNS_RCODE_REFUSED); /* the chaos stage passed */
    world_free();
}
END_TEST

START_TEST(a_parked_request_resumes_with_its_answer)
{
    world_init(plan);
    W->stages[DNS_STAGE_FORWARD].verdict = DNS_PENDING;
    struct dns_request *req = ask("example.test.", DNS_TYPE_A);
    ck_assert_str_eq(W->order, "2345");
    ck_assert_uint_eq(W->sent, 0);
    ck_assert_uint_eq(req->stage, DNS_STAGE_FORWARD);
    dns_chain_reply_error(req, DNS_RCODE_NXDOMAIN, -1);
    dns_chain_resume(req, DNS_DONE);
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(reply_rcode(), DNS_RCODE_NXDOMAIN);
    ck_assert_uint_eq(req->stage, DNS_STAGE_FORWARD);
    world_free();
}
END_TEST

START_TEST(a_parked_request_resumed_with_next_runs_the_later_stages)
{
    world_init(plan);
    W->stages[DNS_STAGE_ZONES].verdict = DNS_PENDING;
    W->stages[DNS_STAGE_FORWARD].verdict = DNS_DONE;
    struct dns_request *req = ask("example.test.", DNS_TYPE_A);
    ck_assert_str_eq(W->order, "23");
    W->order[W->n_order] = '\0';
    dns_chain_resume(req, DNS_NEXT);
    W->order[W->n_order] = '\0';
    ck_assert_str_eq(W->order, "2345");
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(req->stage, DNS_STAGE_FORWARD);
    world_free();
}
END_TEST

/* What the protocol decides before any stage: query text, class, transport, rcode. */
static const struct {
    const char *name;
    uint16_t type, klass;
    enum dns_proto proto;
    unsigned rcode;
} protocol_cases[] = {
    {"example.test.", DNS_TYPE_AXFR, DNS_CLASS_IN, DNS_PROTO_UDP, DNS_RCODE_NOTIMP},
    {"example.test.", DNS_TYPE_AXFR, DNS_CLASS_IN, DNS_PROTO_TCP, DNS_RCODE_REFUSED},
    {"example.test.", DNS_TYPE_IXFR, DNS_CLASS_IN, DNS_PROTO_UDP, DNS_RCODE_NOTIMP},
    {"example.test.", DNS_TYPE_MAILA, DNS_CLASS_IN, DNS_PROTO_UDP, DNS_RCODE_NOTIMP},
    {"example.test.", DNS_TYPE_A, 4 /* HS */, DNS_PROTO_UDP, DNS_RCODE_REFUSED},
    {"example.test.", DNS_TYPE_OPT, DNS_CLASS_IN, DNS_PROTO_UDP, DNS_RCODE_FORMERR},
};

START_TEST(the_protocol_answers_before_any_stage)
{
    world_init(plan);
    struct dns_request *req = ask_as(protocol_cases[_i].name, protocol_cases[_i].type,
                                     protocol_cases[_i].klass, protocol_cases[_i].proto, 0);
    ck_assert_str_eq(W->order, "");
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(reply_rcode(), protocol_cases[_i].rcode);
    ck_assert_uint_eq(req->stage, DNS_STAGE_PROTOCOL);
    world_free();
}
END_TEST

START_TEST(a_response_is_dropped_and_counted)
{
    world_init(plan);
    struct dns_request *req = &W->req;
    memset(req, 0, sizeof(*req));
    req->pkt = W->pkt;
    req->pkt_len = support_query_wire(W->pkt, sizeof(W->pkt), "x.test.", 1, 1, 7, 0);
    W->pkt[2] |= 0x80; /* QR */
    req->ans = W->ans;
    req->ans_cap = sizeof(W->ans);
    req->send = record_send;
    dns_chain_handle(&W->chain, req);
    ck_assert_uint_eq(W->sent, 1);
    ck_assert_uint_eq(req->ans_len, 0);
    ck_assert_uint_eq(dns_counter_get(&W->chain.stats.dropped), 1);
    ck_assert_uint_eq(dns_counter_get(&W->chain.stats.queries), 0);
    world_free();
}
END_TEST

START_TEST(an_answer_over_the_udp_limit_is_sent_empty_with_tc)
{
    world_init(plan);
    W->stages[DNS_STAGE_ZONES].verdict = DNS_DONE;
    W->stages[DNS_STAGE_ZONES].answer_len = 2000;
    struct dns_request *req = ask("big.test.", DNS_TYPE_A);
    ck_assert_uint_lt(req->ans_len, 512);
    ck_assert(dns_wire_get_u16(req->ans + 2) & DNS_FLAG_TC);
    ck_assert_uint_eq(dns_wire_get_u16(req->ans + 6), 0);
    ck_assert_uint_eq(dns_counter_get(&W->chain.stats.truncated), 1);
    /* The same over TCP goes out whole. */
    req = ask_as("big.test.", DNS_TYPE_A, DNS_CLASS_IN, DNS_PROTO_TCP, 0);
    ck_assert_uint_eq(req->ans_len, 2000);
    world_free();
}
END_TEST

START_TEST(recursion_available_is_set_only_with_a_forwarder)
{
    world_init(plan);
    struct dns_request *req = ask("x.test.", DNS_TYPE_A);
    ck_assert_uint_eq(dns_wire_get_u16(req->ans + 2) & DNS_FLAG_RA, 0);
    W->chain.recursion_available = true;
    req = ask("x.test.", DNS_TYPE_A);
    ck_assert_uint_ne(dns_wire_get_u16(req->ans + 2) & DNS_FLAG_RA, 0);
    world_free();
}
END_TEST

START_TEST(a_followed_alias_is_spliced_under_the_clients_question)
{
    world_init(plan);
    W->stages[DNS_STAGE_SEARCH].follow = "echo.default.svc.local.";
    W->stages[DNS_STAGE_ZONES].verdict = DNS_DONE;
    W->stages[DNS_STAGE_ZONES].rcode = DNS_RCODE_NOERROR;
    struct dns_request *req = ask("echo.", DNS_TYPE_A);
    ck_assert_uint_eq(W->sent, 1);
    ck_assert(!req->alias.active);
    ldns_pkt *pkt = support_pkt_from_wire(req->ans, req->ans_len);
    char *q = support_section_text(pkt, LDNS_SECTION_QUESTION);
    ck_assert_str_eq(q, "echo.\tIN\tA");
    char *an = support_section_text(pkt, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(an, "echo.\t5\tIN\tCNAME\techo.default.svc.local.");
    ck_assert_uint_eq(ldns_pkt_id(pkt), 0x4242);
    free(q);
    free(an);
    ldns_pkt_free(pkt);
    world_free();
}
END_TEST

Suite *chain_suite(void); /* for tests/dns/main.c */
Suite *chain_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, stages_run_in_plan_order_until_one_answers);
    tcase_add_test(tc, missing_stages_are_skipped);
    tcase_add_test(tc, a_query_no_stage_takes_gets_refused);
    tcase_add_test(tc, chaos_class_sees_the_chaos_stage_only);
    tcase_add_test(tc, a_parked_request_resumes_with_its_answer);
    tcase_add_test(tc, a_parked_request_resumed_with_next_runs_the_later_stages);
    tcase_add_loop_test(tc, the_protocol_answers_before_any_stage, 0,
                        (int)(sizeof(protocol_cases) / sizeof(protocol_cases[0])));
    tcase_add_test(tc, a_response_is_dropped_and_counted);
    tcase_add_test(tc, an_answer_over_the_udp_limit_is_sent_empty_with_tc);
    tcase_add_test(tc, recursion_available_is_set_only_with_a_forwarder);
    tcase_add_test(tc, a_followed_alias_is_spliced_under_the_clients_question);
    suite_add_tcase(s, tc);
    return s;
}
