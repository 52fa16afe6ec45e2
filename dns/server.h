/* dns/server.h - UDP and TCP listeners on libuv, one event loop per worker thread.
 *
 * Each worker owns a loop, its own SO_REUSEPORT UDP and TCP socket on every listen address,
 * a fixed pool of request slots, and the dns_chain that the composition root built for it. The
 * server knows sockets only: a datagram or a TCP frame becomes a dns_request handed to
 * dns_chain_handle(), and req->send() puts the reply on the wire. */
#ifndef DNS_SERVER_H
#define DNS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "dns/chain.h"

#define DNS_SERVER_MAX_LISTEN 16
#define DNS_SERVER_MAX_WORKERS 1024

struct dns_server_config {
    struct sockaddr_storage listen[DNS_SERVER_MAX_LISTEN];
    size_t n_listen;
    unsigned workers;          /* event loops (threads), at least 1; default 1 */
    unsigned udp_slots;        /* request slots per worker: UDP, TCP (at most 3/4) and parked */
    unsigned tcp_max_conns;    /* per worker; past it the oldest idle connection is closed */
    unsigned tcp_idle_ms;      /* close a connection with no query in flight after this */
    unsigned tcp_read_ms;      /* close a connection stuck in a partial message after this */
    unsigned tcp_max_inflight; /* pipelined queries per connection answered concurrently */
};

void dns_server_config_default(struct dns_server_config *cfg);

/* Called once in each worker thread before its loop runs: builds that worker's chain.
 * Returns NULL on failure. The chain lives until the matching chain_free, which runs on the
 * same thread, inside the loop, after the server closed its own handles: it must uv_close
 * every handle the chain opened (the server then runs the loop until it is empty) and may
 * complete parked requests, whose replies are discarded. */
typedef struct dns_chain *(*dns_chain_new_fn)(void *ctx, uv_loop_t *loop, unsigned worker);
typedef void (*dns_chain_free_fn)(void *ctx, struct dns_chain *chain);

struct dns_server;

/* Binds every listen address (UDP and TCP) for every worker, so an address in use fails here,
 * before anything runs, with a negative errno (UV_EADDRINUSE...) after logging which address
 * and what to do. Keeps cfg's values, not the pointer. */
int dns_server_new(struct dns_server **out, const struct dns_server_config *cfg,
                   dns_chain_new_fn chain_new, dns_chain_free_fn chain_free, void *ctx);
/* Runs the workers, each on its own thread, until dns_server_stop(); meanwhile the calling
 * thread runs dns_server_loop(). Returns 0 or an error from a worker's start. Once only. */
int dns_server_run(struct dns_server *srv);
/* Safe from any thread and from a signal handler (it is one uv_async_send()), at any time
 * between dns_server_new() and dns_server_free(), also before dns_server_run(). */
void dns_server_stop(struct dns_server *srv);
/* The loop dns_server_run() runs on the calling thread, for the composition root's own handles
 * (signals, file watches, HTTP); it stops serving them at dns_server_stop(). Close them before
 * dns_server_free(). Worker threads block asynchronous signals (SIGPIPE too), so a signal
 * always lands on the control thread. */
uv_loop_t *dns_server_loop(struct dns_server *srv);
/* After dns_server_run() has returned, or instead of it. */
void dns_server_free(struct dns_server *srv);
/* Aggregated counters of all workers' chains, for metrics. Safe from any thread while the
 * server runs and after; a count may lag the workers by a few queries. */
void dns_server_stats(struct dns_server *srv, struct dns_chain_stats *out);

#endif
