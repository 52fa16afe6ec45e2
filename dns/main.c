/* dns/main.c - the composition root: reads flags and the config file, loads the manifests,
 * builds the snapshot and wires the handler chain of every worker. The only file that knows
 * every module. Shutdown runs in the reverse order of setup. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "dns/chain.h"
#include "dns/chaos.h"
#include "dns/http.h"
#include "dns/log.h"
#include "dns/notify.h"
#include "dns/server.h"
#include "resolver/cache.h"
#include "resolver/forward.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/manifest.h"
#include "zones/objects.h"
#include "zones/store.h"

#ifndef SVCDNS_VERSION
#define SVCDNS_VERSION "0.0.0"
#endif

#define MAX_LIST 64

struct list {
    const char *items[MAX_LIST];
    size_t n;
};

struct options {
    struct list manifests;
    struct list listen;
    struct list cidrs;
    const char *cluster_domain;
    unsigned long ttl;
    const char *pods;
    unsigned long workers;
    const char *config;
    const char *log_level;
    bool check;
    bool dump;
    bool log_queries;
    const char *namespace_name;
    bool no_search_expand;
    bool no_autopath;
    const char *resolv_conf; /* print a pod's resolv.conf for this namespace and exit */
    const char *nameserver;
    const char *http; /* --http ADDR:PORT for /health, /ready, /metrics */
    /* Forwarding and cache (resolver/forward.h, resolver/cache.h). */
    struct list upstreams; /* --upstream; "none" turns forwarding off */
    unsigned long upstream_timeout_ms;
    unsigned long max_concurrent;
    unsigned long cache_size;
    unsigned long cache_max_ttl;
    unsigned long cache_min_ttl;
    const char *serve_stale;
    const char *reload_interval; /* --reload-interval DURATION; default 30s */
    bool set[256];               /* options given on the command line, by set_index() */
};

enum {
    OPT_CLUSTER_DOMAIN = 1000,
    OPT_SERVICE_CIDR,
    OPT_TTL,
    OPT_PODS,
    OPT_WORKERS,
    OPT_CONFIG,
    OPT_CHECK,
    OPT_DUMP,
    OPT_LOG_LEVEL,
    OPT_LOG_QUERIES,
    OPT_NAMESPACE,
    OPT_NO_SEARCH_EXPAND,
    OPT_NO_AUTOPATH,
    OPT_RESOLV_CONF,
    OPT_NAMESERVER,
    OPT_HTTP,
    OPT_UPSTREAM,
    OPT_UPSTREAM_TIMEOUT,
    OPT_MAX_CONCURRENT,
    OPT_CACHE_SIZE,
    OPT_CACHE_MAX_TTL,
    OPT_CACHE_MIN_TTL,
    OPT_SERVE_STALE,
    OPT_RELOAD_INTERVAL,
};

static const struct option long_options[] = {
    {"manifests", required_argument, NULL, 'm'},
    {"listen", required_argument, NULL, 'l'},
    {"cluster-domain", required_argument, NULL, OPT_CLUSTER_DOMAIN},
    {"service-cidr", required_argument, NULL, OPT_SERVICE_CIDR},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"pods", required_argument, NULL, OPT_PODS},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check", no_argument, NULL, OPT_CHECK},
    {"dump", no_argument, NULL, OPT_DUMP},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-queries", no_argument, NULL, OPT_LOG_QUERIES},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"no-search-expand", no_argument, NULL, OPT_NO_SEARCH_EXPAND},
    {"no-autopath", no_argument, NULL, OPT_NO_AUTOPATH},
    {"resolv-conf", required_argument, NULL, OPT_RESOLV_CONF},
    {"nameserver", required_argument, NULL, OPT_NAMESERVER},
    {"http", required_argument, NULL, OPT_HTTP},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"upstream-timeout", required_argument, NULL, OPT_UPSTREAM_TIMEOUT},
    {"max-concurrent", required_argument, NULL, OPT_MAX_CONCURRENT},
    {"cache-size", required_argument, NULL, OPT_CACHE_SIZE},
    {"cache-max-ttl", required_argument, NULL, OPT_CACHE_MAX_TTL},
    {"cache-min-ttl", required_argument, NULL, OPT_CACHE_MIN_TTL},
    {"serve-stale", required_argument, NULL, OPT_SERVE_STALE},
    {"reload-interval", required_argument, NULL, OPT_RELOAD_INTERVAL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fputs("Usage: svcdns [options]\n"
          "Cluster DNS for Kubernetes Services, served from manifest files.\n"
          "\n"
          "Data:\n"
          "  -m, --manifests PATH       file or directory (recursive: *.yaml *.yml *.json);\n"
          "                             repeatable; '-' reads stdin\n"
          "      --cluster-domain NAME  cluster domain (default \"local\": <svc>.<ns>.svc.local)\n"
          "      --service-cidr CIDR    addresses for Services without spec.clusterIP\n"
          "                             (default 10.96.0.0/12); repeatable, one IPv4 and one IPv6\n"
          "      --ttl SECONDS          TTL of cluster records (default 5)\n"
          "      --pods MODE            pod records: disabled | insecure | verified\n"
          "                             (default insecure)\n"
          "      --reload-interval DURATION\n"
          "                             also look for changed manifests this often, for file\n"
          "                             systems without change events (default 30s; 0: off)\n"
          "\n"
          "Serving:\n"
          "  -l, --listen ADDR:PORT     UDP and TCP address; repeatable (default 127.0.0.1:53;\n"
          "                             IPv6 as [::1]:53)\n"
          "      --workers N            event loops (default: the number of CPUs, or the\n"
          "                             cgroup CPU limit when lower)\n"
          "\n"
          "Search path:\n"
          "      --namespace NAME       namespace of clients that are no loaded Pod's address,\n"
          "                             for short names (default \"default\")\n"
          "      --no-search-expand     answer short names (echo, echo.ns) as they are, without\n"
          "                             trying the client's search list\n"
          "      --no-autopath          answer each step of a pod's ndots:5 walk instead of the\n"
          "                             walk's result (CoreDNS autopath)\n"
          "      --resolv-conf NS       print the resolv.conf for a pod in namespace NS and exit\n"
          "      --nameserver ADDR      the nameserver line of --resolv-conf (default: the first\n"
          "                             --listen address)\n"
          "\n"
          "Forwarding (names outside the cluster zone):\n"
          "      --upstream ADDR[:PORT] resolver to forward to; repeatable, up to 15, tried in\n"
          "                             turn (default: the nameservers of /etc/resolv.conf;\n"
          "                             IPv6 as [::1]:53); 'none' turns forwarding off\n"
          "      --upstream-timeout MS  wait for one upstream try (default 1000; a query gets\n"
          "                             SERVFAIL after at most 2000 ms)\n"
          "      --max-concurrent N     upstream queries in flight; more get REFUSED\n"
          "                             (default 1000)\n"
          "      --cache-size N         cached answers (default 10000; 0: no cache)\n"
          "      --cache-max-ttl S      cap on cached TTLs (default 3600)\n"
          "      --cache-min-ttl S      floor on cached TTLs (default 0)\n"
          "      --serve-stale DURATION answer from expired entries this old (1h, 30m, 3600s)\n"
          "                             when every upstream fails (default off; RFC 8767)\n"
          "\n"
          "Operation:\n"
          "      --http ADDR:PORT       serve /health, /ready and Prometheus /metrics over HTTP\n"
          "                             (default off; e.g. 127.0.0.1:9153)\n"
          "      --config FILE          YAML file with the long option names as keys;\n"
          "                             flags win over it\n"
          "      --check                load and validate config and manifests, print a summary,\n"
          "                             exit 0 (valid) or 1\n"
          "      --dump                 print the loaded records as a zone file and exit\n"
          "      --log-level LEVEL      error | warn | info | debug (default info)\n"
          "      --log-queries          log every query (CoreDNS log plugin style)\n"
          "  -h, --help                 this text\n"
          "  -V, --version              version and library versions\n"
          "\n"
          "Manifest directories are watched: a change reloads them, and so does SIGHUP. A\n"
          "broken manifest is reported and the last good data keeps serving.\n"
          "\n"
          "Example:\n"
          "  svcdns --manifests examples/ --listen 127.0.0.1:5353\n"
          "  dig @127.0.0.1 -p 5353 echo.default.svc.local\n",
          out);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("svcdns: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

static int parse_ulong(const char *name, const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || v > max || text[0] == '-')
        return fail("--%s: \"%s\" is not a number from 0 to %lu", name, text, max);
    *out = v;
    return 0;
}

static int list_add(struct list *l, const char *name, const char *value)
{
    if (l->n == MAX_LIST)
        return fail("--%s: at most %d values", name, MAX_LIST);
    l->items[l->n++] = value;
    return 0;
}

/* A switch: no value on the command line; true/false (or yes/no) in the config file. */
static int apply_switch(struct options *o, int opt, const char *name, const char *value)
{
    bool on = !value || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0;
    if (value && !on && strcmp(value, "false") != 0 && strcmp(value, "no") != 0)
        return fail("%s: expected true or false, got \"%s\"", name, value);
    switch (opt) {
    case OPT_CHECK:
        o->check = on;
        break;
    case OPT_DUMP:
        o->dump = on;
        break;
    case OPT_LOG_QUERIES:
        o->log_queries = on;
        break;
    case OPT_NO_SEARCH_EXPAND:
        o->no_search_expand = on;
        break;
    default:
        o->no_autopath = on;
        break;
    }
    return 0;
}

/* Applies one option, from the command line or from the config file. */
static int apply(struct options *o, int opt, const char *name, const char *value)
{
    switch (opt) {
    case 'm':
        return list_add(&o->manifests, name, value);
    case 'l':
        return list_add(&o->listen, name, value);
    case OPT_SERVICE_CIDR:
        return list_add(&o->cidrs, name, value);
    case OPT_CLUSTER_DOMAIN:
        o->cluster_domain = value;
        return 0;
    case OPT_TTL:
        return parse_ulong(name, value, 3600, &o->ttl);
    case OPT_PODS:
        o->pods = value;
        return 0;
    case OPT_WORKERS:
        return parse_ulong(name, value, 256, &o->workers);
    case OPT_CONFIG:
        o->config = value;
        return 0;
    case OPT_LOG_LEVEL:
        o->log_level = value;
        return 0;
    case OPT_NAMESPACE:
        o->namespace_name = value;
        return 0;
    case OPT_RESOLV_CONF:
        o->resolv_conf = value;
        return 0;
    case OPT_NAMESERVER:
        o->nameserver = value;
        return 0;
    case OPT_HTTP:
        o->http = value;
        return 0;
    case OPT_UPSTREAM:
        return list_add(&o->upstreams, name, value);
    case OPT_UPSTREAM_TIMEOUT:
        return parse_ulong(name, value, 60000, &o->upstream_timeout_ms);
    case OPT_MAX_CONCURRENT:
        return parse_ulong(name, value, 1000000, &o->max_concurrent);
    case OPT_CACHE_SIZE:
        return parse_ulong(name, value, 10000000, &o->cache_size);
    case OPT_CACHE_MAX_TTL:
        return parse_ulong(name, value, 604800, &o->cache_max_ttl);
    case OPT_CACHE_MIN_TTL:
        return parse_ulong(name, value, 604800, &o->cache_min_ttl);
    case OPT_SERVE_STALE:
        o->serve_stale = value;
        return 0;
    case OPT_RELOAD_INTERVAL:
        o->reload_interval = value;
        return 0;
    case OPT_CHECK:
    case OPT_DUMP:
    case OPT_LOG_QUERIES:
    case OPT_NO_SEARCH_EXPAND:
    case OPT_NO_AUTOPATH:
        return apply_switch(o, opt, name, value);
    default:
        return fail("unknown option %s", name);
    }
}

/* Short options are characters; long-only ones count up from 1000. */
static size_t set_index(int opt)
{
    return opt < 128 ? (size_t)opt : 128 + (size_t)(opt - 1000);
}

static const struct option *find_long(const char *name)
{
    for (const struct option *lo = long_options; lo->name; lo++) {
        if (strcmp(lo->name, name) == 0)
            return lo;
    }
    return NULL;
}

/* The config file: a YAML mapping of long option names to a scalar or a list of scalars.
 * Its strings are kept in a document that lives until exit, like argv. */
static yaml_document_t config_doc;
static bool config_loaded;

static int config_error(const char *path, const yaml_node_t *node, const char *what)
{
    return fail("%s:%zu:%zu: error: %s", path, node->start_mark.line + 1,
                node->start_mark.column + 1, what);
}

static int apply_config_value(struct options *o, const char *path, const char *key,
                              const yaml_node_t *value)
{
    const struct option *lo = find_long(key);
    if (!lo || strcmp(key, "config") == 0 || strcmp(key, "help") == 0 ||
        strcmp(key, "version") == 0) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "unknown key \"%s\"; the keys are the long option names "
                 "of svcdns --help",
                 key);
        return config_error(path, value, msg);
    }
    if (o->set[set_index(lo->val)])
        return 0; /* the command line wins, lists included */
    if (value->type == YAML_SCALAR_NODE)
        return apply(o, lo->val, key, (const char *)value->data.scalar.value);
    if (value->type != YAML_SEQUENCE_NODE)
        return config_error(path, value, "expected a value or a list of values");
    for (yaml_node_item_t *it = value->data.sequence.items.start;
         it < value->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(&config_doc, *it);
        if (!item || item->type != YAML_SCALAR_NODE)
            return config_error(path, value, "expected a list of plain values");
        if (apply(o, lo->val, key, (const char *)item->data.scalar.value) < 0)
            return -1;
    }
    return 0;
}

static int load_config(struct options *o, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail("--config %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, &config_doc);
    if (!ok) {
        fail("%s:%zu:%zu: error: invalid YAML: %s", path, parser.problem_mark.line + 1,
             parser.problem_mark.column + 1, parser.problem ? parser.problem : "?");
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (!ok)
        return -1;
    config_loaded = true;
    yaml_node_t *root = yaml_document_get_root_node(&config_doc);
    if (!root)
        return 0; /* an empty file sets nothing */
    if (root->type != YAML_MAPPING_NODE)
        return config_error(path, root, "expected a mapping of option names to values");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&config_doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&config_doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return config_error(path, k, "expected an option name");
        if (apply_config_value(o, path, (const char *)k->data.scalar.value, v) < 0)
            return -1;
    }
    return 0;
}

static void print_version(void)
{
    int major = 0;
    int minor = 0;
    int patch = 0;
    yaml_get_version(&major, &minor, &patch);
    printf("svcdns %s\nlibuv %s, libyaml %d.%d.%d\n", SVCDNS_VERSION, uv_version_string(), major,
           minor, patch);
}

/* Returns 0 to go on, 1 to exit 0 (help, version), -1 to exit 2 (usage error). */
static int parse_args(struct options *o, int argc, char **argv)
{
    const char *short_opts = "m:l:hV";
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, short_opts, long_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == 'V') {
            print_version();
            return 1;
        }
        if (opt == '?' || opt == ':') {
            const char *arg = argv[optind - 1];
            if (optopt && optopt < 1000 && strchr(short_opts, optopt))
                fail("option -%c needs a value; see svcdns --help", optopt);
            else
                fail("unknown or incomplete option %s; see svcdns --help", arg);
            return -1;
        }
        const struct option *lo = long_options;
        while (lo->name && lo->val != opt)
            lo++;
        if (apply(o, opt, lo->name ? lo->name : "?", optarg) < 0)
            return -1;
        o->set[set_index(opt)] = true;
    }
    if (optind < argc) {
        fail("unexpected argument \"%s\"; manifests are given with --manifests", argv[optind]);
        return -1;
    }
    return 0;
}

/* FILE:LINE:COL: error: message, as compilers print them, so editors jump to the place. */
static void print_diags(const struct zones_diag *diags, size_t n, const char *severity)
{
    for (size_t i = 0; i < n; i++) {
        const struct zones_diag *d = &diags[i];
        if (d->where.line)
            fprintf(stderr, "%s:%u:%u: %s: %s\n", d->where.file, d->where.line, d->where.col,
                    severity, d->message);
        else
            fprintf(stderr, "%s: %s: %s\n", d->where.file ? d->where.file : "svcdns", severity,
                    d->message);
    }
}

/* Loads every manifest into objs; prints warnings and errors. -1 when there were errors. */
static int load_objects(const struct options *o, struct zones_objects *objs)
{
    struct zones_cidr cidrs[MAX_LIST];
    size_t n_cidrs = 0;
    for (size_t i = 0; i < o->cidrs.n; i++) {
        if (zones_cidr_parse(o->cidrs.items[i], &cidrs[n_cidrs++]) < 0)
            return fail("--service-cidr: \"%s\" is not a CIDR; write it like 10.96.0.0/12 or "
                        "fd00:10:96::/112",
                        o->cidrs.items[i]);
    }
    if (n_cidrs == 0)
        zones_cidr_parse("10.96.0.0/12", &cidrs[n_cidrs++]);
    for (size_t i = 0; i < o->manifests.n; i++)
        zones_manifest_load_path(objs, o->manifests.items[i]);
    zones_objects_assign_ips(objs, cidrs, n_cidrs);
    print_diags(objs->warnings, objs->n_warnings, "warning");
    print_diags(objs->diags, objs->n_diags, "error");
    return objs->n_diags > 0 ? -1 : 0;
}

/* What the loader read, kept for the summary once the objects are gone. */
struct load_counts {
    size_t files, services, slices, pods, namespaces, skipped;
};

static void print_summary(FILE *out, const struct load_counts *n, const struct zones_store *store,
                          const char *domain)
{
    fprintf(out,
            "manifests ok: %zu files; %zu services (%zu ClusterIP, %zu headless, %zu "
            "ExternalName), %zu endpoint slices, %zu endpoints, %zu pods, %zu namespaces; "
            "%zu objects of other kinds skipped; %zu records under %s\n",
            n->files, n->services, store->counts.cluster_ip, store->counts.headless,
            store->counts.external_name, n->slices, store->counts.endpoints, n->pods, n->namespaces,
            n->skipped, store->n_records, domain);
}

/* One chain per worker: CHAOS identity, the search path, the cluster and reverse zones, then
 * the cache and the upstreams. */
struct worker_chain {
    struct dns_chain chain; /* first: dns_server hands this pointer back */
    struct resolver_search search;
    struct zones_answer zones;        /* zones.store is the snapshot this worker answers from */
    struct resolver_forward *forward; /* NULL without forwarding */
    struct app *app;
    unsigned index;
    uv_prepare_t adopt; /* takes up a newly published snapshot between callbacks */
    uv_async_t wake;    /* makes an idle worker run adopt */
    atomic_uint seen;   /* the snapshot generation this worker answers from */
    int open_handles;
};

#define MAX_RETIRED 16

/* Live reload: the control loop builds a new snapshot and publishes it; each worker takes it
 * up in its adopt callback and says which generation it has seen. A snapshot is freed once
 * every worker has seen a later one, so no query ever reads a freed store. */
struct reload {
    bool enabled;
    uv_signal_t sighup;
    uv_fs_event_t watches[MAX_LIST];
    size_t n_watches;
    uv_timer_t debounce; /* editors and kubelet write in bursts: reload once, 200 ms after */
    uv_timer_t poll;     /* --reload-interval: for what sends no change events */
    uint32_t interval_s;
    uint64_t signature; /* of the manifests as last read: zones_manifest_signature() */
    /* The build runs on libuv's thread pool, so /health, /metrics and signals are answered
     * meanwhile; one at a time (app->store_cfg and signature are the build's while building
     * is set), and a trigger during one queues one more. */
    uv_work_t work;
    bool building, stopping;
    const char *trigger, *next_trigger; /* next_trigger: NULL, or one more reload to do */
    struct zones_store *built;
    int build_rc;
    double build_ms;
    uv_timer_t retire;
    struct {
        struct zones_store *store;
        unsigned generation; /* free when every worker has seen this one */
    } retired[MAX_RETIRED];
    size_t n_retired;
    unsigned long reloads, failures;
};

struct app {
    struct options opt;
    struct zones_store_config store_cfg;
    _Atomic(struct zones_store *) store; /* the newest snapshot */
    atomic_uint generation;              /* bumped after each publish */
    _Atomic(struct worker_chain *) workers[DNS_SERVER_MAX_WORKERS];
    struct reload reload;
    struct dns_chaos chaos;
    struct zones_answer_config answer_cfg;
    struct resolver_search_config search_cfg;
    struct dns_server_config server_cfg;
    struct dns_server *server;
    struct dns_http *http; /* NULL without --http */
    /* Forwarding and cache: one shared state and one cache for all workers. */
    bool forwarding;
    struct resolver_forward_config forward_cfg;
    struct resolver_forward_shared *forward_shared;
    struct resolver_cache_config cache_cfg;
    struct resolver_cache *cache;
};

/* The search path reaches the zone data only through these (DESIGN.md section 1). */
static enum resolver_search_existence search_exists(void *ctx, const struct dns_name *name)
{
    const struct worker_chain *wc = ctx;
    const struct zones_node *node = zones_store_find(wc->zones.store, name);
    if (!node)
        return RESOLVER_SEARCH_ABSENT;
    return node->n_entries ? RESOLVER_SEARCH_RECORDS : RESOLVER_SEARCH_EMPTY;
}

static bool search_client_ns(void *ctx, const struct sockaddr_storage *peer,
                             uint8_t label[DNS_MAX_LABEL + 1])
{
    const struct worker_chain *wc = ctx;
    struct zones_ip ip = {0};
    if (peer->ss_family == AF_INET) {
        ip.family = 4;
        memcpy(ip.addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer->ss_family == AF_INET6) {
        ip.family = 6;
        memcpy(ip.addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    } else {
        return false;
    }
    const uint8_t *ns = zones_store_pod_namespace(wc->zones.store, &ip);
    if (!ns)
        return false;
    memcpy(label, ns, (size_t)ns[0] + 1);
    return true;
}

static void search_answer(void *ctx, struct dns_request *req)
{
    const struct worker_chain *wc = ctx;
    zones_answer_query(wc->zones.store, &wc->zones.cfg, &req->q, req->pkt, req->ans, req->ans_cap,
                       &req->ans_len, NULL);
}

/* The generation is read before the store: a worker that claims generation G is sure to hold
 * G's store or a newer one, never an older one the control loop may free. */
static void adopt_newest(struct worker_chain *wc)
{
    unsigned generation = atomic_load(&wc->app->generation);
    wc->zones.store = atomic_load(&wc->app->store);
    atomic_store(&wc->seen, generation);
}

static void on_adopt(uv_prepare_t *handle)
{
    struct worker_chain *wc = handle->data;
    if (atomic_load(&wc->seen) != atomic_load(&wc->app->generation))
        adopt_newest(wc);
}

static void on_wake(uv_async_t *handle)
{
    (void)handle; /* the loop iteration it causes runs on_adopt */
}

static void on_worker_handle_closed(uv_handle_t *handle)
{
    struct worker_chain *wc = handle->data;
    if (--wc->open_handles == 0)
        free(wc);
}

static struct dns_chain *chain_new(void *ctx, uv_loop_t *loop, unsigned worker)
{
    struct app *app = ctx;
    if (worker >= DNS_SERVER_MAX_WORKERS)
        return NULL;
    struct worker_chain *wc = calloc(1, sizeof(*wc));
    if (!wc)
        return NULL;
    wc->app = app;
    wc->index = worker;
    dns_chain_init(&wc->chain);
    wc->chain.log_queries = app->opt.log_queries;
    wc->zones.cfg = app->answer_cfg;
    adopt_newest(wc);
    if (resolver_search_init(&wc->search, &app->search_cfg, search_exists, search_client_ns,
                             search_answer, wc) < 0) {
        free(wc);
        return NULL;
    }
    dns_chain_add(&wc->chain, &(struct dns_handler){"chaos", dns_chaos_serve, NULL, &app->chaos});
    dns_chain_add(&wc->chain, &(struct dns_handler){"search", resolver_search_serve,
                                                    resolver_search_on_answer, &wc->search});
    dns_chain_add(&wc->chain,
                  &(struct dns_handler){"kubernetes", zones_answer_serve, NULL, &wc->zones});
    /* Names the cluster does not answer: the cache, then the upstreams. */
    if (app->cache)
        dns_chain_add(&wc->chain, &(struct dns_handler){"cache", resolver_cache_serve,
                                                        resolver_cache_on_answer, app->cache});
    if (app->forward_shared) {
        if (resolver_forward_new(&wc->forward, loop, &app->forward_cfg, app->forward_shared) < 0) {
            free(wc);
            return NULL;
        }
        dns_chain_add(&wc->chain, &(struct dns_handler){RESOLVER_FORWARD_NAME,
                                                        resolver_forward_serve, NULL, wc->forward});
        wc->chain.recursion_available = true;
    }
    uv_prepare_init(loop, &wc->adopt);
    uv_async_init(loop, &wc->wake, on_wake);
    wc->adopt.data = wc->wake.data = wc;
    wc->open_handles = 2;
    uv_prepare_start(&wc->adopt, on_adopt);
    atomic_store(&app->workers[worker], wc);
    return &wc->chain;
}

static void chain_free(void *ctx, struct dns_chain *chain)
{
    struct app *app = ctx;
    struct worker_chain *wc = (struct worker_chain *)(void *)chain; /* its first member */
    atomic_store(&app->workers[wc->index], NULL);
    /* Answers the parked requests through the chain, so it goes before the chain's memory;
     * the forwarder's own memory goes with its handles' close callbacks, and so does ours. */
    resolver_forward_free(wc->forward);
    uv_close((uv_handle_t *)&wc->adopt, on_worker_handle_closed);
    uv_close((uv_handle_t *)&wc->wake, on_worker_handle_closed);
}

static uint64_t manifests_signature(const struct options *o)
{
    uint64_t signature = ZONES_MANIFEST_SIGNATURE_SEED;
    for (size_t i = 0; i < o->manifests.n; i++)
        signature = zones_manifest_signature(signature, o->manifests.items[i]);
    return signature;
}

/* Loads every manifest and builds a snapshot. The objects go as soon as their records are
 * collected, before the records are rendered, so a load never holds all three. Returns 0, the
 * number of manifest errors, or -1 (no memory). */
static int build_snapshot(struct app *app, struct zones_store **out, FILE *summary)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    /* Taken before reading, so a change while reading shows at the next poll. */
    app->reload.signature = manifests_signature(&app->opt);
    struct zones_store_builder *builder = NULL;
    int rc = load_objects(&app->opt, &objs);
    if (rc < 0)
        rc = objs.n_diags > 0 ? (int)objs.n_diags : -1;
    else if (zones_store_collect(&builder, &objs, &app->store_cfg) < 0)
        rc = fail("out of memory building the records");
    struct load_counts counts = {objs.n_files, objs.n_services,   objs.n_slices,
                                 objs.n_pods,  objs.n_namespaces, objs.n_skipped};
    zones_objects_free(&objs);
    if (builder != NULL && zones_store_finish(builder, out) < 0)
        rc = fail("out of memory building the records");
    else if (builder != NULL && summary)
        print_summary(summary, &counts, *out, app->store_cfg.cluster_domain);
    /* The objects and the builder were blocks now free in the middle of the heap: hand the
     * pages back, or the loader's peak stays resident for the life of the process. */
    malloc_trim(0);
    return rc;
}

static void wake_workers(struct app *app)
{
    for (unsigned i = 0; i < DNS_SERVER_MAX_WORKERS; i++) {
        struct worker_chain *wc = atomic_load(&app->workers[i]);
        if (wc)
            uv_async_send(&wc->wake);
    }
}

static bool every_worker_has_seen(struct app *app, unsigned generation)
{
    for (unsigned i = 0; i < DNS_SERVER_MAX_WORKERS; i++) {
        struct worker_chain *wc = atomic_load(&app->workers[i]);
        /* Unsigned difference: generations may wrap after four billion reloads. */
        if (wc && (int)(atomic_load(&wc->seen) - generation) < 0)
            return false;
    }
    return true;
}

static void on_retire(uv_timer_t *timer)
{
    struct app *app = timer->data;
    struct reload *r = &app->reload;
    size_t kept = 0;
    for (size_t i = 0; i < r->n_retired; i++) {
        if (every_worker_has_seen(app, r->retired[i].generation))
            zones_store_free(r->retired[i].store);
        else
            r->retired[kept++] = r->retired[i];
    }
    if (kept < r->n_retired)
        malloc_trim(0); /* a snapshot is tens of MB in the heap: give the pages back */
    r->n_retired = kept;
    if (kept == 0)
        uv_timer_stop(timer);
    else
        wake_workers(app);
}

/* Swaps in store; the one it replaces is freed when no worker can still be reading it. */
static void publish(struct app *app, struct zones_store *store)
{
    struct reload *r = &app->reload;
    if (r->n_retired == MAX_RETIRED) { /* workers that slow: wait for them, then go on */
        on_retire(&r->retire);
        if (r->n_retired == MAX_RETIRED) {
            log_warn("reload", "error=\"workers still use %d old snapshots\" action=skipped",
                     MAX_RETIRED);
            zones_store_free(store);
            return;
        }
    }
    struct zones_store *old = atomic_exchange(&app->store, store);
    unsigned generation = atomic_fetch_add(&app->generation, 1) + 1;
    r->retired[r->n_retired].store = old;
    r->retired[r->n_retired++].generation = generation;
    wake_workers(app);
    uv_timer_start(&r->retire, on_retire, 20, 20);
}

/* READY=1 to a service manager, with the records served as the status line. */
static void notify_ready(struct app *app)
{
    char state[160];
    snprintf(state, sizeof(state), "READY=1\nSTATUS=serving %zu records under %s",
             atomic_load(&app->store)->n_records, app->store_cfg.cluster_domain);
    dns_notify(state);
}

static void build_in_pool(uv_work_t *work)
{
    struct app *app = work->data;
    struct reload *r = &app->reload;
    uint64_t start = uv_hrtime();
    r->built = NULL;
    r->build_rc = build_snapshot(app, &r->built, NULL);
    r->build_ms = (double)(uv_hrtime() - start) / 1e6;
}

static void reload_now(struct app *app, const char *trigger);

static void on_built(uv_work_t *work, int status)
{
    struct app *app = work->data;
    struct reload *r = &app->reload;
    r->building = false;
    if (status < 0 || r->build_rc != 0) {
        r->failures++;
        log_error("reload",
                  "trigger=%s errors=%d action=\"kept serving the last good data\" "
                  "hint=\"fix the FILE:LINE:COL errors above; the next change reloads\"",
                  r->trigger, status < 0 ? status : r->build_rc);
    } else {
        publish(app, r->built);
        r->reloads++;
        log_info("reload", "trigger=%s generation=%u records=%zu duration_ms=%.1f", r->trigger,
                 atomic_load(&app->generation), r->built->n_records, r->build_ms);
    }
    r->built = NULL;
    notify_ready(app);
    const char *next = r->next_trigger;
    r->next_trigger = NULL;
    if (next)
        reload_now(app, next);
}

static void reload_now(struct app *app, const char *trigger)
{
    struct reload *r = &app->reload;
    if (r->stopping)
        return;
    if (r->building) {
        r->next_trigger = trigger; /* what changed during this build is read by the next */
        return;
    }
    /* Secondaries and caches compare serials: a reload never goes back, even when the newest
     * file was deleted or had its time set back. */
    app->store_cfg.min_serial = atomic_load(&app->store)->serial + 1;
    r->trigger = trigger;
    r->work.data = app;
    int rc = uv_queue_work(dns_server_loop(app->server), &r->work, build_in_pool, on_built);
    if (rc < 0) {
        log_error("reload", "trigger=%s error=\"%s\"", trigger, uv_strerror(rc));
        return;
    }
    r->building = true;
    char state[64];
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)(uv_hrtime() / 1000));
    dns_notify(state);
}

static void on_sighup(uv_signal_t *handle, int signum)
{
    (void)signum;
    struct app *app = handle->data;
    uv_timer_stop(&app->reload.debounce);
    reload_now(app, "sighup");
}

static void on_debounce(uv_timer_t *timer)
{
    reload_now(timer->data, "change");
}

static void on_poll(uv_timer_t *timer)
{
    struct app *app = timer->data;
    if (!app->reload.building && manifests_signature(&app->opt) != app->reload.signature)
        reload_now(app, "poll");
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    struct app *app = handle->data;
    if (status < 0) {
        log_warn("reload", "error=\"%s\" hint=\"send SIGHUP to reload\"", uv_strerror(status));
        return;
    }
    uv_timer_start(&app->reload.debounce, on_debounce, 200, 0);
}

/* Watches the directory of path (a file: the directory it is in, so an editor's or kubelet's
 * atomic replace is seen). */
static void watch_manifest_dir(struct app *app, const char *path)
{
    struct reload *r = &app->reload;
    char dir[4096];
    uv_fs_t req;
    bool is_dir =
        uv_fs_stat(NULL, &req, path, NULL) == 0 && (req.statbuf.st_mode & S_IFMT) == S_IFDIR;
    uv_fs_req_cleanup(&req);
    snprintf(dir, sizeof(dir), "%s", path);
    if (!is_dir) {
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[slash == dir ? 1 : 0] = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
    }
    uv_fs_event_t *w = &r->watches[r->n_watches];
    uv_fs_event_init(dns_server_loop(app->server), w);
    w->data = app;
    r->n_watches++;
    int rc = uv_fs_event_start(w, on_fs_event, dir, 0);
    if (rc < 0)
        log_warn("reload", "path=%s error=\"%s\" hint=\"changes need a SIGHUP\"", dir,
                 uv_strerror(rc));
}

/* Watches every manifest directory, polls them every --reload-interval and takes SIGHUP, on
 * the control loop. */
static int reload_start(struct app *app)
{
    struct reload *r = &app->reload;
    uv_loop_t *loop = dns_server_loop(app->server);
    uv_timer_init(loop, &r->debounce);
    uv_timer_init(loop, &r->poll);
    uv_timer_init(loop, &r->retire);
    uv_signal_init(loop, &r->sighup);
    r->debounce.data = r->poll.data = r->sighup.data = r->retire.data = app;
    r->enabled = true;
    for (size_t i = 0; i < app->opt.manifests.n; i++) {
        if (strcmp(app->opt.manifests.items[i], "-") == 0) {
            log_warn("reload", "manifests=- note=\"stdin cannot be read again: reloading is "
                               "off\"");
            return 0;
        }
    }
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    if (r->interval_s > 0)
        uv_timer_start(&r->poll, on_poll, (uint64_t)r->interval_s * 1000,
                       (uint64_t)r->interval_s * 1000);
    for (size_t i = 0; i < app->opt.manifests.n; i++)
        watch_manifest_dir(app, app->opt.manifests.items[i]);
    return 0;
}

/* Closes the reload handles before dns_server_free() runs the control loop's last callbacks;
 * the workers are gone, so every snapshot left can go. */
static void reload_stop(struct app *app)
{
    struct reload *r = &app->reload;
    if (!r->enabled)
        return;
    r->stopping = true;
    while (r->building) /* a build cannot be cut short: let it finish, then drop it */
        uv_run(dns_server_loop(app->server), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&r->sighup, NULL);
    uv_close((uv_handle_t *)&r->debounce, NULL);
    uv_close((uv_handle_t *)&r->poll, NULL);
    uv_close((uv_handle_t *)&r->retire, NULL);
    for (size_t i = 0; i < r->n_watches; i++)
        uv_close((uv_handle_t *)&r->watches[i], NULL);
    for (size_t i = 0; i < r->n_retired; i++)
        zones_store_free(r->retired[i].store);
    r->n_retired = 0;
    if (r->reloads || r->failures)
        log_info("reload", "reloads=%lu failures=%lu", r->reloads, r->failures);
}

/* Operators' endpoints (--http): /health, /ready and Prometheus /metrics, with CoreDNS's
 * metric shapes under the svcdns_ prefix. Counters are read from the workers without
 * stopping them, so a scrape may lag the workers by a few queries. */
static void metric(struct dns_http_response *res, const char *name, const char *type,
                   const char *help, unsigned long long value)
{
    dns_http_printf(res, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                    value);
}

static void dns_metrics(struct app *app, struct dns_http_response *res)
{
    struct dns_chain_stats st;
    dns_server_stats(app->server, &st);
    metric(res, "svcdns_dns_requests_total", "counter", "DNS queries answered.", st.queries);
    dns_http_printf(res, "# HELP svcdns_dns_responses_total DNS responses by rcode.\n"
                         "# TYPE svcdns_dns_responses_total counter\n");
    for (unsigned i = 0; i <= DNS_RCODE_BADVERS; i++) {
        if (st.by_rcode[i] || i == DNS_RCODE_NOERROR || i == DNS_RCODE_NXDOMAIN)
            dns_http_printf(res, "svcdns_dns_responses_total{rcode=\"%s\"} %llu\n",
                            dns_wire_rcode_name(i), (unsigned long long)st.by_rcode[i]);
    }
    metric(res, "svcdns_dns_dropped_total", "counter",
           "Datagrams dropped: runts, responses, no free request slot.", st.dropped);
    metric(res, "svcdns_dns_truncated_total", "counter",
           "UDP replies sent empty with TC because they were over the client's limit.",
           st.truncated);
    struct resolver_search_stats search = {0};
    for (unsigned i = 0; i < DNS_SERVER_MAX_WORKERS; i++) {
        struct worker_chain *wc = atomic_load(&app->workers[i]);
        if (wc) {
            search.expanded += wc->search.stats.expanded;
            search.autopath += wc->search.stats.autopath;
            search.autopath_nxdomain += wc->search.stats.autopath_nxdomain;
        }
    }
    metric(res, "svcdns_search_expanded_total", "counter",
           "Short names answered through the client's search list.", search.expanded);
    metric(res, "svcdns_autopath_success_total", "counter",
           "Search walks answered at their first step (CoreDNS autopath).", search.autopath);
    metric(res, "svcdns_autopath_nxdomain_total", "counter",
           "Search walks that found nothing and were answered NXDOMAIN.", search.autopath_nxdomain);
}

static void resolver_metrics(struct app *app, struct dns_http_response *res)
{
    if (app->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(app->forward_shared, &f);
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
            char addr[80];
            dns_server_format_addr(&f.upstreams[i].addr, addr, sizeof(addr));
            dns_http_printf(res, "svcdns_forward_upstream_up{to=\"%s\"} %d\n", addr,
                            !f.upstreams[i].down && !f.upstreams[i].looping);
        }
    }
    if (app->cache) {
        struct resolver_cache_stats c;
        resolver_cache_stats(app->cache, &c);
        metric(res, "svcdns_cache_hits_total", "counter", "Cache hits.", c.hits);
        metric(res, "svcdns_cache_misses_total", "counter", "Cache misses.", c.misses);
        metric(res, "svcdns_cache_entries", "gauge", "Entries in the cache.", c.entries);
        metric(res, "svcdns_cache_evictions_total", "counter",
               "Entries dropped to make room for others.", c.evictions);
        metric(res, "svcdns_cache_served_stale_total", "counter",
               "Expired answers served because every upstream failed (RFC 8767).", c.served_stale);
    }
}

static void on_metrics(void *ctx, struct dns_http_response *res)
{
    struct app *app = ctx;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    dns_http_printf(res,
                    "# HELP svcdns_build_info svcdns's version.\n"
                    "# TYPE svcdns_build_info gauge\n"
                    "svcdns_build_info{version=\"%s\"} 1\n",
                    SVCDNS_VERSION);
    dns_metrics(app, res);
    resolver_metrics(app, res);
    metric(res, "svcdns_zone_records", "gauge", "Records in the snapshot being served.",
           atomic_load(&app->store)->n_records);
    metric(res, "svcdns_reload_total", "counter", "Successful reloads.", app->reload.reloads);
    metric(res, "svcdns_reload_failed_total", "counter",
           "Reloads that kept the last good data because of manifest errors.",
           app->reload.failures);
}

static void on_health(void *ctx, struct dns_http_response *res)
{
    (void)ctx;
    dns_http_printf(res, "OK\n");
}

/* Ready while serving, unless every upstream leads back to us (a forwarding loop). */
static void on_ready(void *ctx, struct dns_http_response *res)
{
    struct app *app = ctx;
    if (app->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(app->forward_shared, &f);
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

static int http_start(struct app *app)
{
    if (!app->opt.http)
        return 0;
    struct sockaddr_storage ss;
    if (dns_server_parse_addr(app->opt.http, 9153, &ss) < 0)
        return fail("--http: \"%s\" is not ADDR:PORT; write 127.0.0.1:9153", app->opt.http);
    int rc = dns_http_new(&app->http, dns_server_loop(app->server), &ss);
    if (rc < 0)
        return fail("--http %s: %s", app->opt.http, uv_strerror(rc));
    dns_http_route(app->http, "/health", on_health, app);
    dns_http_route(app->http, "/ready", on_ready, app);
    dns_http_route(app->http, "/metrics", on_metrics, app);
    return 0;
}

static struct dns_server *running_server;

static void on_signal(int sig)
{
    (void)sig;
    if (running_server)
        dns_server_stop(running_server); /* async-signal-safe: one uv_async_send per worker */
}

static int setup_server(struct app *app)
{
    struct dns_server_config *cfg = &app->server_cfg;
    dns_server_config_default(cfg);
    cfg->workers = (unsigned)app->opt.workers;
    /* A query waiting on an upstream keeps its slot: leave room for --max-concurrent of them
     * on top of the queries answered at once, or the server would drop what the forwarder
     * would have REFUSED. Slots touch memory only when used. */
    if (app->forwarding)
        cfg->udp_slots += (unsigned)app->opt.max_concurrent;
    if (app->opt.listen.n == 0)
        app->opt.listen.items[app->opt.listen.n++] = "127.0.0.1:53";
    for (size_t i = 0; i < app->opt.listen.n; i++) {
        if (cfg->n_listen == DNS_SERVER_MAX_LISTEN)
            return fail("--listen: at most %d addresses", DNS_SERVER_MAX_LISTEN);
        if (dns_server_parse_addr(app->opt.listen.items[i], 53, &cfg->listen[cfg->n_listen++]) < 0)
            return fail("--listen: \"%s\" is not ADDR:PORT; write 127.0.0.1:53 or [::1]:53",
                        app->opt.listen.items[i]);
    }
    int rc = dns_server_new(&app->server, cfg, chain_new, chain_free, app);
    if (rc < 0)
        return fail("cannot listen: %s (see the log line above for the address)", uv_strerror(rc));
    return 0;
}

/* Forwarding: the upstreams from --upstream or else /etc/resolv.conf, less our own listen
 * addresses (forwarding to ourselves would loop); then the shared forwarder state and the
 * cache. Runs once the listen addresses are known and before the workers build chains. */
static int setup_forwarding(struct app *app)
{
    struct resolver_forward_config *fc = &app->forward_cfg;
    if (!app->forwarding)
        return 0;
    if (app->opt.upstreams.n == 0) {
        int rc = resolver_forward_upstreams_from_resolv_conf(
            "/etc/resolv.conf", fc->upstreams, RESOLVER_FORWARD_MAX_UPSTREAMS, &fc->n_upstreams);
        if (rc < 0)
            log_warn("main", "file=/etc/resolv.conf error=\"%s\" hint=\"pass --upstream\"",
                     strerror(-rc));
    }
    size_t kept = 0;
    char text[80];
    for (size_t i = 0; i < fc->n_upstreams; i++) {
        dns_server_format_addr(&fc->upstreams[i], text, sizeof(text));
        if (resolver_forward_is_self(&fc->upstreams[i], app->server_cfg.listen,
                                     app->server_cfg.n_listen)) {
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
        app->forwarding = false;
        return 0;
    }
    int rc = resolver_forward_shared_new(&app->forward_shared, fc);
    if (rc == 0 && app->cache_cfg.size > 0)
        rc = resolver_cache_new(&app->cache, &app->cache_cfg);
    if (rc < 0)
        return fail("cannot set up forwarding: %s", uv_strerror(rc));
    app->answer_cfg.recursion_available = true;
    app->answer_cfg.fallthrough_reverse = true;
    app->answer_cfg.chase_outside = true;
    app->search_cfg.upstream = true;
    dns_server_format_addr(&fc->upstreams[0], text, sizeof(text));
    log_info("main", "forwarding=on upstreams=%zu first=%s timeout_ms=%u cache_size=%zu", kept,
             text, fc->timeout_ms, app->cache_cfg.size);
    return 0;
}

static void log_resolver_stats(const struct app *app)
{
    if (app->forward_shared) {
        struct resolver_forward_stats f;
        resolver_forward_stats(app->forward_shared, &f);
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
    if (app->cache) {
        struct resolver_cache_stats c;
        resolver_cache_stats(app->cache, &c);
        log_info("cache",
                 "hits=%llu misses=%llu inserts=%llu evictions=%llu served_stale=%llu "
                 "entries=%zu capacity=%zu",
                 (unsigned long long)c.hits, (unsigned long long)c.misses,
                 (unsigned long long)c.inserts, (unsigned long long)c.evictions,
                 (unsigned long long)c.served_stale, c.entries, c.capacity);
    }
}

/* Setup in order, one cleanup ladder in reverse: whatever was set up is taken down. */
static int run(struct app *app)
{
    int rc = -1;
    if (setup_server(app) < 0)
        return 1;
    if (setup_forwarding(app) < 0)
        goto out;
    reload_start(app);
    if (http_start(app) < 0)
        goto out;
    running_server = app->server;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char addr[80];
    dns_server_format_addr(&app->server_cfg.listen[0], addr, sizeof(addr));
    log_info("main", "serving zone=%s records=%zu listen=%s listeners=%zu version=%s",
             app->store_cfg.cluster_domain, atomic_load(&app->store)->n_records, addr,
             app->server_cfg.n_listen, SVCDNS_VERSION);
    notify_ready(app);
    rc = dns_server_run(app->server);
    running_server = NULL;
    dns_notify("STOPPING=1");
    log_resolver_stats(app);
out:
    reload_stop(app);
    dns_http_close(app->http); /* freed by the control loop's last pass in dns_server_free */
    dns_server_free(app->server);
    resolver_cache_free(app->cache);
    resolver_forward_shared_free(app->forward_shared);
    log_info("main", "stopped");
    return rc < 0 ? 1 : 0;
}

/* The forwarding and cache flags into their configs; the upstream list is settled later, in
 * setup_forwarding(), when the listen addresses are known. */
static int configure_resolver(struct app *app)
{
    const struct options *o = &app->opt;
    struct resolver_forward_config *fc = &app->forward_cfg;
    struct resolver_cache_config *cc = &app->cache_cfg;
    resolver_forward_config_default(fc);
    resolver_cache_config_default(cc);
    app->forwarding = true;
    for (size_t i = 0; i < o->upstreams.n; i++) {
        const char *text = o->upstreams.items[i];
        if (strcmp(text, "none") == 0) {
            app->forwarding = false;
            continue;
        }
        if (fc->n_upstreams == RESOLVER_FORWARD_MAX_UPSTREAMS)
            return fail("--upstream: at most %d upstreams", RESOLVER_FORWARD_MAX_UPSTREAMS);
        if (resolver_forward_parse_upstream(text, &fc->upstreams[fc->n_upstreams++]) < 0)
            return fail("--upstream: \"%s\" is not ADDR[:PORT]; write 10.0.0.10, "
                        "10.0.0.10:53 or [fd00::10]:53, or none",
                        text);
    }
    if (!app->forwarding && fc->n_upstreams > 0)
        return fail("--upstream: none turns forwarding off; it cannot go with addresses");
    if (o->upstream_timeout_ms == 0)
        return fail("--upstream-timeout: give at least 1 ms");
    if (o->max_concurrent == 0)
        return fail("--max-concurrent: give at least 1");
    if (o->cache_min_ttl > o->cache_max_ttl)
        return fail("--cache-min-ttl (%lu) is above --cache-max-ttl (%lu)", o->cache_min_ttl,
                    o->cache_max_ttl);
    fc->timeout_ms = (unsigned)o->upstream_timeout_ms;
    if (fc->deadline_ms < fc->timeout_ms)
        fc->deadline_ms = fc->timeout_ms;
    fc->max_concurrent = (unsigned)o->max_concurrent;
    cc->size = o->cache_size;
    cc->max_ttl = (uint32_t)o->cache_max_ttl;
    cc->min_ttl = (uint32_t)o->cache_min_ttl;
    if (o->serve_stale && resolver_cache_parse_duration(o->serve_stale, &cc->serve_stale_s) < 0)
        return fail("--serve-stale: \"%s\" is not a duration; write 1h, 30m or 3600s (at most "
                    "30d)",
                    o->serve_stale);
    return 0;
}

static int configure(struct app *app, int argc, char **argv)
{
    struct options *o = &app->opt;
    o->ttl = 5;
    o->upstream_timeout_ms = 1000;
    o->max_concurrent = 1000;
    o->cache_size = 10000;
    o->cache_max_ttl = 3600;
    o->cache_min_ttl = 0;
    int rc = parse_args(o, argc, argv);
    if (rc != 0)
        return rc > 0 ? 1 : -1;
    if (o->config && load_config(o, o->config) < 0)
        return -2;
    zones_store_config_default(&app->store_cfg);
    if (o->cluster_domain) {
        struct dns_name n;
        if (dns_name_from_text(&n, o->cluster_domain) < 0 || n.len <= 1) {
            fail("--cluster-domain: \"%s\" is not a domain name", o->cluster_domain);
            return -2;
        }
        app->store_cfg.cluster_domain = o->cluster_domain;
    }
    app->store_cfg.ttl = (uint32_t)o->ttl;
    app->reload.interval_s = 30;
    if (o->reload_interval &&
        resolver_cache_parse_duration(o->reload_interval, &app->reload.interval_s) < 0) {
        fail("--reload-interval: \"%s\" is not a duration; write 30s, 5m or 0 (off), at most "
             "30d",
             o->reload_interval);
        return -2;
    }
    if (o->pods && zones_store_parse_pods_mode(o->pods, &app->store_cfg.pods) < 0) {
        fail("--pods: \"%s\" is not one of disabled, insecure, verified", o->pods);
        return -2;
    }
    resolver_search_config_default(&app->search_cfg);
    app->search_cfg.cluster_domain = app->store_cfg.cluster_domain;
    app->search_cfg.ttl = app->store_cfg.ttl;
    app->search_cfg.expand = !o->no_search_expand;
    app->search_cfg.autopath = !o->no_autopath;
    if (o->namespace_name) {
        struct dns_name n;
        if (dns_name_from_text(&n, o->namespace_name) < 0 || dns_name_labels(&n) != 1) {
            fail("--namespace: \"%s\" is not a namespace name", o->namespace_name);
            return -2;
        }
        app->search_cfg.namespace_name = o->namespace_name;
    }
    if (configure_resolver(app) < 0)
        return -2;
    enum log_level level;
    if (o->log_level && log_parse_level(o->log_level, &level) < 0) {
        fail("--log-level: \"%s\" is not one of error, warn, info, debug", o->log_level);
        return -2;
    }
    if (o->log_level)
        log_set_level(level);
    return 0;
}

/* The address part of ADDR[:PORT] for a nameserver line; warns when pods could not reach it,
 * since resolv.conf cannot name a port. */
static int nameserver_from_listen(const char *listen, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    if (dns_server_parse_addr(listen, 53, &ss) < 0)
        return fail("--listen: \"%s\" is not ADDR:PORT", listen);
    uint16_t port;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, out, cap);
        port = ntohs(sin6->sin6_port);
    } else {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, out, cap);
        port = ntohs(sin->sin_port);
    }
    if (strcmp(out, "0.0.0.0") == 0 || strcmp(out, "::") == 0)
        return fail("--resolv-conf: svcdns listens on every address (%s); say which one pods "
                    "reach it on with --nameserver ADDR",
                    listen);
    if (port != 53)
        fprintf(stderr,
                "svcdns: warning: resolv.conf cannot name a port and pods ask port 53, "
                "but --listen %s uses port %u\n",
                listen, port);
    return 0;
}

/* --resolv-conf: what a pod's /etc/resolv.conf should say to use this server. */
static int print_resolv_conf(const struct app *app)
{
    const struct options *o = &app->opt;
    char ns[64];
    if (o->nameserver) {
        unsigned char addr[16];
        if (uv_inet_pton(AF_INET, o->nameserver, addr) != 0 &&
            uv_inet_pton(AF_INET6, o->nameserver, addr) != 0) {
            fail("--nameserver: \"%s\" is not an IP address (resolv.conf takes no port)",
                 o->nameserver);
            return 1;
        }
        snprintf(ns, sizeof(ns), "%s", o->nameserver);
    } else if (nameserver_from_listen(o->listen.n ? o->listen.items[0] : "127.0.0.1:53", ns,
                                      sizeof(ns)) < 0) {
        return 1;
    }
    struct dns_name n;
    if (dns_name_from_text(&n, o->resolv_conf) < 0 || dns_name_labels(&n) != 1) {
        fail("--resolv-conf: \"%s\" is not a namespace name", o->resolv_conf);
        return 1;
    }
    char text[1024];
    if (resolver_search_resolv_conf(app->store_cfg.cluster_domain, o->resolv_conf, ns, text,
                                    sizeof(text)) < 0) {
        fail("--resolv-conf: names too long");
        return 1;
    }
    fputs(text, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static struct app app;
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
    int rc = configure(&app, argc, argv);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return rc == -1 ? 2 : 1;
    if (app.opt.resolv_conf)
        return print_resolv_conf(&app);
    int status = 1;
    struct zones_store *store = NULL;
    int errors = build_snapshot(&app, &store, app.opt.check ? stdout : NULL);
    if (errors != 0) {
        if (errors > 0)
            fail("%d error%s in the manifests; nothing was served", errors, errors == 1 ? "" : "s");
        goto out;
    }
    atomic_store(&app.store, store);
    dns_chaos_init(&app.chaos, SVCDNS_VERSION);
    if (app.opt.dump)
        status = zones_store_dump(store, stdout) < 0 ? 1 : 0;
    else if (app.opt.check)
        status = 0;
    else
        status = run(&app);
out:
    zones_store_free(atomic_load(&app.store));
    if (config_loaded)
        yaml_document_delete(&config_doc);
    return status;
}
