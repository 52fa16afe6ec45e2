/* dns/server.c - listening sockets, worker threads, request slots and TCP connections.
 *
 * dns_server_new() creates and binds every socket itself (SO_REUSEPORT, which libuv 1.44 has
 * no flag for), so a taken address fails before anything runs. dns_server_run() starts one
 * thread per worker; each adopts its sockets into its own loop, builds its chain and serves.
 * The calling thread runs a small control loop whose only job is to carry dns_server_stop()
 * to the workers; main.c may add its own handles to it (dns_server_loop()).
 *
 * Invariants. A worker's state is touched by its own thread only; the exceptions are its
 * stop async (sent by the control loop) and its chain pointer, which dns_server_stats() reads
 * under stats_lock. A request slot is in exactly one place: the worker's free list, a
 * connection's read buffer (conn->rd), or with the chain from dns_chain_handle() until its
 * reply is sent. A connection is freed only when both its handles are closed and none of its
 * requests is in flight, so a reply that completes after the client left finds the
 * connection still allocated, sees it closing and is discarded.
 *
 * RFC 2181 §4: a reply leaves from the address the query went to. A socket bound to one
 * address does that by itself. A wildcard (0.0.0.0, ::) UDP socket would reply from the
 * address the kernel routes from, which on a multi-homed host is often another one, and the
 * client drops the reply; libuv's UDP handle cannot see a datagram's destination, so wildcard
 * sockets are read with our own recvmmsg under a uv_poll_t, asking for IP_PKTINFO /
 * IPV6_PKTINFO, and answered with sendmsg from that destination. */
/* SO_REUSEPORT, struct in6_pktinfo and recvmmsg are outside POSIX; glibc shows them here. */
#define _GNU_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp,readability-identifier-naming)

#include "dns/server.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "dns/log.h"
#include "dns/wire.h"

#define SLOT_BUF (DNS_MAX_MSG + 2)    /* a whole TCP frame: length prefix and message */
#define UDP_CHUNK ((size_t)64 * 1024) /* libuv's recvmmsg gives each datagram a chunk this size */
#define UDP_BATCH 20                  /* datagrams per recvmmsg, libuv's own maximum */
#define TCP_BACKLOG 1024
#define WARN_EVERY_MS 10000 /* at most one accept warning per worker this often */

#define CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* A circular doubly linked list with a sentinel, embedded in its members. */
struct link {
    struct link *prev, *next;
};

struct worker;
struct conn;

struct slot {
    struct dns_request req;
    struct worker *w;
    struct slot *next_free;
    struct conn *conn; /* TCP: the connection the query came on, which it holds a ref of */
    uv_udp_t *udp;     /* UDP: the socket the query came on; NULL for a wildcard socket */
    int udp_fd;        /* a wildcard socket: answered with sendmsg from req->local */
    bool tcp;          /* counted in worker.tcp_slots */
    uv_udp_send_t udp_send;
    uv_write_t write;
    uint8_t query[SLOT_BUF];
    uint8_t reply[SLOT_BUF]; /* the reply starts at reply + 2, after room for the TCP length */
};

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

struct worker {
    struct dns_server *srv;
    unsigned index;
    uv_thread_t thread;
    bool started; /* thread created: the stop must reach it and run() must join it */
    int udp_fd[DNS_SERVER_MAX_LISTEN];
    int tcp_fd[DNS_SERVER_MAX_LISTEN]; /* -1 once adopted by the loop, which then owns it */
    uv_loop_t loop;
    uv_async_t stop;
    uv_idle_t wake; /* runs starved connections once slots are free again */
    uv_udp_t udp[DNS_SERVER_MAX_LISTEN];
    uv_poll_t udp_poll[DNS_SERVER_MAX_LISTEN]; /* instead of udp[i] when listen[i] is wildcard */
    uv_tcp_t tcp[DNS_SERVER_MAX_LISTEN];
    unsigned n_udp, n_tcp; /* handles initialised, for the teardown after a failed start */
    bool wake_init;
    bool stopping;
    uint8_t *udp_buf; /* one recvmmsg batch; every datagram is copied out before the next */
    struct slot *slots;
    struct slot *free_slots;
    unsigned tcp_slots, tcp_slot_cap; /* TCP may never take the slots UDP needs */
    struct link open, closing, starved;
    unsigned n_open;
    uint64_t warned_ms;
    int err;
    uv_mutex_t stats_lock; /* guards chain (the pointer) and final_stats against stats() */
    struct dns_chain *chain;
    struct dns_chain_stats final_stats;
};

struct dns_server {
    struct dns_server_config cfg;
    dns_chain_new_fn chain_new;
    dns_chain_free_fn chain_free;
    void *ctx;
    struct sockaddr_storage local[DNS_SERVER_MAX_LISTEN]; /* req->local: unspecified if wildcard */
    bool wildcard[DNS_SERVER_MAX_LISTEN];
    unsigned n_workers;
    struct worker *workers;
    uv_loop_t loop; /* the control loop, run by dns_server_run() on the caller's thread */
    uv_async_t stop;
    bool loop_init, ran, stopping;
};

static void conn_pump(struct conn *c);
static void conn_close(struct conn *c);
static void on_wake(uv_idle_t *idle);

/* Lists. */

static void link_init(struct link *l)
{
    l->prev = l;
    l->next = l;
}

static bool link_is_empty(const struct link *l)
{
    return l->next == l;
}

static void link_remove(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

static void link_push(struct link *head, struct link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

/* Addresses. */

static socklen_t addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

static bool addr_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        return memcmp(&a->sin6_addr, &in6addr_any, sizeof(a->sin6_addr)) == 0;
    }
    return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || addr_port(a) != addr_port(b))
        return false;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
}

static void copy_addr(struct sockaddr_storage *out, const struct sockaddr *sa)
{
    memcpy(out, sa, addr_len(sa));
}

/* Config and sockets. */

void dns_server_config_default(struct dns_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = 0;
    cfg->udp_slots = 256;
    cfg->tcp_max_conns = 1024;
    cfg->tcp_idle_ms = 10000;
    cfg->tcp_read_ms = 2000;
    cfg->tcp_max_inflight = 16;
}

static int check_listen(const struct dns_server_config *cfg, size_t i)
{
    const struct sockaddr_storage *ss = &cfg->listen[i];
    char text[64];
    dns_server_format_addr(ss, text, sizeof(text));
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
        log_error("server", "listen=%zu error=\"not an IPv4 or IPv6 address\"", i);
        return UV_EINVAL;
    }
    if (addr_port(ss) == 0) {
        /* Every worker binds its own socket: port 0 would give each a different port. */
        log_error("server", "listen=%s error=\"port 0 is not allowed: give a port\"", text);
        return UV_EINVAL;
    }
    for (size_t j = 0; j < i; j++) {
        if (addr_equal(ss, &cfg->listen[j])) {
            log_error("server", "listen=%s error=\"listed twice\"", text);
            return UV_EINVAL;
        }
    }
    return 0;
}

static int check_config(const struct dns_server_config *cfg)
{
    if (cfg->n_listen == 0 || cfg->n_listen > DNS_SERVER_MAX_LISTEN) {
        log_error("server", "listen_addresses=%zu error=\"need 1 to %d listen addresses\"",
                  cfg->n_listen, DNS_SERVER_MAX_LISTEN);
        return UV_EINVAL;
    }
    if (cfg->udp_slots == 0 || cfg->tcp_max_conns == 0 || cfg->tcp_idle_ms == 0 ||
        cfg->tcp_read_ms == 0 || cfg->tcp_max_inflight == 0 ||
        cfg->workers > DNS_SERVER_MAX_WORKERS) {
        log_error("server",
                  "error=\"slots, TCP limits and timeouts must be above 0, and "
                  "workers at most %d\"",
                  DNS_SERVER_MAX_WORKERS);
        return UV_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        int err = check_listen(cfg, i);
        if (err != 0)
            return err;
    }
    return 0;
}

static const char *bind_hint(int err)
{
    switch (err) {
    case UV_EADDRINUSE:
        return "address in use: is another DNS server running? choose another --listen";
    case UV_EACCES:
    case UV_EPERM:
        return "ports below 1024 need root or CAP_NET_BIND_SERVICE: grant it or choose a port "
               "above 1023";
    case UV_EADDRNOTAVAIL:
        return "no local interface has this address: check --listen";
    case UV_EAFNOSUPPORT:
        return "this address family is disabled on the host (IPv6 off?): check --listen";
    default:
        return "check --listen";
    }
}

static void log_bind_error(const struct sockaddr_storage *ss, const char *proto, int err)
{
    char text[64];
    dns_server_format_addr(ss, text, sizeof(text));
    log_error("server", "listen=%s proto=%s error=\"%s\" hint=\"%s\"", text, proto,
              uv_strerror(err), bind_hint(err));
}

static int set_int_option(int fd, int level, int name)
{
    int one = 1;
    return setsockopt(fd, level, name, &one, sizeof(one)) == 0 ? 0 : -errno;
}

/* Binds a socket without SO_REUSEPORT and closes it again. Our own sockets share the port
 * with SO_REUSEPORT, and so would another svcdns run by the same user: without this probe it
 * would silently get half the traffic instead of failing. SO_REUSEADDR on the TCP probe only
 * lets it past TIME_WAIT leftovers of a previous run; a listener still conflicts. */
static int probe_address(const struct sockaddr_storage *ss, int type)
{
    int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (type == SOCK_STREAM)
        err = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR);
    if (err == 0 && ss->ss_family == AF_INET6)
        err = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY);
    if (err == 0 && bind(fd, (const struct sockaddr *)ss, addr_len((const void *)ss)) != 0)
        err = -errno;
    close(fd);
    return err;
}

/* One worker's socket. IPV6_V6ONLY so that [::] and 0.0.0.0 can both be listed. */
static int open_socket(const struct sockaddr_storage *ss, int type, int *out)
{
    int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR);
    if (err == 0)
        err = set_int_option(fd, SOL_SOCKET, SO_REUSEPORT);
    if (err == 0 && ss->ss_family == AF_INET6)
        err = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY);
    if (err == 0 && bind(fd, (const struct sockaddr *)ss, addr_len((const void *)ss)) != 0)
        err = -errno;
    if (err == 0 && type == SOCK_STREAM && listen(fd, TCP_BACKLOG) != 0)
        err = -errno;
    if (err != 0) {
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

static int bind_all(struct dns_server *srv)
{
    const struct dns_server_config *cfg = &srv->cfg;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        int err = probe_address(&cfg->listen[i], SOCK_DGRAM);
        if (err != 0) {
            log_bind_error(&cfg->listen[i], "udp", err);
            return err;
        }
        err = probe_address(&cfg->listen[i], SOCK_STREAM);
        if (err != 0) {
            log_bind_error(&cfg->listen[i], "tcp", err);
            return err;
        }
    }
    for (unsigned k = 0; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        for (size_t i = 0; i < cfg->n_listen; i++) {
            int err = open_socket(&cfg->listen[i], SOCK_DGRAM, &w->udp_fd[i]);
            if (err == 0 && srv->wildcard[i]) /* each datagram's destination */
                err = cfg->listen[i].ss_family == AF_INET6
                          ? set_int_option(w->udp_fd[i], IPPROTO_IPV6, IPV6_RECVPKTINFO)
                          : set_int_option(w->udp_fd[i], IPPROTO_IP, IP_PKTINFO);
            if (err != 0) {
                log_bind_error(&cfg->listen[i], "udp", err);
                return err;
            }
            err = open_socket(&cfg->listen[i], SOCK_STREAM, &w->tcp_fd[i]);
            if (err != 0) {
                log_bind_error(&cfg->listen[i], "tcp", err);
                return err;
            }
        }
    }
    return 0;
}

/* Slots. */

static struct slot *slot_get(struct worker *w, bool tcp)
{
    struct slot *s = w->free_slots;
    if (s == NULL || (tcp && w->tcp_slots >= w->tcp_slot_cap))
        return NULL;
    w->free_slots = s->next_free;
    s->tcp = tcp;
    if (tcp)
        w->tcp_slots++;
    return s;
}

static void slot_put(struct slot *s)
{
    struct worker *w = s->w;
    if (s->tcp)
        w->tcp_slots--;
    s->conn = NULL;
    s->next_free = w->free_slots;
    w->free_slots = s;
    /* A connection may be waiting for this slot. It runs from the idle callback, never from
     * here, because we may be deep inside that very connection's pump. */
    if (!link_is_empty(&w->starved) && !w->stopping)
        uv_idle_start(&w->wake, on_wake);
}

static void request_init(struct slot *s, uint8_t *pkt, size_t len, enum dns_proto proto,
                         const struct sockaddr *peer, const struct sockaddr_storage *local,
                         void (*send)(struct dns_request *))
{
    struct dns_request *req = &s->req;
    memset(req, 0, sizeof(*req));
    req->pkt = pkt;
    req->pkt_len = len;
    req->ans = s->reply + 2;
    req->ans_cap = DNS_MAX_MSG;
    req->proto = proto;
    copy_addr(&req->peer, peer);
    req->local = *local;
    req->send = send;
    req->server_data = s;
    req->start_ns = uv_hrtime();
}

/* UDP. */

static void on_udp_sent(uv_udp_send_t *sr, int status)
{
    (void)status; /* a lost reply is the client's retry, as with any datagram */
    slot_put(sr->data);
}

/* A reply on a wildcard socket, from the address the query went to (req->local, with the
 * interface in sin6_scope_id for IPv6). A full socket buffer drops it, as the network may:
 * the client asks again. */
static void send_from(int fd, const struct dns_request *req)
{
    _Alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(struct in6_pktinfo))] = {0};
    struct iovec iov = {.iov_base = req->ans, .iov_len = req->ans_len};
    struct msghdr msg = {
        .msg_name = (void *)(uintptr_t)&req->peer, // NOLINT(performance-no-int-to-ptr)
        .msg_namelen = addr_len((const struct sockaddr *)&req->peer),
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control,
    };
    struct cmsghdr *cm = (struct cmsghdr *)(void *)control;
    if (req->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *local = (const void *)&req->local;
        struct in6_pktinfo info = {.ipi6_addr = local->sin6_addr,
                                   .ipi6_ifindex = local->sin6_scope_id};
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(info));
        memcpy(CMSG_DATA(cm), &info, sizeof(info));
        msg.msg_controllen = CMSG_SPACE(sizeof(info));
    } else if (req->local.ss_family == AF_INET) {
        const struct sockaddr_in *local = (const void *)&req->local;
        struct in_pktinfo info = {.ipi_spec_dst = local->sin_addr};
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(info));
        memcpy(CMSG_DATA(cm), &info, sizeof(info));
        msg.msg_controllen = CMSG_SPACE(sizeof(info));
    } else {
        msg.msg_control = NULL; /* no destination seen: the kernel picks */
    }
    (void)sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void udp_send(struct dns_request *req)
{
    struct slot *s = req->server_data;
    if (req->ans_len == 0 || req->ans_len > DNS_MAX_MSG || s->w->stopping) {
        slot_put(s);
        return;
    }
    assert(req->ans == s->reply + 2);
    if (s->udp == NULL) {
        send_from(s->udp_fd, req);
        slot_put(s);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)req->ans, (unsigned)req->ans_len);
    const struct sockaddr *peer = (const struct sockaddr *)&req->peer;
    int r = uv_udp_try_send(s->udp, &buf, 1, peer);
    if (r == UV_EAGAIN) {
        /* The socket buffer is full (or earlier replies are queued): queue this one too. The
         * slot, which holds the reply bytes, is released when libuv has sent it. */
        s->udp_send.data = s;
        if (uv_udp_send(&s->udp_send, s->udp, &buf, 1, peer, on_udp_sent) == 0)
            return;
    }
    slot_put(s);
}

/* libuv's recvmmsg cuts the buffer into 64 KiB chunks and calls on_udp_recv() once per
 * datagram, then once more with UV_UDP_MMSG_FREE (or nread 0 and no address when the socket
 * was empty). The buffer is the worker's and every datagram is copied into a slot before the
 * next recvmmsg, so there is nothing to free and the final call is simply ignored. */
static void on_udp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct worker *w = handle->data;
    *buf = uv_buf_init((char *)w->udp_buf, UDP_CHUNK * UDP_BATCH);
}

static void on_udp_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct worker *w = udp->data;
    /* nread < 0 is a socket error (nothing to answer); 0 with an address is an empty
     * datagram, which is not a query. */
    if (nread <= 0 || addr == NULL || w->stopping)
        return;
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > DNS_MAX_MSG)
        return;
    struct slot *s = slot_get(w, false);
    if (s == NULL) {
        w->chain->stats.dropped++;
        return;
    }
    memcpy(s->query, buf->base, (size_t)nread);
    s->udp = udp;
    size_t i = (size_t)(udp - w->udp);
    request_init(s, s->query, (size_t)nread, DNS_PROTO_UDP, addr, &w->srv->local[i], udp_send);
    dns_chain_handle(w->chain, &s->req);
}

/* The destination of a datagram on a wildcard socket, from its IP_PKTINFO / IPV6_PKTINFO. */
static void datagram_destination(struct msghdr *msg, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            struct sockaddr_in *a = (void *)out;
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            a->sin_addr = info.ipi_addr;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            struct sockaddr_in6 *a = (void *)out;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            a->sin6_addr = info.ipi6_addr;
            a->sin6_scope_id = info.ipi6_ifindex;
        }
    }
}

/* A wildcard socket is readable: one recvmmsg batch, each datagram with its destination. The
 * poll is level-triggered, so what is left is read on the next turn of the loop. */
static void on_udp_readable(uv_poll_t *poll, int status, int events)
{
    (void)events;
    struct worker *w = poll->data;
    size_t i = (size_t)(poll - w->udp_poll);
    if (status < 0 || w->stopping)
        return;
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage peers[UDP_BATCH];
    _Alignas(struct cmsghdr) char control[UDP_BATCH][CMSG_SPACE(sizeof(struct in6_pktinfo))];
    for (size_t k = 0; k < UDP_BATCH; k++) {
        iov[k] = (struct iovec){.iov_base = w->udp_buf + k * UDP_CHUNK, .iov_len = UDP_CHUNK};
        msgs[k].msg_hdr = (struct msghdr){
            .msg_name = &peers[k],
            .msg_namelen = sizeof(peers[k]),
            .msg_iov = &iov[k],
            .msg_iovlen = 1,
            .msg_control = control[k],
            .msg_controllen = sizeof(control[k]),
        };
    }
    int n = recvmmsg(w->udp_fd[i], msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    uint16_t port = addr_port(&w->srv->cfg.listen[i]);
    for (int k = 0; k < n && !w->stopping; k++) {
        size_t len = msgs[k].msg_len;
        if (len == 0 || len > DNS_MAX_MSG || (msgs[k].msg_hdr.msg_flags & MSG_TRUNC))
            continue; /* empty, or larger than any query: not one */
        struct slot *s = slot_get(w, false);
        if (s == NULL) {
            w->chain->stats.dropped++;
            continue;
        }
        struct sockaddr_storage local;
        datagram_destination(&msgs[k].msg_hdr, port, &local);
        memcpy(s->query, iov[k].iov_base, len);
        s->udp = NULL;
        s->udp_fd = w->udp_fd[i];
        request_init(s, s->query, len, DNS_PROTO_UDP, (const struct sockaddr *)&peers[k], &local,
                     udp_send);
        dns_chain_handle(w->chain, &s->req);
    }
}

/* TCP connections: lifetime. */

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
        slot_put(rd);
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

static void on_wake(uv_idle_t *idle)
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
    size_t avail = conn_buffered(c);
    if (c->rd == NULL || avail < 2)
        return 0;
    size_t len = dns_wire_get_u16(c->rd->query + c->rd_off);
    return avail >= 2 + len ? len : 0;
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
        s = slot_get(c->w, true);
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
    request_init(s, s->query + 2, len, DNS_PROTO_TCP, (const struct sockaddr *)&c->peer, &c->local,
                 tcp_send);
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
    while (!c->closing && !c->is_starved && c->inflight < cap && conn_buffered(c) >= 2) {
        size_t len = dns_wire_get_u16(c->rd->query + c->rd_off);
        if (len < DNS_HEADER_SIZE) {
            /* A length of 0 or a runt is not a DNS message; NSD, Knot and Unbound close. */
            log_debug("server", "event=tcp_close reason=runt_frame length=%zu", len);
            conn_close(c);
            break;
        }
        if (conn_buffered(c) < 2 + len)
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
        c->rd = slot_get(c->w, true);
        if (c->rd == NULL) {
            *buf = uv_buf_init(NULL, 0); /* on_conn_read() gets UV_ENOBUFS */
            return;
        }
        c->rd_off = 0;
        c->rd_len = 0;
    } else if (c->rd_off > 0) {
        /* Move the partial message to the front so that a whole frame fits behind it. */
        memmove(c->rd->query, c->rd->query + c->rd_off, c->rd_len - c->rd_off);
        c->rd_len -= c->rd_off;
        c->rd_off = 0;
    }
    *buf = uv_buf_init((char *)c->rd->query + c->rd_len, (unsigned)(SLOT_BUF - c->rd_len));
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
    slot_put(s);
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

static void on_connection(uv_stream_t *server, int status)
{
    struct worker *w = server->data;
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
    int err = uv_accept(server, (uv_stream_t *)&c->tcp);
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

static int worker_alloc(struct worker *w)
{
    const struct dns_server_config *cfg = &w->srv->cfg;
    /* calloc of this size maps fresh pages: a slot costs memory only once a query touches it. */
    w->slots = calloc(cfg->udp_slots, sizeof(struct slot));
    w->udp_buf = malloc((size_t)UDP_CHUNK * UDP_BATCH);
    if (w->slots == NULL || w->udp_buf == NULL)
        return UV_ENOMEM;
    for (unsigned i = cfg->udp_slots; i-- > 0;) {
        w->slots[i].w = w;
        w->slots[i].next_free = w->free_slots;
        w->free_slots = &w->slots[i];
    }
    /* A quarter of the pool stays for UDP, however many TCP clients pipeline. */
    w->tcp_slot_cap = cfg->udp_slots - cfg->udp_slots / 4;
    return 0;
}

static int worker_listen(struct worker *w)
{
    size_t n = w->srv->cfg.n_listen;
    for (size_t i = 0; i < n; i++) {
        if (w->srv->wildcard[i]) { /* the fd stays ours: closed in dns_server_free() */
            int err = uv_poll_init(&w->loop, &w->udp_poll[i], w->udp_fd[i]);
            if (err != 0)
                return err;
            w->n_udp++;
            w->udp_poll[i].data = w;
            if ((err = uv_poll_start(&w->udp_poll[i], UV_READABLE, on_udp_readable)) != 0)
                return err;
            continue;
        }
        int err = uv_udp_init_ex(&w->loop, &w->udp[i], AF_UNSPEC | UV_UDP_RECVMMSG);
        if (err != 0)
            return err;
        w->n_udp++;
        w->udp[i].data = w;
        if ((err = uv_udp_open(&w->udp[i], w->udp_fd[i])) != 0)
            return err;
        w->udp_fd[i] = -1;
        if ((err = uv_udp_recv_start(&w->udp[i], on_udp_alloc, on_udp_recv)) != 0)
            return err;
    }
    for (size_t i = 0; i < n; i++) {
        int err = uv_tcp_init(&w->loop, &w->tcp[i]);
        if (err != 0)
            return err;
        w->n_tcp++;
        w->tcp[i].data = w;
        if ((err = uv_tcp_open(&w->tcp[i], w->tcp_fd[i])) != 0)
            return err;
        w->tcp_fd[i] = -1;
        if ((err = uv_listen((uv_stream_t *)&w->tcp[i], TCP_BACKLOG, on_connection)) != 0)
            return err;
    }
    return 0;
}

/* Runs on the worker's thread: the chain is built there, with the loop it will run on. */
static int worker_start(struct worker *w)
{
    struct dns_server *srv = w->srv;
    int err = worker_alloc(w);
    if (err != 0)
        return err;
    uv_idle_init(&w->loop, &w->wake);
    w->wake.data = w;
    w->wake_init = true;
    struct dns_chain *chain = srv->chain_new(srv->ctx, &w->loop, w->index);
    if (chain == NULL) {
        log_error("server", "worker=%u error=\"building the handler chain failed\"", w->index);
        return UV_EINVAL;
    }
    uv_mutex_lock(&w->stats_lock);
    w->chain = chain;
    uv_mutex_unlock(&w->stats_lock);
    err = worker_listen(w);
    if (err != 0)
        log_error("server", "worker=%u error=\"adopting the sockets failed: %s\"", w->index,
                  uv_strerror(err));
    return err;
}

/* The worker's share of dns_server_stop(): close every handle it owns, then let main.c's
 * chain_free close the chain's. Parked requests that the chain completes meanwhile see
 * stopping (or their connection closing) and are discarded. The loop then runs until the
 * last close callback. */
static void on_worker_stop(uv_async_t *async)
{
    struct worker *w = async->data;
    w->stopping = true;
    while (!link_is_empty(&w->open))
        conn_close(CONTAINER_OF(w->open.next, struct conn, link));
    for (unsigned i = 0; i < w->n_udp; i++)
        uv_close(w->srv->wildcard[i] ? (uv_handle_t *)&w->udp_poll[i] : (uv_handle_t *)&w->udp[i],
                 NULL);
    for (unsigned i = 0; i < w->n_tcp; i++)
        uv_close((uv_handle_t *)&w->tcp[i], NULL);
    if (w->wake_init)
        uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->stop, NULL);

    uv_mutex_lock(&w->stats_lock);
    struct dns_chain *chain = w->chain;
    if (chain != NULL)
        w->final_stats = chain->stats;
    w->chain = NULL;
    uv_mutex_unlock(&w->stats_lock);
    if (chain != NULL && w->srv->chain_free != NULL)
        w->srv->chain_free(w->srv->ctx, chain);
}

static void worker_finish(struct worker *w)
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
    free(w->slots);
    free(w->udp_buf);
    w->slots = NULL;
    w->udp_buf = NULL;
    int err = uv_loop_close(&w->loop);
    if (err != 0)
        log_error("server",
                  "worker=%u error=\"loop not empty at exit: %s; a handler left a "
                  "handle open\"",
                  w->index, uv_strerror(err));
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    int err = worker_start(w);
    if (err != 0) {
        w->err = err;
        dns_server_stop(w->srv); /* the others stop too; run() returns err */
    }
    uv_run(&w->loop, UV_RUN_DEFAULT); /* until on_worker_stop() closed everything */
    worker_finish(w);
}

/* Blocks the asynchronous signals in the threads created meanwhile, so SIGTERM and friends
 * go to the thread that runs main.c's handlers, never to a worker. */
static void block_signals(sigset_t *old)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static int worker_launch(struct worker *w)
{
    int err = uv_loop_init(&w->loop);
    if (err != 0)
        return err;
    /* The stop async exists before the thread does, so a stop can never miss a worker. */
    uv_async_init(&w->loop, &w->stop, on_worker_stop);
    w->stop.data = w;
    link_init(&w->open);
    link_init(&w->closing);
    link_init(&w->starved);
    err = uv_thread_create(&w->thread, worker_main, w);
    if (err != 0) {
        uv_close((uv_handle_t *)&w->stop, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        log_error("server", "worker=%u error=\"starting the thread failed: %s\"", w->index,
                  uv_strerror(err));
        return err;
    }
    w->started = true;
    return 0;
}

/* Server. */

static void on_server_stop(uv_async_t *async)
{
    struct dns_server *srv = async->data;
    if (!srv->stopping) {
        srv->stopping = true;
        for (unsigned i = 0; i < srv->n_workers; i++)
            if (srv->workers[i].started)
                uv_async_send(&srv->workers[i].stop);
    }
    uv_stop(&srv->loop);
}

static void log_listening(const struct dns_server *srv)
{
    for (size_t i = 0; i < srv->cfg.n_listen; i++) {
        char text[64];
        dns_server_format_addr(&srv->cfg.listen[i], text, sizeof(text));
        log_info("server", "event=listening listen=%s proto=udp,tcp workers=%u", text,
                 srv->n_workers);
    }
}

/* How many of the first two numbers of a one-line file were read into a and b; "max" (cgroup
 * v2: no quota) reads as -1. */
static int read_numbers(const char *root, const char *file, long long *a, long long *b)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, file);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    char line[128];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    long long *out[2] = {a, b};
    int n = 0;
    const char *p = line;
    while (n < 2) {
        long long v = -1;
        if (strncmp(p, "max", 3) == 0) {
            p += 3;
        } else {
            char *end = NULL;
            errno = 0;
            v = strtoll(p, &end, 10);
            if (end == p || errno != 0)
                break;
            p = end;
        }
        if (*p != ' ' && *p != '\n' && *p != '\0')
            break;
        *out[n++] = v;
    }
    return n;
}

unsigned dns_server_cgroup_cpus(const char *root)
{
    long long quota = -1;
    long long period = 0;
    long long unused;
    if (read_numbers(root, "cpu.max", &quota, &period) < 2 &&
        (read_numbers(root, "cpu/cpu.cfs_quota_us", &quota, &unused) < 1 ||
         read_numbers(root, "cpu/cpu.cfs_period_us", &period, &unused) < 1))
        return 0;
    if (quota <= 0 || period <= 0)
        return 0;
    long long cpus = (quota + period - 1) / period;
    return cpus > DNS_SERVER_MAX_WORKERS ? DNS_SERVER_MAX_WORKERS : (unsigned)cpus;
}

/* The CPUs we may run on (affinity), capped by the CPU quota: a pod limited to 2 CPUs on a
 * 64-CPU node gets 2 loops, not 64 threads that the quota throttles. */
static unsigned default_workers(void)
{
    unsigned cpus = uv_available_parallelism();
    unsigned quota = dns_server_cgroup_cpus("/sys/fs/cgroup");
    if (quota != 0 && quota < cpus)
        cpus = quota;
    return cpus < DNS_SERVER_MAX_WORKERS ? cpus : DNS_SERVER_MAX_WORKERS;
}

static int server_init(struct dns_server *srv)
{
    srv->n_workers = srv->cfg.workers != 0 ? srv->cfg.workers : default_workers();
    srv->workers = calloc(srv->n_workers, sizeof(struct worker));
    if (srv->workers == NULL)
        return UV_ENOMEM;
    for (unsigned k = 0; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        w->srv = srv;
        w->index = k;
        for (size_t i = 0; i < DNS_SERVER_MAX_LISTEN; i++) {
            w->udp_fd[i] = -1;
            w->tcp_fd[i] = -1;
        }
        uv_mutex_init(&w->stats_lock);
    }
    for (size_t i = 0; i < srv->cfg.n_listen; i++) {
        srv->wildcard[i] = addr_is_wildcard(&srv->cfg.listen[i]);
        if (!srv->wildcard[i])
            srv->local[i] = srv->cfg.listen[i];
    }
    int err = uv_loop_init(&srv->loop);
    if (err != 0)
        return err;
    srv->loop_init = true;
    uv_async_init(&srv->loop, &srv->stop, on_server_stop);
    srv->stop.data = srv;
    return 0;
}

int dns_server_new(struct dns_server **out, const struct dns_server_config *cfg,
                   dns_chain_new_fn chain_new, dns_chain_free_fn chain_free, void *ctx)
{
    *out = NULL;
    int err = check_config(cfg);
    if (err != 0)
        return err;
    struct dns_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return UV_ENOMEM;
    srv->cfg = *cfg;
    srv->chain_new = chain_new;
    srv->chain_free = chain_free;
    srv->ctx = ctx;
    err = server_init(srv);
    if (err == 0)
        err = bind_all(srv);
    if (err != 0) {
        dns_server_free(srv);
        return err;
    }
    log_listening(srv);
    *out = srv;
    return 0;
}

int dns_server_run(struct dns_server *srv)
{
    if (srv->ran)
        return UV_EINVAL;
    srv->ran = true;
    sigset_t old;
    block_signals(&old);
    int err = 0;
    for (unsigned i = 0; i < srv->n_workers && err == 0; i++)
        err = worker_launch(&srv->workers[i]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        dns_server_stop(srv);
    uv_run(&srv->loop, UV_RUN_DEFAULT); /* until on_server_stop() */
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (!w->started)
            continue;
        uv_thread_join(&w->thread);
        if (err == 0)
            err = w->err;
    }
    return err;
}

/* uv_async_send() is async-signal-safe, and the control loop's async lives from
 * dns_server_new() to dns_server_free(), so this is safe at any time in between. */
void dns_server_stop(struct dns_server *srv)
{
    if (srv != NULL)
        uv_async_send(&srv->stop);
}

uv_loop_t *dns_server_loop(struct dns_server *srv)
{
    return &srv->loop;
}

void dns_server_free(struct dns_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->loop_init) {
        uv_close((uv_handle_t *)&srv->stop, NULL);
        uv_run(&srv->loop, UV_RUN_NOWAIT); /* runs the close callbacks */
        int err = uv_loop_close(&srv->loop);
        if (err != 0)
            log_error("server",
                      "error=\"control loop not empty at exit: %s; close your "
                      "handles on dns_server_loop() first\"",
                      uv_strerror(err));
    }
    for (unsigned k = 0; srv->workers != NULL && k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        for (size_t i = 0; i < DNS_SERVER_MAX_LISTEN; i++) {
            if (w->udp_fd[i] >= 0)
                close(w->udp_fd[i]);
            if (w->tcp_fd[i] >= 0)
                close(w->tcp_fd[i]);
        }
        uv_mutex_destroy(&w->stats_lock);
    }
    free(srv->workers);
    free(srv);
}

/* The workers bump their chain's counters without atomics, to keep the query path free of
 * them; this reads them from another thread. Formally that is a data race; in practice an
 * aligned 64-bit load does not tear on the targets we build for, and a metrics scrape
 * tolerates a count that is a few queries old. The volatile read keeps the compiler from
 * caching or splitting it. stats_lock only keeps the chain from being freed under us. */
static uint64_t read_counter(const uint64_t *p)
{
    return *(const volatile uint64_t *)p;
}

static void add_stats(struct dns_chain_stats *out, const struct dns_chain_stats *in)
{
    out->queries += read_counter(&in->queries);
    for (size_t i = 0; i < sizeof(in->by_rcode) / sizeof(in->by_rcode[0]); i++)
        out->by_rcode[i] += read_counter(&in->by_rcode[i]);
    out->dropped += read_counter(&in->dropped);
    out->truncated += read_counter(&in->truncated);
}

void dns_server_stats(struct dns_server *srv, struct dns_chain_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned k = 0; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        uv_mutex_lock(&w->stats_lock);
        add_stats(out, w->chain != NULL ? &w->chain->stats : &w->final_stats);
        uv_mutex_unlock(&w->stats_lock);
    }
}

/* Address text. */

static int parse_port(const char *text, uint16_t *out)
{
    unsigned long v = 0;
    size_t n = 0;
    for (; text[n] >= '0' && text[n] <= '9'; n++) {
        if (n == 5)
            return -1;
        v = v * 10 + (unsigned long)(text[n] - '0');
    }
    if (n == 0 || text[n] != '\0' || v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int dns_server_parse_addr(const char *text, uint16_t default_port, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 32]; /* room for a %zone */
    const char *port = NULL;
    const char *start = text;
    size_t host_len;
    bool v6;
    if (text == NULL || out == NULL)
        return -1;
    const char *colon = strchr(text, ':');
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        start = text + 1;
        host_len = (size_t)(end - start);
        port = end[1] == ':' ? end + 2 : NULL;
        v6 = true;
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        host_len = (size_t)(colon - text); /* one colon: IPv4 and port */
        port = colon + 1;
        v6 = false;
    } else {
        host_len = strlen(text); /* a bare IPv6 address has two or more colons */
        v6 = colon != NULL;
    }
    if (host_len == 0 || host_len >= sizeof(host))
        return -1;
    memcpy(host, start, host_len);
    host[host_len] = '\0';
    uint16_t p = default_port;
    if (port != NULL && parse_port(port, &p) != 0)
        return -1;
    if (p == 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (v6)
        return uv_ip6_addr(host, p, (struct sockaddr_in6 *)(void *)out) == 0 ? 0 : -1;
    return uv_ip4_addr(host, p, (struct sockaddr_in *)(void *)out) == 0 ? 0 : -1;
}

void dns_server_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (cap == 0)
        return;
    if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)(const void *)ss, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, addr_port(ss));
    } else if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)(const void *)ss, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, addr_port(ss));
    } else {
        snprintf(out, cap, "unknown");
    }
}
