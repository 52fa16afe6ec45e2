/* dns/http.h - a small HTTP/1.0 and 1.1 server for /health, /ready and /metrics, on a libuv loop.
 *
 * GET and HEAD on exact paths, one response per connection, always with Content-Length and
 * Connection: close. It knows nothing of DNS: main.c registers routes whose handlers write the
 * body. Everything runs on the one loop it is given, with no threads: its counts (open
 * connections, accepts per iteration) are that loop's alone and need no atomics. Idle and slow
 * clients cannot lock out a probe: when full, a new connection evicts an older one (dns/http.c). */
#ifndef DNS_HTTP_H
#define DNS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <uv.h>

#define DNS_HTTP_MAX_ROUTES 8
/* Open connections. Past it a new one evicts the oldest without a complete request, else the
 * oldest whose response is sent; it is closed at once only if all are writing a response. */
#define DNS_HTTP_MAX_CONNS 64
#define DNS_HTTP_MAX_REQUEST 4096 /* request line and headers; past it 431 and close */
#define DNS_HTTP_READ_MS 2000     /* from accept to the end of the headers, else closed */
/* The kernel hands a connection over with its first bytes, or after about this if none come
 * (TCP_DEFER_ACCEPT), so a silent client is closed DNS_HTTP_READ_MS after that. */
#define DNS_HTTP_DEFER_MS 1000
#define DNS_HTTP_MAX_PATH 255

struct dns_http;

struct dns_http_response {
    int status;               /* 200 unless the handler changes it; 200..599 */
    const char *content_type; /* read once the handler returns; a literal is simplest */
    char *body;               /* owned by the server, grown by dns_http_printf() */
    size_t len, cap;
    bool failed; /* an append ran out of memory: the server answers 500 instead */
};

/* Appends printf-style text to the body (grows it; returns -1 if out of memory, and then
 * sets res->failed). The body stays NUL-terminated. */
int dns_http_printf(struct dns_http_response *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes the response for a GET or HEAD (a HEAD sends only the headers, with the body's
 * Content-Length). res->status defaults to 200, content_type to "text/plain; charset=utf-8".
 * Runs on the loop's thread, so it must not block. */
typedef void (*dns_http_handler_fn)(void *ctx, struct dns_http_response *res);

/* Binds and listens on addr (IPv4 or IPv6). Returns 0, or a negative errno (UV_EADDRINUSE...)
 * after logging the address and a hint; *out is then NULL. The socket is bound before libuv
 * sees it, so a bind or listen failure leaves nothing on the loop; only if libuv then refuses
 * the socket is a handle left that the loop frees when it runs. The process must ignore
 * SIGPIPE (main.c does): libuv writes to a peer that may have reset. */
int dns_http_new(struct dns_http **out, uv_loop_t *loop, const struct sockaddr_storage *addr);
/* Exact path match, the query string ignored; up to DNS_HTTP_MAX_ROUTES routes. The path is
 * copied; ctx is kept until dns_http_close(). 0, UV_EINVAL (path not "/..." or too long),
 * UV_EEXIST or UV_ENOSPC. */
int dns_http_route(struct dns_http *http, const char *path, dns_http_handler_fn fn, void *ctx);
/* Closes the listener and every connection; *http is freed in the last close callback, so the
 * loop must run after this (dns_server_free does). NULL is a no-op. */
void dns_http_close(struct dns_http *http);

/* The request parser, exposed for the fuzzer and the tests. */
struct dns_http_request {
    char method[8];    /* NUL-terminated; a longer method is cut to 7 bytes, so never GET/HEAD */
    char path[256];    /* origin path without query or fragment, not percent-decoded */
    size_t header_end; /* bytes up to and including the blank line after the headers */
};

/* Parses a request line (METHOD SP TARGET SP HTTP/1.x, CRLF or LF) and scans the headers for
 * their end (an empty line). Returns 1 when complete, 0 when more bytes are needed, -1 when
 * what is there can never become a valid request (also a path over DNS_HTTP_MAX_PATH). The
 * target is origin-form ("/p?q"), absolute-form ("http://host/p") or "*". */
int dns_http_parse_request(const char *buf, size_t len, struct dns_http_request *out);

#endif
