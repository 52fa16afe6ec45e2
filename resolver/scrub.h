/* resolver/scrub.h - validating and scrubbing an upstream reply for the question we asked.
 *
 * The forwarder and the cache both run upstream bytes through here, so there is one parser
 * for hostile replies and it is the one the fuzzer exercises (Unbound's scrub_message idea).
 * A reply counts only if its ID and question match (RFC 5452); what it may carry is the
 * question's chain (qname -> CNAME targets) and, for a negative answer, the SOA above the
 * last name: nothing else reaches a client or the cache. The chain ends at the first name
 * svcdns is the authority for (Unbound drops what a server says outside its zone the same
 * way): whatever an upstream says of a cluster name is dropped. */
#ifndef RESOLVER_SCRUB_H
#define RESOLVER_SCRUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/names.h"
#include "dns/wire.h"

#define RESOLVER_SCRUB_MAX_CHAIN 12 /* CNAME hops followed in one reply */

enum resolver_scrub_result {
    RESOLVER_SCRUB_OK = 0,
    RESOLVER_SCRUB_MISMATCH,  /* not a reply to this query (ID, question, QR): ignore it */
    RESOLVER_SCRUB_MALFORMED, /* the reply to this query, but it does not parse */
};

struct resolver_scrub_question {
    const struct dns_name *qname; /* lower-cased */
    uint16_t qtype;
    uint16_t qclass;
    bool dnssec_ok; /* the client set DO: signatures may reach it (RFC 3225 §3, RFC 4035 §3.2.1) */
    /* The names svcdns answers itself (NULL: none). A chain that reaches one ends there. */
    const struct dns_names *own;
};

/* What resolver_scrub_check() learnt of a reply. */
struct resolver_scrub_reply {
    uint16_t flags; /* header flags as received */
    unsigned rcode; /* the full rcode: header bits plus the OPT's extended bits */
    bool has_question;
    bool has_opt;
};

/* Accepts msg only as the reply to a query with this ID and question: QR set, opcode QUERY,
 * QDCOUNT 1 and the question equal to q (name case-insensitively). An error reply (FORMERR,
 * SERVFAIL, NOTIMP, REFUSED) without a question is accepted too: it can only make us try
 * again. Then every record must parse inside the message, known RDATA layouts included, with
 * at most one OPT, owned by the root, in the additional section. */
enum resolver_scrub_result resolver_scrub_check(const uint8_t *msg, size_t len, uint16_t id,
                                                const struct resolver_scrub_question *q,
                                                struct resolver_scrub_reply *info);

/* Where resolver_scrub_rewrite() writes, and what it reports. */
struct resolver_scrub_out {
    uint8_t *buf;
    size_t cap;
    uint16_t *ttl_off; /* optional: receives the offset of every written TTL field */
    size_t ttl_cap;
    /* Results. */
    size_t len;
    size_t n_ttl;
    uint16_t an, ns;
    uint32_t min_ttl; /* lowest TTL written; UINT32_MAX when no record was written */
    bool negative;    /* NXDOMAIN, or NOERROR without data of the asked type at the chain's end */
    bool has_soa;     /* a negative answer and its SOA was kept */
    /* The chain reached a name of q->own: the reply holds the CNAMEs that lead to it and
     * nothing the upstream said of it, with rcode NOERROR; own_target is that name. */
    bool own_end;
    struct dns_name own_target;
};

/* Writes the scrubbed form of a reply that passed resolver_scrub_check(): a header with this
 * ID, flags and counts; the question bytes given (name, type, class: the client's case, the
 * same name as q); the answer records on the chain; for a negative answer the first SOA whose
 * owner is at or above the chain's end; no additional records (the caller adds its OPT). A
 * chain that reaches a name of q->own ends at the CNAME to it (see own_end).
 * Names are decompressed and compressed again against what was written. TTLs with the top
 * bit set count as 0 (RFC 2181 §8); records of one RRset get their lowest TTL (§5); the SOA
 * of a negative answer gets min(TTL, MINIMUM) (RFC 2308 §3). Returns 0, or -1 when msg does
 * not parse or the result does not fit. */
int resolver_scrub_rewrite(const uint8_t *msg, size_t len, const struct resolver_scrub_question *q,
                           const uint8_t *question, size_t question_len, uint16_t id,
                           uint16_t flags, struct resolver_scrub_out *out);

#endif
