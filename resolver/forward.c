/* resolver/forward.c - upstream queries: sockets, tries, failover, health and loop detection.
 *
 * A parked client request becomes a waiter on a pending upstream query; identical questions
 * (name, type, class, DO) share one pending. A pending runs tries: each try has a fresh random
 * ID and a fresh connected UDP socket on a kernel-chosen port (TCP after a TC reply), and a
 * deadline. Replies count only when resolver_scrub_check() matches ID and question; anything
 * else is counted and ignored. Tries go sequentially over the healthy upstreams, starting at
 * the last one that answered, within the whole-request deadline; then every waiter gets
 * SERVFAIL with EDE 22 (all silent) or 23.
 *
 * Invariants. A pending's handles are embedded in it and the slot returns to the free list only
 * when it is finished and both transport handles have run their close callback; every try
 * starts from a callback or from serve() with nothing that can complete synchronously, so a
 * request is never resumed from inside serve(). Health is shared by all workers through
 * atomics; only the first forwarder of a shared state (the prober) sends probes. */
/* arc4random (glibc 2.36) is outside POSIX; glibc shows it with this feature macro. */
#define _DEFAULT_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp,readability-identifier-naming)

#include "resolver/forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/log.h"
#include "resolver/cache.h"
#include "resolver/scrub.h"
#include "resolver/siphash.h"
#include "resolver/upstream.h"

#define RBUF_SIZE 65536  /* one UDP datagram or one TCP message from upstream */
#define MIN_TRY_MS 50    /* no new try with less time than this left */
#define QUERY_MAX 300    /* 2 (TCP length) + 12 + 255 + 4 + 11 (OPT) */
#define ID_RING 1024     /* recent IDs not reused: birthday collisions within a burst */
#define PROBE_PENDINGS 2 /* per upstream: one health probe and one loop probe */

struct counters {
    atomic_uint_fast64_t requests, coalesced, timeouts, mismatches, malformed, refused, tcp_retries,
        edns_fallbacks;
    atomic_uint_fast64_t rcode[16];
};

struct resolver_forward_shared {
    struct resolver_forward_config cfg;
    struct resolver_upstreams ups;
    atomic_uint inflight; /* parked client requests over all workers */
    atomic_bool prober_taken;
    struct resolver_siphash_key key;
    struct counters c;
};

enum kind { KIND_CLIENT, KIND_HEALTH, KIND_LOOP };

enum outcome { OUT_TIMEOUT, OUT_NETERR, OUT_RCODE, OUT_MALFORMED };

struct waiter {
    struct dns_request *req;
    struct waiter *next;
};

struct pending {
    struct resolver_forward *fwd;
    struct pending *next; /* free list, or the coalescing bucket while active */
    /* The question, as asked upstream. */
    struct dns_name qname; /* lower-cased */
    uint16_t qtype, qclass;
    bool dnssec_ok;
    uint64_t hash;
    enum kind kind;
    unsigned target; /* probes: the upstream */
    unsigned round;  /* loop probes: how many sent */
    struct waiter *waiters, **wtail;
    bool active;
    /* Tries. */
    uint64_t deadline; /* uv_now() value */
    int up;            /* upstream of the current or last try, -1 before the first */
    int force_up;      /* the next try goes here (EDNS fallback), -1 otherwise */
    unsigned tries;
    uint16_t failed_mask; /* upstreams that answered with an error in this request */
    uint16_t tried_mask;
    bool all_silent; /* every failed try timed out: EDE 22, else 23 */
    bool edns;       /* this try sent OPT */
    bool tcp;        /* this try is over TCP */
    bool have_tc;    /* a TC reply came over UDP; relayed if TCP fails */
    uint16_t tc_rcode;
    uint16_t id;
    bool retry_after_close;
    /* Transport. */
    uv_udp_t udp;
    uv_tcp_t tcp_h;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    uv_udp_send_t send;
    bool udp_open, tcp_open;  /* initialised and close callback not yet run */
    uint8_t query[QUERY_MAX]; /* 2-byte length, then the message */
    size_t query_len;         /* of the message */
    uint8_t tcp_len[2];
    size_t tcp_got;
};

struct resolver_forward {
    uv_loop_t *loop;
    struct resolver_forward_shared *sh;
    struct resolver_cache *cache; /* NULL: no cache to fill */
    struct dns_names own_names;
    const struct dns_names *own; /* &own_names, or NULL: no names of our own */
    struct resolver_forward_config cfg;
    struct pending *pendings;
    unsigned n_pendings;
    struct pending *free_pendings;
    struct waiter *waiters;
    struct waiter *free_waiters;
    struct pending **buckets;
    uint64_t bucket_mask;
    uint8_t *rbuf;
    unsigned open_handles; /* handles whose close callback has not run */
    bool stopping;
    /* The prober's state. */
    bool prober;
    uv_timer_t probe_timer;
    bool probe_timer_open;
    bool health_busy[RESOLVER_UPSTREAM_MAX];
    bool loop_busy[RESOLVER_UPSTREAM_MAX];           /* a loop check is under way */
    uint64_t loop_recheck_at[RESOLVER_UPSTREAM_MAX]; /* uv_now() of the next, while looping */
    /* Recent upstream IDs, so that a burst does not repeat one by chance. */
    uint8_t id_used[65536 / 8];
    uint16_t id_ring[ID_RING];
    unsigned id_pos, id_count;
};

static void try_next(struct pending *p);
static void try_failed(struct pending *p, enum outcome why);
static void on_try_timeout(uv_timer_t *t);
static void start_probe(struct resolver_forward *fwd, enum kind kind, unsigned up, unsigned round);

/* Config and addresses. */

void resolver_forward_config_default(struct resolver_forward_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = 1000;
    cfg->deadline_ms = 2000;
    cfg->max_concurrent = 1000;
    cfg->max_fails = 2;
    cfg->probe_interval_ms = 500;
    cfg->loop_check = true;
    cfg->loop_recheck_ms = 30000;
}

/* Shared state. */

int resolver_forward_shared_new(struct resolver_forward_shared **out,
                                const struct resolver_forward_config *cfg)
{
    *out = NULL;
    if (cfg->n_upstreams == 0 || cfg->n_upstreams > RESOLVER_UPSTREAM_MAX ||
        cfg->max_concurrent == 0 || cfg->timeout_ms == 0 || cfg->deadline_ms == 0)
        return UV_EINVAL;
    struct resolver_forward_shared *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return UV_ENOMEM;
    sh->cfg = *cfg;
    if (sh->cfg.probe_interval_ms == 0)
        sh->cfg.probe_interval_ms = 500;
    if (sh->cfg.loop_recheck_ms == 0)
        sh->cfg.loop_recheck_ms = 30000;
    int rc = resolver_siphash_key_random(&sh->key);
    if (rc == 0)
        rc = resolver_upstream_init(&sh->ups, cfg->upstreams, cfg->n_upstreams, cfg->max_fails);
    if (rc != 0) {
        free(sh);
        return rc;
    }
    *out = sh;
    return 0;
}

void resolver_forward_shared_free(struct resolver_forward_shared *shared)
{
    free(shared);
}

static void count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void resolver_forward_stats(const struct resolver_forward_shared *shared,
                            struct resolver_forward_stats *out)
{
    /* C11's atomic_load() wants a pointer to non-const; nothing here writes. */
    struct resolver_forward_shared *sh = (struct resolver_forward_shared *)shared;
    const struct counters *c = &sh->c;
    memset(out, 0, sizeof(*out));
    out->requests = atomic_load(&c->requests);
    out->coalesced = atomic_load(&c->coalesced);
    out->timeouts = atomic_load(&c->timeouts);
    out->mismatches = atomic_load(&c->mismatches);
    out->malformed = atomic_load(&c->malformed);
    out->refused_max_concurrent = atomic_load(&c->refused);
    out->tcp_retries = atomic_load(&c->tcp_retries);
    out->edns_fallbacks = atomic_load(&c->edns_fallbacks);
    out->upstream_down = atomic_load(&sh->ups.marked_down);
    out->loop_probes_seen = atomic_load(&sh->ups.loop_probes_seen);
    for (size_t i = 0; i < 16; i++)
        out->rcode[i] = atomic_load(&c->rcode[i]);
    out->n_upstreams = sh->ups.n;
    for (size_t i = 0; i < sh->ups.n; i++) {
        struct resolver_upstream *u = &sh->ups.up[i];
        out->upstreams[i].addr = u->addr;
        out->upstreams[i].queries = atomic_load(&u->queries);
        out->upstreams[i].failures = atomic_load(&u->failures);
        out->upstreams[i].down = atomic_load(&u->down);
        out->upstreams[i].looping = atomic_load(&u->looping);
        out->upstreams[i].no_edns = atomic_load(&u->no_edns);
    }
}

/* Pending table. */

static uint64_t question_hash(const struct resolver_forward_shared *sh,
                              const struct dns_name *qname, uint16_t qtype, uint16_t qclass,
                              bool dnssec_ok)
{
    uint8_t key[DNS_MAX_NAME + 5];
    memcpy(key, qname->wire, qname->len);
    dns_wire_put_u16(key + qname->len, qtype);
    dns_wire_put_u16(key + qname->len + 2, qclass);
    key[qname->len + 4] = dnssec_ok;
    return resolver_siphash13(&sh->key, key, (size_t)qname->len + 5);
}

static struct pending *pending_find(struct resolver_forward *fwd, const struct dns_query *q,
                                    bool dnssec_ok, uint64_t hash)
{
    for (struct pending *p = fwd->buckets[hash & fwd->bucket_mask]; p; p = p->next) {
        if (p->hash == hash && p->qtype == q->qtype && p->qclass == q->qclass &&
            p->dnssec_ok == dnssec_ok && dns_name_equal(&p->qname, &q->qname))
            return p;
    }
    return NULL;
}

static void pending_unlink(struct pending *p)
{
    struct pending **pp = &p->fwd->buckets[p->hash & p->fwd->bucket_mask];
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    p->next = NULL;
}

static struct pending *pending_get(struct resolver_forward *fwd)
{
    struct pending *p = fwd->free_pendings;
    if (!p)
        return NULL;
    fwd->free_pendings = p->next;
    p->next = NULL;
    p->waiters = NULL;
    p->wtail = &p->waiters;
    p->active = true;
    p->up = -1;
    p->force_up = -1;
    p->tries = 0;
    p->failed_mask = 0;
    p->tried_mask = 0;
    p->all_silent = true;
    p->have_tc = false;
    p->tcp = false;
    p->round = 0;
    p->retry_after_close = false;
    p->deadline = uv_now(fwd->loop) + fwd->cfg.deadline_ms;
    return p;
}

/* Back to the free list once finished and both transport handles are closed. */
static void pending_maybe_release(struct pending *p)
{
    if (p->active || p->udp_open || p->tcp_open)
        return;
    p->next = p->fwd->free_pendings;
    p->fwd->free_pendings = p;
}

/* IDs: arc4random, skipping the last ID_RING values so that one burst of queries (and the
 * 200-query randomisation test) never repeats an ID by the birthday paradox. This removes
 * under 0.03 bits of the 16. */
static uint16_t new_id(struct resolver_forward *fwd)
{
    uint16_t id;
    do {
        id = (uint16_t)arc4random();
    } while (fwd->id_used[id >> 3] & (1U << (id & 7)));
    if (fwd->id_count == ID_RING) {
        uint16_t old = fwd->id_ring[fwd->id_pos];
        fwd->id_used[old >> 3] &= (uint8_t) ~(1U << (old & 7));
    } else {
        fwd->id_count++;
    }
    fwd->id_ring[fwd->id_pos] = id;
    fwd->id_pos = (fwd->id_pos + 1) % ID_RING;
    fwd->id_used[id >> 3] |= (uint8_t)(1U << (id & 7));
    return id;
}

/* The query we send: RD, the lower-cased name, our OPT (payload 1232, DO as the client had
 * it) unless the upstream refused EDNS once. */
static void build_query(struct pending *p)
{
    struct resolver_forward_shared *sh = p->fwd->sh;
    struct dns_cursor c;
    p->id = new_id(p->fwd);
    p->edns = !atomic_load(&sh->ups.up[p->up].no_edns);
    dns_cursor_init(&c, p->query + 2, sizeof(p->query) - 2);
    dns_cursor_put_u16(&c, p->id);
    dns_cursor_put_u16(&c, DNS_FLAG_RD);
    dns_cursor_put_u16(&c, 1);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, p->edns ? 1 : 0);
    dns_cursor_put(&c, p->qname.wire, p->qname.len);
    dns_cursor_put_u16(&c, p->qtype);
    dns_cursor_put_u16(&c, p->qclass);
    if (p->edns) {
        dns_cursor_put_u8(&c, 0);
        dns_cursor_put_u16(&c, DNS_TYPE_OPT);
        dns_cursor_put_u16(&c, RESOLVER_FORWARD_EDNS_SIZE);
        dns_cursor_put_u32(&c, p->dnssec_ok ? DNS_EDNS_DO : 0);
        dns_cursor_put_u16(&c, 0);
    }
    p->query_len = c.pos; /* always fits: QUERY_MAX covers the longest name */
    dns_wire_put_u16(p->query, (uint16_t)p->query_len);
}

/* Upstream choice: sequential from the last upstream that answered, over the healthy ones
 * that did not answer this request with an error. A timeout leaves an upstream eligible for
 * another try while time remains. When none is healthy, each remaining one gets one try. */
static int pick_upstream(struct pending *p)
{
    struct resolver_forward_shared *sh = p->fwd->sh;
    unsigned n = (unsigned)sh->ups.n;
    if (p->kind != KIND_CLIENT)
        return p->tries == 0 ? (int)p->target : -1;
    if (p->force_up >= 0) {
        int up = p->force_up;
        p->force_up = -1;
        return up;
    }
    /* Two rounds at most: an upstream that is healthy for other names but silent for this
     * one must not be asked again and again while the deadline lasts. */
    if (p->tries >= 2 * n)
        return -1;
    unsigned start = p->up < 0 ? atomic_load(&sh->ups.preferred) % n : (unsigned)p->up + 1;
    int fallback = -1;
    for (unsigned k = 0; k < n; k++) {
        unsigned i = (start + k) % n;
        if (!resolver_upstream_usable(&sh->ups, i) || (p->failed_mask & (1U << i)))
            continue;
        if (!atomic_load(&sh->ups.up[i].down))
            return (int)i;
        if (fallback < 0 && !(p->tried_mask & (1U << i)))
            fallback = (int)i;
    }
    return fallback;
}

/* Transport. */

static void release_if_closed(struct resolver_forward *fwd);

static void on_transport_closed(uv_handle_t *h)
{
    struct pending *p = h->data;
    struct resolver_forward *fwd = p->fwd;
    if (h == (uv_handle_t *)&p->udp)
        p->udp_open = false;
    else
        p->tcp_open = false;
    fwd->open_handles--;
    if (!p->udp_open && !p->tcp_open) {
        if (p->retry_after_close && p->active && !fwd->stopping) {
            p->retry_after_close = false;
            try_next(p);
        } else {
            pending_maybe_release(p);
        }
    }
    release_if_closed(fwd);
}

static void close_handle(uv_handle_t *h, bool open)
{
    if (open && !uv_is_closing(h))
        uv_close(h, on_transport_closed);
}

static void close_transport(struct pending *p)
{
    close_handle((uv_handle_t *)&p->udp, p->udp_open);
    close_handle((uv_handle_t *)&p->tcp_h, p->tcp_open);
}

static void on_next_try(uv_timer_t *t)
{
    try_next(t->data);
}

/* The next try starts once the old socket is closed (its handle is reused), or on the next
 * loop turn when there is none: never synchronously, so serve() never sees a resume. */
static void schedule_next(struct pending *p)
{
    uv_timer_stop(&p->timer);
    if (p->udp_open || p->tcp_open) {
        p->retry_after_close = true;
        close_transport(p);
    } else {
        uv_timer_start(&p->timer, on_next_try, 0, 0);
    }
}

static uint64_t try_timeout(const struct pending *p)
{
    uint64_t now = uv_now(p->fwd->loop);
    uint64_t left = p->deadline > now ? p->deadline - now : 0;
    return left < p->fwd->cfg.timeout_ms ? left : p->fwd->cfg.timeout_ms;
}

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pending *p = h->data;
    *buf = uv_buf_init((char *)p->fwd->rbuf, RBUF_SIZE);
}

static void handle_reply(struct pending *p, const uint8_t *msg, size_t len);

static void on_udp_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct pending *p = udp->data;
    if (nread == 0 && addr == NULL)
        return; /* the socket is drained */
    if (nread < 0) {
        /* ICMP port unreachable and friends, reported on the connected socket. */
        try_failed(p, OUT_NETERR);
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || nread == 0) {
        count(&p->fwd->sh->c.mismatches);
        return;
    }
    handle_reply(p, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_udp_sent(uv_udp_send_t *sr, int status)
{
    struct pending *p = sr->data;
    if (status < 0 && status != UV_ECANCELED && p->udp_open &&
        !uv_is_closing((uv_handle_t *)&p->udp))
        try_failed(p, OUT_NETERR);
}

/* A new socket on a kernel-chosen port, connected to the upstream so that the kernel drops
 * datagrams from any other address or port. */
static int udp_start(struct pending *p)
{
    struct resolver_forward *fwd = p->fwd;
    const struct sockaddr_storage *to = &fwd->sh->ups.up[p->up].addr;
    struct sockaddr_storage any;
    memset(&any, 0, sizeof(any));
    any.ss_family = to->ss_family;
    int rc = uv_udp_init_ex(fwd->loop, &p->udp, to->ss_family);
    if (rc != 0)
        return rc;
    p->udp.data = p;
    p->udp_open = true;
    fwd->open_handles++;
    rc = uv_udp_bind(&p->udp, (const struct sockaddr *)&any, 0);
    if (rc == 0)
        rc = uv_udp_connect(&p->udp, (const struct sockaddr *)to);
    if (rc == 0)
        rc = uv_udp_recv_start(&p->udp, on_udp_alloc, on_udp_recv);
    if (rc != 0)
        return rc;
    uv_buf_t b = uv_buf_init((char *)p->query + 2, (unsigned)p->query_len);
    rc = uv_udp_try_send(&p->udp, &b, 1, NULL);
    if (rc == UV_EAGAIN) {
        p->send.data = p;
        rc = uv_udp_send(&p->send, &p->udp, &b, 1, NULL, on_udp_sent);
    }
    return rc < 0 ? rc : 0;
}

static void on_tcp_failed(struct pending *p);

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pending *p = h->data;
    if (p->tcp_got < 2) {
        *buf = uv_buf_init((char *)p->tcp_len + p->tcp_got, (unsigned)(2 - p->tcp_got));
        return;
    }
    /* The message goes straight into the first waiter's reply buffer (64 KiB, ours while it
     * is parked), so TCP needs no buffer of its own. */
    size_t want = dns_wire_get_u16(p->tcp_len);
    uint8_t *dst = p->waiters->req->ans;
    *buf = uv_buf_init((char *)dst + (p->tcp_got - 2), (unsigned)(want - (p->tcp_got - 2)));
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct pending *p = s->data;
    if (nread < 0) {
        on_tcp_failed(p);
        return;
    }
    p->tcp_got += (size_t)nread;
    if (p->tcp_got < 2)
        return;
    size_t want = dns_wire_get_u16(p->tcp_len);
    if (want < DNS_HEADER_SIZE) {
        on_tcp_failed(p);
        return;
    }
    if (p->tcp_got < 2 + want)
        return;
    p->tcp_got = 0; /* a mismatch keeps reading the next frame */
    memcpy(p->fwd->rbuf, p->waiters->req->ans, want);
    handle_reply(p, p->fwd->rbuf, want);
}

static void on_tcp_written(uv_write_t *w, int status)
{
    struct pending *p = w->data;
    if (status < 0 && status != UV_ECANCELED && p->tcp_open &&
        !uv_is_closing((uv_handle_t *)&p->tcp_h))
        on_tcp_failed(p);
}

static void on_tcp_connected(uv_connect_t *c, int status)
{
    struct pending *p = c->data;
    if (status == UV_ECANCELED || !p->tcp_open || uv_is_closing((uv_handle_t *)&p->tcp_h))
        return;
    int rc = status;
    if (rc == 0) {
        uv_buf_t b = uv_buf_init((char *)p->query, (unsigned)(p->query_len + 2));
        p->write.data = p;
        rc = uv_write(&p->write, (uv_stream_t *)&p->tcp_h, &b, 1, on_tcp_written);
    }
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&p->tcp_h, on_tcp_alloc, on_tcp_read);
    if (rc != 0)
        on_tcp_failed(p);
}

/* TC over UDP: the same upstream over TCP, same question, a new ID, a fresh try deadline
 * bounded by the request's. */
static void tcp_start(struct pending *p)
{
    struct resolver_forward *fwd = p->fwd;
    count(&fwd->sh->c.tcp_retries);
    count(&fwd->sh->ups.up[p->up].queries);
    close_handle((uv_handle_t *)&p->udp, p->udp_open);
    p->tcp = true;
    p->tcp_got = 0;
    build_query(p);
    int rc = uv_tcp_init(fwd->loop, &p->tcp_h);
    if (rc == 0) {
        p->tcp_h.data = p;
        p->tcp_open = true;
        fwd->open_handles++;
        p->connect.data = p;
        rc =
            uv_tcp_connect(&p->connect, &p->tcp_h,
                           (const struct sockaddr *)&fwd->sh->ups.up[p->up].addr, on_tcp_connected);
    }
    if (rc != 0) {
        on_tcp_failed(p);
        return;
    }
    uv_timer_start(&p->timer, on_try_timeout, try_timeout(p), 0);
}

/* Finishing. */

/* Takes the pending out of service and returns its waiters, whose replies the caller has
 * written or will write before resume_all(). */
static struct waiter *pending_finish(struct pending *p)
{
    struct waiter *ws = p->waiters;
    p->waiters = NULL;
    p->wtail = &p->waiters;
    if (p->kind == KIND_CLIENT)
        pending_unlink(p);
    p->active = false;
    p->retry_after_close = false;
    uv_timer_stop(&p->timer);
    close_transport(p);
    pending_maybe_release(p);
    return ws;
}

/* The waiters go back to the free list before any resume, so a request that a resume leads
 * back into serve() finds the table consistent. */
static void resume_all(struct resolver_forward *fwd, struct waiter *ws)
{
    while (ws) {
        struct waiter *w = ws;
        struct dns_request *req = w->req;
        ws = w->next;
        w->next = fwd->free_waiters;
        fwd->free_waiters = w;
        atomic_fetch_sub(&fwd->sh->inflight, 1);
        if (req->ans_len >= DNS_HEADER_SIZE)
            count(&fwd->sh->c.rcode[DNS_RCODE(dns_wire_get_u16(req->ans + 2))]);
        dns_chain_resume(req, DNS_DONE);
    }
}

/* No upstream left: an expired answer when the cache may serve it stale (RFC 8767), else
 * SERVFAIL with EDE 22 when every try met silence, 23 otherwise. */
static void fail_all(struct pending *p)
{
    enum dns_failure why = p->all_silent ? DNS_FAILURE_SILENT : DNS_FAILURE_UPSTREAM;
    int ede = p->all_silent ? DNS_EDE_NO_REACHABLE_AUTHORITY : DNS_EDE_NETWORK_ERROR;
    for (struct waiter *w = p->waiters; w; w = w->next) {
        struct dns_request *req = w->req;
        if (p->fwd->cache && !p->fwd->stopping && resolver_cache_fail(p->fwd->cache, req, why))
            continue;
        dns_chain_reply_error(req, DNS_RCODE_SERVFAIL, ede);
        req->failure = why;
    }
    if (log_current_level >= LOG_LEVEL_DEBUG) {
        char name[DNS_MAX_NAME * 4 + 2];
        dns_name_to_text(&p->qname, name, sizeof(name));
        log_debug("forward", "name=%s type=%u tries=%u result=SERVFAIL ede=%d", name, p->qtype,
                  p->tries, ede);
    }
    resume_all(p->fwd, pending_finish(p));
}

/* TCP failed after a TC reply: relay the truncation, as an empty TC reply with its rcode. */
static void relay_tc(struct pending *p)
{
    for (struct waiter *w = p->waiters; w; w = w->next) {
        struct dns_request *req = w->req;
        req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt, p->tc_rcode,
                                            DNS_FLAG_RA | DNS_FLAG_TC, -1);
    }
    resume_all(p->fwd, pending_finish(p));
}

// NOLINTNEXTLINE(misc-no-recursion): a loop probe sends the next round, a bounded number
static void probe_done(struct pending *p, bool ok)
{
    struct resolver_forward *fwd = p->fwd;
    enum kind kind = p->kind;
    unsigned up = p->target;
    unsigned round = p->round;
    pending_finish(p);
    if (kind == KIND_HEALTH) {
        fwd->health_busy[up] = false;
        if (ok)
            resolver_upstream_ok(&fwd->sh->ups, up);
        return;
    }
    /* A loop probe: send it again while it keeps coming back, until the count proves a loop
     * (resolver_upstream_is_loop_probe() decides). One that never arrives ends the check, and
     * lifts the mark of an earlier one; a proven loop is checked again later. */
    struct resolver_upstream *u = &fwd->sh->ups.up[up];
    unsigned seen = atomic_load(&u->loop_seen);
    bool proven = seen >= RESOLVER_UPSTREAM_LOOP_ROUNDS;
    fwd->loop_busy[up] = false;
    if (fwd->stopping)
        return;
    if (!proven && round < RESOLVER_UPSTREAM_LOOP_ROUNDS && seen >= round) {
        start_probe(fwd, KIND_LOOP, up, round + 1);
        return;
    }
    if (proven) {
        resolver_upstream_loop_window(&fwd->sh->ups, up, 0);
        fwd->loop_recheck_at[up] = uv_now(fwd->loop) + fwd->cfg.loop_recheck_ms;
    } else {
        resolver_upstream_loop_check_end(&fwd->sh->ups, up);
    }
}

/* Tries. */

// NOLINTNEXTLINE(misc-no-recursion): a failed try starts the next, at most one per upstream
static void try_start(struct pending *p, int up)
{
    struct resolver_forward *fwd = p->fwd;
    p->up = up;
    p->tries++;
    p->tried_mask = (uint16_t)(p->tried_mask | (1U << up));
    p->tcp = false;
    p->have_tc = false;
    build_query(p);
    count(&fwd->sh->ups.up[up].queries);
    int rc = udp_start(p);
    if (rc != 0) {
        log_warn("forward", "upstream=%s error=\"cannot send: %s\"", fwd->sh->ups.up[up].text,
                 uv_strerror(rc));
        try_failed(p, OUT_NETERR);
        return;
    }
    uv_timer_start(&p->timer, on_try_timeout, try_timeout(p), 0);
}

static void try_next(struct pending *p)
{
    if (!p->active)
        return;
    uint64_t now = uv_now(p->fwd->loop);
    int up = pick_upstream(p);
    if (up < 0 || p->deadline < now + MIN_TRY_MS || p->fwd->stopping) {
        if (p->kind == KIND_CLIENT)
            fail_all(p);
        else
            probe_done(p, false);
        return;
    }
    try_start(p, up);
}

// NOLINTNEXTLINE(misc-no-recursion): a failed try starts the next, at most one per upstream
static void try_failed(struct pending *p, enum outcome why)
{
    if (!p->active)
        return;
    if (p->kind != KIND_CLIENT) {
        probe_done(p, false);
        return;
    }
    resolver_upstream_failed(&p->fwd->sh->ups, (unsigned)p->up);
    if (why != OUT_TIMEOUT) {
        p->all_silent = false;
        p->failed_mask = (uint16_t)(p->failed_mask | (1U << p->up));
    }
    schedule_next(p);
}

static void on_try_timeout(uv_timer_t *t)
{
    struct pending *p = t->data;
    count(&p->fwd->sh->c.timeouts);
    if (p->tcp)
        on_tcp_failed(p);
    else
        try_failed(p, OUT_TIMEOUT);
}

static void on_tcp_failed(struct pending *p)
{
    if (!p->active)
        return;
    if (p->have_tc)
        relay_tc(p);
    else
        try_failed(p, OUT_NETERR);
}

/* Replies. */

/* Every waiter gets the reply to its own ID and question case; the cache keeps one copy. */
static void deliver(struct pending *p, const uint8_t *msg, size_t len, bool tc)
{
    if (p->fwd->cache && !tc && p->waiters)
        resolver_cache_store(p->fwd->cache, p->waiters->req, msg, len, p->fwd->own);
    for (struct waiter *w = p->waiters; w; w = w->next) {
        if (resolver_forward_build_reply(w->req, msg, len, tc, p->fwd->own) < 0)
            dns_chain_reply_error(w->req, DNS_RCODE_SERVFAIL, DNS_EDE_NETWORK_ERROR);
    }
    resume_all(p->fwd, pending_finish(p));
}

static void edns_fallback(struct pending *p)
{
    struct resolver_forward_shared *sh = p->fwd->sh;
    struct resolver_upstream *u = &sh->ups.up[p->up];
    count(&sh->c.edns_fallbacks);
    if (!atomic_exchange(&u->no_edns, true))
        log_info("forward", "upstream=%s edns=off reason=\"FORMERR to a query with OPT\"", u->text);
    p->force_up = p->up;
    schedule_next(p);
}

static void handle_reply(struct pending *p, const uint8_t *msg, size_t len)
{
    struct resolver_forward_shared *sh = p->fwd->sh;
    struct resolver_scrub_question q = {&p->qname, p->qtype, p->qclass, p->dnssec_ok, NULL};
    struct resolver_scrub_reply info;
    switch (resolver_scrub_check(msg, len, p->id, &q, &info)) {
    case RESOLVER_SCRUB_MISMATCH:
        count(&sh->c.mismatches); /* RFC 5452: ignore it and keep waiting */
        return;
    case RESOLVER_SCRUB_MALFORMED:
        count(&sh->c.malformed);
        if (p->tcp)
            on_tcp_failed(p);
        else
            try_failed(p, OUT_MALFORMED);
        return;
    case RESOLVER_SCRUB_OK:
        break;
    }
    unsigned rcode = info.rcode;
    bool answer = rcode == DNS_RCODE_NOERROR || rcode == DNS_RCODE_NXDOMAIN;
    if (p->kind != KIND_CLIENT) {
        probe_done(p, rcode != DNS_RCODE_SERVFAIL && rcode != DNS_RCODE_REFUSED);
        return;
    }
    if (rcode == DNS_RCODE_FORMERR && p->edns && !p->tcp) {
        edns_fallback(p);
        return;
    }
    if (!answer) {
        try_failed(p, OUT_RCODE);
        return;
    }
    resolver_upstream_ok(&sh->ups, (unsigned)p->up);
    atomic_store(&sh->ups.preferred, (unsigned)p->up);
    bool tc = (info.flags & DNS_FLAG_TC) != 0;
    if (tc && !p->tcp) {
        p->have_tc = true;
        p->tc_rcode = (uint16_t)rcode;
        uv_timer_stop(&p->timer);
        tcp_start(p);
        return;
    }
    deliver(p, msg, len, tc);
}

/* The records that go before the answer of a followed alias, per thread. */
static _Thread_local uint8_t own_prefix[DNS_ALIAS_PREFIX_MAX];

/* The upstream's chain reached a name svcdns answers itself: the client gets the upstream's
 * CNAMEs up to it and then svcdns's own answer for it, as a resolver restarting at a CNAME's
 * target would give. When the CNAMEs do not fit, the scrubbed reply stays: the chain ends at
 * the CNAME into our zone, and the client asks for the target itself. */
static void follow_own(struct dns_request *req, const struct resolver_scrub_out *out,
                       const struct dns_names *own)
{
    struct dns_cursor in;
    struct dns_cursor prefix;
    struct dns_name skip;
    dns_cursor_init(&in, req->ans, out->len);
    in.pos = DNS_HEADER_SIZE;
    dns_cursor_name(&in, &skip, false);
    dns_cursor_skip(&in, 4);
    dns_cursor_init(&prefix, own_prefix, sizeof(own_prefix));
    for (uint16_t i = 0; i < out->an && !in.err && !prefix.err; i++) {
        uint16_t type;
        dns_wire_copy_rr(&prefix, &in, &type);
    }
    if (in.err || prefix.err ||
        dns_request_follow(req, &out->own_target, own_prefix, prefix.pos, out->an) < 0)
        return;
    size_t n = own->answer(own->self, &req->q, req->pkt, req->ans, req->ans_cap);
    if (n < DNS_HEADER_SIZE) {
        dns_chain_reply_error(req, DNS_RCODE_SERVFAIL, -1);
        return;
    }
    /* AA would claim the upstream's CNAMEs for us (RFC 1035 §4.1.1: it speaks of the first
     * owner in the answer). */
    dns_wire_put_u16(req->ans + 2, (uint16_t)(dns_wire_get_u16(req->ans + 2) & ~DNS_FLAG_AA));
    req->ans_len = n;
}

int resolver_forward_build_reply(struct dns_request *req, const uint8_t *msg, size_t len, bool tc,
                                 const struct dns_names *own)
{
    const struct dns_query *q = &req->q;
    struct resolver_scrub_question sq = {&q->qname, q->qtype, q->qclass,
                                         q->has_edns && (q->edns_flags & DNS_EDNS_DO), own};
    if (len < DNS_HEADER_SIZE || !q->has_question || req->ans_cap < 64)
        return -1;
    uint16_t up_flags = dns_wire_get_u16(msg + 2);
    /* AD only when the client can use it: it set AD or DO (RFC 6840 §5.8). */
    bool want_ad = (q->flags & DNS_FLAG_AD) || (q->has_edns && (q->edns_flags & DNS_EDNS_DO));
    uint16_t flags =
        (uint16_t)(DNS_FLAG_QR | (q->flags & (DNS_FLAG_RD | DNS_FLAG_CD)) | DNS_FLAG_RA |
                   (tc ? DNS_FLAG_TC : 0) |
                   ((up_flags & DNS_FLAG_AD) && want_ad ? DNS_FLAG_AD : 0) | DNS_RCODE(up_flags));
    struct resolver_scrub_out out = {.buf = req->ans, .cap = req->ans_cap - 32};
    if (resolver_scrub_rewrite(msg, len, &sq, req->pkt + DNS_HEADER_SIZE,
                               (size_t)q->question_end - DNS_HEADER_SIZE, q->id, flags, &out) < 0)
        return -1;
    size_t n = out.len;
    if (q->has_edns) {
        struct dns_cursor c;
        dns_cursor_init(&c, req->ans, req->ans_cap);
        c.pos = n;
        dns_wire_put_opt(&c, q, DNS_RCODE(up_flags), -1);
        if (c.err)
            return -1;
        n = c.pos;
        dns_wire_reply_counts(req->ans, out.an, out.ns, 1);
    }
    req->ans_len = n;
    if (out.own_end)
        follow_own(req, &out, own);
    return 0;
}

/* The handler. */

static enum dns_verdict answer_now(struct resolver_forward *fwd, struct dns_request *req,
                                   unsigned rcode, int ede, enum dns_failure why)
{
    dns_chain_reply_error(req, rcode, ede);
    req->failure = why;
    count(&fwd->sh->c.rcode[rcode & 0xf]);
    return DNS_DONE;
}

static struct pending *pending_new_client(struct resolver_forward *fwd, const struct dns_query *q,
                                          bool dnssec_ok, uint64_t hash)
{
    struct pending *p = pending_get(fwd);
    if (!p)
        return NULL;
    p->kind = KIND_CLIENT;
    p->qname = q->qname;
    p->qtype = q->qtype;
    p->qclass = q->qclass;
    p->dnssec_ok = dnssec_ok;
    p->hash = hash;
    p->next = fwd->buckets[hash & fwd->bucket_mask];
    fwd->buckets[hash & fwd->bucket_mask] = p;
    return p;
}

enum dns_verdict resolver_forward_serve(void *self, struct dns_request *req)
{
    struct resolver_forward *fwd = self;
    struct resolver_forward_shared *sh = fwd->sh;
    const struct dns_query *q = &req->q;
    if (!q->has_question)
        return DNS_NEXT;
    if (resolver_upstream_is_loop_probe(&sh->ups, q, &req->peer, uv_now(fwd->loop)))
        return answer_now(fwd, req, DNS_RCODE_NXDOMAIN, -1, DNS_FAILURE_NONE);
    count(&sh->c.requests);
    if (fwd->stopping || !resolver_upstream_any_usable(&sh->ups)) {
        if (fwd->cache && !fwd->stopping &&
            resolver_cache_fail(fwd->cache, req, DNS_FAILURE_SILENT))
            return DNS_DONE;
        return answer_now(fwd, req, DNS_RCODE_SERVFAIL, DNS_EDE_NO_REACHABLE_AUTHORITY,
                          DNS_FAILURE_SILENT);
    }
    if (atomic_fetch_add(&sh->inflight, 1) >= sh->cfg.max_concurrent || !fwd->free_waiters) {
        atomic_fetch_sub(&sh->inflight, 1);
        count(&sh->c.refused);
        return answer_now(fwd, req, DNS_RCODE_REFUSED, -1, DNS_FAILURE_OVERLOAD);
    }
    bool dnssec_ok = q->has_edns && (q->edns_flags & DNS_EDNS_DO);
    uint64_t hash = question_hash(sh, &q->qname, q->qtype, q->qclass, dnssec_ok);
    struct pending *p = pending_find(fwd, q, dnssec_ok, hash);
    bool joined = p != NULL;
    if (!p)
        p = pending_new_client(fwd, q, dnssec_ok, hash);
    if (!p) {
        atomic_fetch_sub(&sh->inflight, 1);
        count(&sh->c.refused);
        return answer_now(fwd, req, DNS_RCODE_REFUSED, -1, DNS_FAILURE_OVERLOAD);
    }
    struct waiter *w = fwd->free_waiters;
    fwd->free_waiters = w->next;
    w->req = req;
    w->next = NULL;
    *p->wtail = w;
    p->wtail = &w->next;
    if (joined) {
        count(&sh->c.coalesced);
        return DNS_PENDING;
    }
    int up = pick_upstream(p);
    if (up < 0)
        schedule_next(p); /* fails on the next loop turn, outside serve() */
    else
        try_start(p, up);
    return DNS_PENDING;
}

/* Probes, sent by the prober only. */

// NOLINTNEXTLINE(misc-no-recursion): a loop probe sends the next round, a bounded number
static void start_probe(struct resolver_forward *fwd, enum kind kind, unsigned up, unsigned round)
{
    struct pending *p = pending_get(fwd);
    if (!p)
        return;
    p->kind = kind;
    p->target = up;
    p->round = round;
    p->dnssec_ok = false;
    p->qclass = DNS_CLASS_IN;
    p->hash = 0;
    if (kind == KIND_HEALTH) {
        dns_name_from_text(&p->qname, ".");
        p->qtype = DNS_TYPE_NS;
        fwd->health_busy[up] = true;
    } else {
        if (round == 1)
            resolver_upstream_loop_check_begin(&fwd->sh->ups, up);
        resolver_upstream_loop_probe_name(&fwd->sh->ups, up, &p->qname);
        p->qtype = DNS_TYPE_HINFO;
        resolver_upstream_loop_window(&fwd->sh->ups, up,
                                      uv_now(fwd->loop) + fwd->cfg.timeout_ms +
                                          RESOLVER_UPSTREAM_LOOP_GRACE_MS);
        fwd->loop_busy[up] = true;
    }
    p->deadline = uv_now(fwd->loop) + fwd->cfg.timeout_ms;
    try_start(p, (int)up);
}

static void on_probe_timer(uv_timer_t *t)
{
    struct resolver_forward *fwd = t->data;
    struct resolver_forward_shared *sh = fwd->sh;
    uint64_t now = uv_now(fwd->loop);
    for (unsigned i = 0; i < sh->ups.n; i++) {
        if (atomic_load(&sh->ups.up[i].down) && resolver_upstream_usable(&sh->ups, i) &&
            !fwd->health_busy[i])
            start_probe(fwd, KIND_HEALTH, i, 0);
        /* A loop mark expires: the upstream is checked again until a check finds none. */
        if (atomic_load(&sh->ups.up[i].looping) && !fwd->loop_busy[i] &&
            now >= fwd->loop_recheck_at[i])
            start_probe(fwd, KIND_LOOP, i, 1);
    }
}

/* Lifetime. */

static void free_tables(struct resolver_forward *fwd);

/* After resolver_forward_free(), the last close callback frees the memory libuv no longer
 * references. */
static void release_if_closed(struct resolver_forward *fwd)
{
    if (fwd->stopping && fwd->open_handles == 0)
        free_tables(fwd);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct pending *p = h->data;
    p->fwd->open_handles--;
    release_if_closed(p->fwd);
}

static void on_probe_timer_closed(uv_handle_t *h)
{
    struct resolver_forward *fwd = h->data;
    fwd->open_handles--;
    release_if_closed(fwd);
}

static unsigned pow2_at_least(unsigned n)
{
    unsigned v = 1;
    while (v < n)
        v <<= 1;
    return v;
}

static int alloc_tables(struct resolver_forward *fwd)
{
    unsigned max = fwd->cfg.max_concurrent;
    fwd->n_pendings = max + PROBE_PENDINGS * (unsigned)fwd->sh->ups.n;
    unsigned n_buckets = pow2_at_least(2 * max);
    fwd->pendings = calloc(fwd->n_pendings, sizeof(*fwd->pendings));
    fwd->waiters = calloc(max, sizeof(*fwd->waiters));
    fwd->buckets = calloc(n_buckets, sizeof(struct pending *));
    fwd->rbuf = malloc(RBUF_SIZE);
    if (!fwd->pendings || !fwd->waiters || !fwd->buckets || !fwd->rbuf)
        return UV_ENOMEM;
    fwd->bucket_mask = n_buckets - 1;
    for (unsigned i = max; i-- > 0;) {
        fwd->waiters[i].next = fwd->free_waiters;
        fwd->free_waiters = &fwd->waiters[i];
    }
    for (unsigned i = fwd->n_pendings; i-- > 0;) {
        struct pending *p = &fwd->pendings[i];
        p->fwd = fwd;
        uv_timer_init(fwd->loop, &p->timer);
        p->timer.data = p;
        fwd->open_handles++;
        p->next = fwd->free_pendings;
        fwd->free_pendings = p;
    }
    return 0;
}

static void free_tables(struct resolver_forward *fwd)
{
    free(fwd->pendings);
    free(fwd->waiters);
    free(fwd->buckets);
    free(fwd->rbuf);
    free(fwd);
}

int resolver_forward_new(struct resolver_forward **out, uv_loop_t *loop,
                         struct resolver_forward_shared *shared, struct resolver_cache *cache,
                         const struct dns_names *own)
{
    *out = NULL;
    struct resolver_forward *fwd = calloc(1, sizeof(*fwd));
    if (!fwd)
        return UV_ENOMEM;
    fwd->loop = loop;
    fwd->sh = shared;
    fwd->cache = cache;
    if (own) {
        fwd->own_names = *own;
        fwd->own = &fwd->own_names;
    }
    fwd->cfg = shared->cfg; /* one copy for all: health and caps must agree across workers */
    int rc = alloc_tables(fwd);
    if (rc != 0) {
        /* Timers were initialised only if every allocation succeeded; none are open here. */
        free_tables(fwd);
        return rc;
    }
    if (!atomic_exchange(&shared->prober_taken, true)) {
        fwd->prober = true;
        uv_timer_init(loop, &fwd->probe_timer);
        fwd->probe_timer.data = fwd;
        fwd->probe_timer_open = true;
        fwd->open_handles++;
        uv_timer_start(&fwd->probe_timer, on_probe_timer, fwd->cfg.probe_interval_ms,
                       fwd->cfg.probe_interval_ms);
        uv_unref((uv_handle_t *)&fwd->probe_timer); /* it alone must not keep a loop running */
        for (unsigned i = 0; fwd->cfg.loop_check && i < shared->ups.n; i++)
            start_probe(fwd, KIND_LOOP, i, 1);
    }
    *out = fwd;
    return 0;
}

void resolver_forward_free(struct resolver_forward *fwd)
{
    if (!fwd || fwd->stopping)
        return;
    fwd->stopping = true;
    for (unsigned i = 0; i < fwd->n_pendings; i++) {
        struct pending *p = &fwd->pendings[i];
        if (!p->active)
            continue;
        if (p->kind == KIND_CLIENT) {
            p->all_silent = true;
            fail_all(p);
        } else {
            pending_finish(p);
        }
    }
    if (fwd->prober)
        atomic_store(&fwd->sh->prober_taken, false);
    if (fwd->probe_timer_open)
        uv_close((uv_handle_t *)&fwd->probe_timer, on_probe_timer_closed);
    for (unsigned i = 0; i < fwd->n_pendings; i++)
        uv_close((uv_handle_t *)&fwd->pendings[i].timer, on_timer_closed);
    /* The memory goes with the last close callback (release_if_closed). */
}
