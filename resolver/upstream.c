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
#define ID_DIGITS 16 /* the probe's first label: 64 random bits in hex */

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
        u->addr = addrs[i];
        dns_addr_format(&u->addr, u->text, sizeof(u->text));
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

void resolver_upstream_loop_check_begin(struct resolver_upstreams *ups, unsigned i)
{
    struct resolver_upstream *u = &ups->up[i];
    uint64_t id = ((uint64_t)arc4random() << 32) | arc4random();
    atomic_store(&u->window_until_ms, 0);
    atomic_store(&u->loop_seen, 0);
    atomic_store(&u->probe_id, id);
}

void resolver_upstream_loop_window(struct resolver_upstreams *ups, unsigned i, uint64_t until_ms)
{
    atomic_store(&ups->up[i].window_until_ms, until_ms);
}

void resolver_upstream_loop_probe_name(struct resolver_upstreams *ups, unsigned i,
                                       struct dns_name *out)
{
    char text[ID_DIGITS + sizeof(LOOP_LABEL) + 3];
    snprintf(text, sizeof(text), "%016llx." LOOP_LABEL ".",
             (unsigned long long)atomic_load(&ups->up[i].probe_id));
    dns_name_from_text(out, text);
}

bool resolver_upstream_loop_check_end(struct resolver_upstreams *ups, unsigned i)
{
    struct resolver_upstream *u = &ups->up[i];
    atomic_store(&u->window_until_ms, 0);
    if (!atomic_exchange(&u->looping, false))
        return false;
    log_info("forward",
             "upstream=%s loop=gone reason=\"the loop-check query no longer comes back\"", u->text);
    return true;
}

/* The probe ID of a name "<16 hex digits>.svcdns-loop-check." (lower-cased); false for any
 * other name under svcdns-loop-check. */
static bool probe_id_of(const struct dns_name *n, uint64_t *id)
{
    if (n->len != 1 + ID_DIGITS + 1 + sizeof(LOOP_LABEL) || n->wire[0] != ID_DIGITS)
        return false;
    uint64_t v = 0;
    for (size_t k = 1; k <= ID_DIGITS; k++) {
        uint8_t c = n->wire[k];
        if (c >= '0' && c <= '9')
            v = (v << 4) | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (v << 4) | (uint64_t)(c - 'a' + 10);
        else
            return false;
    }
    *id = v;
    return true;
}

static bool from_where_a_loop_sends(const struct resolver_upstream *u,
                                    const struct sockaddr_storage *from)
{
    return dns_addr_same_host(from, &u->addr) || dns_addr_is_local(from);
}

/* One counted arrival of upstream u's probe; the third in a check marks it looping. */
static void count_arrival(struct resolver_upstreams *ups, struct resolver_upstream *u)
{
    atomic_fetch_add_explicit(&ups->loop_probes_seen, 1, memory_order_relaxed);
    unsigned seen = atomic_fetch_add(&u->loop_seen, 1) + 1;
    if (seen >= RESOLVER_UPSTREAM_LOOP_ROUNDS && !atomic_exchange(&u->looping, true))
        log_error("forward",
                  "upstream=%s error=\"forwarding loop: our loop-check query came back %u "
                  "times; this upstream leads back to svcdns and will not be used until a "
                  "later check finds no loop\" "
                  "remedy=\"point kubelet's resolvConf at /run/systemd/resolve/resolv.conf "
                  "(not a stub resolver that forwards to us), or pass --upstream with "
                  "the real resolvers\"",
                  u->text, seen);
}

bool resolver_upstream_is_loop_probe(struct resolver_upstreams *ups, const struct dns_query *q,
                                     const struct sockaddr_storage *from, uint64_t now_ms)
{
    static const struct dns_name suffix = {sizeof(LOOP_LABEL) + 1, "\21" LOOP_LABEL};
    uint64_t id;
    if (!dns_name_is_subdomain(&q->qname, &suffix))
        return false;
    if (!probe_id_of(&q->qname, &id))
        return true;
    for (size_t i = 0; i < ups->n; i++) {
        struct resolver_upstream *u = &ups->up[i];
        if (atomic_load(&u->probe_id) == id && now_ms < atomic_load(&u->window_until_ms) &&
            from_where_a_loop_sends(u, from))
            count_arrival(ups, u);
    }
    return true;
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
