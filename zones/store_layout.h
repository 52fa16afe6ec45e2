/* zones/store_layout.h - how a zones_store is laid out, for the files of zones/ that write it
 * (store.c, model.c) and read it on the query path (answer.c). Nothing outside zones/ includes
 * this.
 *
 * The store is a handful of tables a worker reads without a lock (zones/table.h): Services by
 * name and namespace (their views, zones/view.h), namespaces, addresses by IP (the PTR
 * records, pointing into views), the prefixes of those addresses (the reverse zones' empty
 * non-terminals), Pods' addresses, and the SOA. One thread writes; what it replaces goes to
 * the epoch. */
#ifndef ZONES_STORE_LAYOUT_H
#define ZONES_STORE_LAYOUT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dns/epoch.h"
#include "dns/wire.h"
#include "zones/objects.h"
#include "zones/store.h"
#include "zones/table.h"
#include "zones/view.h"

/* Which of our zones a name falls in. */
enum zones_zone { ZONES_ZONE_CLUSTER, ZONES_ZONE_REVERSE4, ZONES_ZONE_REVERSE6, ZONES_ZONE_NONE };

/* A namespace that exists: a Namespace object names it, or an object lives in it. */
struct zones_ns {
    uint64_t hash;
    uint8_t label[DNS_MAX_LABEL + 1]; /* "\7default" */
};

/* A prefix of the cluster's addresses: its reverse name exists (NODATA, not NXDOMAIN). */
#define ZONES_REV_KEY 18
struct zones_rev {
    uint64_t hash;
    uint32_t refs; /* writer only: addresses under it */
    uint8_t len;
    uint8_t key[ZONES_REV_KEY]; /* family, units (octets or nibbles), the prefix's bytes */
};

/* One address of a Pod: for pod records in verified mode and for the client's namespace. */
struct zones_pod_addr {
    uint64_t hash;
    struct zones_ip ip;
    const struct zones_ns *ns;
};

/* The SOA record of each zone, owner written out, for negative answers and the apex. */
struct zones_soa {
    uint32_t serial;
    uint16_t off[3], len[3]; /* by enum zones_zone */
    uint8_t bytes[];
};

struct zones_store {
    struct zones_store_config cfg;
    char zone_text[DNS_MAX_NAME * 4 + 2]; /* "cluster.local" */
    struct dns_name zone;                 /* the cluster domain */
    struct dns_name svc_zone;             /* svc.<zone> */
    struct dns_name pod_zone;             /* pod.<zone> */
    struct zones_table services;          /* struct zones_view */
    struct zones_table namespaces;        /* struct zones_ns */
    struct zones_table addrs;             /* const struct zones_view_addr: PTR */
    struct zones_table reverse;           /* struct zones_rev */
    struct zones_table pods;              /* struct zones_pod_addr */
    _Atomic(struct zones_soa *) soa;
    atomic_bool incomplete;  /* zones_store_set_complete() */
    struct dns_epoch *epoch; /* NULL: no readers, replaced data goes at once */
    /* Counts for summaries and metrics: the writer's, read with atomics. */
    atomic_size_t n_records, n_cluster_ip, n_headless, n_external_name, n_endpoints, n_pods,
        n_namespaces; /* n_pods: the model's count of Pods */
};

enum zones_zone zones_store_zone_of(const struct zones_store *store, const struct dns_name *name);

/* Readers. */

struct zones_key {
    const uint8_t *bytes;
    size_t len;
};

static inline bool zones_store_view_matches(const void *entry, const void *key)
{
    const struct zones_view *v = entry;
    const struct zones_key *k = key;
    if ((size_t)v->key_len != k->len)
        return false;
    return memcmp(v->bytes, k->bytes, k->len) == 0;
}

/* The view of the Service whose name and namespace are the wire labels key[0, len). */
static inline const struct zones_view *zones_store_service(const struct zones_store *store,
                                                           const uint8_t *key, size_t len)
{
    struct zones_key k = {key, len};
    return zones_table_find(&store->services, zones_view_hash(key, len), zones_store_view_matches,
                            &k);
}

/* The namespace of one wire label, or NULL when it does not exist. */
const struct zones_ns *zones_store_namespace(const struct zones_store *store, const uint8_t *label);
/* The next address (PTR record) with this IP after *pos (start at SIZE_MAX), or NULL. */
const struct zones_view_addr *zones_store_next_addr(const struct zones_store *store,
                                                    const struct zones_ip *ip, size_t *pos);
/* Whether some address lies under the reverse name of this prefix: units octets of an IPv4
 * address or nibbles of an IPv6 one, from the most significant. */
bool zones_store_reverse_exists(const struct zones_store *store, const struct zones_ip *prefix,
                                unsigned units);
/* The next Pod address equal to ip after *pos (start at SIZE_MAX), or NULL. */
const struct zones_pod_addr *zones_store_next_pod(const struct zones_store *store,
                                                  const struct zones_ip *ip, size_t *pos);

static inline const struct zones_soa *zones_store_soa(const struct zones_store *store)
{
    return atomic_load_explicit(&((struct zones_store *)store)->soa, memory_order_acquire);
}

/* Writers: the model (zones/model.c), on the control thread. */

/* Puts view in place of old (either may be NULL): the Service table, its addresses, their
 * reverse prefixes and the counts; old goes to the epoch. */
void zones_store_put_view(struct zones_store *store, const struct zones_view *old,
                          struct zones_view *view);
/* A namespace comes into being, or goes. */
void zones_store_set_namespace(struct zones_store *store, const char *ns, bool exists);
/* One address of a Pod in namespace ns, which must exist; NULL when it does not. The entry is
 * the store's: remove it with zones_store_remove_pod_addr() before its namespace goes. */
struct zones_pod_addr *zones_store_add_pod_addr(struct zones_store *store, const char *ns,
                                                const struct zones_ip *ip);
void zones_store_remove_pod_addr(struct zones_store *store, struct zones_pod_addr *entry);
/* A new SOA serial. */
void zones_store_set_serial(struct zones_store *store, uint32_t serial);

#endif
