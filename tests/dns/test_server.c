/* tests/dns/test_server.c - dns/server.c on loopback.
 *
 * Each test runs a real server in a thread, with a chain of one handler of its own: it echoes
 * the query with QR set, or, for names under "park.", parks the request and echoes it when a
 * timer fires (to see TCP answers overtake each other). The test thread is the client, with
 * blocking sockets and timeouts. Check's fork mode gives every test a fresh process, and
 * under ASan a leak or a use after free fails the test that caused it. */
/* SO_REUSEPORT is outside POSIX; glibc shows it with this feature macro. */
#define _DEFAULT_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <uv.h>

#include "dns/chain.h"
#include "dns/log.h"
#include "dns/server.h"
#include "dns/wire.h"
#include "dns/worker.h" /* DNS_TCP_LARGE_READS */
#include "tests/support/support.h"

#define RECV_TIMEOUT_MS 2000

/* The chain. */

struct test_ctx {
    unsigned park_ms;
    bool fail_chain;    /* chain_new returns NULL */
    atomic_int parked;  /* requests parked so far */
    atomic_int resumed; /* parked requests completed (and sent or discarded) */
    atomic_int chains;  /* chains alive */
};

struct park {
    uv_timer_t timer;
    struct dns_request *req;
    struct test_chain *tc;
    struct park *prev, *next;
};

struct test_chain {
    struct dns_chain chain;
    uv_loop_t *loop;
    struct test_ctx *ctx;
    struct park parks; /* sentinel of the parked requests */
};

static void echo(struct dns_request *req)
{
    memcpy(req->ans, req->pkt, req->pkt_len);
    dns_wire_put_u16(req->ans + 2, dns_wire_get_u16(req->ans + 2) | DNS_FLAG_QR);
    req->ans_len = req->pkt_len;
}

static void free_park(uv_handle_t *handle)
{
    free(handle->data);
}

static void park_finish(struct park *p)
{
    struct test_ctx *ctx = p->tc->ctx;
    struct dns_request *req = p->req;
    p->prev->next = p->next;
    p->next->prev = p->prev;
    uv_close((uv_handle_t *)&p->timer, free_park);
    echo(req);
    dns_chain_resume(req, DNS_DONE);
    atomic_fetch_add(&ctx->resumed, 1);
}

static void on_park_timer(uv_timer_t *timer)
{
    park_finish(timer->data);
}

static bool is_park(const struct dns_request *req)
{
    return req->q.qname.wire[0] == 4 && memcmp(req->q.qname.wire + 1, "park", 4) == 0;
}

static enum dns_verdict test_serve(void *self, struct dns_request *req)
{
    struct test_chain *tc = self;
    if (!is_park(req)) {
        echo(req);
        return DNS_DONE;
    }
    struct park *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    uv_timer_init(tc->loop, &p->timer);
    p->timer.data = p;
    p->req = req;
    p->tc = tc;
    p->next = &tc->parks;
    p->prev = tc->parks.prev;
    tc->parks.prev->next = p;
    tc->parks.prev = p;
    uv_timer_start(&p->timer, on_park_timer, tc->ctx->park_ms, 0);
    atomic_fetch_add(&tc->ctx->parked, 1);
    return DNS_PENDING;
}

static struct dns_chain *test_chain_new(void *ctx_arg, uv_loop_t *loop, unsigned worker)
{
    (void)worker;
    struct test_ctx *ctx = ctx_arg;
    if (ctx->fail_chain)
        return NULL;
    struct test_chain *tc = calloc(1, sizeof(*tc));
    ck_assert_ptr_nonnull(tc);
    dns_chain_init(&tc->chain);
    dns_chain_set(&tc->chain, DNS_STAGE_ZONES, &(struct dns_stage_handler){test_serve, tc});
    tc->loop = loop;
    tc->ctx = ctx;
    tc->parks.next = &tc->parks;
    tc->parks.prev = &tc->parks;
    atomic_fetch_add(&ctx->chains, 1);
    return &tc->chain;
}

/* Completes what is still parked, as a forwarder would fail its pending queries. */
static void test_chain_free(void *ctx_arg, struct dns_chain *chain)
{
    struct test_ctx *ctx = ctx_arg;
    struct test_chain *tc = (struct test_chain *)chain;
    while (tc->parks.next != &tc->parks) {
        struct park *p = tc->parks.next;
        uv_timer_stop(&p->timer);
        park_finish(p);
    }
    free(tc);
    atomic_fetch_sub(&ctx->chains, 1);
}

/* The server in a thread. */

struct harness {
    struct test_ctx ctx;
    struct dns_server_config cfg;
    struct dns_server *srv;
    uv_thread_t thread;
    int run_result;
    uint16_t port;
};

static uint16_t pick_port(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        ck_assert(t >= 0 && u >= 0);
        ck_assert_int_eq(bind(t, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(getsockname(t, (struct sockaddr *)&a, &len), 0);
        int ok = bind(u, (struct sockaddr *)&a, sizeof(a));
        close(t);
        close(u);
        if (ok == 0)
            return ntohs(a.sin_port);
    }
    ck_abort_msg("no free port");
    return 0;
}

static void harness_config(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    log_set_level(LOG_LEVEL_WARN); /* no listening lines; errors still show */
    h->ctx.park_ms = 200;
    dns_server_config_default(&h->cfg);
    h->cfg.workers = 1;
    h->cfg.udp_slots = 64;
    h->port = pick_port();
    struct sockaddr_in *a = (struct sockaddr_in *)&h->cfg.listen[0];
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", h->port, a), 0);
    h->cfg.n_listen = 1;
}

static void run_server(void *arg)
{
    struct harness *h = arg;
    h->run_result = dns_server_run(h->srv);
}

static void harness_start(struct harness *h)
{
    int err = dns_server_new(&h->srv, &h->cfg, test_chain_new, test_chain_free, &h->ctx);
    ck_assert_msg(err == 0, "dns_server_new: %s", uv_strerror(err));
    ck_assert_int_eq(uv_thread_create(&h->thread, run_server, h), 0);
}

static void harness_stop(struct harness *h)
{
    dns_server_stop(h->srv);
    ck_assert_int_eq(uv_thread_join(&h->thread), 0);
    ck_assert_int_eq(h->run_result, 0);
    dns_server_free(h->srv);
    ck_assert_int_eq(atomic_load(&h->ctx.chains), 0);
}

/* The client. */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until *v reaches target (set by the server's thread); false after limit_ms. */
static bool wait_for(atomic_int *v, int target, unsigned limit_ms)
{
    uint64_t end = now_ms() + limit_ms;
    while (atomic_load(v) < target) {
        if (now_ms() > end)
            return false;
        sleep_ms(2);
    }
    return true;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_MS / 1000};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

static struct sockaddr_in server_addr(const struct harness *h)
{
    struct sockaddr_in a;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", h->port, &a), 0);
    return a;
}

static int udp_client(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    set_timeouts(fd);
    return fd;
}

static int tcp_client(const struct harness *h)
{
    struct sockaddr_in a = server_addr(h);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    set_timeouts(fd);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static size_t query(uint8_t *out, size_t cap, const char *name, uint16_t id)
{
    return support_query_wire(out, cap, name, DNS_TYPE_A, DNS_CLASS_IN, id, 0);
}

/* Appends a length-prefixed query to out; returns the bytes written. */
static size_t frame(uint8_t *out, size_t cap, const char *name, uint16_t id)
{
    ck_assert_uint_gt(cap, 2);
    size_t len = query(out + 2, cap - 2, name, id);
    dns_wire_put_u16(out, (uint16_t)len);
    return len + 2;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static bool recv_all(int fd, uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads one reply frame; returns its length, or -1 on close or timeout. */
static long read_frame(int fd, uint8_t *buf, size_t cap)
{
    uint8_t prefix[2];
    if (!recv_all(fd, prefix, 2))
        return -1;
    size_t len = dns_wire_get_u16(prefix);
    ck_assert_uint_le(len, cap);
    return recv_all(fd, buf, len) ? (long)len : -1;
}

static uint16_t reply_id(const uint8_t *reply, long len)
{
    ck_assert_int_ge(len, DNS_HEADER_SIZE);
    ck_assert(dns_wire_get_u16(reply + 2) & DNS_FLAG_QR);
    return dns_wire_get_u16(reply);
}

/* Milliseconds until the server closes fd, -1 if it stays open past limit_ms, -2 if it
 * sends anything instead. */
static long wait_closed(int fd, unsigned limit_ms)
{
    uint64_t start = now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)limit_ms);
    if (r <= 0)
        return -1;
    uint8_t byte;
    ssize_t n = recv(fd, &byte, 1, 0);
    if (n > 0)
        return -2;
    return (long)(now_ms() - start);
}

static long udp_ask(const struct harness *h, int fd, const char *name, uint16_t id, uint8_t *reply,
                    size_t cap)
{
    uint8_t q[512];
    size_t len = query(q, sizeof(q), name, id);
    struct sockaddr_in a = server_addr(h);
    ck_assert_int_eq(sendto(fd, q, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
    return recv(fd, reply, cap, 0);
}

static void tcp_ask_ok(int fd, const char *name, uint16_t id)
{
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), name, id);
    send_all(fd, buf, len);
    long n = read_frame(fd, buf, sizeof(buf));
    ck_assert_int_eq(n, (long)len - 2);
    ck_assert_uint_eq(reply_id(buf, n), id);
}

/* Reads n replies, whose IDs must be first, first + 1, ... in any order. */
static void expect_ids(int fd, uint16_t first, uint16_t n)
{
    uint8_t buf[512];
    bool seen[64] = {false};
    ck_assert_uint_le(n, 64);
    for (uint16_t i = 0; i < n; i++) {
        long len = read_frame(fd, buf, sizeof(buf));
        ck_assert_msg(len > 0, "closed after %u answers", i);
        uint16_t id = (uint16_t)(reply_id(buf, len) - first);
        ck_assert_msg(id < n && !seen[id], "unexpected or repeated id %u", id + first);
        seen[id] = true;
    }
}

/* UDP. */

START_TEST(udp_query_is_answered)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = udp_client();
    uint8_t reply[512];
    long n = udp_ask(&h, fd, "echo.test.", 0x1234, reply, sizeof(reply));
    ck_assert_int_gt(n, DNS_HEADER_SIZE);
    ck_assert_uint_eq(reply_id(reply, n), 0x1234);
    struct dns_chain_stats st;
    dns_server_stats(h.srv, &st);
    ck_assert_uint_eq(dns_counter_get(&st.queries), 1);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(udp_without_free_slot_is_dropped_and_counted)
{
    struct harness h;
    harness_config(&h);
    h.cfg.udp_slots = 1;
    h.ctx.park_ms = 300;
    harness_start(&h);
    int fd = udp_client();
    uint8_t q[512];
    struct sockaddr_in a = server_addr(&h);
    size_t len = query(q, sizeof(q), "park.test.", 1);
    ck_assert_int_eq(sendto(fd, q, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
    ck_assert(wait_for(&h.ctx.parked, 1, 1000));
    len = query(q, sizeof(q), "echo.test.", 2);
    ck_assert_int_eq(sendto(fd, q, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
    struct dns_chain_stats st = {0};
    for (int i = 0; i < 200 && dns_counter_get(&st.dropped) == 0; i++) {
        sleep_ms(2);
        dns_server_stats(h.srv, &st);
    }
    ck_assert_uint_eq(dns_counter_get(&st.dropped), 1);
    uint8_t reply[512];
    long n = recv(fd, reply, sizeof(reply), 0);
    ck_assert_uint_eq(reply_id(reply, n), 1); /* only the parked one is answered */
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(several_workers_answer_udp_and_tcp)
{
    struct harness h;
    harness_config(&h);
    h.cfg.workers = 2;
    harness_start(&h);
    for (uint16_t i = 0; i < 16; i++) {
        int fd = udp_client(); /* a new source port each time spreads over the workers */
        uint8_t reply[512];
        long n = udp_ask(&h, fd, "echo.test.", i, reply, sizeof(reply));
        ck_assert_uint_eq(reply_id(reply, n), i);
        close(fd);
    }
    for (uint16_t i = 0; i < 8; i++) {
        int fd = tcp_client(&h);
        tcp_ask_ok(fd, "echo.test.", i);
        close(fd);
    }
    harness_stop(&h);
}
END_TEST

START_TEST(udp_burst_is_all_answered)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = udp_client();
    struct sockaddr_in a = server_addr(&h);
    uint8_t buf[512];
    for (uint16_t id = 0; id < 40; id++) { /* more than one recvmmsg batch */
        size_t len = query(buf, sizeof(buf), "burst.test.", id);
        ck_assert_int_eq(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
    }
    bool seen[40] = {false};
    for (int i = 0; i < 40; i++) {
        long n = recv(fd, buf, sizeof(buf), 0);
        uint16_t id = reply_id(buf, n);
        ck_assert(id < 40 && !seen[id]);
        seen[id] = true;
    }
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(ipv6_loopback_is_served)
{
    struct harness h;
    harness_config(&h);
    struct sockaddr_in6 a6;
    ck_assert_int_eq(uv_ip6_addr("::1", h.port, &a6), 0);
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof(a6)) == 0;
    if (probe >= 0)
        close(probe);
    if (!have_v6)
        return; /* no IPv6 on this host's loopback: nothing to test */
    memcpy(&h.cfg.listen[1], &a6, sizeof(a6)); /* beside 127.0.0.1, same port */
    h.cfg.n_listen = 2;
    harness_start(&h);
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    set_timeouts(u);
    uint8_t buf[512];
    size_t len = query(buf, sizeof(buf), "v6.echo.test.", 6);
    ck_assert_int_eq(sendto(u, buf, len, 0, (struct sockaddr *)&a6, sizeof(a6)), (ssize_t)len);
    long n = recv(u, buf, sizeof(buf), 0);
    ck_assert_uint_eq(reply_id(buf, n), 6);
    close(u);
    int t = socket(AF_INET6, SOCK_STREAM, 0);
    set_timeouts(t);
    ck_assert_int_eq(connect(t, (struct sockaddr *)&a6, sizeof(a6)), 0);
    tcp_ask_ok(t, "v6.echo.test.", 7);
    close(t);
    int v4 = udp_client();
    n = udp_ask(&h, v4, "v4.echo.test.", 4, buf, sizeof(buf));
    ck_assert_uint_eq(reply_id(buf, n), 4);
    close(v4);
    harness_stop(&h);
}
END_TEST

/* TCP: queries and answers. */

START_TEST(tcp_query_is_answered_also_when_split)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    tcp_ask_ok(fd, "echo.test.", 7);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "split.echo.test.", 8);
    send_all(fd, buf, 1); /* half the length, then the rest of it, then the message */
    sleep_ms(20);
    send_all(fd, buf + 1, 5);
    sleep_ms(20);
    send_all(fd, buf + 6, len - 6);
    long n = read_frame(fd, buf, sizeof(buf));
    ck_assert_int_eq(n, (long)len - 2);
    ck_assert_uint_eq(reply_id(buf, n), 8);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_pipelined_queries_are_all_answered)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[50 * 64];
    size_t len = 0;
    for (uint16_t id = 0; id < 50; id++)
        len += frame(buf + len, sizeof(buf) - len, "pipe.test.", id);
    send_all(fd, buf, len); /* one write: the server sees them all at once */
    expect_ids(fd, 0, 50);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_answers_come_in_completion_order)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "park.test.", 1);
    len += frame(buf + len, sizeof(buf) - len, "echo.test.", 2);
    send_all(fd, buf, len);
    long n = read_frame(fd, buf, sizeof(buf));
    ck_assert_uint_eq(reply_id(buf, n), 2);
    n = read_frame(fd, buf, sizeof(buf));
    ck_assert_uint_eq(reply_id(buf, n), 1);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_inflight_cap_holds_back_further_queries)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_max_inflight = 2;
    h.ctx.park_ms = 400;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = 0;
    for (uint16_t id = 1; id <= 3; id++)
        len += frame(buf + len, sizeof(buf) - len, "park.test.", id);
    send_all(fd, buf, len);
    ck_assert(wait_for(&h.ctx.parked, 2, 1000));
    sleep_ms(50);
    ck_assert_int_eq(atomic_load(&h.ctx.parked), 2); /* the third waits for a free place */
    expect_ids(fd, 1, 3);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_connection_waits_for_slots_then_goes_on)
{
    struct harness h;
    harness_config(&h);
    h.cfg.udp_slots = 2; /* two queries at a time: the others wait for a slot */
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[20 * 64];
    size_t len = 0;
    for (uint16_t id = 0; id < 20; id++)
        len += frame(buf + len, sizeof(buf) - len, "slots.test.", id);
    send_all(fd, buf, len);
    expect_ids(fd, 0, 20);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_half_close_still_gets_its_answers)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "park.test.", 1);
    len += frame(buf + len, sizeof(buf) - len, "echo.test.", 2);
    send_all(fd, buf, len);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_uint_eq(reply_id(buf, read_frame(fd, buf, sizeof(buf))), 2);
    ck_assert_uint_eq(reply_id(buf, read_frame(fd, buf, sizeof(buf))), 1);
    ck_assert_int_ge(wait_closed(fd, 1000), 0);
    close(fd);
    harness_stop(&h);
}
END_TEST

/* TCP: timeouts and bad frames. */

static void check_closed_between(int fd, long lo_ms, long hi_ms)
{
    long ms = wait_closed(fd, 1800);
    ck_assert_msg(ms >= lo_ms && ms <= hi_ms, "closed after %ld ms, expected %ld..%ld", ms, lo_ms,
                  hi_ms);
}

START_TEST(tcp_idle_connection_is_closed)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_idle_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    tcp_ask_ok(fd, "echo.test.", 1);
    check_closed_between(fd, 250, 1000);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_partial_length_is_closed_after_read_timeout)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_read_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    send_all(fd, "\x00", 1);
    check_closed_between(fd, 250, 1000);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_stalled_long_message_is_closed_after_read_timeout)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_read_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[102] = {0xff, 0xff};
    send_all(fd, buf, sizeof(buf));
    check_closed_between(fd, 250, 1000);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_slow_drip_is_closed_after_read_timeout)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_read_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "drip.test.", 1);
    uint64_t start = now_ms();
    long closed_ms = -1;
    /* One byte every 50 ms is progress, but too slow to finish the message in time. */
    for (size_t i = 0; i < len && closed_ms < 0; i++) {
        send(fd, buf + i, 1, MSG_NOSIGNAL);
        if (wait_closed(fd, 50) >= 0)
            closed_ms = (long)(now_ms() - start);
    }
    ck_assert_msg(closed_ms >= 250 && closed_ms <= 1000, "closed after %ld ms", closed_ms);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_messages_straddling_writes_are_not_cut_off)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_read_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[10 * 64];
    size_t start[11];
    size_t len = 0;
    for (uint16_t id = 0; id < 10; id++) {
        start[id] = len;
        len += frame(buf + len, sizeof(buf) - len, "straddle.test.", id);
    }
    start[10] = len;
    /* Each write ends 5 bytes into the next message, so a partial message is always waiting,
     * for 900 ms in all, yet every message completes within 100 ms. */
    size_t sent = 0;
    for (int i = 1; i <= 10; i++) {
        size_t end = i < 10 ? start[i] + 5 : len;
        send_all(fd, buf + sent, end - sent);
        sent = end;
        if (i < 10)
            sleep_ms(100);
    }
    expect_ids(fd, 0, 10);
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_zero_length_frame_closes)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512] = {0, 0};
    size_t len = 2 + frame(buf + 2, sizeof(buf) - 2, "echo.test.", 1);
    send_all(fd, buf, len);
    ck_assert_int_ge(wait_closed(fd, 500), 0); /* closed, and the valid query not answered */
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_runt_frame_closes)
{
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    int fd = tcp_client(&h);
    send_all(fd, "\x00\x05runt!", 7);
    ck_assert_int_ge(wait_closed(fd, 500), 0);
    close(fd);
    harness_stop(&h);
}
END_TEST

/* TCP: the connection cap. */

START_TEST(tcp_cap_evicts_the_oldest_idle_connection)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_max_conns = 2;
    harness_start(&h);
    int a = tcp_client(&h);
    tcp_ask_ok(a, "a.echo.test.", 1);
    int b = tcp_client(&h);
    tcp_ask_ok(b, "b.echo.test.", 2);
    int c = tcp_client(&h);
    tcp_ask_ok(c, "c.echo.test.", 3);
    ck_assert_int_ge(wait_closed(a, 1000), 0);
    tcp_ask_ok(b, "b.echo.test.", 4);
    tcp_ask_ok(c, "c.echo.test.", 5);
    close(a);
    close(b);
    close(c);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_cap_refuses_a_newcomer_when_every_connection_is_busy)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_max_conns = 2;
    h.ctx.park_ms = 600;
    harness_start(&h);
    int a = tcp_client(&h);
    int b = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "park.test.", 1);
    send_all(a, buf, len);
    send_all(b, buf, len);
    ck_assert(wait_for(&h.ctx.parked, 2, 1000));
    int c = tcp_client(&h);
    long ms = wait_closed(c, 400);
    ck_assert_msg(ms >= 0, "newcomer not refused (%ld)", ms);
    ck_assert_uint_eq(reply_id(buf, read_frame(a, buf, sizeof(buf))), 1);
    ck_assert_uint_eq(reply_id(buf, read_frame(b, buf, sizeof(buf))), 1);
    close(a);
    close(b);
    close(c);
    harness_stop(&h);
}
END_TEST

/* TCP: what clients that never finish a message can take. */

/* Connects and sends the first byte of a length: a message that never completes. */
static int trickler(const struct harness *h)
{
    int fd = tcp_client(h);
    send_all(fd, "\x00", 1);
    return fd;
}

START_TEST(tcp_clients_trickling_bytes_take_no_slots)
{
    struct harness h;
    harness_config(&h);
    h.cfg.udp_slots = 8; /* 6 for TCP */
    harness_start(&h);
    int flood[40];
    for (int i = 0; i < 40; i++)
        flood[i] = trickler(&h);
    sleep_ms(100); /* every byte read */
    uint64_t start = now_ms();
    int fd = tcp_client(&h);
    tcp_ask_ok(fd, "real.echo.test.", 1);
    int u = udp_client();
    uint8_t buf[512];
    ck_assert_uint_eq(reply_id(buf, udp_ask(&h, u, "real.echo.test.", 2, buf, sizeof(buf))), 2);
    uint64_t took = now_ms() - start;
    ck_assert_msg(took < 1000, "answered after %lu ms", (unsigned long)took);
    close(u);
    close(fd);
    for (int i = 0; i < 40; i++)
        close(flood[i]);
    harness_stop(&h);
}
END_TEST

START_TEST(tcp_cap_evicts_a_client_that_never_completed_a_message_first)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_max_conns = 2;
    harness_start(&h);
    int a = tcp_client(&h);
    tcp_ask_ok(a, "a.echo.test.", 1); /* established, then idle: the least recently active */
    int b = trickler(&h);
    sleep_ms(50);
    int c = tcp_client(&h);
    tcp_ask_ok(c, "c.echo.test.", 2);
    ck_assert_int_ge(wait_closed(b, 1000), 0);
    tcp_ask_ok(a, "a.echo.test.", 3);
    close(a);
    close(b);
    close(c);
    harness_stop(&h);
}
END_TEST

/* The partial message waits because we stopped reading at the in-flight cap, not because the
 * client is slow: it must not be closed for it (issue 11, item 13). */
START_TEST(tcp_partial_message_behind_the_inflight_cap_is_not_timed_out)
{
    struct harness h;
    harness_config(&h);
    h.cfg.tcp_max_inflight = 2;
    h.cfg.tcp_read_ms = 300;
    h.ctx.park_ms = 700;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "park.test.", 1);
    len += frame(buf + len, sizeof(buf) - len, "park.test.", 2);
    size_t third = len;
    len += frame(buf + len, sizeof(buf) - len, "echo.test.", 3);
    send_all(fd, buf, third + 5); /* two queries and the start of a third, in one write */
    ck_assert(wait_for(&h.ctx.parked, 2, 1000));
    sleep_ms(500); /* past tcp_read_ms, with both still parked */
    send_all(fd, buf + third + 5, len - third - 5);
    expect_ids(fd, 1, 3);
    close(fd);
    harness_stop(&h);
}
END_TEST

/* More clients sending long messages at once than may read them into slots: the others wait,
 * then go on, and every one is answered. */
START_TEST(tcp_long_messages_past_the_reading_cap_wait_and_are_answered)
{
    enum { CLIENTS = DNS_TCP_LARGE_READS + 8 };
    static uint8_t msg[3000];
    struct harness h;
    harness_config(&h);
    h.cfg.udp_slots = 256;
    harness_start(&h);
    size_t qlen = query(msg + 2, sizeof(msg) - 2, "long.echo.test.", 0);
    size_t len = sizeof(msg) - 2; /* the query, then zeros: trailing bytes are ignored */
    memset(msg + 2 + qlen, 0, len - qlen);
    dns_wire_put_u16(msg, (uint16_t)len);
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = tcp_client(&h);
        dns_wire_put_u16(msg + 2, (uint16_t)i);
        send_all(fds[i], msg, 1000); /* the length and part of the message */
    }
    sleep_ms(100);
    for (int i = 0; i < CLIENTS; i++)
        send_all(fds[i], msg + 1000, sizeof(msg) - 1000);
    static uint8_t reply[4096];
    for (int i = 0; i < CLIENTS; i++) {
        long n = read_frame(fds[i], reply, sizeof(reply));
        ck_assert_int_eq(n, (long)len);
        ck_assert_uint_eq(reply_id(reply, n), i);
        close(fds[i]);
    }
    harness_stop(&h);
}
END_TEST

/* Short and long messages pipelined, sent in pieces cut anywhere: each is framed right,
 * whether it fits the connection's own buffer (up to 510 octets), just does not, or is long. */
START_TEST(tcp_short_and_long_messages_cut_anywhere_are_all_answered)
{
    static const size_t sizes[] = {40, 510, 511, 3000, 40, 600, 40, 509, 2000, 512, 40, 4000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    static uint8_t stream[N * 4002];
    static uint8_t reply[4096];
    struct harness h;
    harness_config(&h);
    harness_start(&h);
    size_t len = 0;
    for (uint16_t id = 0; id < N; id++) {
        uint8_t *msg = stream + len + 2;
        size_t qlen = query(msg, sizes[id], "mixed.echo.test.", id);
        memset(msg + qlen, 0, sizes[id] - qlen); /* trailing octets are ignored */
        dns_wire_put_u16(stream + len, (uint16_t)sizes[id]);
        len += 2 + sizes[id];
    }
    unsigned seed = 11;
    int fd = tcp_client(&h);
    for (size_t sent = 0; sent < len;) {
        seed = seed * 1103515245U + 12345U;
        size_t piece = 1 + (seed >> 16) % 700;
        if (piece > len - sent)
            piece = len - sent;
        send_all(fd, stream + sent, piece);
        sent += piece;
        sleep_ms(2);
    }
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        long n = read_frame(fd, reply, sizeof(reply));
        uint16_t id = reply_id(reply, n);
        ck_assert(id < N && !seen[id]);
        ck_assert_int_eq(n, (long)sizes[id]);
        seen[id] = true;
    }
    close(fd);
    harness_stop(&h);
}
END_TEST

/* Lifetimes. */

/* 0: the client closes (to us a half-close: the reply is written, then we close); 1: it
 * resets the connection, so the reply meets a connection already closing and is dropped. */
START_TEST(tcp_reply_after_the_client_left_is_discarded)
{
    struct harness h;
    harness_config(&h);
    h.ctx.park_ms = 300;
    harness_start(&h);
    int fd = tcp_client(&h);
    uint8_t buf[512];
    size_t len = frame(buf, sizeof(buf), "park.test.", 1);
    send_all(fd, buf, len);
    ck_assert(wait_for(&h.ctx.parked, 1, 1000));
    if (_i == 1) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    }
    close(fd);
    ck_assert(wait_for(&h.ctx.resumed, 1, 1000));
    int u = udp_client(); /* still serving */
    long n = udp_ask(&h, u, "echo.test.", 9, buf, sizeof(buf));
    ck_assert_uint_eq(reply_id(buf, n), 9);
    close(u);
    harness_stop(&h);
}
END_TEST

START_TEST(stop_with_parked_requests_releases_everything)
{
    struct harness h;
    harness_config(&h);
    h.ctx.park_ms = 10000;
    harness_start(&h);
    int u = udp_client();
    int t = tcp_client(&h);
    uint8_t buf[512];
    struct sockaddr_in a = server_addr(&h);
    size_t len = query(buf, sizeof(buf), "park.test.", 1);
    ck_assert_int_eq(sendto(u, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
    len = frame(buf, sizeof(buf), "park.test.", 2);
    send_all(t, buf, len);
    int idle = tcp_client(&h);
    ck_assert(wait_for(&h.ctx.parked, 2, 1000));
    harness_stop(&h); /* the chain completes both at chain_free; the server discards them */
    ck_assert_int_eq(atomic_load(&h.ctx.resumed), 2);
    ck_assert_int_ge(wait_closed(t, 500), 0);
    ck_assert_int_ge(wait_closed(idle, 500), 0);
    close(u);
    close(t);
    close(idle);
}
END_TEST

/* main.c's way to stop: a uv_signal_t on dns_server_loop(). The workers block signals, so
 * the signal lands on a thread whose handler hands it to the server loop. */
struct signal_test {
    struct harness h;
    uint16_t answered_id;
};

static void on_sigusr1(uv_signal_t *sig, int signum)
{
    (void)signum;
    dns_server_stop(sig->data);
    uv_close((uv_handle_t *)sig, NULL);
}

static void ask_then_signal(void *arg)
{
    struct signal_test *t = arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t buf[512];
    long n = udp_ask(&t->h, fd, "echo.test.", 77, buf, sizeof(buf));
    if (n >= DNS_HEADER_SIZE)
        t->answered_id = dns_wire_get_u16(buf);
    close(fd);
    kill(getpid(), SIGUSR1);
}

START_TEST(signal_on_the_server_loop_stops_the_server)
{
    struct signal_test t = {.answered_id = 0};
    harness_config(&t.h);
    ck_assert_int_eq(dns_server_new(&t.h.srv, &t.h.cfg, test_chain_new, test_chain_free, &t.h.ctx),
                     0);
    uv_signal_t sig;
    ck_assert_int_eq(uv_signal_init(dns_server_loop(t.h.srv), &sig), 0);
    sig.data = t.h.srv;
    ck_assert_int_eq(uv_signal_start(&sig, on_sigusr1, SIGUSR1), 0);
    uv_thread_t client;
    ck_assert_int_eq(uv_thread_create(&client, ask_then_signal, &t), 0);
    ck_assert_int_eq(dns_server_run(t.h.srv), 0);
    ck_assert_int_eq(uv_thread_join(&client), 0);
    dns_server_free(t.h.srv);
    ck_assert_uint_eq(t.answered_id, 77);
}
END_TEST

START_TEST(stop_before_run_makes_run_return_at_once)
{
    struct harness h;
    harness_config(&h);
    ck_assert_int_eq(dns_server_new(&h.srv, &h.cfg, test_chain_new, test_chain_free, &h.ctx), 0);
    dns_server_stop(h.srv);
    ck_assert_int_eq(dns_server_run(h.srv), 0);
    dns_server_stop(h.srv); /* late stops are harmless */
    dns_server_free(h.srv);
    ck_assert_int_eq(atomic_load(&h.ctx.chains), 0);
}
END_TEST

START_TEST(free_without_run_closes_the_sockets)
{
    struct harness h;
    harness_config(&h);
    h.cfg.workers = 2;
    ck_assert_int_eq(dns_server_new(&h.srv, &h.cfg, test_chain_new, test_chain_free, &h.ctx), 0);
    dns_server_free(h.srv);
    /* The port is free again: a second server binds it. */
    ck_assert_int_eq(dns_server_new(&h.srv, &h.cfg, test_chain_new, test_chain_free, &h.ctx), 0);
    dns_server_free(h.srv);
}
END_TEST

START_TEST(failing_chain_makes_run_fail)
{
    struct harness h;
    harness_config(&h);
    h.cfg.workers = 2;
    h.ctx.fail_chain = true;
    ck_assert_int_eq(dns_server_new(&h.srv, &h.cfg, test_chain_new, test_chain_free, &h.ctx), 0);
    ck_assert_int_lt(dns_server_run(h.srv), 0);
    dns_server_free(h.srv);
}
END_TEST

/* Binding. */

/* 0: a UDP socket holds the port; 1: a TCP listener; 2 and 3: the same with SO_REUSEPORT, as
 * another svcdns would hold it. */
START_TEST(address_in_use_fails_in_new)
{
    struct harness h;
    harness_config(&h);
    struct sockaddr_in a = server_addr(&h);
    int fd = socket(AF_INET, _i % 2 == 0 ? SOCK_DGRAM : SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    if (_i >= 2)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (_i % 2 == 1)
        ck_assert_int_eq(listen(fd, 1), 0);
    h.srv = (struct dns_server *)&h; /* must come back NULL */
    int err = dns_server_new(&h.srv, &h.cfg, test_chain_new, test_chain_free, &h.ctx);
    ck_assert_int_eq(err, UV_EADDRINUSE);
    ck_assert_ptr_null(h.srv);
    close(fd);
}
END_TEST

START_TEST(bad_configs_are_rejected)
{
    struct harness h;
    harness_config(&h);
    struct dns_server_config cfg = h.cfg;
    cfg.listen[1] = cfg.listen[0]; /* listed twice */
    cfg.n_listen = 2;
    ck_assert_int_eq(dns_server_new(&h.srv, &cfg, test_chain_new, test_chain_free, &h.ctx),
                     UV_EINVAL);
    cfg = h.cfg;
    cfg.n_listen = 0;
    ck_assert_int_eq(dns_server_new(&h.srv, &cfg, test_chain_new, test_chain_free, &h.ctx),
                     UV_EINVAL);
    cfg = h.cfg;
    ((struct sockaddr_in *)&cfg.listen[0])->sin_port = 0;
    ck_assert_int_eq(dns_server_new(&h.srv, &cfg, test_chain_new, test_chain_free, &h.ctx),
                     UV_EINVAL);
    cfg = h.cfg;
    cfg.udp_slots = 0;
    ck_assert_int_eq(dns_server_new(&h.srv, &cfg, test_chain_new, test_chain_free, &h.ctx),
                     UV_EINVAL);
    cfg = h.cfg;
    cfg.workers = 0;
    ck_assert_int_eq(dns_server_new(&h.srv, &cfg, test_chain_new, test_chain_free, &h.ctx),
                     UV_EINVAL);
}
END_TEST

START_TEST(config_default_has_the_documented_values)
{
    struct dns_server_config cfg;
    dns_server_config_default(&cfg);
    ck_assert_uint_eq(cfg.n_listen, 0);
    ck_assert_uint_eq(cfg.workers, 1);
    ck_assert_uint_eq(cfg.udp_slots, 256);
    ck_assert_uint_eq(cfg.tcp_max_conns, 1024);
    ck_assert_uint_eq(cfg.tcp_idle_ms, 10000);
    ck_assert_uint_eq(cfg.tcp_read_ms, 2000);
    ck_assert_uint_eq(cfg.tcp_max_inflight, 16);
}
END_TEST

Suite *server_suite(void); /* for tests/dns/main.c */
Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *udp = tcase_create("udp");
    tcase_add_test(udp, udp_query_is_answered);
    tcase_add_test(udp, udp_without_free_slot_is_dropped_and_counted);
    tcase_add_test(udp, several_workers_answer_udp_and_tcp);
    tcase_add_test(udp, udp_burst_is_all_answered);
    tcase_add_test(udp, ipv6_loopback_is_served);
    suite_add_tcase(s, udp);

    TCase *tcp = tcase_create("tcp");
    tcase_add_test(tcp, tcp_query_is_answered_also_when_split);
    tcase_add_test(tcp, tcp_pipelined_queries_are_all_answered);
    tcase_add_test(tcp, tcp_answers_come_in_completion_order);
    tcase_add_test(tcp, tcp_inflight_cap_holds_back_further_queries);
    tcase_add_test(tcp, tcp_connection_waits_for_slots_then_goes_on);
    tcase_add_test(tcp, tcp_half_close_still_gets_its_answers);
    tcase_add_test(tcp, tcp_idle_connection_is_closed);
    tcase_add_test(tcp, tcp_partial_length_is_closed_after_read_timeout);
    tcase_add_test(tcp, tcp_stalled_long_message_is_closed_after_read_timeout);
    tcase_add_test(tcp, tcp_slow_drip_is_closed_after_read_timeout);
    tcase_add_test(tcp, tcp_messages_straddling_writes_are_not_cut_off);
    tcase_add_test(tcp, tcp_zero_length_frame_closes);
    tcase_add_test(tcp, tcp_runt_frame_closes);
    tcase_add_test(tcp, tcp_cap_evicts_the_oldest_idle_connection);
    tcase_add_test(tcp, tcp_cap_refuses_a_newcomer_when_every_connection_is_busy);
    tcase_add_test(tcp, tcp_clients_trickling_bytes_take_no_slots);
    tcase_add_test(tcp, tcp_cap_evicts_a_client_that_never_completed_a_message_first);
    tcase_add_test(tcp, tcp_partial_message_behind_the_inflight_cap_is_not_timed_out);
    tcase_add_test(tcp, tcp_long_messages_past_the_reading_cap_wait_and_are_answered);
    tcase_add_test(tcp, tcp_short_and_long_messages_cut_anywhere_are_all_answered);
    suite_add_tcase(s, tcp);

    TCase *life = tcase_create("lifetime");
    tcase_add_loop_test(life, tcp_reply_after_the_client_left_is_discarded, 0, 2);
    tcase_add_test(life, stop_with_parked_requests_releases_everything);
    tcase_add_test(life, signal_on_the_server_loop_stops_the_server);
    tcase_add_test(life, stop_before_run_makes_run_return_at_once);
    tcase_add_test(life, free_without_run_closes_the_sockets);
    tcase_add_test(life, failing_chain_makes_run_fail);
    suite_add_tcase(s, life);

    TCase *cfg = tcase_create("config");
    tcase_add_loop_test(cfg, address_in_use_fails_in_new, 0, 4);
    tcase_add_test(cfg, bad_configs_are_rejected);
    tcase_add_test(cfg, config_default_has_the_documented_values);
    suite_add_tcase(s, cfg);
    return s;
}
