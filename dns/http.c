/* dns/http.c - the listener, its connections, the request parser and the response writer.
 *
 * A connection lives in one struct with its TCP and timer handles and a 4 KiB request buffer.
 * It reads until the headers end, runs the route's handler, writes the response with one
 * uv_write() and then lingers: it sends FIN and discards input until the peer closes, because
 * closing a socket with unread input sends RST, and an RST can destroy the response before
 * the client reads it (a rejected 5 KiB request leaves exactly such input behind).
 *
 * Probes first. Anyone who can reach the port could otherwise fill it with idle, trickling or
 * never-closed connections and make kubelet's probes fail, so a full server makes room instead
 * of turning a newcomer away. The newcomer evicts the oldest connection that has no complete
 * request yet, else the oldest lingering one (its response is already in the kernel); one still
 * writing its response is never evicted, and only when all of them are is the newcomer closed.
 * A probe must then be answered before DNS_HTTP_MAX_CONNS newer connections arrive, however
 * fast an attacker reopens what was evicted. Two things see to that. TCP_DEFER_ACCEPT has the
 * kernel hand a connection over only with its first bytes, so a probe arrives with its request,
 * however late it sent it. And after ACCEPT_BURST accepts the server pauses accepting for one
 * loop iteration, so the connections it has accepted are read first: between a probe's accept
 * and its read at most 2 * ACCEPT_BURST - 1 others are accepted, fewer than the cap.
 *
 * Invariants. At most DNS_HTTP_MAX_CONNS connections are open (not closing). A connection is
 * freed only when both its handles are closed, which libuv does at the end of the loop
 * iteration, and no iteration accepts more than ACCEPT_BURST, so at most DNS_HTTP_MAX_CONNS +
 * ACCEPT_BURST are allocated. Its timer runs for as long as it is open: the read deadline first,
 * then the send deadline, so no client holds a slot longer than their sum. The struct dns_http
 * is freed only once the listener, the spare and resume handles and every connection are
 * closed. */
#include "dns/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/log.h"
#include "dns/server.h"

/* Deferred connections wait in the kernel's SYN queue, which the backlog sizes (up to
 * net.core.somaxconn): once it is full the kernel answers with SYN cookies, which skip the
 * deferral. Under a flood on loopback, 128 overflowed at 10,000 connections a second; 1024
 * held 19,000. */
#define BACKLOG 1024
#define ACCEPT_BURST 16 /* accepts before a pause of one loop iteration; 2x stays under the cap */
#define SEND_MS 5000    /* to write the response and see the peer close; ample for /metrics */
#define HEAD_CAP 512
#define TEXT_PLAIN "text/plain; charset=utf-8"

enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGERING };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    uv_shutdown_t shutdown;
    struct dns_http *http;
    struct conn *prev, *next;
    enum conn_state state;
    int open_handles; /* tcp and timer; the struct is freed when both have closed */
    bool closing;
    bool peer_eof; /* the client half-closed after its request: close once written */
    struct dns_http_response res;
    size_t len; /* request bytes in buf */
    char head[HEAD_CAP];
    char buf[DNS_HTTP_MAX_REQUEST];
};

struct route {
    char path[DNS_HTTP_MAX_PATH + 1];
    dns_http_handler_fn fn;
    void *ctx;
};

struct dns_http {
    uv_tcp_t listener;
    uv_tcp_t spare; /* accepts and closes a connection over the limit without malloc */
    struct route routes[DNS_HTTP_MAX_ROUTES];
    size_t n_routes;
    uv_idle_t resume;  /* accepts again after a full burst, one loop iteration later */
    struct conn conns; /* sentinel of the connections, oldest first */
    unsigned n_conns;  /* allocated, closing or not */
    unsigned n_open;   /* not closing: at most DNS_HTTP_MAX_CONNS */
    unsigned burst;    /* accepted since the last pause */
    bool closing;
    bool listener_closed;
    bool resume_closed;
    bool spare_busy;
    bool accept_pending; /* a connection waits in the listener: see on_resume, on_spare_closed */
};

static void accept_one(struct dns_http *http);

/* The parser. Each step returns 1 (done, *i advanced), 0 (need more) or -1 (malformed). */

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* CRLF or a bare LF, which RFC 9112 §2.2 lets a server accept. */
static int parse_eol(const char *buf, size_t len, size_t *i)
{
    if (*i == len)
        return 0;
    if (buf[*i] == '\n') {
        (*i)++;
        return 1;
    }
    if (buf[*i] != '\r')
        return -1;
    if (*i + 1 == len)
        return 0;
    if (buf[*i + 1] != '\n')
        return -1;
    *i += 2;
    return 1;
}

static int parse_method(const char *buf, size_t len, size_t *i, struct dns_http_request *out)
{
    size_t start = *i;
    size_t n = 0;
    while (*i < len && is_tchar((unsigned char)buf[*i])) {
        if (n < sizeof(out->method) - 1)
            out->method[n++] = buf[*i];
        (*i)++;
    }
    out->method[n] = '\0';
    if (*i == len)
        return 0;
    if (*i == start || buf[*i] != ' ')
        return -1;
    (*i)++;
    return 1;
}

/* Skips "http://host:port" of an absolute-form target (RFC 9112 §3.2.2), which a server must
 * accept; returns t itself when there is no such scheme. */
static const char *skip_scheme_and_authority(const char *t, const char *end)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
        size_t n = strlen(schemes[k]);
        if ((size_t)(end - t) < n || strncasecmp(t, schemes[k], n) != 0)
            continue;
        t += n;
        while (t < end && *t != '/' && *t != '?' && *t != '#')
            t++;
        return t;
    }
    return t;
}

static int set_path(const char *t, size_t n, struct dns_http_request *out)
{
    const char *end = t + n;
    if (n == 1 && *t == '*') { /* asterisk-form, for OPTIONS: it gets 405 rather than 400 */
        memcpy(out->path, "*", 2);
        return 1;
    }
    if (*t != '/') {
        const char *p = skip_scheme_and_authority(t, end);
        if (p == t)
            return -1;
        t = p;
        if (t == end || *t != '/') { /* "http://host" and "http://host?q" mean "/" */
            memcpy(out->path, "/", 2);
            return 1;
        }
    }
    const char *stop = t;
    while (stop < end && *stop != '?' && *stop != '#')
        stop++;
    size_t plen = (size_t)(stop - t);
    if (plen > DNS_HTTP_MAX_PATH)
        return -1;
    memcpy(out->path, t, plen);
    out->path[plen] = '\0';
    return 1;
}

static int parse_target(const char *buf, size_t len, size_t *i, struct dns_http_request *out)
{
    size_t start = *i;
    while (*i < len && (unsigned char)buf[*i] > ' ' && (unsigned char)buf[*i] < 0x7f)
        (*i)++;
    if (*i == len)
        return 0;
    if (*i == start || buf[*i] != ' ')
        return -1;
    (*i)++;
    return set_path(buf + start, *i - 1 - start, out);
}

static int parse_version(const char *buf, size_t len, size_t *i)
{
    static const char prefix[] = "HTTP/1.";
    for (size_t k = 0; k < sizeof(prefix) - 1; k++, (*i)++) {
        if (*i == len)
            return 0;
        if (buf[*i] != prefix[k])
            return -1;
    }
    if (*i == len)
        return 0;
    if (buf[*i] < '0' || buf[*i] > '9')
        return -1;
    (*i)++;
    return parse_eol(buf, len, i);
}

/* Headers are not interpreted (no Host routing, no keep-alive, no body), only skipped. */
static int skip_headers(const char *buf, size_t len, size_t *i)
{
    for (;;) {
        int r = parse_eol(buf, len, i);
        if (r != -1)
            return r; /* an empty line ends them, or it may still come */
        const char *nl = memchr(buf + *i, '\n', len - *i);
        if (nl == NULL)
            return 0;
        *i = (size_t)(nl - buf) + 1;
    }
}

int dns_http_parse_request(const char *buf, size_t len, struct dns_http_request *out)
{
    size_t i = 0;
    int r;
    memset(out, 0, sizeof(*out));
    if ((r = parse_method(buf, len, &i, out)) != 1)
        return r;
    if ((r = parse_target(buf, len, &i, out)) != 1)
        return r;
    if ((r = parse_version(buf, len, &i)) != 1)
        return r;
    if ((r = skip_headers(buf, len, &i)) != 1)
        return r;
    out->header_end = i;
    return 1;
}

/* Responses. */

int dns_http_printf(struct dns_http_response *res, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = res->cap - res->len;
        int n = vsnprintf(res->body ? res->body + res->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            break;
        if ((size_t)n < room) {
            res->len += (size_t)n;
            return 0;
        }
        /* Too small: grow to fit (at least doubling, so a long /metrics appends in O(n)) and
         * format again. The second attempt always fits. */
        size_t need = res->len + (size_t)n + 1;
        size_t cap = res->cap * 2 > need ? res->cap * 2 : need;
        if (cap < 256)
            cap = 256;
        char *body = realloc(res->body, cap);
        if (body == NULL)
            break;
        res->body = body;
        res->cap = cap;
    }
    if (res->body != NULL)
        res->body[res->len] = '\0'; /* a truncated attempt may have written past len */
    res->failed = true;
    return -1;
}

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } reasons[] = {
        {200, "OK"},
        {204, "No Content"},
        {400, "Bad Request"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
    };
    for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++) {
        if (reasons[k].status == status)
            return reasons[k].text;
    }
    return ""; /* the reason phrase may be empty (RFC 9112 §4) */
}

static void on_conn_closed(uv_handle_t *handle);

/* reset: end with RST rather than FIN (see evict()). */
static void conn_close(struct conn *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = true;
    c->http->n_open--;
    /* Cancels a pending write or shutdown: their callbacks run first, see closing and stop. */
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *timer)
{
    conn_close(timer->data, false);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0)
        conn_close(c, false);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0 || c->peer_eof) {
        conn_close(c, false);
        return;
    }
    /* FIN tells an HTTP/1.0 client reading to EOF that the response is complete; its own
     * close then ends the linger (on_read sees EOF). */
    c->state = CONN_LINGERING;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c, false);
}

/* Formats the status line and headers into c->head; the length, or -1 if they do not fit. */
static int format_head(struct conn *c, int status, const char *type)
{
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason(status), type, c->res.len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    return n < 0 || (size_t)n >= sizeof(c->head) ? -1 : n;
}

/* Writes head and body with one uv_write. The body must live until on_write: it is
 * c->res.body, freed with the connection. */
static void send_response(struct conn *c, int status, const char *type, bool head_only)
{
    int n = format_head(c, status, type);
    if (n < 0) {
        /* Only a handler's absurd content type gets here: a bug, but the client gets an
         * answer. This one always fits. */
        c->res.len = 0;
        n = format_head(c, 500, TEXT_PLAIN);
    }
    uv_buf_t bufs[2] = {{.base = c->head, .len = (size_t)n},
                        {.base = c->res.body, .len = c->res.len}};
    unsigned nbufs = head_only || c->res.len == 0 ? 1 : 2;
    c->state = CONN_WRITING;
    c->write.data = c;
    uv_timer_start(&c->timer, on_timeout, SEND_MS, 0);
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) != 0)
        conn_close(c, false);
}

static void send_error(struct conn *c, int status, bool head_only)
{
    c->res.len = 0;
    dns_http_printf(&c->res, "%s\n", reason(status)); /* no body if out of memory: still fine */
    send_response(c, status, TEXT_PLAIN, head_only);
}

static const struct route *find_route(const struct dns_http *http, const char *path)
{
    for (size_t k = 0; k < http->n_routes; k++) {
        if (strcmp(http->routes[k].path, path) == 0)
            return &http->routes[k];
    }
    return NULL;
}

static void dispatch(struct conn *c, const struct dns_http_request *req)
{
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!head && strcmp(req->method, "GET") != 0) {
        send_error(c, 405, false);
        return;
    }
    const struct route *route = find_route(c->http, req->path);
    if (route == NULL) {
        send_error(c, 404, head);
        return;
    }
    c->res.status = 200;
    c->res.content_type = TEXT_PLAIN;
    route->fn(route->ctx, &c->res);
    if (c->res.failed || c->res.status < 200 || c->res.status > 599) {
        send_error(c, 500, head);
        return;
    }
    send_response(c, c->res.status, c->res.content_type ? c->res.content_type : TEXT_PLAIN, head);
}

/* Connections. */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = handle->data;
    /* Once the request is read, later input (a body, a pipelined request) is discarded into
     * the whole buffer; the response does not point into it. */
    size_t used = c->state == CONN_READING ? c->len : 0;
    buf->base = c->buf + used;
    buf->len = sizeof(c->buf) - used;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->state == CONN_WRITING) {
            uv_read_stop(stream); /* a half-close after the request: still answer it */
            c->peer_eof = true;
            return;
        }
        conn_close(c, false);
        return;
    }
    if (c->state != CONN_READING)
        return;
    c->len += (size_t)nread;
    struct dns_http_request req;
    int r = dns_http_parse_request(c->buf, c->len, &req);
    if (r == 1)
        dispatch(c, &req);
    else if (r < 0)
        send_error(c, 400, false);
    else if (c->len == sizeof(c->buf))
        send_error(c, 431, false);
}

static void maybe_free(struct dns_http *http)
{
    if (http->closing && http->listener_closed && http->resume_closed && !http->spare_busy &&
        http->n_conns == 0)
        free(http);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    if (--c->open_handles > 0)
        return;
    struct dns_http *http = c->http;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    http->n_conns--;
    free(c->res.body);
    free(c);
    maybe_free(http);
}

static void on_spare_closed(uv_handle_t *handle)
{
    struct dns_http *http = handle->data;
    http->spare_busy = false;
    if (http->accept_pending && !http->closing && !uv_is_active((uv_handle_t *)&http->resume)) {
        http->accept_pending = false;
        accept_one(http);
    }
    maybe_free(http);
}

static void on_extra_closed(uv_handle_t *handle)
{
    free(handle);
}

/* Accepts and closes at once. libuv stops watching the listener until a pending connection
 * is accepted, so one must be, even when a second handle cannot be had right now. */
static void reject(struct dns_http *http)
{
    uv_tcp_t *tcp = http->spare_busy ? malloc(sizeof(*tcp)) : &http->spare;
    if (tcp == NULL) {
        http->accept_pending = true; /* on_spare_closed() comes back for it */
        return;
    }
    uv_tcp_init(http->listener.loop, tcp);
    tcp->data = http;
    uv_accept((uv_stream_t *)&http->listener, (uv_stream_t *)tcp);
    if (tcp == &http->spare) {
        http->spare_busy = true;
        uv_close((uv_handle_t *)tcp, on_spare_closed);
    } else {
        uv_close((uv_handle_t *)tcp, on_extra_closed);
    }
}

/* Makes room for a newcomer; false when every connection is writing its response. */
static bool evict(struct dns_http *http)
{
    struct conn *lingering = NULL;
    for (struct conn *c = http->conns.next; c != &http->conns; c = c->next) {
        if (c->closing)
            continue;
        if (c->state == CONN_READING) {
            /* Nothing was promised to it, so RST rather than FIN: an attacker who reopens as
             * fast as we evict leaves no TIME_WAIT or FIN_WAIT2 sockets behind on our side. */
            conn_close(c, true);
            return true;
        }
        if (c->state == CONN_LINGERING && lingering == NULL)
            lingering = c;
    }
    if (lingering == NULL)
        return false;
    /* Its response is in the kernel, which still delivers it after the close; a FIN is
     * already sent, and the close is a plain one so nothing unread turns it into an RST. */
    conn_close(lingering, false);
    return true;
}

static void accept_one(struct dns_http *http)
{
    http->burst++;
    struct conn *c = NULL;
    if (http->n_open < DNS_HTTP_MAX_CONNS || evict(http))
        c = calloc(1, sizeof(*c));
    if (c == NULL) {
        reject(http);
        return;
    }
    uv_loop_t *loop = http->listener.loop;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->http = http;
    c->open_handles = 2;
    c->next = &http->conns;
    c->prev = http->conns.prev;
    http->conns.prev->next = c;
    http->conns.prev = c;
    http->n_conns++;
    http->n_open++;
    if (uv_accept((uv_stream_t *)&http->listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c, false);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, DNS_HTTP_READ_MS, 0);
}

/* One loop iteration after a full burst: the connections accepted so far have had their
 * turn to be read, so a probe among them is answered before newer ones can evict it. */
static void on_resume(uv_idle_t *idle)
{
    struct dns_http *http = idle->data;
    uv_idle_stop(idle);
    http->burst = 0;
    if (http->accept_pending && !http->spare_busy) {
        http->accept_pending = false;
        accept_one(http);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct dns_http *http = listener->data;
    /* An accept error (EMFILE...) leaves no connection to serve or close; libuv keeps
     * listening, and a log line here would come once per attempt. */
    if (status != 0)
        return;
    if (http->burst < ACCEPT_BURST) {
        accept_one(http);
        return;
    }
    /* Leaving the connection in the listener makes libuv stop watching it until uv_accept(),
     * which on_resume() calls after this iteration's reads. An active idle handle keeps the
     * next poll from blocking. */
    http->accept_pending = true;
    uv_idle_start(&http->resume, on_resume);
}

/* The listener. */

static const char *listen_hint(int err)
{
    switch (err) {
    case UV_EADDRINUSE:
        return "address in use: is another svcdns or exporter on this port? choose another port";
    case UV_EACCES:
    case UV_EPERM:
        return "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1023";
    case UV_EADDRNOTAVAIL:
        return "no local interface has this address: check the address";
    case UV_EAFNOSUPPORT:
        return "this address family is disabled on the host (IPv6 off?): check the address";
    default:
        return "check the address";
    }
}

/* Socket, bind and listen by hand, so a failure happens before a libuv handle exists and
 * leaves nothing for the caller's loop to close. */
static int listen_socket(const struct sockaddr_storage *addr, int *out)
{
    socklen_t alen;
    if (addr->ss_family == AF_INET)
        alen = sizeof(struct sockaddr_in);
    else if (addr->ss_family == AF_INET6)
        alen = sizeof(struct sockaddr_in6);
    else
        return UV_EINVAL;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* The kernel hands a connection over with its first bytes, so a probe arrives with its
     * request (see the top of the file). Best effort: without it, only a probe slow to send
     * its request after connecting can be evicted, and only under a flood of connections. */
    int defer = DNS_HTTP_DEFER_MS / 1000; /* seconds */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    int one = 1;
    /* A restart must not wait for the last run's connections in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)addr, alen) != 0 || listen(fd, BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

static void on_listener_closed(uv_handle_t *handle)
{
    struct dns_http *http = handle->data;
    http->listener_closed = true;
    maybe_free(http);
}

static void on_resume_closed(uv_handle_t *handle)
{
    struct dns_http *http = handle->data;
    http->resume_closed = true;
    maybe_free(http);
}

int dns_http_new(struct dns_http **out, uv_loop_t *loop, const struct sockaddr_storage *addr)
{
    char text[INET6_ADDRSTRLEN + 16];
    *out = NULL;
    int fd = -1;
    int err = listen_socket(addr, &fd);
    struct dns_http *http = NULL;
    if (err == 0 && (http = calloc(1, sizeof(*http))) == NULL) {
        close(fd);
        err = UV_ENOMEM;
    }
    if (err != 0)
        goto fail;
    http->conns.next = &http->conns;
    http->conns.prev = &http->conns;
    uv_idle_init(loop, &http->resume);
    http->resume.data = http;
    uv_tcp_init(loop, &http->listener);
    http->listener.data = http;
    if ((err = uv_tcp_open(&http->listener, fd)) != 0)
        close(fd); /* not adopted: still ours */
    else
        err = uv_listen((uv_stream_t *)&http->listener, BACKLOG, on_connection);
    if (err != 0) {
        /* Not expected once bound; the handle exists now, so it is freed when it closes. */
        dns_http_close(http);
        goto fail;
    }
    *out = http;
    return 0;
fail:
    dns_addr_format(addr, text, sizeof(text));
    log_error("http", "listen=%s error=\"%s\" hint=\"%s\"", text, uv_strerror(err),
              listen_hint(err));
    return err;
}

int dns_http_route(struct dns_http *http, const char *path, dns_http_handler_fn fn, void *ctx)
{
    size_t len = strlen(path);
    if (path[0] != '/' || len > DNS_HTTP_MAX_PATH || strpbrk(path, "?#") != NULL || fn == NULL)
        return UV_EINVAL;
    if (find_route(http, path) != NULL)
        return UV_EEXIST;
    if (http->n_routes == DNS_HTTP_MAX_ROUTES)
        return UV_ENOSPC;
    struct route *r = &http->routes[http->n_routes++];
    memcpy(r->path, path, len + 1);
    r->fn = fn;
    r->ctx = ctx;
    return 0;
}

void dns_http_close(struct dns_http *http)
{
    if (http == NULL || http->closing)
        return;
    http->closing = true;
    uv_close((uv_handle_t *)&http->listener, on_listener_closed);
    uv_close((uv_handle_t *)&http->resume, on_resume_closed);
    for (struct conn *c = http->conns.next; c != &http->conns; c = c->next)
        conn_close(c, false);
}
