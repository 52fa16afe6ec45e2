/* resolver/siphash.h - SipHash-1-3, the keyed hash for tables indexed by client-chosen names.
 *
 * The cache and the forwarder's coalescing table hash query names that clients pick; a keyed
 * hash with a per-process random key keeps them from steering every name into one bucket
 * (hash flooding). SipHash-1-3 is what Python and Rust use for the same purpose. */
#ifndef RESOLVER_SIPHASH_H
#define RESOLVER_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct resolver_siphash_key {
    uint64_t k0, k1;
};

/* Fills the key from the kernel's random source; 0, or a negative errno-style code. */
int resolver_siphash_key_random(struct resolver_siphash_key *key);
uint64_t resolver_siphash13(const struct resolver_siphash_key *key, const void *data, size_t len);

#endif
