/* dns/daemon/config.c - each module's config from the options: what the flags and the config
 * file say (options.c), checked for meaning and mapped into the structs the modules take. */
#include <string.h>

#include "dns/addr.h"
#include "dns/daemon/daemon.h"
#include "dns/log.h"

/* The forwarding and cache flags; the upstream list is settled in setup_forwarding(), when
 * the listen addresses are known. */
static int configure_resolver(struct daemon *d)
{
    const struct daemon_options *o = &d->opt;
    struct resolver_forward_config *fc = &d->forward_cfg;
    struct resolver_cache_config *cc = &d->cache_cfg;
    resolver_forward_config_default(fc);
    resolver_cache_config_default(cc);
    d->forwarding = true;
    for (size_t i = 0; i < o->upstreams.n; i++) {
        const char *text = o->upstreams.items[i];
        if (strcmp(text, "none") == 0) {
            d->forwarding = false;
            continue;
        }
        if (fc->n_upstreams == RESOLVER_UPSTREAM_MAX)
            return daemon_fail("--upstream: at most %d upstreams", RESOLVER_UPSTREAM_MAX);
        if (dns_addr_parse(text, 53, &fc->upstreams[fc->n_upstreams++]) < 0)
            return daemon_fail("--upstream: \"%s\" is not ADDR[:PORT]; write 10.0.0.10, "
                               "10.0.0.10:53 or [fd00::10]:53, or none",
                               text);
    }
    if (!d->forwarding && fc->n_upstreams > 0)
        return daemon_fail("--upstream: none turns forwarding off; it cannot go with addresses");
    if (o->upstream_timeout_ms == 0)
        return daemon_fail("--upstream-timeout: give at least 1 ms");
    if (o->max_concurrent == 0)
        return daemon_fail("--max-concurrent: give at least 1");
    if (o->cache_min_ttl > o->cache_max_ttl)
        return daemon_fail("--cache-min-ttl (%lu) is above --cache-max-ttl (%lu)", o->cache_min_ttl,
                           o->cache_max_ttl);
    fc->timeout_ms = (unsigned)o->upstream_timeout_ms;
    if (fc->deadline_ms < fc->timeout_ms)
        fc->deadline_ms = fc->timeout_ms;
    fc->max_concurrent = (unsigned)o->max_concurrent;
    cc->size = o->cache_size;
    if (o->cache_memory && (resolver_cache_parse_size(o->cache_memory, &cc->memory) < 0 ||
                            (cc->memory > 0 && cc->memory < RESOLVER_CACHE_MIN_MEMORY)))
        return daemon_fail("--cache-memory: \"%s\" is not a size from 64K to 64G; write 512K, "
                           "64M or 1G, or 0 (no cache)",
                           o->cache_memory);
    if (cc->memory == 0)
        cc->size = 0; /* either bound at 0 turns the cache off */
    cc->max_ttl = (uint32_t)o->cache_max_ttl;
    cc->min_ttl = (uint32_t)o->cache_min_ttl;
    if (o->serve_stale && resolver_cache_parse_duration(o->serve_stale, &cc->serve_stale_s) < 0)
        return daemon_fail("--serve-stale: \"%s\" is not a duration; write 1h, 30m or 3600s (at "
                           "most 30d)",
                           o->serve_stale);
    return 0;
}

static int configure_zones(struct daemon *d)
{
    const struct daemon_options *o = &d->opt;
    zones_store_config_default(&d->store_cfg);
    if (o->cluster_domain) {
        struct dns_name n;
        if (dns_name_from_text(&n, o->cluster_domain) < 0 || n.len <= 1)
            return daemon_fail("--cluster-domain: \"%s\" is not a domain name", o->cluster_domain);
        d->store_cfg.cluster_domain = o->cluster_domain;
    }
    d->store_cfg.ttl = (uint32_t)o->ttl;
    if (o->pods && zones_store_parse_pods_mode(o->pods, &d->store_cfg.pods) < 0)
        return daemon_fail("--pods: \"%s\" is not one of disabled, insecure, verified", o->pods);
    for (size_t i = 0; i < o->cidrs.n; i++) {
        if (zones_cidr_parse(o->cidrs.items[i], &d->cidrs[d->n_cidrs++]) < 0)
            return daemon_fail("--service-cidr: \"%s\" is not a CIDR; write it like "
                               "10.96.0.0/12 or fd00:10:96::/112",
                               o->cidrs.items[i]);
    }
    if (d->n_cidrs == 0)
        zones_cidr_parse("10.96.0.0/12", &d->cidrs[d->n_cidrs++]);
    d->stop.lameduck_s = 5;
    if (o->lameduck && resolver_cache_parse_duration(o->lameduck, &d->stop.lameduck_s) < 0)
        return daemon_fail("--lameduck: \"%s\" is not a duration; write 5s, 1m or 0 (off), at "
                           "most 30d",
                           o->lameduck);
    d->reload.interval_s = 30;
    if (o->reload_interval &&
        resolver_cache_parse_duration(o->reload_interval, &d->reload.interval_s) < 0)
        return daemon_fail("--reload-interval: \"%s\" is not a duration; write 30s, 5m or 0 "
                           "(off), at most 30d",
                           o->reload_interval);
    return 0;
}

static int configure_search(struct daemon *d)
{
    const struct daemon_options *o = &d->opt;
    resolver_search_config_default(&d->search_cfg);
    d->search_cfg.cluster_domain = d->store_cfg.cluster_domain;
    d->search_cfg.ttl = d->store_cfg.ttl;
    d->search_cfg.expand = !o->no_search_expand;
    d->search_cfg.autopath = !o->no_autopath;
    if (o->namespace_name) {
        struct dns_name n;
        if (dns_name_from_text(&n, o->namespace_name) < 0 || dns_name_labels(&n) != 1)
            return daemon_fail("--namespace: \"%s\" is not a namespace name", o->namespace_name);
        d->search_cfg.namespace_name = o->namespace_name;
    }
    return 0;
}

int daemon_configure(struct daemon *d, int argc, char **argv)
{
    struct daemon_options *o = &d->opt;
    o->ttl = 5;
    o->upstream_timeout_ms = 1000;
    o->max_concurrent = 1000;
    o->cache_size = 10000;
    o->cache_max_ttl = 3600;
    o->cache_min_ttl = 0;
    o->rrl_slip = 2;
    int rc = daemon_options_parse(o, argc, argv);
    if (rc != 0)
        return rc;
    if (configure_zones(d) < 0 || configure_search(d) < 0 || configure_resolver(d) < 0 ||
        daemon_kubernetes_configure(d) < 0)
        return -2;
    enum log_level level;
    if (o->log_level && log_parse_level(o->log_level, &level) < 0) {
        daemon_fail("--log-level: \"%s\" is not one of error, warn, info, debug", o->log_level);
        return -2;
    }
    if (o->log_level)
        log_set_level(level);
    enum log_format format = LOG_FORMAT_TEXT;
    if (o->log_format && log_parse_format(o->log_format, &format) < 0) {
        daemon_fail("--log-format: \"%s\" is not one of text, json", o->log_format);
        return -2;
    }
    log_set_format(format);
    bool serving = !o->check && !o->dump && !o->resolv_conf;
    if (daemon_privileges_check(o->user, serving, &d->user) < 0)
        return -2;
    return 0;
}

int daemon_configure_server(struct daemon *d)
{
    struct dns_server_config *cfg = &d->server_cfg;
    dns_server_config_default(cfg);
    cfg->workers = d->opt.workers ? (unsigned)d->opt.workers : daemon_options_default_workers();
    if (d->opt.listen.n == 0)
        d->opt.listen.items[d->opt.listen.n++] = "127.0.0.1:53";
    for (size_t i = 0; i < d->opt.listen.n; i++) {
        if (cfg->n_listen == DNS_SERVER_MAX_LISTEN)
            return daemon_fail("--listen: at most %d addresses", DNS_SERVER_MAX_LISTEN);
        if (dns_addr_parse(d->opt.listen.items[i], 53, &cfg->listen[cfg->n_listen++]) < 0)
            return daemon_fail("--listen: \"%s\" is not ADDR:PORT; write 127.0.0.1:53 or "
                               "[::1]:53",
                               d->opt.listen.items[i]);
    }
    return 0;
}

void daemon_choose_upstreams(struct daemon *d)
{
    struct resolver_forward_config *fc = &d->forward_cfg;
    if (!d->forwarding)
        return;
    if (d->opt.upstreams.n == 0) {
        int rc = resolver_upstream_from_resolv_conf("/etc/resolv.conf", fc->upstreams,
                                                    RESOLVER_UPSTREAM_MAX, &fc->n_upstreams);
        if (rc < 0)
            log_warn("main", "file=/etc/resolv.conf error=\"%s\" hint=\"pass --upstream\"",
                     strerror(-rc));
    }
    size_t kept = 0;
    char text[DNS_ADDR_TEXT_MAX];
    for (size_t i = 0; i < fc->n_upstreams; i++) {
        dns_addr_format(&fc->upstreams[i], text, sizeof(text));
        if (resolver_upstream_is_self(&fc->upstreams[i], d->server_cfg.listen,
                                      d->server_cfg.n_listen)) {
            log_error("main",
                      "upstream=%s error=\"this is svcdns's own listen address: forwarding to "
                      "it would loop; dropped\" remedy=\"point kubelet's resolvConf at "
                      "/run/systemd/resolve/resolv.conf, or pass --upstream\"",
                      text);
            continue;
        }
        fc->upstreams[kept++] = fc->upstreams[i];
    }
    fc->n_upstreams = kept;
    if (kept == 0) {
        log_warn("main", "forwarding=off reason=\"no upstream\" hint=\"names outside the "
                         "cluster get REFUSED; pass --upstream\"");
        d->forwarding = false;
    }
}
