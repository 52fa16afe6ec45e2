/* tests/fuzz/fuzz_config.c - config file bytes (YAML, the long option names as keys) through
 * daemon_options_parse(), behind a command line that sets some options itself.
 *
 * Whatever the file says, the parse must end in "go on" (0) or "bad config file" (-2), never
 * crash or leak; and when it goes on, every option given on the command line keeps the
 * command line's value (flags win, lists included), every number is within its option's
 * range, and every string points to a whole C string (ASan checks the read).
 *
 * Input: one byte whose low 6 bits pick the flags on the command line, then the config file.
 * The parser prints its errors on stderr; -close_fd_mask=2 keeps them out of the fuzzer's log
 * (libFuzzer and ASan still report on a copy of stderr):
 *
 *   CC=clang cmake -B build-fuzz -G Ninja -DFUZZ=ON && cmake --build build-fuzz \
 *       --target fuzz_config
 *   build-fuzz/tests/fuzz_config -close_fd_mask=2 -max_total_time=60 tests/fuzz/corpus/config */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns/daemon/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The flags the first byte may put on the command line, and what each must leave behind. */
enum { FLAG_TTL, FLAG_LISTEN, FLAG_LOG_QUERIES, FLAG_CACHE_SIZE, FLAG_MANIFESTS, FLAG_UPSTREAM };
static const char *const flags[][2] = {
    [FLAG_TTL] = {"--ttl", "7"},
    [FLAG_LISTEN] = {"--listen", "127.0.0.1:5353"},
    [FLAG_LOG_QUERIES] = {"--log-queries", NULL},
    [FLAG_CACHE_SIZE] = {"--cache-size", "42"},
    [FLAG_MANIFESTS] = {"--manifests", "cluster.yaml"},
    [FLAG_UPSTREAM] = {"--upstream", "none"},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

/* The config file: an unnamed temporary file, opened by the parser as /dev/fd/N. */
static FILE *config;
static char config_path[32];

/* Reading every string through a volatile sink, so that the reads are not optimized out. */
static volatile size_t sink;

static void check_list(const struct daemon_list *l)
{
    if (l->n > DAEMON_MAX_LIST)
        abort();
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i] == NULL)
            abort();
        sink += strlen(l->items[i]);
    }
}

static void check_string(const char *s)
{
    if (s != NULL)
        sink += strlen(s);
}

static bool is_only(const struct daemon_list *l, const char *value)
{
    return l->n == 1 && strcmp(l->items[0], value) == 0;
}

/* What must hold after a parse that goes on. */
static void check_options(const struct daemon_options *o, unsigned picked)
{
    check_list(&o->manifests);
    check_list(&o->listen);
    check_list(&o->cidrs);
    check_list(&o->upstreams);
    const char *strings[] = {o->cluster_domain, o->pods,           o->config,     o->log_level,
                             o->namespace_name, o->resolv_conf,    o->nameserver, o->http,
                             o->serve_stale,    o->reload_interval};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        check_string(strings[i]);
    if (o->ttl > 3600 || o->workers > 256 || o->upstream_timeout_ms > 60000 ||
        o->max_concurrent > 1000000 || o->cache_size > 10000000 || o->cache_max_ttl > 604800 ||
        o->cache_min_ttl > 604800)
        abort();
    if (strcmp(o->config, config_path) != 0)
        abort();
    if (((picked >> FLAG_TTL) & 1) && o->ttl != 7)
        abort();
    if (((picked >> FLAG_LISTEN) & 1) && !is_only(&o->listen, flags[FLAG_LISTEN][1]))
        abort();
    if (((picked >> FLAG_LOG_QUERIES) & 1) && !o->log_queries)
        abort();
    if (((picked >> FLAG_CACHE_SIZE) & 1) && o->cache_size != 42)
        abort();
    if (((picked >> FLAG_MANIFESTS) & 1) && !is_only(&o->manifests, flags[FLAG_MANIFESTS][1]))
        abort();
    if (((picked >> FLAG_UPSTREAM) & 1) && !is_only(&o->upstreams, flags[FLAG_UPSTREAM][1]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (config == NULL) {
        config = tmpfile();
        if (config == NULL)
            abort();
        snprintf(config_path, sizeof(config_path), "/dev/fd/%d", fileno(config));
    }
    if (size < 1)
        return 0;
    unsigned picked = data[0];
    if (ftruncate(fileno(config), 0) != 0 ||
        pwrite(fileno(config), data + 1, size - 1, 0) != (ssize_t)(size - 1))
        abort();

    char *argv[2 * N_FLAGS + 4];
    int argc = 0;
    argv[argc++] = (char *)"svcdns";
    for (size_t i = 0; i < N_FLAGS; i++) {
        if ((picked >> i) & 1) {
            argv[argc++] = (char *)flags[i][0];
            if (flags[i][1] != NULL)
                argv[argc++] = (char *)flags[i][1];
        }
    }
    argv[argc++] = (char *)"--config";
    argv[argc++] = config_path;
    argv[argc] = NULL;

    struct daemon_options o;
    memset(&o, 0, sizeof(o));
    optind = 0; /* glibc: getopt starts afresh */
    int rc = daemon_options_parse(&o, argc, argv);
    if (rc != 0 && rc != -2)
        abort();
    if (rc == 0)
        check_options(&o, picked);
    daemon_options_free(&o);
    return 0;
}
