/* tests/resolver/upstream_fake.h - a scripted upstream DNS server inside the test's own loop,
 * and builders for upstream replies, for the forwarder and cache tests. */
#ifndef TESTS_RESOLVER_UPSTREAM_FAKE_H
#define TESTS_RESOLVER_UPSTREAM_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "dns/names.h"

enum fake_mode {
    FAKE_ANSWER,       /* A 192.0.2.1, TTL 300; OPT echoed when the query had one */
    FAKE_SILENT,       /* never answers */
    FAKE_SERVFAIL,     /* SERVFAIL with the question */
    FAKE_WRONGID,      /* the right answer with ID + 1, then nothing */
    FAKE_SPOOF_FIRST,  /* a wrong-ID reply, a wrong-question reply and 40 random bytes, then
                          the right answer */
    FAKE_TC,           /* TC=1 and no records over UDP; 60 A records over TCP */
    FAKE_FORMERR_EDNS, /* FORMERR (with question) to a query with OPT, else the answer */
    FAKE_MALFORMED,    /* the right ID and question, then an RR that overruns the message */
};

struct fake_upstream {
    uv_loop_t *loop;
    enum fake_mode mode;
    uv_udp_t udp;
    uv_tcp_t listener;
    bool tcp;
    struct sockaddr_storage addr; /* where it listens, 127.0.0.1:<port> */
    /* What it saw. */
    unsigned udp_queries;
    unsigned tcp_queries;
    uint16_t last_id;
    bool last_had_opt;
    uint16_t last_payload;
    bool last_do;
    char last_name[300];
};

/* Binds UDP (and TCP when tcp) on 127.0.0.1 with a kernel-chosen port. Aborts the test on
 * failure. */
void fake_upstream_start(struct fake_upstream *f, uv_loop_t *loop, enum fake_mode mode, bool tcp);
/* Closes its handles; the loop finishes the close. */
void fake_upstream_close(struct fake_upstream *f);

/* An upstream reply built with ldns from zone text: question "name type", rcode, the RRs of
 * each section as zone lines (NULL-terminated arrays, NULL for none), header flags to add
 * (e.g. 0x0200 for TC), an OPT when opt. Returns the length (ldns compresses names). */
size_t fake_reply(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                  unsigned rcode, const char *const *answer, const char *const *authority,
                  const char *const *additional, uint16_t flags, bool opt);

/* svcdns's own names, as the zones stage would give them to the scrubber, the cache and the
 * forwarder: everything under "local." is ours, and answered authoritatively with
 * A 10.96.0.10 (TTL 5) for A, NODATA for other types. */
extern const struct dns_names fake_own_names;
#define FAKE_OWN_A "10.96.0.10"

#endif
