/* dns/server.c - listening sockets, worker threads, request slots and UDP.
 *
 * dns_server_new() creates and binds every socket itself (SO_REUSEPORT, which libuv 1.44 has
 * no flag for), so a taken address fails before anything runs. dns_server_run() starts one
 * thread per worker; each adopts its sockets into its own loop, builds its chain and serves.
 * The calling thread runs a small control loop whose only job is to carry dns_server_stop()
 * to the workers; the composition root may add its own handles to it (dns_server_loop()).
 * TCP connections are dns/tcp.c's; the state both share is in dns/worker.h.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/log.h"
#include "dns/wire.h"
#include "dns/worker.h"

#define UDP_CHUNK ((size_t)64 * 1024) /* libuv's recvmmsg gives each datagram a chunk this size */
#define UDP_BATCH 20                  /* datagrams per recvmmsg, libuv's own maximum */
#define TCP_BACKLOG 1024

/* Config and sockets. */
void dns_server_config_default(struct dns_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = 1;
    cfg->udp_slots = 256;
    cfg->tcp_max_conns = 1024;
    cfg->tcp_idle_ms = 10000;
    cfg->tcp_read_ms = 2000;
    cfg->tcp_max_inflight = 16;
}

static int check_listen(const struct dns_server_config *cfg, size_t i)
{
    const struct sockaddr_storage *ss = &cfg->listen[i];
    char text[DNS_ADDR_TEXT_MAX];
    dns_addr_format(ss, text, sizeof(text));
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
        log_error("server", "listen=%zu error=\"not an IPv4 or IPv6 address\"", i);
        return UV_EINVAL;
    }
    if (dns_addr_port(ss) == 0) {
        /* Every worker binds its own socket: port 0 would give each a different port. */
        log_error("server", "listen=%s error=\"port 0 is not allowed: give a port\"", text);
        return UV_EINVAL;
    }
    for (size_t j = 0; j < i; j++) {
        if (dns_addr_equal(ss, &cfg->listen[j])) {
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
        cfg->tcp_read_ms == 0 || cfg->tcp_max_inflight == 0 || cfg->workers == 0 ||
        cfg->workers > DNS_SERVER_MAX_WORKERS) {
        log_error("server",
                  "error=\"workers, slots, TCP limits and timeouts must be above 0, and "
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
    char text[DNS_ADDR_TEXT_MAX];
    dns_addr_format(ss, text, sizeof(text));
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
    if (err == 0 && bind(fd, (const struct sockaddr *)ss, dns_addr_len(ss)) != 0)
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
    if (err == 0 && bind(fd, (const struct sockaddr *)ss, dns_addr_len(ss)) != 0)
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

struct slot *dns_worker_slot_get(struct worker *w, bool tcp)
{
    if (tcp && w->tcp_slots >= w->tcp_slot_cap)
        return NULL;
    struct slot *s = w->free_slots;
    if (s != NULL) {
        w->free_slots = s->next_free;
    } else if (w->n_slots_touched < w->n_slots) { /* its pages are touched only now */
        s = &w->slots[w->n_slots_touched++];
        s->w = w;
    } else {
        return NULL;
    }
    s->tcp = tcp;
    if (tcp)
        w->tcp_slots++;
    return s;
}

/* Gives the pages of buf[DNS_SLOT_KEEP, DNS_SLOT_BUF) back to the kernel; the next touch maps
 * fresh zeroed ones. Only whole pages inside the buffer go. */
static void give_back(const uint8_t *buf, size_t page)
{
    uintptr_t from = ((uintptr_t)buf + DNS_SLOT_KEEP + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t to = ((uintptr_t)buf + DNS_SLOT_BUF) & ~(uintptr_t)(page - 1);
    if (from < to)
        (void)madvise((void *)from, to - from, MADV_DONTNEED); // NOLINT(performance-no-int-to-ptr)
}

void dns_worker_slot_note_reply(struct slot *s)
{
    const struct dns_request *req = &s->req;
    /* A spliced reply (dns/request.c) was built in the query buffer too: same length. */
    if (req->ans_len > DNS_SLOT_KEEP || req->ans_peak > DNS_SLOT_KEEP)
        s->large = true;
}

void dns_worker_slot_put(struct slot *s)
{
    struct worker *w = s->w;
    if (s->large) {
        /* A long message held this slot: without this, every slot that ever held one would
         * keep up to 128 KiB in memory for good (a flood of long TCP messages left 61 MB). It
         * costs a system call per long message, and ordinary ones never come here. */
        s->large = false;
        give_back(s->query, w->srv->page);
        give_back(s->reply, w->srv->page);
    }
    if (s->tcp)
        w->tcp_slots--;
    s->conn = NULL;
    s->next_free = w->free_slots;
    w->free_slots = s;
    /* A connection may be waiting for this slot. It runs from the idle callback, never from
     * here, because we may be deep inside that very connection's pump. */
    if (!link_is_empty(&w->starved) && !w->stopping)
        uv_idle_start(&w->wake, dns_tcp_on_wake);
}

void dns_worker_request_init(struct slot *s, uint8_t *pkt, size_t len, enum dns_proto proto,
                             const struct sockaddr *peer, const struct sockaddr_storage *local,
                             void (*send)(struct dns_request *))
{
    /* Field by field: the request is some 5 KB (the alias's buffers), and what the chain reads
     * it sets itself (dns_chain_handle); clearing it all cost a sixth of a query. */
    struct dns_request *req = &s->req;
    if (len > DNS_SLOT_KEEP) /* a long query: the slot's pages go back when it is free */
        s->large = true;
    req->pkt = pkt;
    req->pkt_len = len;
    req->ans = s->reply + 2;
    req->ans_cap = DNS_MAX_MSG;
    req->proto = proto;
    /* libuv's recvmmsg hands peers at 4-byte alignment: read the family as a sockaddr. */
    memcpy(&req->peer, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    req->local = *local;
    req->send = send;
    req->server_data = s;
    req->start_ns = uv_hrtime();
}

/* UDP. */

static void on_udp_sent(uv_udp_send_t *sr, int status)
{
    (void)status; /* a lost reply is the client's retry, as with any datagram */
    dns_worker_slot_put(sr->data);
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
        .msg_namelen = dns_addr_len(&req->peer),
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
    dns_worker_slot_note_reply(s);
    if (req->ans_len == 0 || req->ans_len > DNS_MAX_MSG || s->w->stopping) {
        dns_worker_slot_put(s);
        return;
    }
    assert(req->ans == s->reply + 2);
    if (s->udp == NULL) {
        send_from(s->udp_fd, req);
        dns_worker_slot_put(s);
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
    dns_worker_slot_put(s);
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
    struct slot *s = dns_worker_slot_get(w, false);
    if (s == NULL) {
        dns_counter_inc(&w->chain->stats.dropped);
        return;
    }
    memcpy(s->query, buf->base, (size_t)nread);
    s->udp = udp;
    size_t i = (size_t)(udp - w->udp);
    dns_worker_request_init(s, s->query, (size_t)nread, DNS_PROTO_UDP, addr, &w->srv->local[i],
                            udp_send);
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
    uint16_t port = dns_addr_port(&w->srv->cfg.listen[i]);
    for (int k = 0; k < n && !w->stopping; k++) {
        size_t len = msgs[k].msg_len;
        if (len == 0 || len > DNS_MAX_MSG || (msgs[k].msg_hdr.msg_flags & MSG_TRUNC))
            continue; /* empty, or larger than any query: not one */
        struct slot *s = dns_worker_slot_get(w, false);
        if (s == NULL) {
            dns_counter_inc(&w->chain->stats.dropped);
            continue;
        }
        struct sockaddr_storage local;
        datagram_destination(&msgs[k].msg_hdr, port, &local);
        memcpy(s->query, iov[k].iov_base, len);
        s->udp = NULL;
        s->udp_fd = w->udp_fd[i];
        dns_worker_request_init(s, s->query, len, DNS_PROTO_UDP, (const struct sockaddr *)&peers[k],
                                &local, udp_send);
        dns_chain_handle(w->chain, &s->req);
    }
}

static int worker_alloc(struct worker *w)
{
    const struct dns_server_config *cfg = &w->srv->cfg;
    /* calloc of this size maps fresh pages, and slots are handed out in order, the free ones
     * again first (dns_worker_slot_get): a slot costs memory only once a query needs it. A
     * free list threaded through all of them at the start touched a page of each, 5 MiB. */
    w->slots = calloc(cfg->udp_slots, sizeof(struct slot));
    w->udp_buf = malloc((size_t)UDP_CHUNK * UDP_BATCH);
    if (w->slots == NULL || w->udp_buf == NULL)
        return UV_ENOMEM;
    w->n_slots = cfg->udp_slots;
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
        if ((err = uv_listen((uv_stream_t *)&w->tcp[i], TCP_BACKLOG, dns_tcp_on_connection)) != 0)
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

static void add_stats(struct dns_chain_stats *out, const struct dns_chain_stats *in)
{
    dns_counter_add(&out->queries, dns_counter_get(&in->queries));
    for (size_t i = 0; i < sizeof(in->by_rcode) / sizeof(in->by_rcode[0]); i++)
        dns_counter_add(&out->by_rcode[i], dns_counter_get(&in->by_rcode[i]));
    dns_counter_add(&out->dropped, dns_counter_get(&in->dropped));
    dns_counter_add(&out->truncated, dns_counter_get(&in->truncated));
}

/* The worker's share of dns_server_stop(): close every handle it owns, then let the
 * composition root's chain_free close the chain's. Parked requests that the chain completes
 * meanwhile see stopping (or their connection closing) and are discarded. The loop then runs until
 * the last close callback. */
static void on_worker_stop(uv_async_t *async)
{
    struct worker *w = async->data;
    w->stopping = true;
    dns_tcp_close_all(w);
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
        add_stats(&w->final_stats, &chain->stats);
    w->chain = NULL;
    uv_mutex_unlock(&w->stats_lock);
    if (chain != NULL && w->srv->chain_free != NULL)
        w->srv->chain_free(w->srv->ctx, chain);
}

static void worker_finish(struct worker *w)
{
    dns_tcp_free_closed(w);
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
 * go to the control thread, never to a worker. */
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
    link_init(&w->fresh);
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
        char text[DNS_ADDR_TEXT_MAX];
        dns_addr_format(&srv->cfg.listen[i], text, sizeof(text));
        log_info("server", "event=listening listen=%s proto=udp,tcp workers=%u", text,
                 srv->n_workers);
    }
}

static int server_init(struct dns_server *srv)
{
    srv->n_workers = srv->cfg.workers;
    long page = sysconf(_SC_PAGESIZE);
    srv->page = page > 0 ? (size_t)page : 4096;
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
        srv->wildcard[i] = dns_addr_is_any(&srv->cfg.listen[i]);
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

/* Counters are atomics with one writer each (dns/counter.h): read from any thread, a count
 * may be a few queries old. stats_lock only keeps the chain from being freed under us. */
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
