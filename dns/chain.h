/* dns/chain.h - the query plan: the stages a query runs through, in one fixed order.
 *
 * dns_chain_handle() parses the query (dns/wire.c) and answers what the protocol alone
 * decides (FORMERR, NOTIMP, BADVERS, REFUSED for other classes, zone transfers). A CHAOS-class
 * query then goes to the chaos stage alone, as Knot's query plan does; any other runs the
 * search, zones, cache and forward stages in that order (each present or not). A stage
 * answers (DNS_DONE, with req->ans filled), passes (DNS_NEXT), or parks the request
 * (DNS_PENDING) and later calls dns_chain_resume(). A query no stage answers gets REFUSED.
 *
 * Then, once, the end: an alias the request followed is spliced back under the client's
 * question (dns/request.c), the UDP size limit is applied, a UDP reply passes the rate limit
 * (dns/rrl.h: sent, dropped or slipped as an empty TC reply), the query is counted and
 * logged, and req->send() puts it on the wire. Nothing else runs after the answer: what must see an
 * answer (the cache, the forwarder's) is called by the stage that made it.
 *
 * One chain per worker, built once by the composition root. The stages' own state is the
 * worker's; what workers share (the cache, upstream health) is guarded by its owner. */
#ifndef DNS_CHAIN_H
#define DNS_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/counter.h"
#include "dns/request.h"

enum dns_verdict {
    DNS_NEXT,   /* not mine: the next stage runs */
    DNS_DONE,   /* req->ans holds the reply */
    DNS_PENDING /* parked; the stage calls dns_chain_resume() later */
};

/* The stages, in the order they run. */
enum dns_stage {
    DNS_STAGE_PROTOCOL, /* the chain itself: malformed or unsupported queries, nobody's names */
    DNS_STAGE_CHAOS,    /* class CH: version.bind, hostname.bind, ... */
    DNS_STAGE_SEARCH,   /* short names and search-path walks: may make the request follow */
    DNS_STAGE_ZONES,    /* authoritative: the cluster zone and the reverse zones */
    DNS_STAGE_CACHE,    /* answers kept from the upstreams */
    DNS_STAGE_FORWARD,  /* the upstream resolvers; parks the request */
    DNS_STAGE_COUNT,
};

struct dns_stage_handler {
    enum dns_verdict (*serve)(void *self, struct dns_request *req);
    void *self;
};

struct dns_chain_stats {
    struct dns_counter queries;
    struct dns_counter by_rcode[24];
    struct dns_counter dropped;   /* runts, responses, no free request slot */
    struct dns_counter truncated; /* UDP replies sent empty with TC */
};

struct dns_rrl;

struct dns_chain {
    struct dns_stage_handler stages[DNS_STAGE_COUNT]; /* serve NULL: no such stage */
    bool recursion_available; /* RA in replies: true when a forward stage is set */
    bool log_queries;
    struct dns_rrl *rrl; /* --rrl: UDP replies rate-limited at the end; NULL: off. Shared. */
    struct dns_chain_stats stats; /* bumped by the worker only; read by anyone */
};

void dns_chain_init(struct dns_chain *chain);
/* Puts a stage in the plan; DNS_STAGE_PROTOCOL is the chain's own and cannot be set. */
void dns_chain_set(struct dns_chain *chain, enum dns_stage stage,
                   const struct dns_stage_handler *h);
/* "protocol", "chaos", "search", "zones", "cache", "forward": for logs. */
const char *dns_stage_name(enum dns_stage stage);

/* Runs the plan for req (req->pkt set by the server). Always ends in exactly one
 * req->send(), now or after a parked stage resumes. */
void dns_chain_handle(struct dns_chain *chain, struct dns_request *req);

/* For a parked request: DNS_DONE sends req->ans, DNS_NEXT runs the stages after the one that
 * parked it. */
void dns_chain_resume(struct dns_request *req, enum dns_verdict verdict);

/* Fills req->ans with an empty reply of this rcode (plus an EDE when ede >= 0), RA set when
 * the chain forwards. */
void dns_chain_reply_error(struct dns_request *req, unsigned rcode, int ede);

#endif
