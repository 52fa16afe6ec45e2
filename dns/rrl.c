/* dns/rrl.c - the rate limiter: a table of 64-bit words shared by every worker.
 *
 * Each prefix is a GCRA bucket (the "generic cell rate algorithm" of ATM traffic shaping, a
 * token bucket kept as one number): tat, the theoretical arrival time of the next response
 * at the allowed rate. A response at now may go when tat - now <= tau, and then tat grows by
 * one interval (1/rate s) from max(tat, now); tau is (rate - 1) intervals, so a prefix that was
 * quiet gets one second's worth at once and `rate` a second after that, and a limited
 * response costs nothing. Knot's older table kept tokens, a time and flags per bucket under
 * striped locks; one word per bucket lets a compare-and-swap do the whole update.
 *
 * A word is a 16-bit tag (from the prefix's keyed hash, never 0) and tat in microseconds
 * since the table was made (48 bits: 8.9 years). A prefix hashes to a group of four words,
 * in one cache line half; a prefix not there takes the word whose tat is oldest (a bucket
 * whose tat is past is full, so forgetting it loses nothing). The hash is keyed with random
 * bits per process, so which prefixes share a group cannot be read from the code. */
#include "dns/rrl.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define WAYS 4
#define TAT_BITS 48
#define TAT_MASK ((UINT64_C(1) << TAT_BITS) - 1)

struct dns_rrl {
    struct dns_rrl_config cfg;
    uint64_t interval_us; /* 1e6 / rate */
    uint64_t tau_us;      /* the burst: (rate - 1) intervals */
    uint64_t base_ns;     /* tat counts from here */
    uint64_t key[2];
    size_t group_mask;
    atomic_uint_fast64_t limited, dropped, slipped;
    _Atomic uint64_t *words; /* (group_mask + 1) * WAYS */
};

void dns_rrl_config_default(struct dns_rrl_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->slip = 2;
    cfg->buckets = 65536;
}

int dns_rrl_new(struct dns_rrl **out, const struct dns_rrl_config *cfg)
{
    *out = NULL;
    if (cfg->rate == 0 || cfg->rate > DNS_RRL_RATE_MAX || cfg->buckets == 0)
        return UV_EINVAL;
    struct dns_rrl *rrl = calloc(1, sizeof(*rrl));
    if (rrl == NULL)
        return UV_ENOMEM;
    rrl->cfg = *cfg;
    size_t groups = 1;
    while (groups * WAYS < cfg->buckets)
        groups *= 2;
    rrl->group_mask = groups - 1;
    rrl->words = calloc(groups * WAYS, sizeof(rrl->words[0]));
    if (rrl->words == NULL || uv_random(NULL, NULL, rrl->key, sizeof(rrl->key), 0, NULL) != 0) {
        dns_rrl_free(rrl);
        return UV_ENOMEM;
    }
    rrl->interval_us = 1000000 / cfg->rate;
    rrl->tau_us = rrl->interval_us * (cfg->rate - 1);
    rrl->base_ns = uv_hrtime();
    *out = rrl;
    return 0;
}

void dns_rrl_free(struct dns_rrl *rrl)
{
    if (rrl == NULL)
        return;
    free((void *)rrl->words);
    free(rrl);
}

/* The client's prefix as one number: the top bit marks IPv4 (its /24), IPv6 keeps its /56
 * in the low 56 bits. An IPv4-mapped IPv6 address (a dual-stack socket) counts as IPv4. */
static bool prefix_of(const struct sockaddr_storage *client, uint64_t *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    if (client->ss_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)client)->sin_addr;
    } else if (client->ss_family == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)client)->sin6_addr;
        if (memcmp(a, mapped, sizeof(mapped)) != 0) {
            uint64_t v = 0;
            for (int i = 0; i < 7; i++)
                v = v << 8 | a[i];
            *out = v;
            return true;
        }
        a += 12;
    } else {
        return false;
    }
    *out = UINT64_C(1) << 63 | (uint64_t)a[0] << 16 | (uint64_t)a[1] << 8 | a[2];
    return true;
}

/* splitmix64's finalizer, twice with a key in between: an even spread of the prefixes that
 * an outsider cannot aim at one group without the key. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t tat_of(uint64_t word)
{
    return word & TAT_MASK;
}

/* One try: finds the prefix's word in its group (or the one to take over) and moves its tat
 * on with a compare-and-swap. 1 pass, 0 limited, -1 lost a race (try again). */
static int take(struct dns_rrl *rrl, _Atomic uint64_t *group, uint64_t tag, uint64_t now)
{
    size_t slot = 0;
    uint64_t cur = 0;
    bool found = false;
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < WAYS && !found; i++) {
        uint64_t w = atomic_load_explicit(&group[i], memory_order_relaxed);
        if (w >> TAT_BITS == tag) {
            slot = i;
            cur = w;
            found = true;
        } else if (tat_of(w) < oldest) {
            oldest = tat_of(w);
            slot = i;
            cur = w;
        }
    }
    uint64_t tat = found && tat_of(cur) > now ? tat_of(cur) : now;
    if (tat - now > rrl->tau_us)
        return 0;
    uint64_t next = tag << TAT_BITS | ((tat + rrl->interval_us) & TAT_MASK);
    return atomic_compare_exchange_strong_explicit(&group[slot], &cur, next, memory_order_relaxed,
                                                   memory_order_relaxed)
               ? 1
               : -1;
}

enum dns_rrl_action dns_rrl_check(struct dns_rrl *rrl, const struct sockaddr_storage *client,
                                  uint64_t now_ns)
{
    uint64_t prefix;
    if (!prefix_of(client, &prefix))
        return DNS_RRL_PASS;
    uint64_t h = mix(mix(prefix ^ rrl->key[0]) ^ rrl->key[1]);
    uint64_t tag = (h >> TAT_BITS) | 1;
    _Atomic uint64_t *group = &rrl->words[(h & rrl->group_mask) * WAYS];
    uint64_t now = now_ns > rrl->base_ns ? ((now_ns - rrl->base_ns) / 1000) & TAT_MASK : 0;
    /* A lost race means another worker's update went in, so this ends; a limited response
     * writes nothing, so under a flood the words stay still and each check is a read. */
    int r;
    do
        r = take(rrl, group, tag, now);
    while (r < 0);
    if (r != 0)
        return DNS_RRL_PASS;
    uint64_t n = atomic_fetch_add_explicit(&rrl->limited, 1, memory_order_relaxed) + 1;
    if (rrl->cfg.slip > 0 && n % rrl->cfg.slip == 0) {
        atomic_fetch_add_explicit(&rrl->slipped, 1, memory_order_relaxed);
        return DNS_RRL_SLIP;
    }
    atomic_fetch_add_explicit(&rrl->dropped, 1, memory_order_relaxed);
    return DNS_RRL_DROP;
}

void dns_rrl_stats(const struct dns_rrl *rrl, struct dns_rrl_stats *out)
{
    /* C11's atomic_load() wants a pointer to non-const; nothing here writes. */
    struct dns_rrl *r = (struct dns_rrl *)rrl;
    out->dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
    out->slipped = atomic_load_explicit(&r->slipped, memory_order_relaxed);
}
