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
#include "dns/names.h"
#include "resolver/cache.h"
#include "resolver/upstream.h"

#define RESOLVER_FORWARD_EDNS_SIZE 1232 /* our payload to upstreams (DNS Flag Day 2020) */

struct resolver_forward_config {
    struct sockaddr_storage upstreams[RESOLVER_UPSTREAM_MAX];
    size_t n_upstreams;
    unsigned timeout_ms;        /* one try (--upstream-timeout); default 1000 */
    unsigned deadline_ms;       /* the whole request, all tries; default 2000 */
    unsigned max_concurrent;    /* parked client requests, all workers (--max-concurrent): 1000 */
    unsigned max_fails;         /* consecutive failures that mark an upstream down: 2 */
    unsigned probe_interval_ms; /* how often a down upstream is probed with ". NS": 500 */
    bool loop_check;            /* probe each upstream for a forwarding loop at start: true */
    unsigned loop_recheck_ms;   /* a looping upstream is checked again this often: 30000 */
};

void resolver_forward_config_default(struct resolver_forward_config *cfg);

/* Counters, summed over all workers. Every worker bumps the same atomics with
 * atomic_fetch_add (relaxed), so any thread may read them (resolver_forward_stats()). */
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
    struct resolver_forward_upstream_stats upstreams[RESOLVER_UPSTREAM_MAX];
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
 * shared state also runs the loop check and the health probes on its loop. Keeps shared and
 * cache (NULL: none); what upstreams answer is stored there, and it answers for them with
 * stale data when they all fail (--serve-stale). own (NULL: none) tells the names svcdns
 * answers itself, on this worker's snapshot; a copy is kept, its self must outlive the
 * forwarder. */
int resolver_forward_new(struct resolver_forward **out, uv_loop_t *loop,
                         struct resolver_forward_shared *shared, struct resolver_cache *cache,
                         const struct dns_names *own);
/* On the loop's thread, from a callback or outside uv_run() (the server calls it from its
 * chain_free, inside the loop): answers parked requests with SERVFAIL (the server discards
 * replies while stopping) and closes every handle; the memory is freed by the last close
 * callback, so the caller runs the loop until it is empty, as dns/server.c does before
 * uv_loop_close(). No other code may close the forwarder's handles. NULL is a no-op. */
void resolver_forward_free(struct resolver_forward *fwd);

/* The forward stage: parks the request (DNS_PENDING) and resumes it with DNS_DONE and the
 * reply. Loop-check names coming back to us get NXDOMAIN at once. */
enum dns_verdict resolver_forward_serve(void *self, struct dns_request *req);

void resolver_forward_stats(const struct resolver_forward_shared *shared,
                            struct resolver_forward_stats *out);

/* Builds the client's reply in req->ans from an upstream reply that resolver_scrub_check()
 * accepted for req's question: the scrubbed records, the client's ID and question case, RA
 * set, AA cleared, TC as given, the client's OPT. When the upstream's CNAME chain reaches a
 * name of own (may be NULL), the request follows it (dns_request_follow) and the answer for
 * it is own's: the chain's end splices the upstream's CNAMEs and that answer together.
 * Exposed for the tests and the fuzzer. Returns 0 or -1 (req->ans untouched). */
int resolver_forward_build_reply(struct dns_request *req, const uint8_t *msg, size_t len, bool tc,
                                 const struct dns_names *own);

#endif
