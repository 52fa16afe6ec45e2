/* zones/answer.h - answering queries from a zones_store: the authoritative handler.
 *
 * Everything here is a read of the immutable store and writes into the caller's buffer; no
 * allocation. Names under the cluster domain always get an authoritative answer (records,
 * NODATA or NXDOMAIN, with the apex SOA). Reverse names answer where a cluster address has
 * a PTR; the rest fall through to the forwarder when there is one. */
#ifndef ZONES_ANSWER_H
#define ZONES_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/chain.h"
#include "zones/store.h"

enum zones_answer_result {
    ZONES_ANSWER_NOT_OURS, /* not in our zones (or a reverse miss with a forwarder) */
    ZONES_ANSWER_DONE,     /* out holds the reply */
};

struct zones_answer_config {
    bool fallthrough_reverse; /* reverse misses go on to the next handler (the forwarder) */
    bool recursion_available; /* set RA: a forwarder is configured */
    bool chase_outside;       /* CNAME chains leaving our zones are followed upstream */
};

/* Answers q (its qname as parsed, lower-cased; the question echoed from pkt). *out_len is the
 * reply length; it may exceed the UDP limit, which the chain handles. When the answer is a
 * CNAME chain that leaves our zones, *chase (if not NULL) is set to the entry. */
enum zones_answer_result zones_answer_query(const struct zones_store *store,
                                            const struct zones_answer_config *cfg,
                                            const struct dns_query *q, const uint8_t *pkt,
                                            uint8_t *out, size_t cap, size_t *out_len,
                                            const struct zones_entry **chase);

/* Whether a name exists in the cluster zone with records of any type (an ExternalName
 * counts); empty non-terminals do not. For the search path. */
bool zones_answer_name_has_records(const struct zones_store *store, const struct dns_name *name);

/* The authoritative handler. The store pointer is read on every query, so main.c can swap in
 * a new snapshot between queries. */
struct zones_answer {
    const struct zones_store *store;
    struct zones_answer_config cfg;
};

enum dns_verdict zones_answer_serve(void *self, struct dns_request *req);

#endif
