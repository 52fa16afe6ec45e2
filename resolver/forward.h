/* resolver/forward.h - forwarding queries outside our zones to upstream resolvers.
 *
 * One forwarder per worker loop, all of them sharing one resolver_forward_shared: the upstream
 * list, its health (atomics), the loop-check state and the counters. Each upstream query gets
 * a random ID and its own connected UDP socket on a kernel-chosen port (RFC 5452), identical
 * outstanding questions share one upstream query, and a client always gets an answer: the
 * upstream's, or SERVFAIL with an Extended DNS Error inside the request deadline. */
#ifndef RESOLVER_FORWARD_H
#define RESOLVER_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "dns/chain.h"

#define RESOLVER_FORWARD_NAME "forward"   /* the handler name main.c registers */
#define RESOLVER_FORWARD_MAX_UPSTREAMS 15 /* CoreDNS forward's limit */
#define RESOLVER_FORWARD_EDNS_SIZE 1232   /* our payload to upstreams (DNS Flag Day 2020) */

/* Bits the forwarder sets in req->flags for the cache's on_answer. dns/request.h defines its
 * shared DNS_REQ_* bits from the bottom; these sit high to stay clear of them. */
#define RESOLVER_FORWARD_REQ_LOCAL 0x00010000u   /* answered here, not by an upstream */
#define RESOLVER_FORWARD_REQ_FAILED 0x00020000u  /* SERVFAIL: every upstream failed */
#define RESOLVER_FORWARD_REQ_TIMEOUT 0x00040000u /* ... and all of them by silence (EDE 22) */

/* Extended DNS Errors (RFC 8914) the resolver modules send. */
#define RESOLVER_EDE_STALE_ANSWER 3
#define RESOLVER_EDE_NO_REACHABLE_AUTHORITY 22
#define RESOLVER_EDE_NETWORK_ERROR 23

struct resolver_forward_config {
    struct sockaddr_storage upstreams[RESOLVER_FORWARD_MAX_UPSTREAMS];
    size_t n_upstreams;
    unsigned timeout_ms;        /* one try (--upstream-timeout); default 1000 */
    unsigned deadline_ms;       /* the whole request, all tries; default 2000 */
    unsigned max_concurrent;    /* parked client requests, all workers (--max-concurrent): 1000 */
    unsigned max_fails;         /* consecutive failures that mark an upstream down: 2 */
    unsigned probe_interval_ms; /* how often a down upstream is probed with ". NS": 500 */
    bool loop_check;            /* probe each upstream for a forwarding loop at start: true */
};

void resolver_forward_config_default(struct resolver_forward_config *cfg);

/* Counters, summed over all workers. */
struct resolver_forward_upstream_stats {
    struct sockaddr_storage addr;
    uint64_t queries;  /* tries sent (UDP and TCP) */
    uint64_t failures; /* tries that timed out, failed or were answered with an error */
    bool down;
    bool looping; /* leads back to us: never used */
    bool no_edns; /* answered FORMERR to EDNS: queried without OPT */
};

struct resolver_forward_stats {
    uint64_t requests;   /* client queries the handler took */
    uint64_t coalesced;  /* ... that joined an identical outstanding query */
    uint64_t rcode[16];  /* replies to clients, by rcode */
    uint64_t timeouts;   /* tries that timed out */
    uint64_t mismatches; /* datagrams ignored: wrong ID or question, runts */
    uint64_t malformed;  /* replies to our query that did not parse */
    uint64_t refused_max_concurrent;
    uint64_t tcp_retries;    /* TC over UDP, asked again over TCP */
    uint64_t edns_fallbacks; /* FORMERR to EDNS, asked again without */
    uint64_t upstream_down;  /* transitions to down */
    uint64_t loop_probes_seen;
    size_t n_upstreams;
    struct resolver_forward_upstream_stats upstreams[RESOLVER_FORWARD_MAX_UPSTREAMS];
};

struct resolver_forward_shared;
struct resolver_forward;

/* Keeps a copy of cfg. The upstream list must not be empty. */
int resolver_forward_shared_new(struct resolver_forward_shared **out,
                                const struct resolver_forward_config *cfg);
/* After every forwarder using it is freed. NULL is a no-op. */
void resolver_forward_shared_free(struct resolver_forward_shared *shared);

/* A worker's forwarder on its loop; allocates its pending table (max_concurrent queries plus
 * room for probes) and takes no memory per query afterwards. The first forwarder made for a
 * shared state also runs the loop check and the health probes on its loop. Keeps shared. */
int resolver_forward_new(struct resolver_forward **out, uv_loop_t *loop,
                         const struct resolver_forward_config *cfg,
                         struct resolver_forward_shared *shared);
/* On the loop's thread, from a callback or outside uv_run() (the server calls it from its
 * chain_free, inside the loop): answers parked requests with SERVFAIL (the server discards
 * replies while stopping) and closes every handle; the memory is freed by the last close
 * callback, so the caller runs the loop until it is empty, as dns/server.c does before
 * uv_loop_close(). No other code may close the forwarder's handles. NULL is a no-op. */
void resolver_forward_free(struct resolver_forward *fwd);

/* The handler: parks the request (DNS_PENDING) and resumes it with DNS_DONE and the reply. */
enum dns_verdict resolver_forward_serve(void *self, struct dns_request *req);

/* Whether q is one of our loop-check probes coming back to us; counts the arrival. More than
 * two arrivals of an upstream's probe mark that upstream as looping. The handler calls it. */
bool resolver_forward_is_loop_probe(struct resolver_forward_shared *shared,
                                    const struct dns_query *q);

void resolver_forward_stats(const struct resolver_forward_shared *shared,
                            struct resolver_forward_stats *out);

/* "10.0.0.10", "10.0.0.10:5353", "[fd00::10]:53", "fd00::10" (port 53 by default). 0 or -1. */
int resolver_forward_parse_upstream(const char *text, struct sockaddr_storage *out);
/* The nameserver lines of a resolv.conf, at most cap. 0 (even with none found) or -errno. */
int resolver_forward_upstreams_from_resolv_conf(const char *path, struct sockaddr_storage *out,
                                                size_t cap, size_t *n);
/* Whether an upstream is one of our own listen addresses: equal, or on the port of a wildcard
 * listener (0.0.0.0, ::) and local (loopback, or an address of this host). */
bool resolver_forward_is_self(const struct sockaddr_storage *up,
                              const struct sockaddr_storage *listen, size_t n);

/* Builds the client's reply in req->ans from an upstream reply that resolver_scrub_check()
 * accepted for req's question: the scrubbed records, the client's ID and question case, RA
 * set, AA cleared, TC as given, the client's OPT. Exposed for the tests and the fuzzer.
 * Returns 0 or -1 (req->ans untouched). */
int resolver_forward_build_reply(struct dns_request *req, const uint8_t *msg, size_t len, bool tc);

#endif
