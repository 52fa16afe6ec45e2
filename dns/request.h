/* dns/request.h - one query in flight, from the socket to the reply.
 *
 * A request lives in a slot the server allocated at start: the query bytes, the reply buffer
 * and the parsed query are all inside it, so nothing is allocated per query. A stage that
 * parks a request (DNS_PENDING) keeps the slot until it resumes the chain.
 *
 * A stage that learns the answer lies under another name (an ExternalName's target, a
 * search-path candidate) makes the request follow that alias: later stages see a query for
 * the target, and the chain's end splices the reply back together under the client's
 * question. That is the one way a request's question changes, and this file owns it. */
#ifndef DNS_REQUEST_H
#define DNS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/counter.h"
#include "dns/wire.h"

enum dns_proto { DNS_PROTO_UDP, DNS_PROTO_TCP };

struct dns_chain;

/* Why a stage's answer is an error it made itself (the query log and the cache read it). */
enum dns_failure {
    DNS_FAILURE_NONE,
    DNS_FAILURE_SILENT,   /* no upstream answered in time: SERVFAIL with EDE 22 */
    DNS_FAILURE_UPSTREAM, /* upstreams failed otherwise (errors, garbage, network): EDE 23 */
    DNS_FAILURE_OVERLOAD, /* too many upstream queries in flight: REFUSED */
};

#define DNS_ALIAS_PREFIX_MAX 3072   /* ten CNAMEs of full-length names fit */
#define DNS_ALIAS_FALLBACK_MAX 1280 /* a negative answer: question, SOA and OPT */

/* The client's question while the request follows an alias. */
struct dns_alias {
    bool active;
    struct dns_query q;                 /* the client's query as parsed */
    uint8_t question[DNS_MAX_NAME + 4]; /* its question bytes, in the client's case */
    uint16_t question_len;
    uint16_t prefix_len;
    uint16_t prefix_count;
    uint8_t prefix[DNS_ALIAS_PREFIX_MAX]; /* records that go before the answer */
    /* A reply to the client's own question, for a target that may not resolve: sent instead
     * of the spliced one when the target's answer is not NOERROR. 0: none. */
    uint16_t fallback_len;
    struct dns_counter *fallback_used;
    uint8_t fallback[DNS_ALIAS_FALLBACK_MAX];
};

struct dns_request {
    /* Set by the server before dns_chain_handle(). */
    uint8_t *pkt; /* the query as received; DNS_MAX_MSG bytes of room */
    size_t pkt_len;
    uint8_t *ans; /* the reply is built here */
    size_t ans_cap;
    enum dns_proto proto;
    struct sockaddr_storage peer;
    struct sockaddr_storage local; /* the address the query arrived on, where known */
    /* Called once when the reply in ans[0..ans_len) is ready (ans_len 0: send nothing). The
     * server sends it and frees the slot; the request must not be touched afterwards. */
    void (*send)(struct dns_request *req);
    void *server_data;
    uint64_t start_ns; /* receive time, for the query log */

    /* Filled by the chain. */
    struct dns_query q;
    size_t ans_len;
    size_t ans_peak;   /* the reply's length before truncation, when it was truncated; else 0 */
    uint16_t max_size; /* the most this reply may hold: UDP limit or DNS_MAX_MSG on TCP */
    struct dns_chain *chain;
    unsigned stage;           /* enum dns_stage: the one running, parked, or that answered */
    enum dns_failure failure; /* set by the stage whose own error answers */
    struct dns_alias alias;
};

/* Makes the request follow an alias: the query becomes one for target, and the reply will be
 * the client's question, then prefix (the CNAME records that lead to target; they may name
 * the current question with the pointer 0xc00c), then whatever the later stages answer for
 * target. Several follows chain. Returns 0, or -1 when the prefix would not fit (the request
 * is unchanged; the caller answers with what it has). */
int dns_request_follow(struct dns_request *req, const struct dns_name *target,
                       const uint8_t *prefix, size_t prefix_len, uint16_t prefix_count);

/* Right after the first dns_request_follow(): the target may not resolve, and then the client
 * gets req->alias.fallback[0..len) instead, a complete reply to its own question that the
 * caller wrote there before following. used (may be NULL) counts each time it is sent. */
void dns_request_fallback(struct dns_request *req, size_t len, struct dns_counter *used);

/* The chain's end, for a request that followed: puts the client's question back and makes
 * req->ans the client's reply (question, prefix, answer; or the fallback). */
void dns_request_end_alias(struct dns_request *req);

#endif
