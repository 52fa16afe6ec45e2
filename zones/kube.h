/* zones/kube.h - the Kubernetes API as a source: list and watch, as client-go's reflector.
 *
 * One reflector per kind (Namespaces, Services, EndpointSlices, and Pods when asked): LIST in
 * pages of limit=500 with continue, then WATCH from the list's resourceVersion with bookmarks,
 * resuming from the last resourceVersion seen when a stream ends, and listing again (replacing
 * that kind's objects) on 410 Gone. Errors back off exponentially with jitter up to 30 s.
 * HTTP is libcurl's multi interface on a thread of its own; JSON is decoded there (zones/json.h,
 * then zones/decode.h), each object kept in one allocation with what answers need. Changes are
 * applied to the model in batches (a change waits at most batch_ms), under the lock every
 * writer of the model takes, and committed. Until every kind has been listed the store is
 * incomplete (zones_store_set_complete); after that, an outage keeps the last data. */
#ifndef ZONES_KUBE_H
#define ZONES_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "zones/kubeconfig.h"
#include "zones/model.h"

enum zones_kube_kind {
    ZONES_KUBE_NAMESPACES,
    ZONES_KUBE_SERVICES,
    ZONES_KUBE_ENDPOINTSLICES,
    ZONES_KUBE_PODS,
    ZONES_KUBE_KINDS,
};

struct zones_kube_config {
    const struct zones_kubeconfig *conn; /* where the API is and how to log in */
    bool pods;                           /* watch Pods too (verified pod records, autopath) */
    unsigned page_size;                  /* items per LIST page; default 500 */
    unsigned watch_timeout_s;            /* 0 (default): random in [300, 600), as client-go */
    unsigned batch_ms;                   /* longest wait of a change before it is applied */
    const char *user_agent;
};

void zones_kube_config_default(struct zones_kube_config *cfg);

#define ZONES_KUBE_MAX_CODES 12

/* What one kind has been through. */
struct zones_kube_kind_stats {
    const char *name;  /* "services" */
    bool watched;      /* false: not asked for (Pods without a rule that needs them) */
    bool synced;       /* its first list is served */
    uint64_t objects;  /* kept now */
    int64_t last_sync; /* Unix seconds: the last list, event or bookmark; 0: never */
    uint64_t lists;    /* complete lists */
    uint64_t relists;  /* lists after the first: 410 Gone, or a list that failed */
    uint64_t watches;  /* watch requests */
    uint64_t restarts; /* watches after the first */
    uint64_t events;   /* ADDED, MODIFIED, DELETED */
    struct {
        int code; /* HTTP status; 0: no HTTP answer (connection, TLS, timeout) */
        uint64_t count;
    } errors[ZONES_KUBE_MAX_CODES];
    size_t n_errors;
};

struct zones_kube_stats {
    bool synced; /* every kind listed */
    struct zones_kube_kind_stats kinds[ZONES_KUBE_KINDS];
};

struct zones_kube;

/* Keeps cfg->conn, model and lock until zones_kube_free(); lock guards the model (every writer
 * of it takes the lock around its changes and their commit). Returns 0 or -1 (libcurl could
 * not start; logged). */
int zones_kube_new(struct zones_kube **out, const struct zones_kube_config *cfg,
                   struct zones_model *model, uv_mutex_t *lock);
/* Lists every kind once on the calling thread and serves what came, for --check and --dump.
 * Returns 0, or -1 after logging the first error (nothing is retried). */
int zones_kube_list_once(struct zones_kube *k, unsigned timeout_s);
/* Follows the API on a thread of its own until zones_kube_stop(). 0 or a libuv error. */
int zones_kube_start(struct zones_kube *k);
/* Ends the thread (requests in flight are dropped). */
void zones_kube_stop(struct zones_kube *k);
/* Frees the kept objects: the model must not hold them any more (freed or detached before, or
 * given no more commits). NULL is a no-op. */
void zones_kube_free(struct zones_kube *k);

/* Any thread. */
void zones_kube_stats(const struct zones_kube *k, struct zones_kube_stats *out);

#endif
