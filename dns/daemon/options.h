/* dns/daemon/options.h - the command line and the --config file, read into one struct.
 *
 * Values are checked for form here (numbers, switches, lists); what they mean is checked
 * where they are mapped into each module's config (dns/daemon/main.c). Strings point into
 * argv or into the config document, which lives until daemon_options_free(). */
#ifndef DAEMON_OPTIONS_H
#define DAEMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#define DAEMON_MAX_LIST 64

struct daemon_list {
    const char *items[DAEMON_MAX_LIST];
    size_t n;
};

struct daemon_options {
    struct daemon_list manifests;
    struct daemon_list listen;
    struct daemon_list cidrs;
    const char *cluster_domain;
    unsigned long ttl;
    const char *pods;
    unsigned long workers; /* 0: daemon_options_default_workers() */
    const char *config;
    const char *log_level;
    const char *log_format; /* text | json */
    bool check;
    bool dump;
    bool strict;                /* any manifest error refuses a start or a reload */
    const char *manifest_cache; /* --manifest-cache: a directory, or NULL */
    bool log_queries;
    const char *namespace_name;
    bool no_search_expand;
    bool no_autopath;
    const char *resolv_conf; /* print a pod's resolv.conf for this namespace and exit */
    const char *nameserver;
    const char *http; /* --http ADDR:PORT for /health, /ready, /metrics */
    /* Forwarding and cache. */
    struct daemon_list upstreams; /* --upstream; "none" turns forwarding off */
    unsigned long upstream_timeout_ms;
    unsigned long max_concurrent;
    unsigned long cache_size;
    const char *cache_memory; /* --cache-memory SIZE; default 16M */
    unsigned long cache_max_ttl;
    unsigned long cache_min_ttl;
    const char *serve_stale;
    const char *reload_interval; /* --reload-interval DURATION; default 30s */
    unsigned long rrl;           /* --rrl RATE: UDP responses a second per prefix; 0 off */
    unsigned long rrl_slip;      /* --rrl-slip N; default 2 */
    const char *lameduck;        /* --lameduck DURATION; default 5s */
    const char *user;            /* --user NAME: become it after binding, when root */
    const char *kubeconfig;      /* --kubeconfig FILE: follow that cluster's API */
    bool kubernetes;             /* --kubernetes: follow the API with in-cluster credentials */
    bool set[256];               /* options given on the command line */
};

/* Reads argv, then the --config file (the command line wins, lists included). Returns 0 to
 * go on, 1 when done (--help, --version printed), -1 for a usage error (exit 2) and -2 for a
 * bad config file (exit 1); the error is printed. */
int daemon_options_parse(struct daemon_options *o, int argc, char **argv);
void daemon_options_free(struct daemon_options *o);

/* The CPUs we may run on, capped by the cgroup CPU quota: the default --workers. */
unsigned daemon_options_default_workers(void);
/* The CPUs a cgroup CPU quota allows, rounded up, read below root (normally /sys/fs/cgroup,
 * which a container sees as its own cgroup): cgroup v2's cpu.max, or v1's
 * cpu/cpu.cfs_quota_us and cpu.cfs_period_us. 0 when there is no quota. */
unsigned daemon_options_cgroup_cpus(const char *root);

/* "svcdns: <message>" on stderr; returns -1. For every startup error of the daemon. */
int daemon_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
