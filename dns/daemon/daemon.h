/* dns/daemon/daemon.h - the composition root: the one place that knows every module.
 *
 * main.c reads the options (options.c), maps them into each module's config, builds the
 * modules and one handler chain per worker, and runs them; reload.c keeps the served data
 * current (manifests in, snapshots published); kubernetes.c follows a cluster's API server;
 * metrics.c serves /health, /ready and /metrics. None of it is on a query's path: a worker's chain
 * calls the stages directly. */
#ifndef DAEMON_DAEMON_H
#define DAEMON_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "dns/chain.h"
#include "dns/chaos.h"
#include "dns/daemon/options.h"
#include "dns/epoch.h"
#include "dns/http.h"
#include "dns/rrl.h"
#include "dns/server.h"
#include "resolver/cache.h"
#include "resolver/forward.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/files.h"
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
 * on SIGHUP; each time the files that changed are read on libuv's thread pool and applied. */
struct daemon_reload {
    bool enabled;
    uv_signal_t sighup;
    uv_fs_event_t watches[DAEMON_MAX_LIST];
    size_t n_watches;
    uv_timer_t debounce; /* editors and kubelet write in bursts: reload once, 200 ms after the
                            first event of one (not the last: a burst may not end) */
    uv_timer_t poll;     /* --reload-interval: for what sends no change events */
    uint32_t interval_s;
    /* One build at a time (the files are the build's while building is set); a trigger
     * during one queues one more. */
    uv_work_t work;
    bool building, stopping;
    const char *trigger, *next_trigger; /* next_trigger: NULL, or one more reload to do */
    int build_rc;
    bool unchanged;
    size_t files_read;
    double build_ms, apply_ms;
    atomic_ulong reloads, failures; /* reloads that found no error, and that found some */
    atomic_ulong errors_total;      /* manifest errors found by every read */
    atomic_ulong errors;            /* in the manifests as last read */
    atomic_ulong invalid;           /* objects left out for errors, now */
};

/* Stopping: SIGTERM starts the lameduck (--lameduck: /ready says 503 while queries are still
 * answered, then the server stops); a second SIGTERM, or SIGINT, stops at once. */
struct daemon_stop {
    uv_signal_t sigterm, sigint;
    uv_timer_t lameduck;
    uint32_t lameduck_s; /* 0: SIGTERM stops at once */
    bool started;        /* the handles are on the control loop */
    bool in_lameduck;    /* read by /ready; set and read on the control loop only */
};

/* --user: whom to become after binding (privileges.c). */
struct daemon_user {
    bool wanted; /* started as root with --user: drop to it */
    char name[256];
    uid_t uid;
    gid_t gid;
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
    struct zones_files *files;  /* the manifests, each file's last good objects */
    struct zones_model *model;  /* every source merged: written under model_lock */
    pthread_mutex_t model_lock; /* one writer of the model at a time */
    struct zones_store *store;  /* the model's store: what every worker answers from */
    struct dns_epoch *epoch;    /* frees what the store replaced once no worker reads it */
    struct dns_server *server;
    struct dns_rrl *rrl; /* NULL without --rrl; shared by every worker's chain */
    struct dns_chaos chaos;
    struct resolver_forward_shared *forward_shared;
    struct resolver_cache *cache;
    _Atomic(struct daemon_worker *) workers[DNS_SERVER_MAX_WORKERS];
    struct daemon_reload reload;
    struct daemon_stop stop;
    struct daemon_user user;
    struct dns_http *http; /* NULL without --http */
    /* The Kubernetes API source: NULL without --kubernetes or --kubeconfig. */
    struct zones_kubeconfig kubeconfig;
    struct zones_kube *kube;
};

/* config.c. Reads the options and maps them into each module's config. Returns 0 to go on, 1
 * to exit 0 (--help, --version), -1 to exit 2 (usage), -2 to exit 1. */
int daemon_configure(struct daemon *d, int argc, char **argv);
/* The server's config: workers and listen addresses (bound later). 0, or -1 after printing. */
int daemon_configure_server(struct daemon *d);
/* The upstreams from --upstream or else /etc/resolv.conf, less our own listen addresses
 * (forwarding to ourselves would loop). None left turns forwarding off. */
void daemon_choose_upstreams(struct daemon *d);

/* reload.c. Loads every manifest into the model and its store; the summary goes to summary
 * when not NULL. Returns the number of manifest errors (with --strict and errors in the files,
 * nothing is loaded), or -1 when nothing could be. */
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

/* limits.c: the open file limit, shared out at start between svcdns's own descriptors,
 * upstream sockets and TCP clients. */
struct daemon_fd_needs {
    unsigned long limit; /* RLIMIT_NOFILE in force */
    unsigned open_now;   /* descriptors open already */
    unsigned workers;
    size_t listeners;
    bool http;
    bool kubernetes; /* --kubernetes, --kubeconfig */
    bool forwarding;
    unsigned upstreams;
    unsigned max_concurrent; /* --max-concurrent */
    unsigned tcp_default;    /* TCP clients per worker when the limit allows */
};

struct daemon_fd_plan {
    unsigned long limit;
    unsigned reserved;       /* svcdns's own: listeners, loops, HTTP, reloads, logs, open_now */
    unsigned upstream;       /* upstream sockets: max_concurrent, plus health and loop probes */
    unsigned max_concurrent; /* --max-concurrent, or less when the limit allows no more */
    unsigned tcp_per_worker; /* tcp_default, or less when the limit allows no more */
    unsigned needed;         /* the least limit svcdns would run with */
};

/* Raises the soft RLIMIT_NOFILE to the hard one (at most 2^20); *was is the soft limit
 * before, *limit the one in force after. 0, or -1 when the limit cannot be read. */
int daemon_limits_raise(unsigned long *limit, unsigned long *was);
/* The descriptors this process has open. */
unsigned daemon_limits_open_fds(void);
/* Shares in->limit out. 0, or -1 when it is below out->needed (out is filled either way). */
int daemon_limits_plan(const struct daemon_fd_needs *in, struct daemon_fd_plan *out);

/* privileges.c. Looks name up (NULL: no --user); when serving as someone other than root and
 * not already that user, that is an error. 0, or -1 after printing why. */
int daemon_privileges_check(const char *name, bool serving, struct daemon_user *out);
/* Becomes the user, if wanted: groups, gid, uid, no_new_privs; checks that it held. Call once
 * the sockets are bound and before any thread starts. 0, or -1 after printing why. */
int daemon_privileges_drop(const struct daemon_user *u);

/* metrics.c: /health, /ready and /metrics on --http. 0, or -1 after printing why. */
int daemon_metrics_start(struct daemon *d);
void daemon_metrics_stop(struct daemon *d);
/* The counters of the resolver modules, logged once at shutdown. */
void daemon_metrics_log(const struct daemon *d);

#endif
