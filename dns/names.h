/* dns/names.h - what other stages may ask of the names svcdns is the authority for.
 *
 * Declared here, on the dns side, so that the search path and the forwarder (resolver/) can
 * ask about cluster names without including zones/, the way CoreDNS's autopath asks the
 * kubernetes plugin through its AutoPather interface. zones/answer.c implements it over the
 * snapshot a worker serves from; the composition root hands it to the search stage and the
 * forwarder. Calls are per query, on the worker's thread, and allocate nothing. */
#ifndef DNS_NAMES_H
#define DNS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/wire.h"

enum dns_name_state {
    DNS_NAME_ABSENT,  /* NXDOMAIN */
    DNS_NAME_EMPTY,   /* exists with no records: an empty non-terminal (NODATA) */
    DNS_NAME_RECORDS, /* has records, or is an alias */
};

struct dns_names {
    /* How a lower-cased name stands in the served data. */
    enum dns_name_state (*lookup)(const void *self, const struct dns_name *name);
    /* The namespace of the Pod that has the client's address, as one wire label
     * ("\7default"); false when no Pod has it. */
    bool (*client_namespace)(const void *self, const struct sockaddr_storage *client,
                             uint8_t label[DNS_MAX_LABEL + 1]);
    /* Writes the authoritative reply to q (whose question bytes are in pkt) into out, as the
     * zones stage would answer it; returns its length, 0 when it does not fit. */
    size_t (*answer)(const void *self, const struct dns_query *q, const uint8_t *pkt, uint8_t *out,
                     size_t cap);
    /* Whether the zones stage answers this lower-cased name itself, whatever the type: every
     * name under the cluster domain, and the reverse names of cluster addresses. No upstream
     * may speak for such a name. */
    bool (*is_authoritative)(const void *self, const struct dns_name *name);
    const void *self;
};

#endif
