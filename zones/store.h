/* zones/store.h - an immutable snapshot of every name svcdns is authoritative for.
 *
 * Built once from complete zones_objects; answers are rendered to wire form here, at build
 * time, so answering is a hash lookup and a memcpy. The snapshot is never modified after
 * zones_store_build() returns, so any number of threads may read it. Its layout is for the
 * files of zones/ that read it (zones/store_layout.h). */
#ifndef ZONES_STORE_H
#define ZONES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

struct zones_store;

/* What a snapshot holds, for summaries, logs and metrics. */
struct zones_store_summary {
    size_t records;
    uint32_t serial;
    size_t cluster_ip, headless, external_name, endpoints, pods, namespaces;
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

void zones_store_summarize(const struct zones_store *store, struct zones_store_summary *out);

/* Writes every record as a zone file, sorted by name and type. */
int zones_store_dump(const struct zones_store *store, FILE *out);

#endif
