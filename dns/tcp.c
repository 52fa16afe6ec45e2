/* dns/tcp.c - DNS over TCP (RFC 7766): connections, framing, timeouts and the connection cap.
 *
 * Each message is preceded by its 2-byte length; a client may pipeline, and we answer in the
 * order answers complete (clients match by ID). Bytes are read into a small buffer inside the
 * connection, and a complete query is copied into a request slot: a slot is taken by a query
 * that can run, never by a client that trickles bytes, so a flood of such clients cannot keep
 * a real query waiting. A message longer than that buffer is read into a slot of its own, and
 * at most DNS_TCP_LARGE_READS connections of a worker do that at once; the others wait, not
 * read. What unfinished messages hold is so bounded, whatever the clients send.
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

static void conn_pump(struct conn *c);

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct worker *w;
    /* In worker.fresh (in the order accepted) until a complete message arrives, then in
     * worker.open (least recently active first); worker.closing once closed. */
    struct link link;
    struct link starved; /* in worker.starved while it waits for a slot */
    /* Bytes received and not yet framed: inbuf[rd_off, rd_len), or, while the message at the
     * head is longer than inbuf, large->query[0, rd_len), which holds that message only. */
    struct slot *large;
    size_t rd_off, rd_len;
    unsigned inflight; /* queries given to the chain whose reply is not written yet */
    unsigned refs;     /* one per open handle plus inflight; freed at zero */
    bool closing, reading, eof, in_pump, is_starved, partial_timer;
    bool established; /* a complete message arrived: in worker.open */
    struct sockaddr_storage peer, local;
    uint8_t inbuf[DNS_TCP_INBUF];
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

/* Starved connections run from the idle callback, never from here: we may be deep inside
 * one's pump. */
static void wake_starved(struct worker *w)
{
    if (!link_is_empty(&w->starved) && !w->stopping)
        uv_idle_start(&w->wake, dns_tcp_on_wake);
}

/* Gives up the slot a long message was being read into. */
static void conn_drop_large(struct conn *c)
{
    if (c->large != NULL) {
        struct slot *s = c->large;
        c->large = NULL;
        c->w->large_reads--;
        dns_worker_slot_put(s);
        wake_starved(c->w);
    }
    c->rd_off = 0;
    c->rd_len = 0;
}

static void conn_unstarve(struct conn *c)
{
    if (c->is_starved) {
        c->is_starved = false;
        link_remove(&c->starved);
    }
}

/* Closing drops the connection from the open lists at once, so its place under
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
    conn_unstarve(c);
    conn_drop_large(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void conn_touch(struct conn *c)
{
    if (c->established) {
        link_remove(&c->link);
        link_push(&c->w->open, &c->link);
    }
}

static void conn_starve(struct conn *c)
{
    if (!c->is_starved) {
        c->is_starved = true;
        link_push(&c->w->starved, &c->starved);
    }
}

static size_t conn_buffered(const struct conn *c)
{
    return c->rd_len - c->rd_off;
}

static const uint8_t *conn_head(const struct conn *c)
{
    return (c->large != NULL ? c->large->query : c->inbuf) + c->rd_off;
}

/* The length of the complete frame at the head of the buffer, or 0 if there is none. */
static size_t conn_frame_ready(const struct conn *c)
{
    size_t len = 0;
    return dns_frame_head(conn_head(c), conn_buffered(c), &len) == DNS_FRAME_READY ? len : 0;
}

/* At the connection cap (RFC 7766 §6.2.3 lets a server close connections to make room): the
 * oldest connection that never completed a message goes first (one that connects and sends
 * nothing, or trickles, has no answer to lose and is the likeliest attacker), else the least
 * recently active one with nothing in flight and nothing buffered. A client with a complete
 * query is never evicted for a newcomer. */
static bool conn_evict(struct worker *w)
{
    if (!link_is_empty(&w->fresh)) {
        conn_close(CONTAINER_OF(w->fresh.next, struct conn, link));
        return true;
    }
    for (struct link *l = w->open.next; l != &w->open; l = l->next) {
        struct conn *c = CONTAINER_OF(l, struct conn, link);
        if (c->inflight == 0 && conn_buffered(c) == 0) {
            conn_close(c);
            return true;
        }
    }
    return false;
}

/* Runs the starved connections that can go on now, in the order they began to wait: one
 * with a complete query while a slot is free, one with a long message while a slot and a
 * place for it are free. Each is looked at once; one that has to wait again goes to the end.
 * The idle stops here, and a slot or place coming free starts it again. */
void dns_tcp_on_wake(uv_idle_t *idle)
{
    struct worker *w = idle->data;
    uv_idle_stop(idle);
    if (link_is_empty(&w->starved))
        return;
    struct link *end = w->starved.prev;
    for (bool last = false;
         !last && dns_worker_slot_available(w) && w->tcp_slots < w->tcp_slot_cap;) {
        struct conn *c = CONTAINER_OF(w->starved.next, struct conn, starved);
        last = &c->starved == end;
        conn_unstarve(c);
        if (conn_frame_ready(c) > 0 || w->large_reads < DNS_TCP_LARGE_READS)
            conn_pump(c);
        else
            conn_starve(c);
    }
}

static void tcp_send(struct dns_request *req);
static void on_conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_conn_timeout(uv_timer_t *timer);

/* The message at the head is longer than inbuf: it is read on into a slot of its own. Past
 * DNS_TCP_LARGE_READS such connections in the worker, or without a free slot, the connection
 * waits without reading. */
static void conn_read_large(struct conn *c)
{
    struct worker *w = c->w;
    struct slot *s = w->large_reads < DNS_TCP_LARGE_READS ? dns_worker_slot_get(w, true) : NULL;
    if (s == NULL) {
        conn_starve(c);
        return;
    }
    w->large_reads++;
    size_t n = conn_buffered(c);
    memcpy(s->query, c->inbuf + c->rd_off, n);
    s->large = true; /* its pages go back when it is free again */
    c->large = s;
    c->rd_off = 0;
    c->rd_len = n;
}

/* A whole message of len octets is at the head: it becomes a request in a slot. */
static void conn_dispatch(struct conn *c, size_t len)
{
    struct worker *w = c->w;
    struct slot *s = c->large;
    if (s != NULL) {
        /* The slot holds exactly this message: it becomes the request. */
        c->large = NULL;
        w->large_reads--;
        c->rd_off = 0;
        c->rd_len = 0;
        wake_starved(w);
    } else {
        s = dns_worker_slot_get(w, true);
        if (s == NULL) {
            conn_starve(c);
            return;
        }
        memcpy(s->query + 2, c->inbuf + c->rd_off + 2, len);
        c->rd_off += 2 + len;
        if (c->rd_off == c->rd_len) {
            c->rd_off = 0;
            c->rd_len = 0;
        }
    }
    /* A whole message arrived: the read deadline starts afresh for the next one, so a busy
     * pipelining client whose messages straddle reads is never cut off. */
    c->partial_timer = false;
    s->conn = c;
    c->refs++;
    c->inflight++;
    dns_worker_request_init(s, s->query + 2, len, DNS_PROTO_TCP, (const struct sockaddr *)&c->peer,
                            &c->local, tcp_send);
    dns_chain_handle(w->chain, &s->req);
}

/* A complete message arrived: the client is one we answer, no longer first in line for
 * eviction. */
static void conn_establish(struct conn *c)
{
    if (!c->established) {
        c->established = true;
        link_remove(&c->link);
        link_push(&c->w->open, &c->link);
    }
}

/* Reading stops while a complete query waits (at the in-flight cap or for a slot) and while a
 * long message waits for a place, so the kernel's window pushes back on the client instead of
 * our memory filling up. */
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

/* Settles reading and the timer after anything happened. While we read, a partial message
 * must complete within tcp_read_ms of its first byte, progress or not (slowloris). While we
 * do not (at the in-flight cap, or waiting for a slot), the bytes waiting are ours to take:
 * the deadline starts afresh when we read again. Otherwise the connection may stay
 * tcp_idle_ms without activity; that timer also runs while queries are in flight, which
 * bounds a client that stops reading its replies. */
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
    if (c->reading && conn_buffered(c) > 0) {
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
        enum dns_frame_state head = dns_frame_head(conn_head(c), conn_buffered(c), &len);
        if (head == DNS_FRAME_RUNT) {
            log_debug("server", "event=tcp_close reason=runt_frame length=%zu", len);
            conn_close(c);
            break;
        }
        if (head == DNS_FRAME_PARTIAL) {
            if (c->large == NULL && dns_frame_needs(conn_head(c), conn_buffered(c)) > DNS_TCP_INBUF)
                conn_read_large(c);
            break;
        }
        conn_establish(c);
        conn_dispatch(c, len);
    }
    c->in_pump = false;
    if (!c->closing)
        conn_update(c);
}

/* Into inbuf, or into the long message's slot up to that message's end, so the slot never
 * holds the start of the next one. Reading runs only while there is room (conn_update). */
static void on_conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = handle->data;
    if (c->large != NULL) {
        size_t end = dns_frame_needs(c->large->query, c->rd_len);
        *buf = uv_buf_init((char *)c->large->query + c->rd_len, (unsigned)(end - c->rd_len));
        return;
    }
    size_t room = dns_frame_compact(c->inbuf, DNS_TCP_INBUF, &c->rd_off, &c->rd_len);
    *buf = uv_buf_init((char *)c->inbuf + c->rd_len, (unsigned)room);
}

static void on_conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (nread > 0) {
        c->rd_len += (size_t)nread;
        conn_touch(c);
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
    dns_worker_slot_note_reply(s);
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
    link_push(&w->fresh, &c->link);
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
        conn_evict(w);
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
    while (!link_is_empty(&w->fresh))
        conn_close(CONTAINER_OF(w->fresh.next, struct conn, link));
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
