/* dns/daemon/main.c - svcdns: read the options, build the modules, run, tear down.
 *
 * A startup ladder (Knot's knotd main): options (options.c) are mapped into each module's
 * config (config.c), the manifests are loaded into the first snapshot (reload.c) and the Kubernetes
 * API source set up (kubernetes.c), the server binds its sockets, the forwarder and cache are set
 * up, and each worker thread builds its chain (chain_new below). Shutdown runs the ladder
 * backwards. Nothing here is on a query's path. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/daemon/daemon.h"
#include "dns/log.h"
#include "dns/notify.h"

/* Workers: each builds its chain on its own thread, with the loop it will run on. */

static struct dns_chain *chain_new(void *ctx, uv_loop_t *loop, unsigned index)
{
    struct daemon *d = ctx;
    if (index >= DNS_SERVER_MAX_WORKERS)
        return NULL;
    struct daemon_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->d = d;
    w->index = index;
    /* Registered before the first read of a snapshot, so none is freed under it. */
    if (dns_epoch_reader_start(d->epoch, index, loop) < 0) {
        free(w);
        return NULL;
    }
    dns_chain_init(&w->chain);
    w->chain.log_queries = d->opt.log_queries;
    w->chain.rrl = d->rrl;
    w->zones = (struct zones_answer){.store = d->store, .cfg = d->answer_cfg};
    struct dns_names names = zones_answer_names(&w->zones);
    if (resolver_search_init(&w->search, &d->search_cfg, &names) < 0 ||
        (d->forward_shared &&
         resolver_forward_new(&w->forward, loop, d->forward_shared, d->cache, &names) < 0)) {
        dns_epoch_reader_stop(d->epoch, index);
        free(w);
        return NULL;
    }
    dns_chain_set(&w->chain, DNS_STAGE_CHAOS,
                  &(struct dns_stage_handler){dns_chaos_serve, &d->chaos});
    dns_chain_set(&w->chain, DNS_STAGE_SEARCH,
                  &(struct dns_stage_handler){resolver_search_serve, &w->search});
    dns_chain_set(&w->chain, DNS_STAGE_ZONES,
                  &(struct dns_stage_handler){zones_answer_serve, &w->zones});
    if (d->cache)
        dns_chain_set(&w->chain, DNS_STAGE_CACHE,
                      &(struct dns_stage_handler){resolver_cache_serve, d->cache});
    if (w->forward) {
        dns_chain_set(&w->chain, DNS_STAGE_FORWARD,
                      &(struct dns_stage_handler){resolver_forward_serve, w->forward});
        w->chain.recursion_available = true;
    }
    atomic_store(&d->workers[index], w);
    return &w->chain;
}

/* On the worker's thread, inside its loop, after the server closed its own handles. The
 * memory stays until main() is done with the server: /metrics may be reading it. */
static void chain_free(void *ctx, struct dns_chain *chain)
{
    struct daemon *d = ctx;
    struct daemon_worker *w = (struct daemon_worker *)(void *)chain; /* its first member */
    /* Answers the parked requests through the chain; the forwarder's memory goes with its
     * handles' close callbacks. */
    resolver_forward_free(w->forward);
    w->forward = NULL;
    dns_epoch_reader_stop(d->epoch, w->index);
}

static void free_workers(struct daemon *d)
{
    for (unsigned i = 0; i < DNS_SERVER_MAX_WORKERS; i++)
        free(atomic_exchange(&d->workers[i], NULL));
}

/* Setup. */

/* The open file limit: the soft one raised to the hard one, then shared out between svcdns's
 * own descriptors, upstream sockets and TCP clients (limits.c), before anything is opened. */
static int plan_descriptors(struct daemon *d)
{
    struct dns_server_config *cfg = &d->server_cfg;
    struct resolver_forward_config *fc = &d->forward_cfg;
    struct daemon_fd_needs need = {
        .workers = cfg->workers,
        .listeners = cfg->n_listen,
        .http = d->opt.http != NULL,
        .kubernetes = d->kube != NULL,
        .forwarding = d->forwarding,
        .upstreams = (unsigned)fc->n_upstreams,
        .max_concurrent = fc->max_concurrent,
        .tcp_default = cfg->tcp_max_conns,
    };
    unsigned long was;
    if (daemon_limits_raise(&need.limit, &was) < 0) {
        log_warn("main", "error=\"cannot read the open file limit: %s\"", strerror(errno));
        return 0;
    }
    need.open_now = daemon_limits_open_fds();
    struct daemon_fd_plan plan;
    if (daemon_limits_plan(&need, &plan) < 0)
        return daemon_fail("the open file limit is %lu, too low for %u worker%s on %zu listen "
                           "address%s%s: svcdns needs at least %u; raise it (ulimit -n, "
                           "LimitNOFILE= in a systemd unit, the container's nofile ulimit)",
                           plan.limit, cfg->workers, cfg->workers == 1 ? "" : "s", cfg->n_listen,
                           cfg->n_listen == 1 ? "" : "es", d->forwarding ? " with forwarding" : "",
                           plan.needed);
    if (plan.tcp_per_worker < cfg->tcp_max_conns || plan.max_concurrent < fc->max_concurrent)
        log_warn("main",
                 "open_files=%lu tcp_clients_per_worker=%u (of %u) max_concurrent=%u (of %u) "
                 "reason=\"the open file limit allows no more\" hint=\"raise the open file "
                 "limit (ulimit -n, LimitNOFILE=)\"",
                 plan.limit, plan.tcp_per_worker, cfg->tcp_max_conns, plan.max_concurrent,
                 fc->max_concurrent);
    cfg->tcp_max_conns = plan.tcp_per_worker;
    fc->max_concurrent = plan.max_concurrent;
    char raised[48] = "";
    if (was != plan.limit)
        snprintf(raised, sizeof(raised), " raised_from=%lu", was);
    log_info("main",
             "open_files=%lu%s reserved=%u upstream_sockets=%u tcp_clients_per_worker=%u "
             "workers=%u",
             plan.limit, raised, plan.reserved, plan.upstream, plan.tcp_per_worker, cfg->workers);
    return 0;
}

static int setup_server(struct daemon *d)
{
    struct dns_server_config *cfg = &d->server_cfg;
    /* A query waiting on an upstream keeps its slot: leave room for --max-concurrent of them
     * on top of the queries answered at once, or the server would drop what the forwarder
     * would have REFUSED. Slots touch memory only when used. */
    if (d->forwarding)
        cfg->udp_slots += d->forward_cfg.max_concurrent;
    if (d->opt.rrl > 0) {
        struct dns_rrl_config rrl;
        dns_rrl_config_default(&rrl);
        rrl.rate = (unsigned)d->opt.rrl;
        rrl.slip = (unsigned)d->opt.rrl_slip;
        if (dns_rrl_new(&d->rrl, &rrl) < 0)
            return daemon_fail("--rrl: cannot allocate the rate-limit table");
    }
    int rc = dns_server_new(&d->server, cfg, chain_new, chain_free, d);
    if (rc == 0)
        rc = dns_epoch_new(&d->epoch, dns_server_loop(d->server), DNS_SERVER_MAX_WORKERS);
    if (rc < 0)
        return daemon_fail("cannot listen: %s (see the log line above for the address)",
                           uv_strerror(rc));
    /* From here on workers read the store: what it replaces waits for them. */
    zones_model_set_epoch(d->model, d->epoch);
    return 0;
}

/* The shared forwarder state and the cache, for the upstreams daemon_choose_upstreams() kept. Runs
 * before the workers build chains. */
static int setup_forwarding(struct daemon *d)
{
    struct resolver_forward_config *fc = &d->forward_cfg;
    if (!d->forwarding)
        return 0;
    int rc = resolver_forward_shared_new(&d->forward_shared, fc);
    if (rc == 0 && d->cache_cfg.size > 0)
        rc = resolver_cache_new(&d->cache, &d->cache_cfg);
    if (rc < 0)
        return daemon_fail("cannot set up forwarding: %s", uv_strerror(rc));
    d->answer_cfg.recursion_available = true;
    d->answer_cfg.fallthrough_reverse = true;
    d->answer_cfg.chase_outside = true;
    d->search_cfg.upstream = true;
    char text[DNS_ADDR_TEXT_MAX];
    dns_addr_format(&fc->upstreams[0], text, sizeof(text));
    log_info("main",
             "forwarding=on upstreams=%zu first=%s timeout_ms=%u max_concurrent=%u "
             "cache_size=%zu cache_memory=%zu",
             fc->n_upstreams, text, fc->timeout_ms, fc->max_concurrent, d->cache_cfg.size,
             d->cache_cfg.memory);
    return 0;
}

/* Running and stopping. Signals arrive on the control loop (uv_signal_t): worker threads block
 * them (dns/server.h). */

static void on_lameduck_end(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    log_info("main", "event=stop reason=\"lameduck over\"");
    dns_server_stop(d->server);
}

/* SIGTERM: the lameduck, as CoreDNS's health plugin does it: /ready fails at once so that
 * Kubernetes takes this pod out of the Service's endpoints, while queries still in flight to
 * it (clients and kube-proxy learn of the change a little later) are answered. */
static void on_sigterm(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct daemon *d = sig->data;
    struct daemon_stop *st = &d->stop;
    if (st->lameduck_s == 0 || st->in_lameduck) {
        log_info("main", "event=stop signal=SIGTERM%s", st->in_lameduck ? " lameduck=cut" : "");
        dns_server_stop(d->server);
        return;
    }
    st->in_lameduck = true;
    dns_notify("STOPPING=1");
    log_info("main",
             "event=lameduck seconds=%u action=\"/ready says 503; answering queries until "
             "then\" hint=\"SIGTERM again or SIGINT stops at once\"",
             st->lameduck_s);
    uv_timer_start(&st->lameduck, on_lameduck_end, (uint64_t)st->lameduck_s * 1000, 0);
}

static void on_sigint(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct daemon *d = sig->data;
    log_info("main", "event=stop signal=SIGINT");
    dns_server_stop(d->server);
}

static void stop_handles_start(struct daemon *d)
{
    struct daemon_stop *st = &d->stop;
    uv_loop_t *loop = dns_server_loop(d->server);
    uv_signal_init(loop, &st->sigterm);
    uv_signal_init(loop, &st->sigint);
    uv_timer_init(loop, &st->lameduck);
    st->sigterm.data = st->sigint.data = st->lameduck.data = d;
    uv_signal_start(&st->sigterm, on_sigterm, SIGTERM);
    uv_signal_start(&st->sigint, on_sigint, SIGINT);
    st->started = true;
}

/* The handles go with the control loop's last pass in dns_server_free(). */
static void stop_handles_close(struct daemon *d)
{
    struct daemon_stop *st = &d->stop;
    if (!st->started)
        return;
    uv_close((uv_handle_t *)&st->sigterm, NULL);
    uv_close((uv_handle_t *)&st->sigint, NULL);
    uv_close((uv_handle_t *)&st->lameduck, NULL);
    st->started = false;
}

static int run(struct daemon *d)
{
    int rc = -1;
    if (daemon_configure_server(d) < 0)
        return 1;
    daemon_choose_upstreams(d);
    if (plan_descriptors(d) < 0)
        return 1;
    if (setup_server(d) < 0) {
        dns_server_free(d->server);
        dns_rrl_free(d->rrl);
        return 1;
    }
    if (setup_forwarding(d) < 0)
        goto out;
    daemon_reload_start(d);
    if (daemon_metrics_start(d) < 0)
        goto out;
    stop_handles_start(d);
    signal(SIGPIPE, SIG_IGN);
    /* Every socket is bound (DNS, HTTP) and no worker thread runs yet. */
    if (daemon_privileges_drop(&d->user) < 0 || daemon_kubernetes_start(d) < 0)
        goto out;
    char addr[DNS_ADDR_TEXT_MAX];
    struct zones_store_summary sum;
    zones_store_summarize(d->store, &sum);
    dns_addr_format(&d->server_cfg.listen[0], addr, sizeof(addr));
    log_info("main",
             "serving zone=%s records=%zu services=%zu manifest_errors=%lu listen=%s "
             "listeners=%zu version=%s",
             d->store_cfg.cluster_domain, sum.records,
             sum.cluster_ip + sum.headless + sum.external_name, atomic_load(&d->reload.errors),
             addr, d->server_cfg.n_listen, SVCDNS_VERSION);
    daemon_reload_notify_ready(d);
    rc = dns_server_run(d->server);
    if (!d->stop.in_lameduck)
        dns_notify("STOPPING=1");
    daemon_metrics_log(d);
out:
    daemon_kubernetes_stop(d); /* its last commit retires to the epoch: stop it first */
    stop_handles_close(d);
    daemon_reload_stop(d);
    daemon_metrics_stop(d);
    dns_epoch_close(d->epoch);
    dns_server_free(d->server); /* runs the control loop's last close callbacks */
    dns_epoch_free(d->epoch);   /* every worker is gone: what is retired can go */
    zones_model_set_epoch(d->model, NULL);
    free_workers(d);
    dns_rrl_free(d->rrl);
    resolver_cache_free(d->cache);
    resolver_forward_shared_free(d->forward_shared);
    log_info("main", "stopped");
    return rc < 0 ? 1 : 0;
}

/* --resolv-conf: what a pod's /etc/resolv.conf should say to use this server. resolv.conf
 * names no port, so the nameserver is --nameserver or the address of the first --listen.
 * 0, or -1 after printing why. */
static int print_resolv_conf(const struct daemon *d)
{
    const struct daemon_options *o = &d->opt;
    char ns[DNS_ADDR_TEXT_MAX];
    struct sockaddr_storage ss;
    if (o->nameserver) {
        unsigned char addr[16];
        if (uv_inet_pton(AF_INET, o->nameserver, addr) != 0 &&
            uv_inet_pton(AF_INET6, o->nameserver, addr) != 0)
            return daemon_fail("--nameserver: \"%s\" is not an IP address (resolv.conf takes no "
                               "port)",
                               o->nameserver);
        snprintf(ns, sizeof(ns), "%s", o->nameserver);
    } else {
        const char *listen = o->listen.n ? o->listen.items[0] : "127.0.0.1:53";
        if (dns_addr_parse(listen, 53, &ss) < 0)
            return daemon_fail("--listen: \"%s\" is not ADDR:PORT", listen);
        if (dns_addr_is_any(&ss))
            return daemon_fail("--resolv-conf: svcdns listens on every address (%s); say which "
                               "one pods reach it on with --nameserver ADDR",
                               listen);
        dns_addr_format_host(&ss, ns, sizeof(ns));
        if (dns_addr_port(&ss) != 53)
            fprintf(stderr,
                    "svcdns: warning: resolv.conf cannot name a port and pods ask port 53, "
                    "but --listen %s uses port %u\n",
                    listen, dns_addr_port(&ss));
    }
    struct dns_name n;
    if (dns_name_from_text(&n, o->resolv_conf) < 0 || dns_name_labels(&n) != 1)
        return daemon_fail("--resolv-conf: \"%s\" is not a namespace name", o->resolv_conf);
    char text[1024];
    if (resolver_search_resolv_conf(d->store_cfg.cluster_domain, o->resolv_conf, ns, text,
                                    sizeof(text)) < 0)
        return daemon_fail("--resolv-conf: names too long");
    fputs(text, stdout);
    return 0;
}

/* The data: the manifests, then the API server (listed once now for --check and --dump).
 * Returns the manifests' errors (served without the objects they left out), or -1 after
 * printing why nothing is served. */
static int load(struct daemon *d)
{
    FILE *summary = d->opt.check ? stdout : NULL;
    int errors = daemon_reload_load(d, summary);
    if (errors < 0)
        return -1;
    if (errors > 0 && d->opt.strict) {
        daemon_fail("%d error%s in the manifests; --strict: nothing was served", errors,
                    errors == 1 ? "" : "s");
        return -1;
    }
    return daemon_kubernetes_init(d, summary) < 0 ? -1 : errors;
}

int main(int argc, char **argv)
{
    static struct daemon d;
    /* One malloc arena for every thread. The workers do not allocate per query, so there is
     * nothing to contend for; a reload built on a pool thread would otherwise leave its own
     * arena's free pages behind (RSS at 100k Services stayed at 90 MB after a reload instead
     * of 62 MB). */
    mallopt(M_ARENA_MAX, 1);
    /* Large arrays (a snapshot's, a build's) always in their own mappings: glibc would raise
     * this threshold after the first build freed its arrays, the next build's would then
     * grow by copying inside the heap, and a reload of 100k Services peaked at 216 MB instead
     * of 167 MB. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    int rc = daemon_configure(&d, argc, argv);
    if (rc != 0) {
        daemon_kubernetes_free(&d);
        daemon_options_free(&d.opt);
        return rc == 1 ? 0 : rc == -1 ? 2 : 1;
    }
    int status = 1;
    if (d.opt.resolv_conf) {
        status = print_resolv_conf(&d) < 0 ? 1 : 0;
        goto out;
    }
    pthread_mutex_init(&d.model_lock, NULL);
    int errors = load(&d);
    if (errors < 0)
        goto out;
    dns_chaos_init(&d.chaos, SVCDNS_VERSION);
    if (d.opt.dump)
        status = zones_store_dump(d.store, stdout) < 0 ? 1 : 0;
    else if (d.opt.check)
        status = errors > 0 ? 1 : 0;
    else
        status = run(&d);
out:
    daemon_kubernetes_free(&d); /* its objects go after the last commit, before the model */
    zones_model_free(d.model);
    zones_files_free(d.files);
    daemon_options_free(&d.opt);
    return status;
}
