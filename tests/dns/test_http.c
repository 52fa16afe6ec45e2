/* tests/dns/test_http.c - dns/http.c: the request parser, and the server on loopback.
 *
 * Each server test runs the HTTP server on its own loop in a second thread, with a few routes
 * of its own, and is the client in the test thread with blocking sockets and timeouts, so the
 * assertions run where Check expects them. Responses are compared byte for byte. Stopping
 * sends an async to the loop, which closes the server and its own handle; the loop must then
 * run out and uv_loop_close() succeed, so a handle left open fails the test. */
/* TCP_NODELAY needs <netinet/tcp.h>, which glibc shows with this feature macro. */
#define _DEFAULT_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <uv.h>

#include "dns/http.h"
#include "dns/log.h"

#define RECV_TIMEOUT_MS 3000
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define BIG_LINES 20000 /* 280 KB: more than the socket buffers, so the write is queued */

/* The server in a thread. */

struct harness {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t thread;
    struct dns_http *http;
    struct sockaddr_storage addr;
    uint16_t port;
    atomic_int health_calls;
    atomic_int big_calls;
};

static void on_health(void *ctx, struct dns_http_response *res)
{
    struct harness *h = ctx;
    atomic_fetch_add(&h->health_calls, 1);
    dns_http_printf(res, "OK\n");
}

static void on_ready(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    res->status = 503;
    dns_http_printf(res, "not ready: %s\n", "no manifest loaded");
}

static void on_metrics(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    res->content_type = METRICS_TYPE;
    dns_http_printf(res, "svcdns_up %d\n", 1);
}

static void on_big(void *ctx, struct dns_http_response *res)
{
    struct harness *h = ctx;
    atomic_fetch_add(&h->big_calls, 1);
    for (int i = 0; i < BIG_LINES; i++)
        dns_http_printf(res, "line %08d\n", i);
}

static void on_bad_status(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    res->status = 42;
}

static uint16_t pick_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_stop(uv_async_t *async)
{
    struct harness *h = async->data;
    dns_http_close(h->http);
    uv_close((uv_handle_t *)async, NULL);
}

static void run_loop(void *arg)
{
    struct harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

/* The loop and the server, not yet running: for tests of dns_http_new itself. */
static void harness_init(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    signal(SIGPIPE, SIG_IGN); /* as main.c does: a client may reset before the write */
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    h->port = pick_port();
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", h->port, (struct sockaddr_in *)&h->addr), 0);
}

static void harness_start(struct harness *h)
{
    harness_init(h);
    int err = dns_http_new(&h->http, &h->loop, &h->addr);
    ck_assert_msg(err == 0, "dns_http_new: %s", uv_strerror(err));
    ck_assert_int_eq(dns_http_route(h->http, "/health", on_health, h), 0);
    ck_assert_int_eq(dns_http_route(h->http, "/ready", on_ready, h), 0);
    ck_assert_int_eq(dns_http_route(h->http, "/metrics", on_metrics, h), 0);
    ck_assert_int_eq(dns_http_route(h->http, "/big", on_big, h), 0);
    ck_assert_int_eq(dns_http_route(h->http, "/bad-status", on_bad_status, h), 0);
    ck_assert_int_eq(uv_async_init(&h->loop, &h->stop, on_stop), 0);
    h->stop.data = h;
    ck_assert_int_eq(uv_thread_create(&h->thread, run_loop, h), 0);
}

static void harness_stop(struct harness *h)
{
    ck_assert_int_eq(uv_async_send(&h->stop), 0);
    ck_assert_int_eq(uv_thread_join(&h->thread), 0);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
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

static int client(const struct harness *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_MS / 1000};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    int one = 1; /* so that a request sent in pieces arrives in pieces */
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)&h->addr, sizeof(struct sockaddr_in)), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes; fails the test on a timeout or a reset. NUL-terminates. */
static size_t read_to_close(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ck_assert_uint_lt(len, cap - 1);
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        ck_assert_msg(n >= 0, "recv: %s after %zu bytes", strerror(errno), len);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static void exchange(const struct harness *h, const char *request, size_t len, char *out,
                     size_t cap)
{
    int fd = client(h);
    send_all(fd, request, len);
    read_to_close(fd, out, cap);
    close(fd);
}

/* Milliseconds until the server closes fd without sending anything, or -1 on timeout. */
static long wait_closed(int fd, uint64_t since)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, 0);
    ck_assert_int_le(n, 0); /* nothing may come before the close */
    return n == 0 ? (long)(now_ms() - since) : -1;
}

/* The same, where the server may also reset the connection (an evicted one). */
static long wait_gone(int fd, uint64_t since)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, 0);
    ck_assert_int_le(n, 0);
    return n == 0 || errno == ECONNRESET ? (long)(now_ms() - since) : -1;
}

/* True while the server has neither sent anything on fd nor closed it. */
static bool is_untouched(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* A connection with the start of a request: the server has it (TCP_DEFER_ACCEPT hands over
 * nothing silent) and waits for the rest. */
static int partial_client(const struct harness *h)
{
    static const char start[] = "GET /health HTTP/1.1\r\n";
    int fd = client(h);
    send_all(fd, start, sizeof(start) - 1);
    return fd;
}

/* A client that reads slowly and whose segments are small, so the server's send buffer stays
 * small (on loopback it otherwise grows to megabytes) and a /big response stays queued. */
static int slow_reader(const struct harness *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int mss = 536;
    int rcvbuf = 4096;
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_MS / 1000};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)&h->addr, sizeof(struct sockaddr_in)), 0);
    return fd;
}

/* The TCP state of the client's end (TCP_CLOSE once the server has reset it). */
static int tcp_state(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof(info);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
    return info.tcpi_state;
}

#define RESPONSE(status, type, len, extra)                                                         \
    "HTTP/1.1 " status "\r\nContent-Type: " type "\r\nContent-Length: " #len "\r\n" extra          \
    "Connection: close\r\n\r\n"
#define TEXT "text/plain; charset=utf-8"

/* Requests and the exact responses. */

static const struct exchange_case {
    const char *request;
    size_t len; /* 0: strlen(request) */
    const char *response;
} exchanges[] = {
    {"GET /health HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: kube-probe/1.29\r\n"
     "Accept: */*\r\n\r\n",
     0, RESPONSE("200 OK", TEXT, 3, "") "OK\n"},
    {"GET /health HTTP/1.0\r\n\r\n", 0, RESPONSE("200 OK", TEXT, 3, "") "OK\n"},
    {"GET /health HTTP/1.1\nHost: x\n\n", 0, RESPONSE("200 OK", TEXT, 3, "") "OK\n"},
    {"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", 0, RESPONSE("200 OK", TEXT, 3, "")},
    {"GET /nope HTTP/1.1\r\n\r\n", 0, RESPONSE("404 Not Found", TEXT, 10, "") "Not Found\n"},
    {"HEAD /nope HTTP/1.1\r\n\r\n", 0, RESPONSE("404 Not Found", TEXT, 10, "")},
    {"GET /health/ HTTP/1.1\r\n\r\n", 0, RESPONSE("404 Not Found", TEXT, 10, "") "Not Found\n"},
    {"POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 0,
     RESPONSE("405 Method Not Allowed", TEXT, 19, "Allow: GET, HEAD\r\n") "Method Not Allowed\n"},
    {"get /health HTTP/1.1\r\n\r\n", 0,
     RESPONSE("405 Method Not Allowed", TEXT, 19, "Allow: GET, HEAD\r\n") "Method Not Allowed\n"},
    {"PROPFIND /health HTTP/1.1\r\n\r\n", 0,
     RESPONSE("405 Method Not Allowed", TEXT, 19, "Allow: GET, HEAD\r\n") "Method Not Allowed\n"},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11,
     RESPONSE("400 Bad Request", TEXT, 12, "") "Bad Request\n"},
    {"hello world\r\n\r\n", 0, RESPONSE("400 Bad Request", TEXT, 12, "") "Bad Request\n"},
    {"GET /health HTTP/2.0\r\n\r\n", 0, RESPONSE("400 Bad Request", TEXT, 12, "") "Bad Request\n"},
    {"GET  /health HTTP/1.1\r\n\r\n", 0, RESPONSE("400 Bad Request", TEXT, 12, "") "Bad Request\n"},
    {"GET /metrics?x=1&name[]=up HTTP/1.1\r\n\r\n", 0,
     RESPONSE("200 OK", METRICS_TYPE, 12, "") "svcdns_up 1\n"},
    {"GET http://10.0.0.1:9153/metrics?x HTTP/1.1\r\n\r\n", 0,
     RESPONSE("200 OK", METRICS_TYPE, 12, "") "svcdns_up 1\n"},
    {"GET /ready HTTP/1.1\r\n\r\n", 0,
     RESPONSE("503 Service Unavailable", TEXT, 30, "") "not ready: no manifest loaded\n"},
    {"GET /bad-status HTTP/1.1\r\n\r\n", 0,
     RESPONSE("500 Internal Server Error", TEXT, 22, "") "Internal Server Error\n"},
};

START_TEST(request_gets_exact_response)
{
    const struct exchange_case *tc = &exchanges[_i];
    struct harness h;
    harness_start(&h);
    char out[1024];
    exchange(&h, tc->request, tc->len ? tc->len : strlen(tc->request), out, sizeof(out));
    ck_assert_str_eq(out, tc->response);
    harness_stop(&h);
}
END_TEST

START_TEST(request_in_pieces_is_served)
{
    static const char *const pieces[] = {"GE", "T /hea", "lth HTTP/1.1\r", "\nHost: x\r\n\r", "\n"};
    struct harness h;
    harness_start(&h);
    int fd = client(&h);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        send_all(fd, pieces[i], strlen(pieces[i]));
        sleep_ms(20);
    }
    char out[1024];
    read_to_close(fd, out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    close(fd);
    ck_assert_int_eq(atomic_load(&h.health_calls), 1);
    harness_stop(&h);
}
END_TEST

START_TEST(half_close_after_request_is_answered)
{
    struct harness h;
    harness_start(&h);
    int fd = client(&h);
    static const char req[] = "GET /health HTTP/1.0\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char out[1024];
    read_to_close(fd, out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    close(fd);
    harness_stop(&h);
}
END_TEST

START_TEST(large_body_is_sent_whole)
{
    struct harness h;
    harness_start(&h);
    size_t body_len = (size_t)BIG_LINES * 14;
    size_t cap = body_len + 1024;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    static const char req[] = "GET /big HTTP/1.1\r\n\r\n";
    exchange(&h, req, sizeof(req) - 1, out, cap);
    char head[256];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: " TEXT
             "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             body_len);
    size_t head_len = strlen(head);
    ck_assert_uint_eq(strlen(out), head_len + body_len);
    ck_assert_int_eq(memcmp(out, head, head_len), 0);
    char line[32];
    for (int i = 0; i < BIG_LINES; i += 997) {
        snprintf(line, sizeof(line), "line %08d\n", i);
        ck_assert_int_eq(memcmp(out + head_len + (size_t)i * 14, line, 14), 0);
    }
    free(out);
    harness_stop(&h);
}
END_TEST

START_TEST(oversized_request_gets_431_and_is_closed)
{
    struct harness h;
    harness_start(&h);
    size_t pad = (size_t)5 * 1024;
    char *req = malloc(pad + 64);
    ck_assert_ptr_nonnull(req);
    int n = snprintf(req, 64, "GET /health HTTP/1.1\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    memcpy(req + (size_t)n + pad, "\r\n\r\n", 4);
    char out[1024];
    exchange(&h, req, (size_t)n + pad + 4, out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("431 Request Header Fields Too Large", TEXT, 32,
                                   "") "Request Header Fields Too Large\n");
    ck_assert_int_eq(atomic_load(&h.health_calls), 0);
    free(req);
    harness_stop(&h);
}
END_TEST

START_TEST(request_of_exactly_the_cap_is_served)
{
    struct harness h;
    harness_start(&h);
    char req[DNS_HTTP_MAX_REQUEST];
    static const char start[] = "GET /health HTTP/1.1\r\nX-Pad: ";
    memcpy(req, start, sizeof(start) - 1);
    memset(req + sizeof(start) - 1, 'a', sizeof(req) - (sizeof(start) - 1) - 4);
    memcpy(req + sizeof(req) - 4, "\r\n\r\n", 4);
    char out[1024];
    exchange(&h, req, sizeof(req), out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    harness_stop(&h);
}
END_TEST

START_TEST(silent_and_half_requests_are_closed_at_the_deadline)
{
    struct harness h;
    harness_start(&h);
    uint64_t start = now_ms();
    int silent = client(&h);
    int half = client(&h);
    static const char partial[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
    send_all(half, partial, sizeof(partial) - 1);
    long b = wait_closed(half, start);
    long a = wait_closed(silent, start);
    ck_assert_int_ge(b, DNS_HTTP_READ_MS - 100);
    ck_assert_int_le(b, DNS_HTTP_READ_MS + 700);
    /* The kernel hands the silent one over only after the deferral. */
    ck_assert_int_ge(a, DNS_HTTP_DEFER_MS + DNS_HTTP_READ_MS - 100);
    ck_assert_int_le(a, DNS_HTTP_DEFER_MS + DNS_HTTP_READ_MS + 700);
    ck_assert_int_eq(atomic_load(&h.health_calls), 0);
    close(silent);
    close(half);
    harness_stop(&h);
}
END_TEST

/* Issue 11: a full server used to close every newcomer, so anyone who reached the port could
 * hold it and make kubelet's probes fail. */
START_TEST(newcomer_at_the_limit_evicts_the_oldest_partial_request)
{
    struct harness h;
    harness_start(&h);
    int fds[DNS_HTTP_MAX_CONNS];
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++)
        fds[i] = partial_client(&h);
    /* The kernel queues connections in order and the server accepts them in that order, so
     * the probe is accepted after the others are counted, whenever the loop gets to them. */
    static const char req[] = "GET /health HTTP/1.1\r\n\r\n";
    char out[256];
    exchange(&h, req, sizeof(req) - 1, out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    uint64_t start = now_ms();
    long gone = wait_gone(fds[0], start);
    ck_assert_int_ge(gone, 0);
    ck_assert_int_lt(gone, 500);
    close(fds[0]);
    /* The others were kept, and are answered once their requests are complete. */
    for (int i = 1; i < DNS_HTTP_MAX_CONNS; i++) {
        ck_assert_msg(is_untouched(fds[i]), "connection %d was touched", i);
        send_all(fds[i], "\r\n", 2);
        read_to_close(fds[i], out, sizeof(out));
        ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
        close(fds[i]);
    }
    harness_stop(&h);
}
END_TEST

/* A client that never closes keeps its connection lingering for the send deadline; with no
 * partial request to evict, the oldest of those goes, and its response still arrives whole. */
START_TEST(newcomer_evicts_the_oldest_lingering_when_none_is_reading)
{
    struct harness h;
    harness_start(&h);
    static const char req[] = "GET /health HTTP/1.1\r\n\r\n";
    int fds[DNS_HTTP_MAX_CONNS];
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        fds[i] = client(&h);
        send_all(fds[i], req, sizeof(req) - 1);
    }
    /* Every response is written (it is readable) and so every connection lingers. */
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, RECV_TIMEOUT_MS), 1);
    }
    sleep_ms(50); /* on_write runs one loop iteration after the write */
    char out[256];
    exchange(&h, req, sizeof(req) - 1, out, sizeof(out));
    ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        read_to_close(fds[i], out, sizeof(out));
        ck_assert_str_eq(out, RESPONSE("200 OK", TEXT, 3, "") "OK\n");
    }
    /* Only the oldest is closed on the server: a byte sent to it draws a reset, while the next
     * one, still lingering, reads and discards it. */
    send_all(fds[0], "x", 1);
    send_all(fds[1], "x", 1);
    for (int i = 0; i < 100 && tcp_state(fds[0]) != TCP_CLOSE; i++)
        sleep_ms(5);
    ck_assert_int_eq(tcp_state(fds[0]), TCP_CLOSE);
    ck_assert_int_eq(tcp_state(fds[1]), TCP_CLOSE_WAIT);
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++)
        close(fds[i]);
    ck_assert_int_eq(atomic_load(&h.health_calls), DNS_HTTP_MAX_CONNS + 1);
    harness_stop(&h);
}
END_TEST

/* A response being written is never cut off; only when every connection has one does a
 * newcomer find no room. */
START_TEST(newcomer_is_closed_when_every_connection_is_writing)
{
    struct harness h;
    harness_start(&h);
    static const char req[] = "GET /big HTTP/1.1\r\n\r\n";
    int fds[DNS_HTTP_MAX_CONNS];
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        fds[i] = slow_reader(&h);
        send_all(fds[i], req, sizeof(req) - 1);
    }
    for (int i = 0; i < 500 && atomic_load(&h.big_calls) < DNS_HTTP_MAX_CONNS; i++)
        sleep_ms(10);
    ck_assert_int_eq(atomic_load(&h.big_calls), DNS_HTTP_MAX_CONNS);
    int extra = client(&h);
    send_all(extra, req, sizeof(req) - 1);
    uint64_t start = now_ms();
    long gone = wait_gone(extra, start);
    ck_assert_int_ge(gone, 0);
    ck_assert_int_lt(gone, 500);
    close(extra);
    /* Each of the others gets its whole response. */
    size_t cap = (size_t)BIG_LINES * 14 + 1024;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        size_t len = read_to_close(fds[i], out, cap);
        ck_assert_uint_gt(len, (size_t)BIG_LINES * 14);
        ck_assert_int_eq(memcmp(out, "HTTP/1.1 200 OK\r\n", 17), 0);
        close(fds[i]);
    }
    free(out);
    ck_assert_int_eq(atomic_load(&h.big_calls), DNS_HTTP_MAX_CONNS);
    harness_stop(&h);
}
END_TEST

/* The whole burst waits in the kernel while the loop is stopped: the cap's worth of partial
 * requests, a probe, and as many partial requests again behind it. Accepted in one go, the
 * probe would be the oldest without a complete request before the loop had read it, and the
 * last newcomer would evict it; accepting in bursts reads it first. */
START_TEST(probe_in_a_burst_is_answered_before_it_can_be_evicted)
{
    struct harness h;
    harness_init(&h);
    ck_assert_int_eq(dns_http_new(&h.http, &h.loop, &h.addr), 0);
    ck_assert_int_eq(dns_http_route(h.http, "/health", on_health, &h), 0);
    int before[DNS_HTTP_MAX_CONNS];
    int after[DNS_HTTP_MAX_CONNS];
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++)
        before[i] = partial_client(&h);
    int probe = client(&h);
    static const char req[] = "GET /health HTTP/1.1\r\n\r\n";
    send_all(probe, req, sizeof(req) - 1);
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++)
        after[i] = partial_client(&h);
    static const char expect[] = RESPONSE("200 OK", TEXT, 3, "") "OK\n";
    char out[256];
    size_t len = 0;
    for (int i = 0; i < 500 && len < sizeof(expect) - 1; i++) {
        uv_run(&h.loop, UV_RUN_NOWAIT);
        ssize_t n = recv(probe, out + len, sizeof(out) - 1 - len, MSG_DONTWAIT);
        ck_assert_msg(n > 0 || (n < 0 && errno == EAGAIN), "probe: %s after %zu bytes",
                      n == 0 ? "closed" : strerror(errno), len);
        if (n > 0)
            len += (size_t)n;
        else
            sleep_ms(1);
    }
    out[len] = '\0';
    ck_assert_str_eq(out, expect);
    ck_assert_int_eq(atomic_load(&h.health_calls), 1);
    dns_http_close(h.http);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
    close(probe);
    for (int i = 0; i < DNS_HTTP_MAX_CONNS; i++) {
        close(before[i]);
        close(after[i]);
    }
}
END_TEST

START_TEST(close_ends_open_connections)
{
    struct harness h;
    harness_start(&h);
    int idle = client(&h);
    int half = client(&h);
    send_all(idle, "G", 1); /* with nothing sent the kernel would not hand it over yet */
    static const char partial[] = "GET /health HTTP/1.1\r\n";
    send_all(half, partial, sizeof(partial) - 1);
    sleep_ms(50); /* let the loop accept both */
    uint64_t start = now_ms();
    harness_stop(&h); /* also asserts that the loop closes */
    long a = wait_closed(idle, start);
    long b = wait_closed(half, start);
    ck_assert_int_ge(a, 0);
    ck_assert_int_lt(a, 500);
    ck_assert_int_ge(b, 0);
    ck_assert_int_lt(b, 500);
    close(idle);
    close(half);
}
END_TEST

/* dns_server_free() runs the control loop once (UV_RUN_NOWAIT) after main.c closed its
 * handles: that one iteration must free everything, with connections in every state. */
START_TEST(close_completes_in_one_loop_iteration)
{
    struct harness h;
    harness_init(&h);
    ck_assert_int_eq(dns_http_new(&h.http, &h.loop, &h.addr), 0);
    ck_assert_int_eq(dns_http_route(h.http, "/big", on_big, &h), 0);
    int idle = client(&h);
    int reading = client(&h);
    int big = client(&h);   /* never reads: its response stays queued or lingering */
    send_all(idle, "G", 1); /* with nothing sent the kernel would not hand it over yet */
    static const char partial[] = "GET /big HTTP/1.1\r\n";
    static const char req[] = "GET /big HTTP/1.1\r\n\r\n";
    send_all(reading, partial, sizeof(partial) - 1);
    send_all(big, req, sizeof(req) - 1);
    for (int i = 0; i < 500 && atomic_load(&h.big_calls) == 0; i++) {
        uv_run(&h.loop, UV_RUN_NOWAIT);
        sleep_ms(1);
    }
    ck_assert_int_eq(atomic_load(&h.big_calls), 1);
    dns_http_close(h.http);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
    uint64_t start = now_ms();
    ck_assert_int_ge(wait_closed(idle, start), 0);
    ck_assert_int_ge(wait_closed(reading, start), 0);
    close(idle);
    close(reading);
    close(big);
}
END_TEST

/* dns_http_new and dns_http_route, with no loop running. */

START_TEST(address_in_use_fails_in_new)
{
    struct harness h;
    harness_init(&h);
    struct dns_http *first = NULL;
    ck_assert_int_eq(dns_http_new(&first, &h.loop, &h.addr), 0);
    struct dns_http *second = first; /* to see the failure set it to NULL */
    log_set_level(LOG_LEVEL_ERROR);
    ck_assert_int_eq(dns_http_new(&second, &h.loop, &h.addr), UV_EADDRINUSE);
    ck_assert_ptr_null(second);
    struct sockaddr_storage bad = {.ss_family = AF_UNIX};
    ck_assert_int_eq(dns_http_new(&second, &h.loop, &bad), UV_EINVAL);
    ck_assert_ptr_null(second);
    dns_http_close(first);
    dns_http_close(NULL);
    ck_assert_int_eq(uv_run(&h.loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

static void on_nothing(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    (void)res;
}

START_TEST(routes_are_checked)
{
    struct harness h;
    harness_init(&h);
    struct dns_http *http = NULL;
    ck_assert_int_eq(dns_http_new(&http, &h.loop, &h.addr), 0);
    ck_assert_int_eq(dns_http_route(http, "health", on_nothing, NULL), UV_EINVAL);
    ck_assert_int_eq(dns_http_route(http, "/a?b", on_nothing, NULL), UV_EINVAL);
    ck_assert_int_eq(dns_http_route(http, "/a", NULL, NULL), UV_EINVAL);
    char long_path[DNS_HTTP_MAX_PATH + 2];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    ck_assert_int_eq(dns_http_route(http, long_path, on_nothing, NULL), UV_EINVAL);
    long_path[DNS_HTTP_MAX_PATH] = '\0';
    ck_assert_int_eq(dns_http_route(http, long_path, on_nothing, NULL), 0);
    ck_assert_int_eq(dns_http_route(http, long_path, on_nothing, NULL), UV_EEXIST);
    for (int i = 1; i < DNS_HTTP_MAX_ROUTES; i++) {
        char path[16];
        snprintf(path, sizeof(path), "/r%d", i);
        ck_assert_int_eq(dns_http_route(http, path, on_nothing, NULL), 0);
    }
    ck_assert_int_eq(dns_http_route(http, "/one-too-many", on_nothing, NULL), UV_ENOSPC);
    dns_http_close(http);
    ck_assert_int_eq(uv_run(&h.loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

/* dns_http_printf. */

START_TEST(printf_grows_the_body)
{
    struct dns_http_response res = {.status = 200};
    ck_assert_int_eq(dns_http_printf(&res, "%s", ""), 0);
    ck_assert_uint_eq(res.len, 0);
    ck_assert_int_eq(dns_http_printf(&res, "a=%d\n", 1), 0);
    ck_assert_str_eq(res.body, "a=1\n");
    char expect[8192] = "a=1\n";
    size_t len = 4;
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(dns_http_printf(&res, "line %d\n", i), 0);
        len += (size_t)snprintf(expect + len, sizeof(expect) - len, "line %d\n", i);
    }
    ck_assert_uint_eq(res.len, len);
    ck_assert_uint_gt(res.cap, res.len);
    ck_assert_str_eq(res.body, expect);
    char wide[1000];
    memset(wide, 'x', sizeof(wide) - 1);
    wide[sizeof(wide) - 1] = '\0';
    ck_assert_int_eq(dns_http_printf(&res, "%s", wide), 0); /* more than doubling at once */
    ck_assert_uint_eq(res.len, len + sizeof(wide) - 1);
    ck_assert_uint_eq(strlen(res.body), res.len);
    ck_assert(!res.failed);
    free(res.body);
}
END_TEST

/* The parser. */

static const struct parse_case {
    const char *text;
    int result;
    const char *method, *path;
    size_t header_end; /* 0: the whole text */
} parse_cases[] = {
    {"GET / HTTP/1.1\r\n\r\n", 1, "GET", "/", 0},
    {"HEAD /health HTTP/1.0\r\nHost: a\r\nAccept: */*\r\n\r\n", 1, "HEAD", "/health", 0},
    {"GET /metrics?name[]=a HTTP/1.1\n\n", 1, "GET", "/metrics", 0},
    {"GET /a#frag HTTP/1.1\r\n\r\n", 1, "GET", "/a", 0},
    {"GET /a HTTP/1.1\r\n\n", 1, "GET", "/a", 0},
    {"GET /a HTTP/1.1\nX: y\r\n\r\nbody", 1, "GET", "/a", 24},
    {"GET HTTP://Host:80/p/q?r HTTP/1.1\r\n\r\n", 1, "GET", "/p/q", 0},
    {"GET https://host HTTP/1.1\r\n\r\n", 1, "GET", "/", 0},
    {"GET http://host?x HTTP/1.1\r\n\r\n", 1, "GET", "/", 0},
    {"OPTIONS * HTTP/1.1\r\n\r\n", 1, "OPTIONS", "*", 0},
    {"PROPFIND /x HTTP/1.1\r\n\r\n", 1, "PROPFIN", "/x", 0},
    {"GET /a HTTP/1.9\r\n\r\n", 1, "GET", "/a", 0},
    {"", 0, NULL, NULL, 0},
    {"GET", 0, NULL, NULL, 0},
    {"GET /health", 0, NULL, NULL, 0},
    {"GET /health HTTP/1.", 0, NULL, NULL, 0},
    {"GET /health HTTP/1.1\r", 0, NULL, NULL, 0},
    {"GET /health HTTP/1.1\r\nHost: x\r\n", 0, NULL, NULL, 0},
    {"GET /health HTTP/1.1\r\nHost: x\r\n\r", 0, NULL, NULL, 0},
    {" GET / HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET  / HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET / HTTP/1.1 \r\n\r\n", -1, NULL, NULL, 0},
    {"GET / HTTP/2.0\r\n\r\n", -1, NULL, NULL, 0},
    {"GET / http/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET /\r\n\r\n", -1, NULL, NULL, 0},
    {"GET / HTTP/1.1\rX\n\r\n", -1, NULL, NULL, 0},
    {"GET health HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET ftp://h/ HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET /a\tb HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"G(T / HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0},
    {"\x16\x03\x01", -1, NULL, NULL, 0},
};

START_TEST(parse_cases_table)
{
    const struct parse_case *tc = &parse_cases[_i];
    size_t len = strlen(tc->text);
    struct dns_http_request req;
    ck_assert_int_eq(dns_http_parse_request(tc->text, len, &req), tc->result);
    if (tc->result == 1) {
        ck_assert_str_eq(req.method, tc->method);
        ck_assert_str_eq(req.path, tc->path);
        ck_assert_uint_eq(req.header_end, tc->header_end ? tc->header_end : len);
    }
}
END_TEST

/* Bytes arrive in any split: every proper prefix of a complete request needs more. */
START_TEST(parse_prefixes_need_more)
{
    static const char text[] = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n";
    struct dns_http_request req;
    for (size_t len = 0; len < sizeof(text) - 1; len++)
        ck_assert_msg(dns_http_parse_request(text, len, &req) == 0, "prefix %zu", len);
    ck_assert_int_eq(dns_http_parse_request(text, sizeof(text) - 1, &req), 1);
}
END_TEST

START_TEST(parse_limits_the_path)
{
    char text[DNS_HTTP_MAX_PATH + 64];
    struct dns_http_request req;
    for (size_t plen = DNS_HTTP_MAX_PATH; plen <= DNS_HTTP_MAX_PATH + 1; plen++) {
        memset(text, 'a', sizeof(text));
        memcpy(text, "GET /", 5);
        int n = snprintf(text + 4 + plen, sizeof(text) - 4 - plen, "?q HTTP/1.1\r\n\r\n");
        int r = dns_http_parse_request(text, 4 + plen + (size_t)n, &req);
        ck_assert_int_eq(r, plen == DNS_HTTP_MAX_PATH ? 1 : -1);
        if (r == 1)
            ck_assert_uint_eq(strlen(req.path), DNS_HTTP_MAX_PATH);
    }
}
END_TEST

Suite *http_suite(void); /* for tests/dns/main.c */
Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *parse = tcase_create("parse");
    tcase_add_loop_test(parse, parse_cases_table, 0,
                        (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
    tcase_add_test(parse, parse_prefixes_need_more);
    tcase_add_test(parse, parse_limits_the_path);
    tcase_add_test(parse, printf_grows_the_body);
    suite_add_tcase(s, parse);

    TCase *serve = tcase_create("serve");
    tcase_add_loop_test(serve, request_gets_exact_response, 0,
                        (int)(sizeof(exchanges) / sizeof(exchanges[0])));
    tcase_add_test(serve, request_in_pieces_is_served);
    tcase_add_test(serve, half_close_after_request_is_answered);
    tcase_add_test(serve, large_body_is_sent_whole);
    tcase_add_test(serve, oversized_request_gets_431_and_is_closed);
    tcase_add_test(serve, request_of_exactly_the_cap_is_served);
    suite_add_tcase(s, serve);

    TCase *life = tcase_create("lifetime");
    /* The silent client's deferral and read deadline take 3 s; Check's default is 4 s. */
    tcase_set_timeout(life, 15);
    tcase_add_test(life, silent_and_half_requests_are_closed_at_the_deadline);
    tcase_add_test(life, newcomer_at_the_limit_evicts_the_oldest_partial_request);
    tcase_add_test(life, newcomer_evicts_the_oldest_lingering_when_none_is_reading);
    tcase_add_test(life, newcomer_is_closed_when_every_connection_is_writing);
    tcase_add_test(life, probe_in_a_burst_is_answered_before_it_can_be_evicted);
    tcase_add_test(life, close_ends_open_connections);
    tcase_add_test(life, close_completes_in_one_loop_iteration);
    tcase_add_test(life, address_in_use_fails_in_new);
    tcase_add_test(life, routes_are_checked);
    suite_add_tcase(s, life);
    return s;
}
