/* resolver/upstream.h - the upstream resolvers and what every worker knows of them.
 *
 * The list (from --upstream or a resolv.conf, never one of our own listen addresses), each
 * upstream's health (consecutive failures, down, no EDNS) and the loop check (CoreDNS's
 * `loop`: a random name sent to each upstream that must not come back to us). Shared by all
 * workers' forwarders through atomics; the forwarding engine (resolver/forward.c) sends the
 * queries and reports what happened here. */
#ifndef RESOLVER_UPSTREAM_H
#define RESOLVER_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/addr.h"
#include "dns/wire.h"

#define RESOLVER_UPSTREAM_MAX 15 /* CoreDNS forward's limit */
/* A loop-check name that comes back to us this many times proves a loop; the engine sends it
 * again, up to this many rounds, while it keeps coming back. */
#define RESOLVER_UPSTREAM_LOOP_ROUNDS 3

struct resolver_upstream {
    struct sockaddr_storage addr;
    char text[DNS_ADDR_TEXT_MAX];
    struct dns_name probe; /* <random>.<random>.svcdns-loop-check., fixed at start */
    atomic_uint fails;     /* consecutive */
    atomic_bool down;
    atomic_bool no_edns;
    atomic_bool looping;
    atomic_uint loop_seen;
    atomic_uint_fast64_t queries;
    atomic_uint_fast64_t failures;
};

struct resolver_upstreams {
    struct resolver_upstream up[RESOLVER_UPSTREAM_MAX];
    size_t n;
    unsigned max_fails;    /* consecutive failures that mark an upstream down */
    atomic_uint preferred; /* the upstream that answered last */
    atomic_uint_fast64_t marked_down;
    atomic_uint_fast64_t loop_probes_seen;
};

/* n addresses (1 to RESOLVER_UPSTREAM_MAX), each with a fresh random loop-check name. */
int resolver_upstream_init(struct resolver_upstreams *ups, const struct sockaddr_storage *addrs,
                           size_t n, unsigned max_fails);

/* Health, reported by the engine after each try. */
void resolver_upstream_failed(struct resolver_upstreams *ups, unsigned i);
void resolver_upstream_ok(struct resolver_upstreams *ups, unsigned i);
/* Not known to lead back to us. A down upstream is still usable: it is tried last. */
bool resolver_upstream_usable(const struct resolver_upstreams *ups, unsigned i);
bool resolver_upstream_any_usable(const struct resolver_upstreams *ups);

/* Whether q is one of our loop-check names coming back to us; counts the arrival. More than
 * two arrivals of an upstream's name mark that upstream as looping, for good. */
bool resolver_upstream_is_loop_probe(struct resolver_upstreams *ups, const struct dns_query *q);

/* The nameserver lines of a resolv.conf (port 53), at most cap. 0 (even with none found) or
 * -errno. */
int resolver_upstream_from_resolv_conf(const char *path, struct sockaddr_storage *out, size_t cap,
                                       size_t *n);
/* Whether an upstream is one of our own listen addresses: equal, or on the port of a wildcard
 * listener (0.0.0.0, ::) and local (loopback, or an address of this host). */
bool resolver_upstream_is_self(const struct sockaddr_storage *up,
                               const struct sockaddr_storage *listen, size_t n);

#endif
