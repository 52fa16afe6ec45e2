/* resolver/upstream.c - the upstream list, its health and the loop check. */
/* arc4random (glibc 2.36) is outside POSIX; glibc shows it with this feature macro. */
#define _DEFAULT_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp,readability-identifier-naming)

#include "resolver/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns/log.h"

#define LOOP_LABEL "svcdns-loop-check"

static void random_label(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++)
        out[i] = hex[arc4random_uniform(16)];
    out[n] = '\0';
}

int resolver_upstream_init(struct resolver_upstreams *ups, const struct sockaddr_storage *addrs,
                           size_t n, unsigned max_fails)
{
    memset(ups, 0, sizeof(*ups));
    if (n == 0 || n > RESOLVER_UPSTREAM_MAX)
        return UV_EINVAL;
    ups->n = n;
    ups->max_fails = max_fails ? max_fails : 1;
    for (size_t i = 0; i < n; i++) {
        struct resolver_upstream *u = &ups->up[i];
        char a[9];
        char b[9];
        char text[64];
        u->addr = addrs[i];
        dns_addr_format(&u->addr, u->text, sizeof(u->text));
        random_label(a, 8);
        random_label(b, 8);
        snprintf(text, sizeof(text), "%s.%s." LOOP_LABEL ".", a, b);
        dns_name_from_text(&u->probe, text);
    }
    return 0;
}

void resolver_upstream_failed(struct resolver_upstreams *ups, unsigned i)
{
    struct resolver_upstream *u = &ups->up[i];
    atomic_fetch_add_explicit(&u->failures, 1, memory_order_relaxed);
    unsigned fails = atomic_fetch_add(&u->fails, 1) + 1;
    if (fails >= ups->max_fails && !atomic_exchange(&u->down, true)) {
        atomic_fetch_add_explicit(&ups->marked_down, 1, memory_order_relaxed);
        log_warn("forward", "upstream=%s state=down consecutive_failures=%u", u->text, fails);
    }
}

void resolver_upstream_ok(struct resolver_upstreams *ups, unsigned i)
{
    struct resolver_upstream *u = &ups->up[i];
    atomic_store(&u->fails, 0);
    if (atomic_exchange(&u->down, false))
        log_info("forward", "upstream=%s state=up", u->text);
}

bool resolver_upstream_usable(const struct resolver_upstreams *ups, unsigned i)
{
    /* C11's atomic_load() wants a pointer to non-const; nothing here writes. */
    struct resolver_upstream *u = (struct resolver_upstream *)&ups->up[i];
    return !atomic_load_explicit(&u->looping, memory_order_relaxed);
}

bool resolver_upstream_any_usable(const struct resolver_upstreams *ups)
{
    for (unsigned i = 0; i < ups->n; i++) {
        if (resolver_upstream_usable(ups, i))
            return true;
    }
    return false;
}

bool resolver_upstream_is_loop_probe(struct resolver_upstreams *ups, const struct dns_query *q)
{
    for (size_t i = 0; i < ups->n; i++) {
        struct resolver_upstream *u = &ups->up[i];
        if (!dns_name_equal(&q->qname, &u->probe))
            continue;
        atomic_fetch_add_explicit(&ups->loop_probes_seen, 1, memory_order_relaxed);
        unsigned seen = atomic_fetch_add(&u->loop_seen, 1) + 1;
        if (seen >= RESOLVER_UPSTREAM_LOOP_ROUNDS && !atomic_exchange(&u->looping, true))
            log_error("forward",
                      "upstream=%s error=\"forwarding loop: our loop-check query came back %u "
                      "times; this upstream leads back to svcdns and will not be used\" "
                      "remedy=\"point kubelet's resolvConf at /run/systemd/resolve/resolv.conf "
                      "(not a stub resolver that forwards to us), or pass --upstream with "
                      "the real resolvers\"",
                      u->text, seen);
        return true;
    }
    return false;
}

int resolver_upstream_from_resolv_conf(const char *path, struct sockaddr_storage *out, size_t cap,
                                       size_t *n)
{
    char line[512];
    *n = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "#;\r\n")] = '\0';
        char *save = NULL;
        char *key = strtok_r(line, " \t", &save);
        char *value = key ? strtok_r(NULL, " \t", &save) : NULL;
        if (!key || !value || strcmp(key, "nameserver") != 0 || *n == cap)
            continue;
        /* resolv.conf has no port syntax: a bare address, which for IPv6 may carry a %zone.
         * The brackets keep "::1:53" from reading as an address and a port. */
        char text[DNS_ADDR_TEXT_MAX];
        if (strchr(value, ':') != NULL)
            snprintf(text, sizeof(text), "[%s]", value);
        else
            snprintf(text, sizeof(text), "%s", value);
        if (dns_addr_parse(text, 53, &out[*n]) == 0)
            (*n)++;
    }
    fclose(f);
    return 0;
}

bool resolver_upstream_is_self(const struct sockaddr_storage *up,
                               const struct sockaddr_storage *listen, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct sockaddr_storage *l = &listen[i];
        if (l->ss_family != up->ss_family || dns_addr_port(l) != dns_addr_port(up))
            continue;
        if (dns_addr_same_host(l, up) || (dns_addr_is_any(l) && dns_addr_is_local(up)))
            return true;
    }
    return false;
}
