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

#define DNS_ALIAS_PREFIX_MAX 3072 /* ten CNAMEs of full-length names fit */

struct dns_request;

/* Writes a complete reply to the client's own question (in req->q and req->pkt again) into
 * req->ans, or returns false having changed nothing. It may follow an alias itself with
 * dns_request_follow() and answer for the target; the chain's end then splices that in. */
typedef bool (*dns_request_fallback_fn)(void *self, struct dns_request *req);

/* The client's question while the request follows an alias (or may fall back). */
struct dns_alias {
    bool active;
    bool followed;                      /* the question was rewritten: splice at the end */
    struct dns_query q;                 /* the client's query as parsed */
    uint8_t question[DNS_MAX_NAME + 4]; /* its question bytes, in the client's case */
    uint16_t question_len;
    uint16_t prefix_len;
    uint16_t prefix_count;
    uint8_t prefix[DNS_ALIAS_PREFIX_MAX]; /* records that go before the answer */
    /* For an answer that may not come: run at the chain's end when the answer is not
     * NOERROR, instead of sending it. NULL: none. */
    dns_request_fallback_fn fallback;
    void *fallback_self;
    struct dns_counter *fallback_used;
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

/* The answer the later stages give may not be the one the client should get when it is not
 * NOERROR: a followed target that does not resolve, or a name that is asked upstream first and
 * answered by svcdns only when the upstream does not have it. Then, at the chain's end,
 * fn(self, req) writes the client's reply instead (self must outlive the request); used (may
 * be NULL) counts each time it does. Right after the first dns_request_follow(), or before
 * any: the question then stays as it is. A later first follow drops it. */
void dns_request_fallback(struct dns_request *req, dns_request_fallback_fn fn, void *self,
                          struct dns_counter *used);

/* The chain's end, for a request that followed or may fall back: puts the client's question
 * back and makes req->ans the client's reply (question, prefix, answer; or the fallback's). */
void dns_request_end_alias(struct dns_request *req);

#endif
