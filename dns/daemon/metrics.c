/* dns/daemon/metrics.c - the operators' endpoints on --http: /health, /ready and Prometheus
 * /metrics, with CoreDNS's metric shapes under the svcdns_ prefix. Counters are read from the
 * workers without stopping them (dns/counter.h), so a scrape may lag them by a few queries. */
#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/daemon/daemon.h"
#include "dns/log.h"

static void metric(struct dns_http_response *res, const char *name, const char *type,
                   const char *help, unsigned long long value)
{
    dns_http_printf(res, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                    value);
}

static void dns_metrics(struct daemon *d, struct dns_http_response *res)
{
    struct dns_chain_stats st;
    dns_server_stats(d->server, &st);
    metric(res, "svcdns_dns_requests_total", "counter", "DNS queries answered.",
           dns_counter_get(&st.queries));
    dns_http_printf(res, "# HELP svcdns_dns_responses_total DNS responses by rcode.\n"
                         "# TYPE svcdns_dns_responses_total counter\n");
    for (unsigned i = 0; i <= DNS_RCODE_BADVERS; i++) {
        uint64_t n = dns_counter_get(&st.by_rcode[i]);
        if (n || i == DNS_RCODE_NOERROR || i == DNS_RCODE_NXDOMAIN)
            dns_http_printf(res, "svcdns_dns_responses_total{rcode=\"%s\"} %llu\n",
                            dns_wire_rcode_name(i), (unsigned long long)n);
    }
    metric(res, "svcdns_dns_dropped_total", "counter",
           "Datagrams dropped: runts, responses, no free request slot.",
           dns_counter_get(&st.dropped));
    metric(res, "svcdns_dns_truncated_total", "counter",
           "UDP replies sent empty with TC because they were over the client's limit.",
           dns_counter_get(&st.truncated));
    uint64_t expanded = 0;
    uint64_t autopath = 0;
    uint64_t autopath_nxdomain = 0;
    for (unsigned i = 0; i < DNS_SERVER_MAX_WORKERS; i++) {
        const struct daemon_worker *w = atomic_load(&d->workers[i]);
        if (w) {
            expanded += dns_counter_get(&w->search.stats.expanded);
            autopath += dns_counter_get(&w->search.stats.autopath);
            autopath_nxdomain += dns_counter_get(&w->search.stats.autopath_nxdomain);
        }
    }
    metric(res, "svcdns_search_expanded_total", "counter",
           "Short names answered through the client's search list.", expanded);
    metric(res, "svcdns_autopath_success_total", "counter",
           "Search walks answered at their first step (CoreDNS autopath).", autopath);
    metric(res, "svcdns_autopath_nxdomain_total", "counter",
           "Search walks that found nothing and were answered NXDOMAIN.", autopath_nxdomain);
    if (d->rrl) {
        struct dns_rrl_stats r;
        dns_rrl_stats(d->rrl, &r);
        metric(res, "svcdns_rrl_dropped_total", "counter",
               "UDP responses not sent: their client prefix was over --rrl.", r.dropped);
        metric(res, "svcdns_rrl_slipped_total", "counter",
               "UDP responses over --rrl sent empty with TC instead (--rrl-slip).", r.slipped);
    }
}

static void resolver_metrics(struct daemon *d, struct dns_http_response *res)
{
    if (d->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(d->forward_shared, &f);
        metric(res, "svcdns_forward_requests_total", "counter",
               "Queries the forwarder took (coalesced ones included).", f.requests);
        metric(res, "svcdns_forward_coalesced_total", "counter",
               "Queries that joined an identical query in flight.", f.coalesced);
        metric(res, "svcdns_forward_timeouts_total", "counter", "Upstream tries that timed out.",
               f.timeouts);
        metric(res, "svcdns_forward_mismatched_replies_total", "counter",
               "Datagrams ignored: wrong ID or question (RFC 5452), runts.", f.mismatches);
        metric(res, "svcdns_forward_max_concurrent_rejects_total", "counter",
               "Queries REFUSED past --max-concurrent.", f.refused_max_concurrent);
        metric(res, "svcdns_forward_tcp_retries_total", "counter",
               "Truncated UDP answers asked again over TCP.", f.tcp_retries);
        metric(res, "svcdns_forward_healthcheck_broken_total", "counter",
               "Times an upstream was marked down.", f.upstream_down);
        dns_http_printf(res, "# HELP svcdns_forward_upstream_up 1 while the upstream is healthy.\n"
                             "# TYPE svcdns_forward_upstream_up gauge\n");
        for (size_t i = 0; i < f.n_upstreams; i++) {
            char addr[DNS_ADDR_TEXT_MAX];
            dns_addr_format(&f.upstreams[i].addr, addr, sizeof(addr));
            dns_http_printf(res, "svcdns_forward_upstream_up{to=\"%s\"} %d\n", addr,
                            !f.upstreams[i].down && !f.upstreams[i].looping);
        }
    }
    if (d->cache) {
        struct resolver_cache_stats c;
        resolver_cache_stats(d->cache, &c);
        metric(res, "svcdns_cache_hits_total", "counter", "Cache hits.", c.hits);
        metric(res, "svcdns_cache_misses_total", "counter", "Cache misses.", c.misses);
        metric(res, "svcdns_cache_entries", "gauge", "Entries in the cache.", c.entries);
        metric(res, "svcdns_cache_bytes", "gauge",
               "Bytes the cached answers hold, malloc's overhead included (--cache-memory).",
               c.bytes);
        metric(res, "svcdns_cache_oversized_total", "counter",
               "Answers over 16 KiB, cached only as the truncated reply a UDP client gets.",
               c.oversized);
        metric(res, "svcdns_cache_evictions_total", "counter",
               "Entries dropped to make room for others.", c.evictions);
        metric(res, "svcdns_cache_served_stale_total", "counter",
               "Expired answers served because every upstream failed (RFC 8767).", c.served_stale);
    }
}

/* One line per watched kind of a per-kind metric; values[] by enum zones_kube_kind. */
static void kind_metric(struct dns_http_response *res, const struct zones_kube_stats *st,
                        const char *name, const char *type, const char *help,
                        const uint64_t values[ZONES_KUBE_KINDS])
{
    dns_http_printf(res, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        if (st->kinds[i].watched)
            dns_http_printf(res, "%s{kind=\"%s\"} %llu\n", name, st->kinds[i].name,
                            (unsigned long long)values[i]);
    }
}

_Static_assert(ZONES_KUBE_KINDS == 4, "KIND_METRIC lists every kind");
#define KIND_METRIC(res, st, name, type, help, field)                                              \
    kind_metric(res, st, name, type, help,                                                         \
                (const uint64_t[ZONES_KUBE_KINDS]){                                                \
                    (uint64_t)(st)->kinds[0].field, (uint64_t)(st)->kinds[1].field,                \
                    (uint64_t)(st)->kinds[2].field, (uint64_t)(st)->kinds[3].field})

static void kubernetes_metrics(struct daemon *d, struct dns_http_response *res)
{
    if (d->kube == NULL)
        return;
    struct zones_kube_stats st;
    zones_kube_stats(d->kube, &st);
    metric(res, "svcdns_kubernetes_synced", "gauge",
           "1 once every kind has been listed from the API server (cluster names are served).",
           st.synced);
    KIND_METRIC(res, &st, "svcdns_kubernetes_objects", "gauge",
                "Objects kept from the API server, by kind.", objects);
    KIND_METRIC(res, &st, "svcdns_kubernetes_last_sync_timestamp_seconds", "gauge",
                "When the API server last told about the kind (a list, an event, a bookmark).",
                last_sync);
    KIND_METRIC(res, &st, "svcdns_kubernetes_lists_total", "counter", "Complete lists.", lists);
    KIND_METRIC(res, &st, "svcdns_kubernetes_relists_total", "counter",
                "Lists started again: after 410 Gone, or after a list failed.", relists);
    KIND_METRIC(res, &st, "svcdns_kubernetes_watch_restarts_total", "counter",
                "Watches started again after one ended (timeout, cut stream, error).", restarts);
    KIND_METRIC(res, &st, "svcdns_kubernetes_events_total", "counter",
                "ADDED, MODIFIED and DELETED watch events.", events);
    dns_http_printf(res, "# HELP svcdns_kubernetes_api_errors_total Failed API requests by kind "
                         "and HTTP status (0: no answer: connection, TLS, timeout).\n"
                         "# TYPE svcdns_kubernetes_api_errors_total counter\n");
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        const struct zones_kube_kind_stats *k = &st.kinds[i];
        for (size_t e = 0; e < k->n_errors; e++)
            dns_http_printf(res,
                            "svcdns_kubernetes_api_errors_total{kind=\"%s\",code=\"%d\"} "
                            "%llu\n",
                            k->name, k->errors[e].code, (unsigned long long)k->errors[e].count);
    }
}

static void on_metrics(void *ctx, struct dns_http_response *res)
{
    struct daemon *d = ctx;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    dns_http_printf(res,
                    "# HELP svcdns_build_info svcdns's version.\n"
                    "# TYPE svcdns_build_info gauge\n"
                    "svcdns_build_info{version=\"%s\"} 1\n",
                    SVCDNS_VERSION);
    dns_metrics(d, res);
    resolver_metrics(d, res);
    struct zones_store_summary sum;
    zones_store_summarize(d->store, &sum);
    metric(res, "svcdns_zone_records", "gauge", "Records being served.", sum.records);
    metric(res, "svcdns_reload_total", "counter", "Reloads that found no error.",
           atomic_load(&d->reload.reloads));
    metric(res, "svcdns_reload_failed_total", "counter",
           "Reloads that found manifest errors (what they could not read kept its last good "
           "objects; with --strict, all of it did).",
           atomic_load(&d->reload.failures));
    metric(res, "svcdns_manifest_errors", "gauge",
           "Errors in the manifests as last read (each printed as FILE:LINE:COL).",
           atomic_load(&d->reload.errors));
    metric(res, "svcdns_manifest_errors_total", "counter",
           "Manifest errors found by every read since start.",
           atomic_load(&d->reload.errors_total));
    metric(res, "svcdns_manifest_objects_invalid", "gauge",
           "Objects left out of what is served because of an error in them.",
           atomic_load(&d->reload.invalid));
    kubernetes_metrics(d, res);
}

static void on_health(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    dns_http_printf(res, "OK\n");
}

/* Ready while serving, unless shutting down (the lameduck), the API server has not been
 * listed yet, or every upstream leads back to us (a forwarding loop). */
static void on_ready(void *ctx, struct dns_http_response *res)
{
    struct daemon *d = ctx;
    if (d->stop.in_lameduck) {
        res->status = 503;
        dns_http_printf(res, "shutting down: answering queries for the lameduck only\n");
        return;
    }
    if (d->kube != NULL) {
        struct zones_kube_stats st;
        zones_kube_stats(d->kube, &st);
        if (!st.synced) {
            res->status = 503;
            dns_http_printf(res, "kubernetes: waiting for the first list of:");
            for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
                if (st.kinds[i].watched && !st.kinds[i].synced)
                    dns_http_printf(res, " %s", st.kinds[i].name);
            }
            dns_http_printf(res, "\n");
            return;
        }
    }
    if (d->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(d->forward_shared, &f);
        size_t looping = 0;
        for (size_t i = 0; i < f.n_upstreams; i++)
            looping += f.upstreams[i].looping;
        if (f.n_upstreams > 0 && looping == f.n_upstreams) {
            res->status = 503;
            dns_http_printf(res, "forward: every upstream leads back to svcdns (a loop)\n");
            return;
        }
    }
    dns_http_printf(res, "OK\n");
}

int daemon_metrics_start(struct daemon *d)
{
    if (!d->opt.http)
        return 0;
    struct sockaddr_storage ss;
    if (dns_addr_parse(d->opt.http, 9153, &ss) < 0)
        return daemon_fail("--http: \"%s\" is not ADDR:PORT; write 127.0.0.1:9153", d->opt.http);
    int rc = dns_http_new(&d->http, dns_server_loop(d->server), &ss);
    if (rc < 0)
        return daemon_fail("--http %s: %s", d->opt.http, uv_strerror(rc));
    dns_http_route(d->http, "/health", on_health, d);
    dns_http_route(d->http, "/ready", on_ready, d);
    dns_http_route(d->http, "/metrics", on_metrics, d);
    return 0;
}

void daemon_metrics_stop(struct daemon *d)
{
    dns_http_close(d->http); /* freed by the control loop's last pass in dns_server_free */
    d->http = NULL;
}

void daemon_metrics_log(const struct daemon *d)
{
    if (d->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(d->forward_shared, &f);
        log_info("forward",
                 "requests=%llu coalesced=%llu noerror=%llu nxdomain=%llu servfail=%llu "
                 "refused=%llu timeouts=%llu mismatches=%llu malformed=%llu "
                 "refused_max_concurrent=%llu tcp_retries=%llu edns_fallbacks=%llu "
                 "upstream_down=%llu loop_probes_seen=%llu",
                 (unsigned long long)f.requests, (unsigned long long)f.coalesced,
                 (unsigned long long)f.rcode[0], (unsigned long long)f.rcode[3],
                 (unsigned long long)f.rcode[2], (unsigned long long)f.rcode[5],
                 (unsigned long long)f.timeouts, (unsigned long long)f.mismatches,
                 (unsigned long long)f.malformed, (unsigned long long)f.refused_max_concurrent,
                 (unsigned long long)f.tcp_retries, (unsigned long long)f.edns_fallbacks,
                 (unsigned long long)f.upstream_down, (unsigned long long)f.loop_probes_seen);
    }
    if (d->cache) {
        struct resolver_cache_stats c;
        resolver_cache_stats(d->cache, &c);
        log_info("cache",
                 "hits=%llu misses=%llu inserts=%llu evictions=%llu served_stale=%llu "
                 "oversized=%llu entries=%zu capacity=%zu bytes=%zu memory=%zu",
                 (unsigned long long)c.hits, (unsigned long long)c.misses,
                 (unsigned long long)c.inserts, (unsigned long long)c.evictions,
                 (unsigned long long)c.served_stale, (unsigned long long)c.oversized, c.entries,
                 c.capacity, c.bytes, c.memory);
    }
}
