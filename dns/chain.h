/* dns/chain.h - the handler chain a query runs through. Order is set once, in main.c.
 *
 * Each handler answers (DNS_DONE, with req->ans filled), passes (DNS_NEXT) or parks the
 * request (DNS_PENDING) and later calls dns_chain_resume(). When a handler answers, the
 * on_answer() hooks of the handlers that ran are called in reverse (the cache stores, the
 * search path rewrites), then the reply is sent. One chain per worker: handlers' state is
 * the worker's own, so the per-query path takes no lock. */
#ifndef DNS_CHAIN_H
#define DNS_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/request.h"

enum dns_verdict {
    DNS_NEXT,   /* not mine */
    DNS_DONE,   /* req->ans holds the reply */
    DNS_PENDING /* parked; the handler calls dns_chain_resume() later */
};

struct dns_handler {
    const char *name; /* for logs and metrics */
    enum dns_verdict (*serve)(void *self, struct dns_request *req);
    void (*on_answer)(void *self, struct dns_request *req); /* optional, runs in reverse */
    void *self;
};

#define DNS_CHAIN_MAX 8

struct dns_chain_stats {
    uint64_t queries;
    uint64_t by_rcode[24];
    uint64_t dropped;
    uint64_t truncated;
};

struct dns_chain {
    struct dns_handler handlers[DNS_CHAIN_MAX];
    unsigned n;
    bool recursion_available; /* RA in replies: true when a forwarder is in the chain */
    bool log_queries;
    struct dns_chain_stats stats;
};

void dns_chain_init(struct dns_chain *chain);
int dns_chain_add(struct dns_chain *chain, const struct dns_handler *h);

/* Parses req->pkt, answers what the protocol rules answer (FORMERR, NOTIMP, BADVERS,
 * REFUSED for classes other than IN and CH), and runs the handlers on the rest. A query no
 * handler takes gets REFUSED. Always ends in exactly one req->send(). */
void dns_chain_handle(struct dns_chain *chain, struct dns_request *req);

/* For a parked request: DNS_DONE sends req->ans, DNS_NEXT runs the following handlers. */
void dns_chain_resume(struct dns_request *req, enum dns_verdict verdict);

/* Fills req->ans with an empty reply of this rcode (plus an EDE when ede >= 0). */
void dns_chain_reply_error(struct dns_request *req, unsigned rcode, int ede);

/* Applies the UDP size limit: a reply longer than req->max_size becomes an empty reply with
 * TC set (NSD and Knot do the same; the client retries over TCP). */
void dns_chain_truncate(struct dns_request *req);

#endif
