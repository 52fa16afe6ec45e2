/* dns/worker.h - a worker's state, shared by the two halves of the server: dns/server.c
 * (threads, sockets, request slots, UDP) and dns/tcp.c (TCP connections). Internal to dns/:
 * the rest of svcdns sees only dns/server.h.
 *
 * Invariants. A worker's state is touched by its own thread only; the exceptions are its
 * stop async (sent by the control loop) and its chain pointer, which dns_server_stats() reads
 * under stats_lock. The counts kept here (n_open, tcp_slots, ...) are never read by another
 * thread; what /metrics shows is in the chain's stats (dns/counter.h, one writer: this
 * worker), and final_stats is written and read under stats_lock. A request slot is in exactly
 * one place: the worker's free list, a connection's long-message buffer (conn->large), or with
 * the chain from dns_chain_handle() until its reply is sent. */
#ifndef DNS_WORKER_H
#define DNS_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dns/server.h"

#define DNS_SLOT_BUF (DNS_MAX_MSG + 2) /* a whole TCP frame: length prefix and message */
/* What of a slot's query and reply buffers stays in memory when the slot is free. Ordinary
 * messages fit; a slot that held a longer one gives the rest of its pages back when it is
 * released (dns/server.c), so long messages hold memory only while they are in flight. */
#define DNS_SLOT_KEEP 4096
/* A TCP connection reads into a buffer of its own this long; a longer message is read into a
 * slot, by at most DNS_TCP_LARGE_READS connections of a worker at once (2 MiB in all). */
#define DNS_TCP_INBUF DNS_FRAME_SMALL
#define DNS_TCP_LARGE_READS 32

#define CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* A circular doubly linked list with a sentinel, embedded in its members. */
struct link {
    struct link *prev, *next;
};

static inline void link_init(struct link *l)
{
    l->prev = l;
    l->next = l;
}

static inline bool link_is_empty(const struct link *l)
{
    return l->next == l;
}

static inline void link_remove(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

static inline void link_push(struct link *head, struct link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

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
    bool large;        /* held a message longer than DNS_SLOT_KEEP: give its pages back */
    uv_udp_send_t udp_send;
    uv_write_t write;
    uint8_t query[DNS_SLOT_BUF];
    uint8_t reply[DNS_SLOT_BUF]; /* the reply starts at reply + 2, after room for the length */
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
    unsigned n_slots;                          /* in slots */
    unsigned n_slots_touched;                  /* slots[0, n) have been handed out at least once */
    unsigned tcp_slots, tcp_slot_cap;          /* TCP may never take the slots UDP needs */
    struct link fresh, open, closing, starved; /* connections: see dns/tcp.c */
    unsigned n_open;                           /* in fresh and open */
    unsigned large_reads;                      /* connections reading into a slot */
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
    size_t page;    /* the memory page size, for giving slot pages back */
    uv_loop_t loop; /* the control loop, run by dns_server_run() on the caller's thread */
    uv_async_t stop;
    bool loop_init, ran, stopping;
};

/* Whether a slot is free (TCP's share aside). */
static inline bool dns_worker_slot_available(const struct worker *w)
{
    return w->free_slots != NULL || w->n_slots_touched < w->n_slots;
}

/* dns/server.c: a free slot, or NULL (none left, or TCP at its share). */
struct slot *dns_worker_slot_get(struct worker *w, bool tcp);
void dns_worker_slot_put(struct slot *s);
/* Before s's reply is sent: notes how much of the slot's buffers the reply took. */
void dns_worker_slot_note_reply(struct slot *s);
/* Readies s's request for dns_chain_handle(); a query longer than DNS_SLOT_KEEP marks s large. */
void dns_worker_request_init(struct slot *s, uint8_t *pkt, size_t len, enum dns_proto proto,
                             const struct sockaddr *peer, const struct sockaddr_storage *local,
                             void (*send)(struct dns_request *));

/* dns/tcp.c. */
void dns_tcp_on_connection(uv_stream_t *listener, int status); /* listener->data: the worker */
void dns_tcp_on_wake(uv_idle_t *idle);                         /* idle->data: the worker */
/* At stop: closes every open connection. */
void dns_tcp_close_all(struct worker *w);
/* After the loop ended: frees connections whose requests the chain abandoned. */
void dns_tcp_free_closed(struct worker *w);

#endif
