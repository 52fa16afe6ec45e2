/* zones/store.h - every name svcdns is authoritative for, kept current in place.
 *
 * The store is what workers read on the query path, without a lock; one thread (the control
 * loop, through zones/model.h) changes it one Service at a time, each change one atomic
 * publication, and hands what it replaced to the epoch (dns/epoch.h), which frees it once no
 * worker can hold it. A worker never sees half of a Service's change. Its layout is for the
 * files of zones/ (zones/store_layout.h). */
#ifndef ZONES_STORE_H
#define ZONES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dns/epoch.h"
#include "zones/objects.h"

enum zones_pods_mode { ZONES_PODS_DISABLED, ZONES_PODS_INSECURE, ZONES_PODS_VERIFIED };

struct zones_store_config {
    const char *cluster_domain; /* "local", "cluster.local" */
    uint32_t ttl;
    enum zones_pods_mode pods;
};

void zones_store_config_default(struct zones_store_config *cfg);
/* "disabled", "insecure", "verified" -> 0, or -1. */
int zones_store_parse_pods_mode(const char *text, enum zones_pods_mode *out);

struct zones_store;

/* An empty store (the apex records only). Keeps a copy of cfg; cfg->cluster_domain must
 * outlive the store. Replaced data goes to epoch (NULL: freed at once, for a store no worker
 * reads: --check, --dump, tests). Returns 0 or -EINVAL (a bad cluster domain). */
int zones_store_new(struct zones_store **out, const struct zones_store_config *cfg,
                    struct dns_epoch *epoch);
/* Everything, at once: no worker may read the store any more. NULL is a no-op. */
void zones_store_free(struct zones_store *store);

/* Whether the store holds everything its sources define. A source still loading (the
 * Kubernetes API before every kind's first list) marks it incomplete; names under the cluster
 * zone then get SERVFAIL, never an NXDOMAIN a client would cache. A new store is complete.
 * Set by the writer, read by any thread. */
void zones_store_set_complete(struct zones_store *store, bool complete);
bool zones_store_is_complete(const struct zones_store *store);

/* What a store holds, for summaries, logs and metrics. Any thread. */
struct zones_store_summary {
    size_t records;
    uint32_t serial;
    size_t cluster_ip, headless, external_name, endpoints, pods, namespaces;
};
void zones_store_summarize(const struct zones_store *store, struct zones_store_summary *out);

/* Writes every record as a zone file, sorted by name and type. */
int zones_store_dump(const struct zones_store *store, FILE *out);

#endif
