/* resolver/upstream.h - the upstream resolvers and what every worker knows of them.
 *
 * The list (from --upstream or a resolv.conf, never one of our own listen addresses), each
 * upstream's health (consecutive failures, down, no EDNS) and the loop check (CoreDNS's
 * `loop`: a random name sent to each upstream that must not come back to us). Shared by all
 * workers' forwarders through atomics; the forwarding engine (resolver/forward.c) sends the
 * queries and reports what happened here.
 *
 * The loop check is made safe to run again (CoreDNS exits instead, and kubelet restarts it):
 * each check has its own random probe name, an arrival counts only while that check waits
 * for it and only from where a real loop sends it, and a looping upstream is checked again
 * until a check finds no loop. Anyone who saw one probe name can therefore neither mark an
 * upstream looping nor keep it marked. */
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
/* A loop-check name that comes back to us this many times in one check proves a loop; the
 * engine sends it again, up to this many rounds, while it keeps coming back. */
#define RESOLVER_UPSTREAM_LOOP_ROUNDS 3
/* How long after a round was sent its probe may still come back: the try, and this. */
#define RESOLVER_UPSTREAM_LOOP_GRACE_MS 2000

struct resolver_upstream {
    struct sockaddr_storage addr;
    char text[DNS_ADDR_TEXT_MAX];
    atomic_uint fails; /* consecutive */
    atomic_bool down;
    atomic_bool no_edns;
    atomic_bool looping;
    /* The current loop check: its probe is <probe_id, 16 hex digits>.svcdns-loop-check.,
     * arrivals count until window_until_ms. */
    atomic_uint_fast64_t probe_id;
    atomic_uint_fast64_t window_until_ms;
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

/* n addresses (1 to RESOLVER_UPSTREAM_MAX); no loop check has begun. */
int resolver_upstream_init(struct resolver_upstreams *ups, const struct sockaddr_storage *addrs,
                           size_t n, unsigned max_fails);

/* Health, reported by the engine after each try. */
void resolver_upstream_failed(struct resolver_upstreams *ups, unsigned i);
void resolver_upstream_ok(struct resolver_upstreams *ups, unsigned i);
/* Not known to lead back to us. A down upstream is still usable: it is tried last. */
bool resolver_upstream_usable(const struct resolver_upstreams *ups, unsigned i);
bool resolver_upstream_any_usable(const struct resolver_upstreams *ups);

/* The loop check, run by the engine's prober. A check begins with a fresh random probe name
 * and no arrivals; before each round the engine opens the window until until_ms (a monotonic
 * clock in ms, uv_now()). A check that ends without proof lifts a loop mark an earlier one
 * set; returns whether it did. */
void resolver_upstream_loop_check_begin(struct resolver_upstreams *ups, unsigned i);
void resolver_upstream_loop_window(struct resolver_upstreams *ups, unsigned i, uint64_t until_ms);
void resolver_upstream_loop_probe_name(struct resolver_upstreams *ups, unsigned i,
                                       struct dns_name *out);
bool resolver_upstream_loop_check_end(struct resolver_upstreams *ups, unsigned i);

/* Whether q is a loop-check name (any name under svcdns-loop-check.), which the engine
 * answers with NXDOMAIN and never forwards: a probe that comes back late in a real loop must
 * not go round again. It counts toward upstream i's loop only when it is the probe of i's
 * current check, arrives (at now_ms) while that check's window is open, and comes from where
 * a real loop sends it: i's own address, or this host (loopback or a local address).
 * RESOLVER_UPSTREAM_LOOP_ROUNDS counted arrivals in one check mark i looping. */
bool resolver_upstream_is_loop_probe(struct resolver_upstreams *ups, const struct dns_query *q,
                                     const struct sockaddr_storage *from, uint64_t now_ms);

/* The nameserver lines of a resolv.conf (port 53), at most cap. 0 (even with none found) or
 * -errno. */
int resolver_upstream_from_resolv_conf(const char *path, struct sockaddr_storage *out, size_t cap,
                                       size_t *n);
/* Whether an upstream is one of our own listen addresses: equal, or on the port of a wildcard
 * listener (0.0.0.0, ::) and local (loopback, or an address of this host). */
bool resolver_upstream_is_self(const struct sockaddr_storage *up,
                               const struct sockaddr_storage *listen, size_t n);

#endif
