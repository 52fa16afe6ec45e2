/* dns/request.h - one query in flight, from the socket to the reply.
 *
 * A request lives in a slot the server allocated at start: the query bytes, the reply buffer
 * and the parsed query are all inside it, so nothing is allocated per query. A handler that
 * parks a request (DNS_PENDING) keeps the slot until it resumes the chain. */
#ifndef DNS_REQUEST_H
#define DNS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/wire.h"

enum dns_proto { DNS_PROTO_UDP, DNS_PROTO_TCP };

struct dns_chain;

#define DNS_REWRITE_PREFIX_MAX 3072 /* ten CNAMEs of full-length names fit */

/* The client's question while a handler has the request follow an alias. */
struct dns_rewrite {
    struct dns_query q;                 /* the client's query as parsed */
    uint8_t question[DNS_MAX_NAME + 4]; /* its question bytes, in the client's case */
    uint16_t question_len;
    uint16_t prefix_len;
    uint16_t prefix_count;
    uint8_t prefix[DNS_REWRITE_PREFIX_MAX]; /* records that go before the answer */
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
    uint64_t start_ns; /* receive time, for metrics and the query log */

    /* Filled by dns_chain_handle(). */
    struct dns_query q;
    size_t ans_len;
    uint16_t max_size; /* the most this reply may hold: UDP limit or DNS_MAX_MSG on TCP */
    struct dns_chain *chain;
    unsigned next;           /* index of the next handler to run */
    uint32_t ran;            /* bit i: handler i's serve() ran, so its on_answer() runs */
    const char *answered_by; /* name of the handler that answered, for logs and metrics */

    /* Shared between handlers; reset for every request. */
    uint32_t flags;
    struct dns_rewrite rewrite;
};

/* Request flags handlers share. The low 16 bits are dns/'s; the high 16 belong to the
 * resolver (resolver/forward.h: 0x10000 to 0x40000), which the cache reads. */
#define DNS_REQ_REWRITTEN 0x1 /* the question was rewritten: see dns_request_rewrite() */
#define DNS_REQ_AUTOPATH 0x2  /* the search path answered the walk on the client's behalf */

/* Follows an alias on the client's behalf: the query becomes one for target, and the
 * reply will be the client's question, then prefix (the CNAME records that lead to target),
 * then whatever the rest of the chain answers for target. prefix's records may refer to the
 * current question name with the pointer 0xc00c. Returns 0, or -1 when the prefix would not
 * fit (the caller answers with what it has). Handlers after this one see only target. */
int dns_request_rewrite(struct dns_request *req, const struct dns_name *target,
                        const uint8_t *prefix, size_t prefix_len, uint16_t prefix_count);

/* Puts the client's question back and splices prefix + answer into req->ans. The chain calls
 * it before sending; a hook may call dns_request_cancel_rewrite() instead, to answer for the
 * client's question afresh (the reply in ans is then the hook's to write). */
void dns_request_restore(struct dns_request *req);
void dns_request_cancel_rewrite(struct dns_request *req);

#endif
