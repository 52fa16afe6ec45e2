/* dns/daemon/options.c - getopt_long and the --config file (YAML, the long option names as
 * keys), into struct daemon_options; the --help text; the default number of workers. */
#include "dns/daemon/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <yaml.h>

#include "dns/rrl.h"
#include "dns/server.h"

#ifndef SVCDNS_VERSION
#define SVCDNS_VERSION "0.0.0"
#endif

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
    OPT_CACHE_MEMORY,
    OPT_CACHE_MAX_TTL,
    OPT_CACHE_MIN_TTL,
    OPT_SERVE_STALE,
    OPT_RELOAD_INTERVAL,
    OPT_STRICT,
    OPT_MANIFEST_CACHE,
    OPT_LOG_FORMAT,
    OPT_RRL,
    OPT_RRL_SLIP,
    OPT_LAMEDUCK,
    OPT_USER,
    OPT_KUBECONFIG,
    OPT_KUBERNETES,
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
    {"strict", no_argument, NULL, OPT_STRICT},
    {"manifest-cache", required_argument, NULL, OPT_MANIFEST_CACHE},
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
    {"cache-memory", required_argument, NULL, OPT_CACHE_MEMORY},
    {"cache-max-ttl", required_argument, NULL, OPT_CACHE_MAX_TTL},
    {"cache-min-ttl", required_argument, NULL, OPT_CACHE_MIN_TTL},
    {"serve-stale", required_argument, NULL, OPT_SERVE_STALE},
    {"reload-interval", required_argument, NULL, OPT_RELOAD_INTERVAL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"rrl", required_argument, NULL, OPT_RRL},
    {"rrl-slip", required_argument, NULL, OPT_RRL_SLIP},
    {"lameduck", required_argument, NULL, OPT_LAMEDUCK},
    {"user", required_argument, NULL, OPT_USER},
    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
    {"kubernetes", no_argument, NULL, OPT_KUBERNETES},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage_serving(FILE *out)
{
    fputs("Usage: svcdns [options]\n"
          "Cluster DNS for Kubernetes Services, served from manifest files or from a\n"
          "cluster's API server.\n"
          "\n"
          "Data:\n"
          "  -m, --manifests PATH       file or directory (recursive: *.yaml *.yml *.json);\n"
          "                             repeatable; '-' reads stdin\n"
          "      --cluster-domain NAME  cluster domain (default \"local\": <svc>.<ns>.svc.local)\n"
          "      --service-cidr CIDR    where Services without spec.clusterIP get an address\n"
          "                             (default 10.96.0.0/12); repeatable, any family;\n"
          "                             ServiceCIDR objects add ranges. Stated addresses are\n"
          "                             served as they are, inside a range or not\n"
          "      --ttl SECONDS          TTL of cluster records (default 5)\n"
          "      --pods MODE            pod records: disabled | insecure | verified\n"
          "                             (default insecure)\n"
          "      --reload-interval DURATION\n"
          "                             also look for changed manifests this often, for file\n"
          "                             systems without change events (default 30s; 0: off)\n"
          "      --manifest-cache DIR   keep each manifest file's objects here, so that a\n"
          "                             restart reads unchanged files without parsing them\n"
          "                             (default off)\n"
          "      --strict               refuse to start, and to apply a reload, when any\n"
          "                             manifest has an error (default: leave the object\n"
          "                             out, report it and serve the rest)\n"
          "      --kubernetes           follow the API server of the cluster svcdns runs in\n"
          "                             (service account token and CA, KUBERNETES_SERVICE_HOST)\n"
          "      --kubeconfig FILE      follow the API server of FILE's current context\n"
          "                             (with --manifests too: the API wins on a name in both)\n"
          "\n",
          out);
    fputs("Serving:\n"
          "  -l, --listen ADDR:PORT     UDP and TCP address; repeatable (default 127.0.0.1:53;\n"
          "                             IPv6 as [::1]:53)\n"
          "      --workers N            event loops (default: the number of CPUs, or the\n"
          "                             cgroup CPU limit when lower)\n"
          "      --rrl RATE             response rate limiting: at most RATE UDP responses a\n"
          "                             second to each client /24 (IPv4) or /56 (IPv6), the\n"
          "                             rest dropped or slipped; TCP is never limited\n"
          "                             (default 0: off)\n"
          "      --rrl-slip N           every Nth limited response is sent empty with TC, so\n"
          "                             real clients retry over TCP (default 2; 0: drop all)\n"
          "\n",
          out);
}

static void usage_resolving(FILE *out)
{
    fputs("Search path:\n"
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
          "      --cache-size N         cached answers at most (default 10000; 0: no cache)\n"
          "      --cache-memory SIZE    bytes they may hold together (default 16M; 64K to 64G,\n"
          "                             e.g. 512K, 64M, 1G; 0: no cache); whichever bound is\n"
          "                             reached first evicts. An answer over 16 KiB is kept\n"
          "                             only as the truncated reply a UDP client gets\n"
          "      --cache-max-ttl S      cap on cached TTLs (default 3600)\n"
          "      --cache-min-ttl S      floor on cached TTLs (default 0)\n"
          "      --serve-stale DURATION answer from expired entries this old (1h, 30m, 3600s)\n"
          "                             when every upstream fails (default off; RFC 8767)\n"
          "\n",
          out);
}

static void usage_operation(FILE *out)
{
    fputs("Operation:\n"
          "      --http ADDR:PORT       serve /health, /ready and Prometheus /metrics over HTTP\n"
          "                             (default off; e.g. 127.0.0.1:9153)\n"
          "      --lameduck DURATION    on SIGTERM, say 503 on /ready at once but keep\n"
          "                             answering queries this long, then exit 0 (default 5s,\n"
          "                             as kubeadm's CoreDNS; 0: exit at once). A second\n"
          "                             SIGTERM, or SIGINT, exits at once\n"
          "      --user NAME            when started as root: after binding the sockets,\n"
          "                             become NAME (its uid, gid and groups), keeping no\n"
          "                             capabilities; as another user, only NAME itself\n"
          "      --config FILE          YAML file with the long option names as keys;\n"
          "                             flags win over it\n"
          "      --check                load and validate config and manifests (and list the\n"
          "                             API server once), print every error and a summary,\n"
          "                             exit 0 (no error) or 1\n"
          "      --dump                 print the loaded records as a zone file and exit\n"
          "      --log-level LEVEL      error | warn | info | debug (default info)\n"
          "      --log-format FORMAT    text (time level=... module=... key=value) | json (one\n"
          "                             object per line); names and client text are escaped\n"
          "                             either way (default text)\n"
          "      --log-queries          log every query (CoreDNS log plugin style)\n"
          "  -h, --help                 this text\n"
          "  -V, --version              version and library versions\n"
          "\n"
          "Manifest directories are watched: a change rereads the files that changed, and so\n"
          "does SIGHUP. An object with an error is reported as FILE:LINE:COL and left out; a\n"
          "file that does not parse keeps its last good objects; the rest is served.\n"
          "The API server is listed and watched; until every kind is listed, cluster names\n"
          "get SERVFAIL.\n"
          "\n"
          "Example:\n"
          "  svcdns --manifests examples/ --listen 127.0.0.1:5353\n"
          "  dig @127.0.0.1 -p 5353 echo.default.svc.local\n",
          out);
}

static void usage(FILE *out)
{
    usage_serving(out);
    usage_resolving(out);
    usage_operation(out);
}

int daemon_fail(const char *fmt, ...)
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
        return daemon_fail("--%s: \"%s\" is not a number from 0 to %lu", name, text, max);
    *out = v;
    return 0;
}

static int list_add(struct daemon_list *l, const char *name, const char *value)
{
    if (l->n == DAEMON_MAX_LIST)
        return daemon_fail("--%s: at most %d values", name, DAEMON_MAX_LIST);
    l->items[l->n++] = value;
    return 0;
}

/* A switch: no value on the command line; true/false (or yes/no) in the config file. */
static int apply_switch(struct daemon_options *o, int opt, const char *name, const char *value)
{
    bool on = !value || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0;
    if (value && !on && strcmp(value, "false") != 0 && strcmp(value, "no") != 0)
        return daemon_fail("%s: expected true or false, got \"%s\"", name, value);
    switch (opt) {
    case OPT_CHECK:
        o->check = on;
        break;
    case OPT_DUMP:
        o->dump = on;
        break;
    case OPT_STRICT:
        o->strict = on;
        break;
    case OPT_LOG_QUERIES:
        o->log_queries = on;
        break;
    case OPT_NO_SEARCH_EXPAND:
        o->no_search_expand = on;
        break;
    case OPT_KUBERNETES:
        o->kubernetes = on;
        break;
    default:
        o->no_autopath = on;
        break;
    }
    return 0;
}

/* The field of an option whose value is kept as it is written, or NULL. */
static const char **string_option(struct daemon_options *o, int opt)
{
    switch (opt) {
    case OPT_CLUSTER_DOMAIN:
        return &o->cluster_domain;
    case OPT_PODS:
        return &o->pods;
    case OPT_CONFIG:
        return &o->config;
    case OPT_LOG_LEVEL:
        return &o->log_level;
    case OPT_LOG_FORMAT:
        return &o->log_format;
    case OPT_LAMEDUCK:
        return &o->lameduck;
    case OPT_USER:
        return &o->user;
    case OPT_NAMESPACE:
        return &o->namespace_name;
    case OPT_RESOLV_CONF:
        return &o->resolv_conf;
    case OPT_NAMESERVER:
        return &o->nameserver;
    case OPT_HTTP:
        return &o->http;
    case OPT_CACHE_MEMORY:
        return &o->cache_memory;
    case OPT_SERVE_STALE:
        return &o->serve_stale;
    case OPT_RELOAD_INTERVAL:
        return &o->reload_interval;
    case OPT_MANIFEST_CACHE:
        return &o->manifest_cache;
    case OPT_KUBECONFIG:
        return &o->kubeconfig;
    default:
        return NULL;
    }
}

/* Applies one option, from the command line or from the config file. */
static int apply(struct daemon_options *o, int opt, const char *name, const char *value)
{
    const char **field = string_option(o, opt);
    if (field != NULL) {
        *field = value;
        return 0;
    }
    switch (opt) {
    case 'm':
        return list_add(&o->manifests, name, value);
    case 'l':
        return list_add(&o->listen, name, value);
    case OPT_SERVICE_CIDR:
        return list_add(&o->cidrs, name, value);
    case OPT_TTL:
        return parse_ulong(name, value, 3600, &o->ttl);
    case OPT_WORKERS:
        return parse_ulong(name, value, 256, &o->workers);
    case OPT_RRL:
        return parse_ulong(name, value, DNS_RRL_RATE_MAX, &o->rrl);
    case OPT_RRL_SLIP:
        return parse_ulong(name, value, 100, &o->rrl_slip);
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
    case OPT_CHECK:
    case OPT_DUMP:
    case OPT_STRICT:
    case OPT_LOG_QUERIES:
    case OPT_NO_SEARCH_EXPAND:
    case OPT_NO_AUTOPATH:
    case OPT_KUBERNETES:
        return apply_switch(o, opt, name, value);
    default:
        return daemon_fail("unknown option %s", name);
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
    return daemon_fail("%s:%zu:%zu: error: %s", path, node->start_mark.line + 1,
                       node->start_mark.column + 1, what);
}

static int apply_config_value(struct daemon_options *o, const char *path, const char *key,
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

static int load_config(struct daemon_options *o, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return daemon_fail("--config %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, &config_doc);
    if (!ok) {
        daemon_fail("%s:%zu:%zu: error: invalid YAML: %s", path, parser.problem_mark.line + 1,
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
static int parse_args(struct daemon_options *o, int argc, char **argv)
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
                daemon_fail("option -%c needs a value; see svcdns --help", optopt);
            else
                daemon_fail("unknown or incomplete option %s; see svcdns --help", arg);
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
        daemon_fail("unexpected argument \"%s\"; manifests are given with --manifests",
                    argv[optind]);
        return -1;
    }
    return 0;
}

int daemon_options_parse(struct daemon_options *o, int argc, char **argv)
{
    int rc = parse_args(o, argc, argv);
    if (rc != 0)
        return rc;
    if (o->config && load_config(o, o->config) < 0)
        return -2;
    return 0;
}

void daemon_options_free(struct daemon_options *o)
{
    (void)o;
    if (config_loaded)
        yaml_document_delete(&config_doc);
    config_loaded = false;
}

/* How many of the first two numbers of a one-line file were read into a and b; "max" (cgroup
 * v2: no quota) reads as -1. */
static int read_numbers(const char *root, const char *file, long long *a, long long *b)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, file);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    char line[128];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    long long *out[2] = {a, b};
    int n = 0;
    const char *p = line;
    while (n < 2) {
        long long v = -1;
        if (strncmp(p, "max", 3) == 0) {
            p += 3;
        } else {
            char *end = NULL;
            errno = 0;
            v = strtoll(p, &end, 10);
            if (end == p || errno != 0)
                break;
            p = end;
        }
        if (*p != ' ' && *p != '\n' && *p != '\0')
            break;
        *out[n++] = v;
    }
    return n;
}

unsigned daemon_options_cgroup_cpus(const char *root)
{
    long long quota = -1;
    long long period = 0;
    long long unused;
    if (read_numbers(root, "cpu.max", &quota, &period) < 2 &&
        (read_numbers(root, "cpu/cpu.cfs_quota_us", &quota, &unused) < 1 ||
         read_numbers(root, "cpu/cpu.cfs_period_us", &period, &unused) < 1))
        return 0;
    if (quota <= 0 || period <= 0)
        return 0;
    long long cpus = (quota + period - 1) / period;
    return cpus > DNS_SERVER_MAX_WORKERS ? DNS_SERVER_MAX_WORKERS : (unsigned)cpus;
}

/* The CPUs we may run on (affinity), capped by the CPU quota: a pod limited to 2 CPUs on a
 * 64-CPU node gets 2 loops, not 64 threads that the quota throttles. */
unsigned daemon_options_default_workers(void)
{
    unsigned cpus = uv_available_parallelism();
    unsigned quota = daemon_options_cgroup_cpus("/sys/fs/cgroup");
    if (quota != 0 && quota < cpus)
        cpus = quota;
    return cpus < DNS_SERVER_MAX_WORKERS ? cpus : DNS_SERVER_MAX_WORKERS;
}
