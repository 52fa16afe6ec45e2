/* zones/answer.h - the zones stage: authoritative answers from a zones_store, and the
 * dns_names interface other stages ask about cluster names through.
 *
 * Everything here is a read of the immutable snapshot and writes into the caller's buffer; no
 * allocation. Names under the cluster domain always get an authoritative answer (records,
 * NODATA or NXDOMAIN, with the apex SOA). Reverse names answer where a cluster address has a
 * PTR; the rest fall through to the forwarder when there is one. */
#ifndef ZONES_ANSWER_H
#define ZONES_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/chain.h"
#include "dns/names.h"
#include "zones/store.h"

enum zones_answer_result {
    ZONES_ANSWER_NOT_OURS, /* not in our zones (or a reverse miss with a forwarder) */
    ZONES_ANSWER_DONE,     /* out holds the reply */
};

struct zones_answer_config {
    bool fallthrough_reverse; /* reverse misses go on to the next stage (the forwarder) */
    bool recursion_available; /* set RA: a forwarder is configured */
    bool chase_outside;       /* CNAME chains leaving our zones are followed upstream */
    /* ANY gets every RRset of the name (TCP, --dump); else one RRset (RFC 8482, for UDP). */
    bool any_in_full;
};

/* A CNAME chain that leaves our zones: its records, and the name the upstream resolves. */
struct zones_chase {
    struct dns_name target;
    const uint8_t *records; /* in the snapshot; 0xc00c names the question */
    size_t len;
    uint16_t count; /* 0: the answer is complete */
};

/* Answers q (its qname as parsed, lower-cased; the question echoed from pkt). *out_len is the
 * reply length; it may exceed the UDP limit, which the chain handles. chase (may be NULL)
 * says whether the answer is a chain that leaves our zones. */
enum zones_answer_result zones_answer_query(const struct zones_store *store,
                                            const struct zones_answer_config *cfg,
                                            const struct dns_query *q, const uint8_t *pkt,
                                            uint8_t *out, size_t cap, size_t *out_len,
                                            struct zones_chase *chase);

/* One worker's zones stage, over the store (which changes in place; dns/epoch.h keeps what a
 * worker reads alive). */
struct zones_answer {
    const struct zones_store *store;
    struct zones_answer_config cfg;
};

enum dns_verdict zones_answer_serve(void *self, struct dns_request *req);
/* The dns_names interface over za's snapshot; za must outlive its use. */
struct dns_names zones_answer_names(const struct zones_answer *za);

#endif
