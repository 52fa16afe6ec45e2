/* dns/daemon/daemon.h - the composition root: the one place that knows every module.
 *
 * main.c reads the options (options.c), maps them into each module's config, builds the
 * modules and one handler chain per worker, and runs them; reload.c keeps the served data
 * current (manifests in, snapshots published); kubernetes.c follows a cluster's API server;
 * metrics.c serves /health, /ready and /metrics. None of it is on a query's path: a worker's chain
 * calls the stages directly. */
#ifndef DAEMON_DAEMON_H
#define DAEMON_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "dns/chain.h"
#include "dns/chaos.h"
#include "dns/daemon/options.h"
#include "dns/epoch.h"
#include "dns/http.h"
#include "dns/server.h"
#include "resolver/cache.h"
#include "resolver/forward.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/kube.h"
#include "zones/kubeconfig.h"
#include "zones/model.h"
#include "zones/objects.h"
#include "zones/store.h"

#ifndef SVCDNS_VERSION
#define SVCDNS_VERSION "0.0.0"
#endif

/* One worker's chain: CHAOS identity, the search path, the cluster and reverse zones, then
 * the cache and the upstreams. */
struct daemon_worker {
    struct dns_chain chain; /* first: the server hands this pointer back */
    struct resolver_search search;
    struct zones_answer zones;
    struct resolver_forward *forward; /* NULL without forwarding */
    struct daemon *d;
    unsigned index;
};

/* Live reload: the manifests are watched (inotify), polled (--reload-interval) and reread
 * on SIGHUP; each time a new snapshot is built on libuv's thread pool and published. */
struct daemon_reload {
    bool enabled;
    uv_signal_t sighup;
    uv_fs_event_t watches[DAEMON_MAX_LIST];
    size_t n_watches;
    uv_timer_t debounce; /* editors and kubelet write in bursts: reload once, 200 ms after */
    uv_timer_t poll;     /* --reload-interval: for what sends no change events */
    uint32_t interval_s;
    uint64_t signature; /* of the manifests as last read: zones_manifest_signature() */
    /* One build at a time (store_cfg and signature are the build's while building is set); a
     * trigger during one queues one more. */
    uv_work_t work;
    bool building, stopping;
    const char *trigger, *next_trigger; /* next_trigger: NULL, or one more reload to do */
    int build_rc;
    double build_ms, apply_ms;
    atomic_ulong reloads, failures;
};

struct daemon {
    struct daemon_options opt;
    /* Each module's config, from the options. */
    struct zones_store_config store_cfg;
    struct zones_cidr cidrs[DAEMON_MAX_LIST];
    size_t n_cidrs;
    struct zones_answer_config answer_cfg;
    struct resolver_search_config search_cfg;
    struct dns_server_config server_cfg;
    bool forwarding;
    struct resolver_forward_config forward_cfg;
    struct resolver_cache_config cache_cfg;
    /* The modules. */
    struct zones_model *model;  /* the served data: changed with model_lock held */
    uv_mutex_t model_lock;      /* every change of the model and its commit: reload, the API */
    struct zones_store *store;  /* the model's store: what every worker answers from */
    struct zones_objects *objs; /* the objects being served (the model points into them) */
    struct dns_epoch *epoch;    /* frees what the store replaced once no worker reads it */
    struct dns_server *server;
    struct dns_chaos chaos;
    struct resolver_forward_shared *forward_shared;
    struct resolver_cache *cache;
    _Atomic(struct daemon_worker *) workers[DNS_SERVER_MAX_WORKERS];
    struct daemon_reload reload;
    struct dns_http *http; /* NULL without --http */
    /* The Kubernetes API source: NULL without --kubernetes or --kubeconfig. */
    struct zones_kubeconfig kubeconfig;
    struct zones_kube *kube;
};

/* reload.c. Loads every manifest into the model and its store; the summary goes to summary
 * when not NULL. Returns 0, the number of manifest errors (nothing is loaded then), or -1. */
int daemon_reload_load(struct daemon *d, FILE *summary);
/* Watches, polls and takes SIGHUP on the server's control loop. */
int daemon_reload_start(struct daemon *d);
/* Closes the reload handles; waits for a build under way. */
void daemon_reload_stop(struct daemon *d);
/* READY=1 to a service manager, with what is served as the status line. */
void daemon_reload_notify_ready(struct daemon *d);

/* kubernetes.c. The credentials of --kubeconfig or --kubernetes, read and checked: 0, or -1
 * after printing why. Nothing to do without those flags. */
int daemon_kubernetes_configure(struct daemon *d);
/* With the model built: the source, and the store marked incomplete until its first lists.
 * For --check and --dump, lists once now (the summary goes to summary when not NULL).
 * 0, or -1 after logging why. */
int daemon_kubernetes_init(struct daemon *d, FILE *summary);
/* Its thread follows the API from now on; stopped before the epoch goes. */
int daemon_kubernetes_start(struct daemon *d);
void daemon_kubernetes_stop(struct daemon *d);
void daemon_kubernetes_free(struct daemon *d);

/* metrics.c: /health, /ready and /metrics on --http. 0, or -1 after printing why. */
int daemon_metrics_start(struct daemon *d);
void daemon_metrics_stop(struct daemon *d);
/* The counters of the resolver modules, logged once at shutdown. */
void daemon_metrics_log(const struct daemon *d);

#endif
