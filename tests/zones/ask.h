/* tests/zones/ask.h - asking a store a question, for the zones tests. */
#ifndef TESTS_ZONES_ASK_H
#define TESTS_ZONES_ASK_H

#include <stdbool.h>
#include <stdint.h>

#include <ldns/ldns.h>

#include "zones/store.h"

/* The zones stage's reply to name/type (class IN, EDNS 1232), parsed; ANY in full as over TCP,
 * or as over UDP (RFC 8482); the test fails if the stage does not answer. Free with
 * ldns_pkt_free. */
ldns_pkt *zones_test_ask(const struct zones_store *store, const char *name, uint16_t type,
                         bool any_in_full);

/* The addresses name has for type (A or AAAA) as sorted text, one per line, "" for none,
 * "NXDOMAIN" when the name does not exist. Valid until the next call. */
const char *zones_test_addresses(const struct zones_store *store, const char *name, uint16_t type);

#endif
