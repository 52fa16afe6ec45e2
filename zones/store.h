/* zones/store.h - an immutable snapshot of every name svcdns is authoritative for.
 *
 * Built once from complete zones_objects; answers are rendered to wire form here, at build
 * time, so answering is a hash lookup and a memcpy. Records owned by the question name use
 * the compression pointer 0xc00c; every other name is written uncompressed. The snapshot is
 * never modified after zones_store_build() returns, so any number of threads may read it. */
#ifndef ZONES_STORE_H
#define ZONES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dns/wire.h"
#include "zones/objects.h"

enum zones_pods_mode { ZONES_PODS_DISABLED, ZONES_PODS_INSECURE, ZONES_PODS_VERIFIED };

struct zones_store_config {
    const char *cluster_domain; /* "local", "cluster.local" */
    uint32_t ttl;
    enum zones_pods_mode pods;
    /* The SOA serial is the newest manifest's modification time, so the same files give
     * the same zone; never below this floor (a reload sets it one above the last serial). */
    uint32_t min_serial;
};

void zones_store_config_default(struct zones_store_config *cfg);
/* "disabled", "insecure", "verified" -> 0, or -1. */
int zones_store_parse_pods_mode(const char *text, enum zones_pods_mode *out);

/* Which of our zones a name falls in. */
enum zones_zone { ZONES_ZONE_CLUSTER, ZONES_ZONE_REVERSE4, ZONES_ZONE_REVERSE6, ZONES_ZONE_NONE };

/* A precomputed reply body for one node and one query type: the answer records and, for
 * SRV and CNAME chains, the additional (glue) records. ANY has no entry of its own: it is
 * answered with the answer records of every entry of the node, one after the other. */
struct zones_entry {
    uint16_t type; /* the query type it answers */
    uint16_t an;
    uint16_t ar;
    uint8_t chase_len;  /* a CNAME chain that leaves our zones: its last target's length; 0 */
    uint32_t off;       /* into the store's byte arena */
    uint32_t len;       /* answer and glue */
    uint32_t an_len;    /* the answer records alone */
    uint32_t chase_off; /* the last target's wire name, when chase_len */
};

struct zones_node {
    uint32_t name_off; /* lower-cased wire name in the arena */
    uint8_t name_len;
    uint8_t zone;      /* enum zones_zone */
    uint8_t is_cname;  /* an ExternalName: the CNAME answers every type without an entry */
    uint8_t n_entries; /* 0: an empty non-terminal */
    uint32_t first_entry;
};

struct zones_store {
    struct dns_name zone;     /* the cluster domain */
    struct dns_name pod_zone; /* pod.<zone> */
    uint32_t ttl;
    uint32_t serial;
    enum zones_pods_mode pods;
    uint8_t *bytes; /* names and rendered records */
    size_t n_bytes;
    struct zones_node *nodes;
    size_t n_nodes;
    struct zones_entry *entries;
    size_t n_entries;
    uint32_t *table; /* open addressing: node index + 1, 0 empty */
    size_t table_mask;
    uint64_t hash_seed;
    /* The SOA record (owner uncompressed) for negative answers, per zone. */
    uint32_t soa_off[3];
    uint16_t soa_len[3];
    /* Counts for summaries. */
    size_t n_records;
    struct {
        size_t cluster_ip, headless, external_name, endpoints, pods, namespaces;
    } counts;
    /* Pod IP -> namespace, for the client namespace of the search path (sorted by ip). */
    struct zones_pod_ip {
        struct zones_ip ip;
        uint32_t ns_off; /* wire name of the namespace label, e.g. "\7default" */
    } * pod_ips;
    size_t n_pod_ips;
};

/* Builds a snapshot. objs must be valid (no diags) and have its addresses assigned.
 * Returns 0 or -ENOMEM; *out is freed with zones_store_free(). */
int zones_store_build(struct zones_store **out, const struct zones_objects *objs,
                      const struct zones_store_config *cfg);

/* The same in two steps, so the objects can be freed in between and a reload does not hold
 * them, the records and the new snapshot at once: collect takes every record from objs (cfg
 * must outlive the builder); finish renders them and frees the builder, also on failure. */
struct zones_store_builder;
int zones_store_collect(struct zones_store_builder **out, const struct zones_objects *objs,
                        const struct zones_store_config *cfg);
int zones_store_finish(struct zones_store_builder *builder, struct zones_store **out);
void zones_store_free(struct zones_store *store);

/* The node of a lower-cased name, or NULL. */
const struct zones_node *zones_store_find(const struct zones_store *store,
                                          const struct dns_name *name);
enum zones_zone zones_store_zone_of(const struct zones_store *store, const struct dns_name *name);
static inline const uint8_t *zones_store_bytes(const struct zones_store *store, uint32_t off)
{
    return store->bytes + off;
}
/* The entry of node for qtype, following the node's rules (ANY, CNAME), or NULL: NODATA. */
const struct zones_entry *zones_store_entry(const struct zones_store *store,
                                            const struct zones_node *node, uint16_t qtype);

/* The namespace (a single wire label) of the Pod that has this address, or NULL. */
const uint8_t *zones_store_pod_namespace(const struct zones_store *store,
                                         const struct zones_ip *ip);

/* Writes every record as a zone file, sorted by name and type. */
int zones_store_dump(const struct zones_store *store, FILE *out);

#endif
