/* tests/support/support.h - helpers shared by the unit tests. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

/* Parses an ldns packet from wire bytes; aborts the test on failure. Free with ldns_pkt_free. */
ldns_pkt *support_pkt_from_wire(const uint8_t *wire, size_t len);
/* Builds a query packet in wire form with ldns: name, type, class, id, rd, EDNS buffer
 * (0: no OPT). Returns the length written to out. */
size_t support_query_wire(uint8_t *out, size_t cap, const char *name, uint16_t type, uint16_t klass,
                          uint16_t id, int edns_size);
/* The answer section of pkt as sorted zone-file lines joined by '\n' (TTL included), for
 * comparing with expected text. Caller frees. */
char *support_section_text(const ldns_pkt *pkt, ldns_pkt_section section);

#endif
