/* tests/resolver/test_forward.c - the forwarder against scripted upstreams in the same loop:
 * reply patching, coalescing, failover, deadlines, TC and EDNS retries, the concurrency cap,
 * health marking and the loop check; plus the address and resolv.conf parsers. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <ldns/ldns.h>
#include <uv.h>

#include "dns/addr.h"
#include "dns/chain.h"
#include "dns/server.h"
#include "resolver/forward.h"
#include "tests/resolver/upstream_fake.h"
#include "tests/support/support.h"

#define MAX_CLIENTS 16

struct client {
    struct dns_request req;
    uint8_t pkt[512];
    uint8_t ans[DNS_MAX_MSG];
    bool done;
    uint64_t sent_ms, done_ms;
};

/* One test's world: a loop, fake upstreams, a forwarder with its chain, clients. */
static struct {
    uv_loop_t loop;
    struct fake_upstream up[3];
    unsigned n_up;
    struct resolver_forward_config cfg;
    struct resolver_forward_shared *shared;
    struct resolver_forward *fwd;
    struct dns_chain chain;
    struct client *clients;
    unsigned n_clients, n_done, expect;
} t;

static void all_done(void)
{
    for (unsigned i = 0; i < t.n_up; i++)
        fake_upstream_close(&t.up[i]);
}

static void client_send(struct dns_request *req)
{
    struct client *c = req->server_data;
    ck_assert_msg(!c->done, "a request was answered twice");
    c->done = true;
    c->done_ms = uv_now(&t.loop);
    t.n_done++;
}

static void world_init(const enum fake_mode *modes, unsigned n, bool tcp)
{
    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(uv_loop_init(&t.loop), 0);
    t.n_up = n;
    resolver_forward_config_default(&t.cfg);
    t.cfg.loop_check = false;
    t.cfg.timeout_ms = 150;
    t.cfg.deadline_ms = 400;
    for (unsigned i = 0; i < n; i++) {
        fake_upstream_start(&t.up[i], &t.loop, modes[i], tcp);
        t.cfg.upstreams[i] = t.up[i].addr;
    }
    t.cfg.n_upstreams = n;
    t.clients = calloc(MAX_CLIENTS, sizeof(*t.clients));
    ck_assert_ptr_nonnull(t.clients);
}

static void world_start(void)
{
    ck_assert_int_eq(resolver_forward_shared_new(&t.shared, &t.cfg), 0);
    ck_assert_int_eq(resolver_forward_new(&t.fwd, &t.loop, t.shared, NULL, NULL), 0);
    dns_chain_init(&t.chain);
    t.chain.recursion_available = true;
    dns_chain_set(&t.chain, DNS_STAGE_FORWARD,
                  &(struct dns_stage_handler){resolver_forward_serve, t.fwd});
}

static void run_until_done(void)
{
    while (t.n_done < t.expect)
        uv_run(&t.loop, UV_RUN_ONCE);
}

/* Runs the loop until every client has its reply, then tears everything down and requires
 * that the loop closes clean (every handle closed). */
static void world_run_and_close(void)
{
    run_until_done();
    all_done();
    resolver_forward_free(t.fwd);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t.loop), 0);
}

/* After the assertions on the counters, which live in the shared state. */
static void world_free(void)
{
    resolver_forward_shared_free(t.shared);
    free(t.clients);
}

static struct client *ask(const char *name, uint16_t type, uint16_t id, int edns, bool dnssec_ok)
{
    ck_assert_uint_lt(t.n_clients, MAX_CLIENTS);
    struct client *c = &t.clients[t.n_clients++];
    size_t len = support_query_wire(c->pkt, sizeof(c->pkt), name, type, 1, id, edns);
    if (dnssec_ok)
        c->pkt[len - 4] |= 0x80; /* the OPT: ..., TTL (DO is bit 15 of its low half), RDLEN 0 */
    c->req.pkt = c->pkt;
    c->req.pkt_len = len;
    c->req.ans = c->ans;
    c->req.ans_cap = sizeof(c->ans);
    c->req.send = client_send;
    c->req.server_data = c;
    c->req.proto = DNS_PROTO_UDP;
    ck_assert_int_eq(dns_addr_parse("127.0.0.1:40000", 53, &c->req.peer), 0);
    c->sent_ms = uv_now(&t.loop);
    t.expect++;
    dns_chain_handle(&t.chain, &c->req);
    return c;
}

static ldns_pkt *reply_of(const struct client *c)
{
    ck_assert(c->done);
    return support_pkt_from_wire(c->req.ans, c->req.ans_len);
}

static int ede_of(const struct client *c)
{
    /* Our OPT is the last record; an EDE option makes it 6 bytes longer than an empty one. */
    const uint8_t *a = c->req.ans;
    size_t n = c->req.ans_len;
    if (n < 6 || dns_wire_get_u16(a + n - 6) != DNS_EDNS_OPT_EDE)
        return -1;
    return dns_wire_get_u16(a + n - 2);
}

START_TEST(forward_relays_answer_with_client_id_case_and_flags)
{
    world_init((enum fake_mode[]){FAKE_ANSWER}, 1, false);
    world_start();
    struct client *c = ask("WwW.Example.TEST", LDNS_RR_TYPE_A, 0x1234, 1232, false);
    struct client *plain = ask("plain.example.test", LDNS_RR_TYPE_A, 0x4321, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_uint_eq(ldns_pkt_id(p), 0x1234);
    ck_assert(ldns_pkt_qr(p) && ldns_pkt_ra(p) && !ldns_pkt_aa(p) && ldns_pkt_rd(p));
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
    ck_assert_str_eq(q, "WwW.Example.TEST.");
    free(q);
    char *ans = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(ans, "WwW.Example.TEST.\t300\tIN\tA\t192.0.2.1");
    free(ans);
    ck_assert(ldns_pkt_edns(p));
    ck_assert_uint_eq(ldns_pkt_edns_udp_size(p), 1232);
    ldns_pkt_free(p);
    /* The client without EDNS gets no OPT, though the upstream sent one. */
    p = reply_of(plain);
    ck_assert(!ldns_pkt_edns(p));
    ck_assert_uint_eq(ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
    /* Upstream saw our OPT, payload 1232, a lower-cased name. */
    ck_assert(t.up[0].last_had_opt);
    ck_assert_uint_eq(t.up[0].last_payload, 1232);
    ck_assert_uint_eq(t.up[0].udp_queries, 2);
    world_free();
}
END_TEST

START_TEST(forward_copies_do_bit_to_upstream)
{
    world_init((enum fake_mode[]){FAKE_ANSWER}, 1, false);
    world_start();
    ask("secure.example.test", LDNS_RR_TYPE_A, 1, 1232, true);
    world_run_and_close();
    ck_assert(t.up[0].last_do);
    ck_assert_str_eq(t.up[0].last_name, "secure.example.test.");
    world_free();
}
END_TEST

START_TEST(forward_coalesces_identical_questions)
{
    world_init((enum fake_mode[]){FAKE_ANSWER}, 1, false);
    world_start();
    const char *names[] = {"same.example.test", "SAME.example.test", "same.EXAMPLE.test",
                           "sAmE.example.TEST"};
    struct client *c[4];
    for (unsigned i = 0; i < 4; i++)
        c[i] = ask(names[i], LDNS_RR_TYPE_A, (uint16_t)(100 + i), 1232, false);
    struct client *other_do = ask("same.example.test", LDNS_RR_TYPE_A, 200, 1232, true);
    world_run_and_close();
    ck_assert_uint_eq(t.up[0].udp_queries, 2); /* one for DO=0, one for DO=1 */
    for (unsigned i = 0; i < 4; i++) {
        ldns_pkt *p = reply_of(c[i]);
        ck_assert_uint_eq(ldns_pkt_id(p), 100 + i);
        char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
        char want[64];
        snprintf(want, sizeof(want), "%s.", names[i]);
        ck_assert_str_eq(q, want);
        free(q);
        ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
        ldns_pkt_free(p);
    }
    ck_assert(other_do->done);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.coalesced, 3);
    world_free();
}
END_TEST

START_TEST(forward_silent_upstream_gives_servfail_ede22_before_deadline)
{
    world_init((enum fake_mode[]){FAKE_SILENT}, 1, false);
    world_start();
    struct client *c = ask("silent.example.test", LDNS_RR_TYPE_A, 7, 1232, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ck_assert_uint_eq(ldns_pkt_id(p), 7);
    ldns_pkt_free(p);
    ck_assert_int_eq(ede_of(c), DNS_EDE_NO_REACHABLE_AUTHORITY);
    uint64_t took = c->done_ms - c->sent_ms;
    ck_assert_msg(took >= 250 && took <= 450, "SERVFAIL after %llu ms", (unsigned long long)took);
    ck_assert_int_eq(c->req.failure, DNS_FAILURE_SILENT);
    /* Two tries (150 ms each), then the 400 ms deadline left no room for a third. */
    ck_assert_uint_eq(t.up[0].udp_queries, 2);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.timeouts, 2);
    ck_assert_uint_eq(st.upstream_down, 1);
    world_free();
}
END_TEST

START_TEST(forward_servfail_upstream_fails_over_to_next)
{
    world_init((enum fake_mode[]){FAKE_SERVFAIL, FAKE_ANSWER}, 2, false);
    world_start();
    struct client *c = ask("failover.example.test", LDNS_RR_TYPE_A, 9, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
    ldns_pkt_free(p);
    ck_assert_uint_eq(t.up[0].udp_queries, 1);
    ck_assert_uint_eq(t.up[1].udp_queries, 1);
    world_free();
}
END_TEST

START_TEST(forward_only_servfail_upstream_gives_servfail_ede23_at_once)
{
    world_init((enum fake_mode[]){FAKE_SERVFAIL}, 1, false);
    world_start();
    struct client *c = ask("sf.example.test", LDNS_RR_TYPE_A, 9, 1232, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ldns_pkt_free(p);
    ck_assert_int_eq(ede_of(c), DNS_EDE_NETWORK_ERROR);
    ck_assert_uint_lt(c->done_ms - c->sent_ms, 100);
    ck_assert_uint_eq(t.up[0].udp_queries, 1);
    world_free();
}
END_TEST

START_TEST(forward_ignores_wrong_id_and_question)
{
    world_init((enum fake_mode[]){FAKE_SPOOF_FIRST}, 1, false);
    world_start();
    struct client *c = ask("spoof.example.test", LDNS_RR_TYPE_A, 11, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
    ldns_pkt_free(p);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.mismatches, 3);
    world_free();
}
END_TEST

START_TEST(forward_wrong_id_only_times_out)
{
    world_init((enum fake_mode[]){FAKE_WRONGID}, 1, false);
    world_start();
    struct client *c = ask("wrongid.example.test", LDNS_RR_TYPE_A, 12, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ldns_pkt_free(p);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.mismatches, 2);
    ck_assert_uint_eq(st.timeouts, 2);
    world_free();
}
END_TEST

START_TEST(forward_malformed_reply_moves_on)
{
    world_init((enum fake_mode[]){FAKE_MALFORMED, FAKE_ANSWER}, 2, false);
    world_start();
    struct client *c = ask("bad.example.test", LDNS_RR_TYPE_A, 13, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.malformed, 1);
    world_free();
}
END_TEST

START_TEST(forward_retries_tc_over_tcp)
{
    world_init((enum fake_mode[]){FAKE_TC}, 1, true);
    world_start();
    struct client *c = ask("big.example.test", LDNS_RR_TYPE_A, 14, 1232, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert(!ldns_pkt_tc(p));
    ck_assert_uint_eq(ldns_pkt_ancount(p), 60);
    ldns_pkt_free(p);
    ck_assert_uint_eq(t.up[0].tcp_queries, 1);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.tcp_retries, 1);
    world_free();
}
END_TEST

START_TEST(forward_relays_tc_when_tcp_fails)
{
    world_init((enum fake_mode[]){FAKE_TC}, 1, false); /* no TCP listener: connect refused */
    world_start();
    struct client *c = ask("big.example.test", LDNS_RR_TYPE_A, 15, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert(ldns_pkt_tc(p));
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p), 0);
    ldns_pkt_free(p);
    world_free();
}
END_TEST

START_TEST(forward_formerr_to_edns_retries_without_opt)
{
    world_init((enum fake_mode[]){FAKE_FORMERR_EDNS}, 1, false);
    world_start();
    struct client *c = ask("old.example.test", LDNS_RR_TYPE_A, 16, 1232, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
    ck_assert(ldns_pkt_edns(p)); /* the client still gets its OPT from us */
    ldns_pkt_free(p);
    ck_assert_uint_eq(t.up[0].udp_queries, 2);
    ck_assert(!t.up[0].last_had_opt);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.edns_fallbacks, 1);
    ck_assert(st.upstreams[0].no_edns);
    ck_assert_uint_eq(st.upstreams[0].failures, 0);
    world_free();
}
END_TEST

START_TEST(forward_refuses_beyond_max_concurrent)
{
    world_init((enum fake_mode[]){FAKE_SILENT}, 1, false);
    t.cfg.max_concurrent = 2;
    world_start();
    struct client *a = ask("a.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    struct client *b = ask("b.example.test", LDNS_RR_TYPE_A, 2, 0, false);
    struct client *c = ask("c.example.test", LDNS_RR_TYPE_A, 3, 0, false);
    ck_assert(!a->done && !b->done);
    ck_assert(c->done); /* at once */
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
    ldns_pkt_free(p);
    ck_assert_int_eq(c->req.failure, DNS_FAILURE_OVERLOAD);
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.refused_max_concurrent, 1);
    world_free();
}
END_TEST

START_TEST(forward_fails_over_and_prefers_the_upstream_that_answered)
{
    world_init((enum fake_mode[]){FAKE_SILENT, FAKE_ANSWER}, 2, false);
    world_start();
    ask("one.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    run_until_done();
    /* The second upstream answered, so it is asked first from now on. */
    ask("two.example.test", LDNS_RR_TYPE_A, 2, 0, false);
    ask("three.example.test", LDNS_RR_TYPE_A, 3, 0, false);
    world_run_and_close();
    ck_assert_uint_eq(t.up[0].udp_queries, 1);
    ck_assert_uint_eq(t.up[1].udp_queries, 3);
    for (unsigned i = 0; i < 3; i++) {
        ldns_pkt *p = reply_of(&t.clients[i]);
        ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
        ldns_pkt_free(p);
    }
    world_free();
}
END_TEST

START_TEST(forward_down_upstream_comes_back_after_probe)
{
    world_init((enum fake_mode[]){FAKE_SERVFAIL}, 1, false);
    t.cfg.probe_interval_ms = 50;
    world_start();
    ask("x1.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    ask("x2.example.test", LDNS_RR_TYPE_A, 2, 0, false);
    run_until_done();
    struct resolver_forward_stats st;
    resolver_forward_stats(t.shared, &st);
    ck_assert(st.upstreams[0].down);
    /* The upstream heals; the probe (". NS") notices within a probe interval or two. */
    t.up[0].mode = FAKE_ANSWER;
    uint64_t until = uv_now(&t.loop) + 1000;
    while (uv_now(&t.loop) < until) {
        resolver_forward_stats(t.shared, &st);
        if (!st.upstreams[0].down)
            break;
        uv_run(&t.loop, UV_RUN_ONCE);
    }
    ck_assert(!st.upstreams[0].down);
    ck_assert_str_eq(t.up[0].last_name, ".");
    ask("x3.example.test", LDNS_RR_TYPE_A, 3, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(&t.clients[2]);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
    world_free();
}
END_TEST

/* An upstream that sends every query straight back to us: the loop probe arrives on our own
 * "listener" (the chain), three rounds mark the upstream looping, and then it is not used.
 * Once the loop is fixed (the upstream answers NXDOMAIN itself), the next check lifts the
 * mark. */
static uv_udp_t loop_sock;
static struct sockaddr_storage loop_addr;
static bool loop_fixed;

struct loop_echo {
    struct dns_request req;
    uv_udp_send_t send;
    uint8_t pkt[512];
    uint8_t ans[DNS_MAX_MSG];
    struct sockaddr_storage from;
};

static void loop_reply_sent(uv_udp_send_t *s, int status)
{
    (void)status;
    free(s->data);
}

static void loop_send(struct dns_request *req)
{
    struct loop_echo *e = req->server_data;
    if (loop_fixed) {
        /* The upstream answers for itself now: our query, turned into its NXDOMAIN. */
        e->ans[2] = 0x81;
        e->ans[3] = 0x83;
    }
    uv_buf_t b = uv_buf_init((char *)req->ans, (unsigned)req->ans_len);
    e->send.data = e;
    if (req->ans_len == 0 || uv_udp_send(&e->send, &loop_sock, &b, 1,
                                         (const struct sockaddr *)&e->from, loop_reply_sent) != 0)
        free(e);
}

static void loop_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

/* The "upstream" hands each query to our own chain, as a forwarder pointed at us would. */
static void loop_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                      unsigned flags)
{
    (void)u;
    (void)flags;
    if (nread > 0 && addr) {
        struct loop_echo *e = calloc(1, sizeof(*e));
        memcpy(e->pkt, buf->base, (size_t)nread);
        memcpy(&e->from, addr, sizeof(struct sockaddr_in));
        e->req.pkt = e->pkt;
        e->req.pkt_len = (size_t)nread;
        e->req.ans = e->ans;
        e->req.ans_cap = sizeof(e->ans);
        e->req.send = loop_send;
        e->req.server_data = e;
        e->req.peer = e->from; /* the forwarder's socket on 127.0.0.1: this host */
        if (loop_fixed) {
            memcpy(e->ans, e->pkt, (size_t)nread);
            e->req.ans_len = (size_t)nread;
            loop_send(&e->req);
        } else {
            dns_chain_handle(&t.chain, &e->req);
        }
    }
    free(buf->base);
}

START_TEST(forward_loop_check_marks_looping_upstream)
{
    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(uv_loop_init(&t.loop), 0);
    struct sockaddr_in a;
    int len = sizeof(loop_addr);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(&t.loop, &loop_sock);
    ck_assert_int_eq(uv_udp_bind(&loop_sock, (const struct sockaddr *)&a, 0), 0);
    uv_udp_getsockname(&loop_sock, (struct sockaddr *)&loop_addr, &len);
    uv_udp_recv_start(&loop_sock, loop_alloc, loop_recv);
    resolver_forward_config_default(&t.cfg);
    t.cfg.upstreams[0] = loop_addr;
    t.cfg.n_upstreams = 1;
    t.cfg.timeout_ms = 200;
    t.cfg.probe_interval_ms = 50;
    t.cfg.loop_recheck_ms = 300;
    loop_fixed = false;
    t.clients = calloc(MAX_CLIENTS, sizeof(*t.clients));
    world_start(); /* loop_check is on: the probe goes out now */
    uint64_t until = uv_now(&t.loop) + 2000;
    struct resolver_forward_stats st;
    do {
        uv_run(&t.loop, UV_RUN_ONCE);
        resolver_forward_stats(t.shared, &st);
    } while (!st.upstreams[0].looping && uv_now(&t.loop) < until);
    ck_assert(st.upstreams[0].looping);
    ck_assert_uint_eq(st.loop_probes_seen, 3);
    /* Now nothing goes to it: a client gets SERVFAIL at once, and no upstream query. */
    uint64_t before = st.upstreams[0].queries;
    struct client *c = ask("after.example.test", LDNS_RR_TYPE_A, 5, 1232, false);
    ck_assert(c->done);
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ldns_pkt_free(p);
    resolver_forward_stats(t.shared, &st);
    ck_assert_uint_eq(st.upstreams[0].queries, before);
    /* While it loops, each check proves it again and the mark stays. */
    until = uv_now(&t.loop) + 1000;
    while (uv_now(&t.loop) < until)
        uv_run(&t.loop, UV_RUN_ONCE);
    resolver_forward_stats(t.shared, &st);
    ck_assert(st.upstreams[0].looping);
    ck_assert_uint_ge(st.loop_probes_seen, 6);
    /* Fixed: the next check finds no loop, and the upstream is used again. */
    loop_fixed = true;
    until = uv_now(&t.loop) + 2000;
    do {
        uv_run(&t.loop, UV_RUN_ONCE);
        resolver_forward_stats(t.shared, &st);
    } while (st.upstreams[0].looping && uv_now(&t.loop) < until);
    ck_assert(!st.upstreams[0].looping);
    c = ask("fixed.example.test", LDNS_RR_TYPE_A, 6, 1232, false);
    run_until_done();
    p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(p);
    uv_close((uv_handle_t *)&loop_sock, NULL);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    resolver_forward_free(t.fwd);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t.loop), 0);
    world_free();
}
END_TEST

START_TEST(forward_free_answers_parked_requests)
{
    world_init((enum fake_mode[]){FAKE_SILENT}, 1, false);
    world_start();
    struct client *c = ask("parked.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    uv_run(&t.loop, UV_RUN_NOWAIT);
    t.expect = 0;
    ck_assert(!c->done);
    resolver_forward_free(t.fwd);
    ck_assert(c->done);
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ldns_pkt_free(p);
    all_done();
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t.loop), 0);
    world_free();
}
END_TEST

START_TEST(forward_uses_fresh_ids_and_ports)
{
    world_init((enum fake_mode[]){FAKE_ANSWER}, 1, false);
    world_start();
    /* 12 distinct questions in flight at once: 12 sockets, 12 IDs. */
    char name[64];
    for (unsigned i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "n%u.example.test", i);
        ask(name, LDNS_RR_TYPE_A, 1, 0, false);
    }
    world_run_and_close();
    ck_assert_uint_eq(t.up[0].udp_queries, 12);
    world_free();
}
END_TEST

/* The upstream list (resolver/upstream.c). */

static void dns_addr_parse_53(const char *text, struct sockaddr_storage *out)
{
    ck_assert_int_eq(dns_addr_parse(text, 53, out), 0);
}

/* An upstream's CNAME into svcdns's own zone: the request follows it, svcdns's own data
 * answers for it, and the chain's end splices the two (as dns/chain.c does). The client never
 * sees what the upstream said of the cluster name. */
START_TEST(forward_answers_a_chain_into_our_zone_from_our_data)
{
    static struct client c;
    static const char *const poisoned[] = {"www.example.test. 300 IN CNAME echo.default.svc.local.",
                                           "echo.default.svc.local. 86400 IN A 6.6.6.6", NULL};
    static const char *const glue[] = {"echo.default.svc.local. 86400 IN A 6.6.6.6", NULL};
    for (int following = 0; following < 2; following++) {
        memset(&c, 0, sizeof(c));
        size_t len =
            support_query_wire(c.pkt, sizeof(c.pkt), following ? "ext.local" : "WWW.example.test",
                               DNS_TYPE_A, 1, 77, 1232);
        c.req.pkt = c.pkt;
        c.req.pkt_len = len;
        c.req.ans = c.ans;
        c.req.ans_cap = sizeof(c.ans);
        ck_assert_int_eq(dns_wire_parse_query(&c.req.q, c.pkt, len), DNS_PARSE_OK);
        if (following) {
            /* An ExternalName the zones stage followed out of the cluster. */
            struct dns_name target;
            uint8_t rr[12 + DNS_MAX_NAME];
            dns_name_from_text(&target, "www.example.test");
            dns_wire_put_u16(rr, DNS_QUESTION_PTR);
            dns_wire_put_u16(rr + 2, DNS_TYPE_CNAME);
            dns_wire_put_u16(rr + 4, DNS_CLASS_IN);
            dns_wire_put_u32(rr + 6, 5);
            dns_wire_put_u16(rr + 10, target.len);
            memcpy(rr + 12, target.wire, target.len);
            ck_assert_int_eq(dns_request_follow(&c.req, &target, rr, 12 + (size_t)target.len, 1),
                             0);
        }
        uint8_t msg[1024];
        size_t n = fake_reply(msg, sizeof(msg), 9, "www.example.test", DNS_TYPE_A, 0, poisoned,
                              NULL, glue, 0, true);
        ck_assert_int_eq(resolver_forward_build_reply(&c.req, msg, n, false, &fake_own_names), 0);
        ck_assert(c.req.alias.active);
        dns_request_end_alias(&c.req);
        ldns_pkt *p = support_pkt_from_wire(c.req.ans, c.req.ans_len);
        ck_assert_uint_eq(ldns_pkt_id(p), 77);
        ck_assert(!ldns_pkt_aa(p) && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR);
        char *text = support_section_text(p, LDNS_SECTION_ANSWER);
        ck_assert_str_eq(text, following
                                   ? "echo.default.svc.local.\t5\tIN\tA\t" FAKE_OWN_A "\n"
                                     "ext.local.\t5\tIN\tCNAME\twww.example.test.\n"
                                     "www.example.test.\t300\tIN\tCNAME\techo.default.svc.local."
                                   : "WWW.example.test.\t300\tIN\tCNAME\techo.default.svc.local.\n"
                                     "echo.default.svc.local.\t5\tIN\tA\t" FAKE_OWN_A);
        free(text);
        ck_assert(ldns_pkt_edns(p) && ldns_pkt_arcount(p) == 0); /* the client's OPT, no glue */
        ldns_pkt_free(p);
    }
}
END_TEST

/* What counts toward a loop: the probe of the check under way, inside its window, from the
 * upstream's own address or this host. Anything else under svcdns-loop-check. is still ours
 * (answered, never forwarded) but proves nothing. */
START_TEST(forward_loop_probes_count_only_in_their_check_from_where_a_loop_sends)
{
    struct sockaddr_storage addrs[2];
    ck_assert_int_eq(dns_addr_parse("127.0.0.1:5300", 53, &addrs[0]), 0);
    ck_assert_int_eq(dns_addr_parse("192.0.2.53:53", 53, &addrs[1]), 0);
    static struct resolver_upstreams ups;
    ck_assert_int_eq(resolver_upstream_init(&ups, addrs, 2, 2), 0);
    struct sockaddr_storage stranger, local, upstream1;
    ck_assert_int_eq(dns_addr_parse("198.51.100.7:4000", 53, &stranger), 0);
    ck_assert_int_eq(dns_addr_parse("127.0.0.1:4000", 53, &local), 0);
    ck_assert_int_eq(dns_addr_parse("192.0.2.53:4000", 53, &upstream1), 0);
    uint8_t pkt[512];
    struct dns_query q;
    struct dns_name probe;
    char name[DNS_MAX_NAME * 4 + 2];

    resolver_upstream_loop_check_begin(&ups, 0);
    resolver_upstream_loop_probe_name(&ups, 0, &probe);
    ck_assert_int_ge(dns_name_to_text(&probe, name, sizeof(name)), 0);
    size_t len = support_query_wire(pkt, sizeof(pkt), name, DNS_TYPE_HINFO, 1, 1, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    /* Before its window opens, and after it closed: ours, not counted. */
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &local, 100));
    resolver_upstream_loop_window(&ups, 0, 1000);
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &local, 1000));
    ck_assert_uint_eq(atomic_load(&ups.loop_probes_seen), 0);
    /* In the window: from a stranger no; from this host yes. */
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &stranger, 500));
    ck_assert_uint_eq(atomic_load(&ups.loop_probes_seen), 0);
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &local, 500));
    ck_assert_uint_eq(atomic_load(&ups.loop_probes_seen), 1);
    /* Another name under svcdns-loop-check., or an earlier check's probe: nothing. */
    len = support_query_wire(pkt, sizeof(pkt), "0123456789abcdef.svcdns-loop-check.",
                             DNS_TYPE_HINFO, 1, 1, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &local, 500));
    len = support_query_wire(pkt, sizeof(pkt), "x.svcdns-loop-check.", DNS_TYPE_A, 1, 1, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert(resolver_upstream_is_loop_probe(&ups, &q, &local, 500));
    ck_assert_uint_eq(atomic_load(&ups.loop_probes_seen), 1);
    len = support_query_wire(pkt, sizeof(pkt), "www.example.test.", DNS_TYPE_A, 1, 1, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    ck_assert(!resolver_upstream_is_loop_probe(&ups, &q, &local, 500));

    /* A remote upstream: its own address counts, a stranger does not; three arrivals in one
     * check mark it looping, and a check that ends without proof lifts the mark. */
    resolver_upstream_loop_check_begin(&ups, 1);
    resolver_upstream_loop_probe_name(&ups, 1, &probe);
    ck_assert_int_ge(dns_name_to_text(&probe, name, sizeof(name)), 0);
    len = support_query_wire(pkt, sizeof(pkt), name, DNS_TYPE_HINFO, 1, 1, 0);
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    resolver_upstream_loop_window(&ups, 1, 1000);
    for (int i = 0; i < 5; i++)
        resolver_upstream_is_loop_probe(&ups, &q, &stranger, 500);
    ck_assert(!atomic_load(&ups.up[1].looping));
    for (int i = 0; i < 3; i++)
        resolver_upstream_is_loop_probe(&ups, &q, &upstream1, 500);
    ck_assert(atomic_load(&ups.up[1].looping));
    ck_assert(!atomic_load(&ups.up[0].looping));
    ck_assert(resolver_upstream_loop_check_end(&ups, 1));
    ck_assert(!atomic_load(&ups.up[1].looping));
    ck_assert(!resolver_upstream_loop_check_end(&ups, 1));
    /* A new check has a new name: the old one proves nothing any more. */
    resolver_upstream_loop_check_begin(&ups, 1);
    resolver_upstream_loop_window(&ups, 1, 1000);
    for (int i = 0; i < 3; i++)
        resolver_upstream_is_loop_probe(&ups, &q, &upstream1, 500);
    ck_assert(!atomic_load(&ups.up[1].looping));
}
END_TEST

/* Sending svcdns its own loop-check name, from a client, after the check: NXDOMAIN, and
 * forwarding carries on. */
START_TEST(forward_a_client_sending_the_probe_name_marks_nothing)
{
    world_init((enum fake_mode[]){FAKE_ANSWER}, 1, false);
    t.cfg.loop_check = true;
    world_start();
    struct resolver_forward_stats st;
    uint64_t until = uv_now(&t.loop) + 2000;
    do { /* the check: the fake answers the probe, which never comes back */
        uv_run(&t.loop, UV_RUN_ONCE);
        resolver_forward_stats(t.shared, &st);
    } while ((t.up[0].udp_queries == 0 || st.upstreams[0].queries == 0) && uv_now(&t.loop) < until);
    ck_assert_ptr_nonnull(strstr(t.up[0].last_name, "svcdns-loop-check"));
    char probe[300];
    snprintf(probe, sizeof(probe), "%s", t.up[0].last_name);
    until = uv_now(&t.loop) + 200; /* the probe's answer comes in: the check is over */
    while (uv_now(&t.loop) < until)
        uv_run(&t.loop, UV_RUN_ONCE);
    for (uint16_t i = 0; i < 4; i++) {
        struct client *c = ask(probe, DNS_TYPE_HINFO, (uint16_t)(10 + i), 0, false);
        ck_assert(c->done);
        ldns_pkt *p = reply_of(c);
        ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
        ldns_pkt_free(p);
    }
    resolver_forward_stats(t.shared, &st);
    ck_assert(!st.upstreams[0].looping);
    ck_assert_uint_eq(st.loop_probes_seen, 0);
    struct client *c = ask("after.example.test", LDNS_RR_TYPE_A, 20, 0, false);
    world_run_and_close();
    ldns_pkt *p = reply_of(c);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
    world_free();
}
END_TEST

START_TEST(forward_reads_resolv_conf)
{
    char path[] = "/tmp/svcdns-resolv-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "# generated\n"
                       "search default.svc.local svc.local\n"
                       "nameserver 10.0.0.2\n"
                       "nameserver   fd00::53 ; comment\n"
                       "nameserver fd00::1:53\n"
                       "nameserver bogus\n"
                       "options ndots:5\n"
                       "nameserver 10.0.0.3\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sockaddr_storage ss[4];
    size_t n = 0;
    ck_assert_int_eq(resolver_upstream_from_resolv_conf(path, ss, 4, &n), 0);
    unlink(path);
    ck_assert_uint_eq(n, 4);
    char out[80];
    dns_addr_format(&ss[0], out, sizeof(out));
    ck_assert_str_eq(out, "10.0.0.2:53");
    dns_addr_format(&ss[1], out, sizeof(out));
    ck_assert_str_eq(out, "[fd00::53]:53");
    dns_addr_format(&ss[2], out, sizeof(out));
    ck_assert_str_eq(out, "[fd00::1:53]:53"); /* an address, not fd00::1 on port 53 */
    dns_addr_format(&ss[3], out, sizeof(out));
    ck_assert_str_eq(out, "10.0.0.3:53");
    ck_assert_int_lt(resolver_upstream_from_resolv_conf("/nonexistent/resolv.conf", ss, 4, &n), 0);
}
END_TEST

START_TEST(forward_detects_self_addresses)
{
    struct sockaddr_storage listen[2], up;
    dns_addr_parse_53("127.0.0.1:5353", &listen[0]);
    dns_addr_parse_53("[::]:53", &listen[1]);
    dns_addr_parse_53("127.0.0.1:5353", &up);
    ck_assert(resolver_upstream_is_self(&up, listen, 2));
    dns_addr_parse_53("127.0.0.1:53", &up);
    ck_assert(!resolver_upstream_is_self(&up, listen, 2)); /* other port, v4 */
    dns_addr_parse_53("[::1]:53", &up);
    ck_assert(resolver_upstream_is_self(&up, listen, 2)); /* wildcard v6 on 53 */
    dns_addr_parse_53("[fd00:1234::99]:53", &up);
    ck_assert(!resolver_upstream_is_self(&up, listen, 2));
    dns_addr_parse_53("0.0.0.0:53", &listen[0]);
    dns_addr_parse_53("127.0.0.53:53", &up);
    ck_assert(resolver_upstream_is_self(&up, listen, 1)); /* loopback on a wildcard's port */
}
END_TEST

Suite *forward_suite(void); /* for tests/resolver/main.c */
Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, forward_relays_answer_with_client_id_case_and_flags);
    tcase_add_test(tc, forward_copies_do_bit_to_upstream);
    tcase_add_test(tc, forward_coalesces_identical_questions);
    tcase_add_test(tc, forward_silent_upstream_gives_servfail_ede22_before_deadline);
    tcase_add_test(tc, forward_servfail_upstream_fails_over_to_next);
    tcase_add_test(tc, forward_only_servfail_upstream_gives_servfail_ede23_at_once);
    tcase_add_test(tc, forward_ignores_wrong_id_and_question);
    tcase_add_test(tc, forward_wrong_id_only_times_out);
    tcase_add_test(tc, forward_malformed_reply_moves_on);
    tcase_add_test(tc, forward_retries_tc_over_tcp);
    tcase_add_test(tc, forward_relays_tc_when_tcp_fails);
    tcase_add_test(tc, forward_formerr_to_edns_retries_without_opt);
    tcase_add_test(tc, forward_refuses_beyond_max_concurrent);
    tcase_add_test(tc, forward_fails_over_and_prefers_the_upstream_that_answered);
    tcase_add_test(tc, forward_down_upstream_comes_back_after_probe);
    tcase_add_test(tc, forward_loop_check_marks_looping_upstream);
    tcase_add_test(tc, forward_a_client_sending_the_probe_name_marks_nothing);
    tcase_add_test(tc, forward_free_answers_parked_requests);
    tcase_add_test(tc, forward_uses_fresh_ids_and_ports);
    tcase_add_test(tc, forward_answers_a_chain_into_our_zone_from_our_data);
    suite_add_tcase(s, tc);
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, forward_reads_resolv_conf);
    tcase_add_test(parse, forward_detects_self_addresses);
    tcase_add_test(parse, forward_loop_probes_count_only_in_their_check_from_where_a_loop_sends);
    suite_add_tcase(s, parse);
    return s;
}
