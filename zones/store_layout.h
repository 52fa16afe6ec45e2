/* zones/store_layout.h - how a zones_store is laid out, for the files of zones/ that build it
 * (store.c) and read it on the query path (answer.c). Nothing outside zones/ includes this.
 *
 * Records owned by the question name use the compression pointer 0xc00c; every other name is
 * written uncompressed, so an entry is copied into a reply as it is. */
#ifndef ZONES_STORE_LAYOUT_H
#define ZONES_STORE_LAYOUT_H

#include <stdint.h>

#include "dns/wire.h"
#include "zones/objects.h"
#include "zones/store.h"

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

/* The node of a lower-cased name, or NULL. */
const struct zones_node *zones_store_find(const struct zones_store *store,
                                          const struct dns_name *name);
enum zones_zone zones_store_zone_of(const struct zones_store *store, const struct dns_name *name);
/* The entry of node for qtype, following the node's rules (ANY, CNAME), or NULL: NODATA. */
const struct zones_entry *zones_store_entry(const struct zones_store *store,
                                            const struct zones_node *node, uint16_t qtype);

/* The namespace (a single wire label) of the Pod that has this address, or NULL. */
const uint8_t *zones_store_pod_namespace(const struct zones_store *store,
                                         const struct zones_ip *ip);

#endif
