/* dns/tcp.c - DNS over TCP (RFC 7766): connections, framing, timeouts and the connection cap.
 *
 * Each message is preceded by its 2-byte length; a client may pipeline, and we answer in the
 * order answers complete (clients match by ID). A connection's read buffer is a request slot,
 * taken only while bytes wait to be framed, so idle connections hold no slot.
 *
 * Invariant: a connection is freed only when both its handles are closed and none of its
 * requests is in flight, so a reply that completes after the client left finds the
 * connection still allocated, sees it closing and is discarded. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns/frame.h"
#include "dns/log.h"
#include "dns/wire.h"
#include "dns/worker.h"

#define WARN_EVERY_MS 10000 /* at most one accept warning per worker this often */

_Static_assert(DNS_SLOT_BUF >= DNS_FRAME_MAX, "a connection's read buffer holds a whole frame");

static void conn_pump(struct conn *c);

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct worker *w;
    struct link link;    /* in worker.open, least recently active first, or worker.closing */
    struct link starved; /* in worker.starved while it waits for a free slot */
    struct slot *rd;     /* bytes received and not yet framed: rd->query[rd_off, rd_len) */
    size_t rd_off, rd_len;
    unsigned inflight; /* queries given to the chain whose reply is not written yet */
    unsigned refs;     /* one per open handle plus inflight; freed at zero */
    bool closing, reading, eof, in_pump, is_starved, partial_timer;
    struct sockaddr_storage peer, local;
};

static void conn_unref(struct conn *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0)
        return;
    link_remove(&c->link);
    free(c);
}

static void on_conn_closed(uv_handle_t *handle)
{
    conn_unref(handle->data);
}

static void conn_release_rd(struct conn *c)
{
    if (c->rd != NULL) {
        struct slot *rd = c->rd;
        c->rd = NULL;
        c->rd_off = 0;
        c->rd_len = 0;
        dns_worker_slot_put(rd);
    }
}

/* Closing drops the connection from the open list at once, so its place under
 * tcp_max_conns is free; the memory waits for the handles and any request in flight. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    struct worker *w = c->w;
    c->closing = true;
    link_remove(&c->link);
    link_push(&w->closing, &c->link);
    w->n_open--;
    if (c->is_starved) {
        c->is_starved = false;
        link_remove(&c->starved);
    }
    conn_release_rd(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void conn_touch(struct conn *c)
{
    link_remove(&c->link);
    link_push(&c->w->open, &c->link);
}

static void conn_starve(struct conn *c)
{
    if (!c->is_starved) {
        c->is_starved = true;
        link_push(&c->w->starved, &c->starved);
    }
}

/* At the connection cap the least recently active connection with nothing in flight and
 * nothing buffered makes room (RFC 7766 §6.2.3 lets a server close idle connections). */
static bool conn_evict_idle(struct worker *w)
{
    for (struct link *l = w->open.next; l != &w->open; l = l->next) {
        struct conn *c = CONTAINER_OF(l, struct conn, link);
        if (c->inflight == 0 && c->rd == NULL) {
            conn_close(c);
            return true;
        }
    }
    return false;
}

void dns_tcp_on_wake(uv_idle_t *idle)
{
    struct worker *w = idle->data;
    while (!link_is_empty(&w->starved) && w->free_slots != NULL && w->tcp_slots < w->tcp_slot_cap) {
        struct conn *c = CONTAINER_OF(w->starved.next, struct conn, starved);
        c->is_starved = false;
        link_remove(&c->starved);
        conn_pump(c);
    }
    if (link_is_empty(&w->starved) || w->free_slots == NULL || w->tcp_slots >= w->tcp_slot_cap)
        uv_idle_stop(idle);
}

/* TCP connections: framing. RFC 7766: each message is preceded by its 2-byte length; a client
 * may pipeline, and we answer in the order answers complete (clients match by ID). */

static size_t conn_buffered(const struct conn *c)
{
    return c->rd != NULL ? c->rd_len - c->rd_off : 0;
}

/* The length of the complete frame at the head of the buffer, or 0 if there is none. */
static size_t conn_frame_ready(const struct conn *c)
{
    size_t len = 0;
    if (c->rd == NULL ||
        dns_frame_head(c->rd->query + c->rd_off, conn_buffered(c), &len) != DNS_FRAME_READY)
        return 0;
    return len;
}

static void tcp_send(struct dns_request *req);
static void on_conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_conn_timeout(uv_timer_t *timer);

static void conn_dispatch(struct conn *c, size_t len)
{
    struct slot *s;
    if (c->rd_off == 0 && c->rd_len == 2 + len) {
        /* The buffer holds exactly this query (the usual case): it becomes the request. */
        s = c->rd;
        c->rd = NULL;
        c->rd_len = 0;
    } else {
        s = dns_worker_slot_get(c->w, true);
        if (s == NULL) {
            conn_starve(c);
            return;
        }
        memcpy(s->query + 2, c->rd->query + c->rd_off + 2, len);
        c->rd_off += 2 + len;
    }
    /* A whole message arrived: the read deadline starts afresh for the next one, so a busy
     * pipelining client whose messages straddle reads is never cut off. */
    c->partial_timer = false;
    s->conn = c;
    c->refs++;
    c->inflight++;
    dns_worker_request_init(s, s->query + 2, len, DNS_PROTO_TCP, (const struct sockaddr *)&c->peer,
                            &c->local, tcp_send);
    dns_chain_handle(c->w->chain, &s->req);
}

/* Reading stops while a complete query waits (at the in-flight cap or for a slot), so the
 * kernel's window pushes back on the client instead of our memory filling up. */
static void conn_set_reading(struct conn *c, bool want)
{
    if (want == c->reading)
        return;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

/* Settles reading and the timer after anything happened. A partial message must complete
 * within tcp_read_ms of its first byte, progress or not (slowloris); otherwise the
 * connection may stay tcp_idle_ms without activity. The idle timer also runs while queries
 * are in flight, which bounds a client that stops reading its replies. */
static void conn_update(struct conn *c)
{
    const struct dns_server_config *cfg = &c->w->srv->cfg;
    if (c->closing)
        return;
    bool ready = conn_frame_ready(c) > 0;
    if (c->eof && c->inflight == 0 && !ready) {
        conn_close(c); /* the client is done sending and has all its answers */
        return;
    }
    conn_set_reading(c, !c->eof && !c->is_starved && !ready && c->inflight < cfg->tcp_max_inflight);
    if (c->closing)
        return;
    if (conn_buffered(c) > 0 && !ready) {
        if (!c->partial_timer) {
            c->partial_timer = true;
            uv_timer_start(&c->timer, on_conn_timeout, cfg->tcp_read_ms, 0);
        }
        return;
    }
    c->partial_timer = false;
    uv_timer_start(&c->timer, on_conn_timeout, cfg->tcp_idle_ms, 0);
}

/* Hands every complete query in the buffer to the chain, up to the in-flight cap. A reply
 * sent synchronously from dns_chain_handle() comes back here through tcp_done(); in_pump
 * keeps that from recursing, and the loop condition sees the lower in-flight count. */
static void conn_pump(struct conn *c)
{
    unsigned cap = c->w->srv->cfg.tcp_max_inflight;
    if (c->closing || c->in_pump)
        return;
    c->in_pump = true;
    while (!c->closing && !c->is_starved && c->inflight < cap && conn_buffered(c) > 0) {
        size_t len = 0;
        enum dns_frame_state head =
            dns_frame_head(c->rd->query + c->rd_off, conn_buffered(c), &len);
        if (head == DNS_FRAME_RUNT) {
            log_debug("server", "event=tcp_close reason=runt_frame length=%zu", len);
            conn_close(c);
            break;
        }
        if (head == DNS_FRAME_PARTIAL)
            break;
        conn_dispatch(c, len);
    }
    c->in_pump = false;
    if (c->closing)
        return;
    if (conn_buffered(c) == 0)
        conn_release_rd(c); /* an idle connection holds no slot */
    conn_update(c);
}

/* The read buffer is a slot, taken only when data is ready to read, so that a thousand idle
 * connections hold no memory beyond their struct conn. */
static void on_conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = handle->data;
    if (c->rd == NULL) {
        c->rd = dns_worker_slot_get(c->w, true);
        if (c->rd == NULL) {
            *buf = uv_buf_init(NULL, 0); /* on_conn_read() gets UV_ENOBUFS */
            return;
        }
        c->rd_off = 0;
        c->rd_len = 0;
    }
    size_t room = dns_frame_compact(c->rd->query, DNS_SLOT_BUF, &c->rd_off, &c->rd_len);
    *buf = uv_buf_init((char *)c->rd->query + c->rd_len, (unsigned)room);
}

static void on_conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (nread > 0) {
        c->rd_len += (size_t)nread;
        conn_touch(c);
    } else if (nread == UV_ENOBUFS && c->rd == NULL) {
        conn_starve(c);
    } else if (nread == UV_EOF) {
        c->eof = true; /* a half-close: answer what was asked, then close */
    } else if (nread < 0) {
        conn_close(c);
        return;
    }
    conn_pump(c);
}

static void on_conn_timeout(uv_timer_t *timer)
{
    struct conn *c = timer->data;
    log_debug("server", "event=tcp_close reason=%s inflight=%u",
              c->partial_timer ? "read_timeout" : "idle_timeout", c->inflight);
    conn_close(c);
}

/* TCP replies. */

static void tcp_done(struct slot *s)
{
    struct conn *c = s->conn;
    dns_worker_slot_put(s);
    c->inflight--;
    if (!c->closing)
        conn_pump(c); /* below the cap again: read on, or close after a half-close */
    conn_unref(c);
}

static void on_tcp_written(uv_write_t *wr, int status)
{
    struct slot *s = wr->data;
    struct conn *c = s->conn;
    if (status < 0)
        conn_close(c);
    else if (!c->closing)
        conn_touch(c);
    tcp_done(s);
}

/* The length goes into the 2 bytes reserved before the reply, so prefix and message leave
 * in one write and one segment (RFC 7766 §8). A connection that closed meanwhile is not
 * written to; the reply is dropped and the slot returns to the pool. */
static void tcp_send(struct dns_request *req)
{
    struct slot *s = req->server_data;
    struct conn *c = s->conn;
    if (c->closing || req->ans_len == 0 || req->ans_len > DNS_MAX_MSG) {
        tcp_done(s);
        return;
    }
    assert(req->ans == s->reply + 2);
    dns_wire_put_u16(s->reply, (uint16_t)req->ans_len);
    uv_buf_t buf = uv_buf_init((char *)s->reply, (unsigned)(req->ans_len + 2));
    s->write.data = s;
    if (uv_write(&s->write, (uv_stream_t *)&c->tcp, &buf, 1, on_tcp_written) != 0) {
        conn_close(c);
        tcp_done(s);
    }
}

/* TCP accept. */

/* Accept trouble can repeat thousands of times a second: one line per worker per 10 s. */
static bool warn_is_due(struct worker *w)
{
    uint64_t now = uv_now(&w->loop);
    if (w->warned_ms != 0 && now - w->warned_ms < WARN_EVERY_MS)
        return false;
    w->warned_ms = now;
    return true;
}

static void warn_accept(struct worker *w, int err)
{
    if (warn_is_due(w))
        log_warn("server", "worker=%u event=accept_failed error=\"%s\"%s", w->index,
                 uv_strerror(err),
                 err == UV_EMFILE || err == UV_ENFILE ? " hint=\"raise the open file limit\"" : "");
}

static struct conn *conn_new(struct worker *w)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->refs = 2;
    link_init(&c->starved);
    link_push(&w->open, &c->link);
    w->n_open++;
    return c;
}

void dns_tcp_on_connection(uv_stream_t *listener, int status)
{
    struct worker *w = listener->data;
    if (status < 0) {
        warn_accept(w, status);
        return;
    }
    if (w->n_open >= w->srv->cfg.tcp_max_conns)
        conn_evict_idle(w);
    struct conn *c = conn_new(w);
    if (c == NULL) {
        warn_accept(w, UV_ENOMEM);
        return;
    }
    int err = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (err != 0) {
        warn_accept(w, err);
        conn_close(c);
        return;
    }
    if (w->n_open > w->srv->cfg.tcp_max_conns) {
        /* Every connection is busy: refuse the newcomer rather than cut a query short. */
        if (warn_is_due(w))
            log_warn("server", "worker=%u event=tcp_refused reason=\"all %u connections busy\"",
                     w->index, w->srv->cfg.tcp_max_conns);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* a reply must not wait for the ACK of the previous one */
    int len = sizeof(c->peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
    len = sizeof(c->local);
    uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &len);
    conn_update(c);
}

/* Workers. */

void dns_tcp_close_all(struct worker *w)
{
    while (!link_is_empty(&w->open))
        conn_close(CONTAINER_OF(w->open.next, struct conn, link));
}

void dns_tcp_free_closed(struct worker *w)
{
    /* Connections whose requests the chain abandoned at chain_free keep a reference no one
     * will drop; their handles are closed, so they are plain memory now. */
    struct link *l = w->closing.next;
    while (l != &w->closing) {
        struct link *next = l->next;
        free(CONTAINER_OF(l, struct conn, link));
        l = next;
    }
    link_init(&w->closing);
}
