/* resolver/cache.c - a bounded, sharded answer cache.
 *
 * Each shard owns a fixed slice of the entry table (the slices add up to cfg.size exactly) and
 * of the memory (cfg.memory / shards), a bucket index over its slots, a free list and a CLOCK
 * hand; its mutex guards them all and its counters. An entry owns one malloc'd blob: the
 * scrubbed reply without OPT (ID 0, TTLs already capped), the offsets of its TTL fields and
 * the lower-cased key name; its cost is the blob's size as malloc rounds it, plus malloc's
 * header. A hit copies the blob into the request's buffer and patches it; nothing is
 * allocated on a hit.
 *
 * Invariants: a shard never holds more than its slots, nor entries costing more than its
 * budget together; an insert evicts (CLOCK) until both fit, and no entry may cost more than a
 * quarter of a budget. What is stored passed resolver_scrub_check() and was rewritten by
 * resolver_scrub_rewrite(), so it holds only the question's chain and, if negative, its SOA;
 * an answer longer than max_answer is stored as its header and question with TC set, served
 * to UDP clients only (all they could be sent of it) and a miss for TCP. */
#include "resolver/cache.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns/log.h"
#include "resolver/scrub.h"
#include "resolver/siphash.h"

#define MAX_SHARDS 64
#define MIN_PER_SHARD 64    /* small caches use fewer shards, so the bound stays exact and useful */
#define STALE_TTL 30        /* RFC 8767 §4 */
#define STALE_HOLD_MS 30000 /* RFC 8767 §4: retry a failed refresh at most every 30 s */
#define MAX_TTL_OFFSETS (DNS_MAX_MSG / 11)
#define NO_ENTRY UINT32_MAX
#define OPT_ROOM 32    /* our OPT with an EDE option */
#define MALLOC_HEAD 16 /* what glibc's malloc adds to a chunk, on 64-bit; chunks are 16-aligned */

struct entry {
    uint8_t *blob; /* NULL: the slot is free */
    uint64_t hash;
    uint64_t inserted_ms;
    uint64_t expire_ms;
    uint64_t stale_until_ms; /* equal to expire_ms when it may not be served stale */
    uint64_t stale_hold_ms;  /* after a failed refresh, answer stale without asking until then */
    uint32_t cost;           /* bytes counted against the shard's budget */
    uint32_t next;           /* bucket chain, or the free list */
    uint16_t len;            /* of the reply */
    uint16_t n_ttl;
    uint16_t qtype, qclass;
    uint8_t qname_len;
    bool dnssec_ok;
    bool referenced; /* CLOCK: hit since the hand last passed */
    bool truncated;  /* the answer was too long: only its header and question, TC set */
    int8_t ede;      /* for a cached SERVFAIL: the EDE it carried */
};

struct shard {
    uv_mutex_t lock;
    struct entry *entries;
    uint32_t cap, used;
    uint32_t free_head; /* unused slots, chained through next */
    uint32_t *buckets;
    uint32_t mask;
    uint32_t hand;
    size_t bytes, budget;
    uint64_t hits, misses, inserts, evictions, served_stale, oversized;
};

struct resolver_cache {
    struct resolver_cache_config cfg;
    struct resolver_siphash_key key;
    struct shard *shards;
    unsigned n_shards;
    size_t max_answer; /* longer answers are kept as truncation markers */
    atomic_size_t entries;
};

struct key {
    const struct dns_name *qname;
    uint16_t qtype, qclass;
    bool dnssec_ok;
    uint64_t hash;
};

void resolver_cache_config_default(struct resolver_cache_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = 10000;
    cfg->memory = (size_t)16 << 20;
    cfg->max_ttl = 3600;
    cfg->min_ttl = 0;
    cfg->serve_stale_s = 0;
    cfg->servfail_ttl = 5;
}

static uint64_t now_ms(const struct resolver_cache *cache)
{
    return cache->cfg.now_ms ? cache->cfg.now_ms() : uv_hrtime() / 1000000U;
}

/* Setup. */

static unsigned pow2_at_most(unsigned n)
{
    unsigned v = 1;
    while (v * 2 <= n)
        v *= 2;
    return v;
}

static int shard_init(struct shard *s, uint32_t cap, size_t budget)
{
    uint32_t nb = 1;
    while (nb < cap * 2)
        nb *= 2;
    s->cap = cap;
    s->budget = budget;
    s->entries = calloc(cap, sizeof(*s->entries));
    s->buckets = malloc(nb * sizeof(*s->buckets));
    if (!s->entries || !s->buckets || uv_mutex_init(&s->lock) != 0) {
        free(s->entries);
        free(s->buckets);
        s->entries = NULL;
        s->buckets = NULL;
        return UV_ENOMEM;
    }
    s->mask = nb - 1;
    for (uint32_t i = 0; i < nb; i++)
        s->buckets[i] = NO_ENTRY;
    for (uint32_t i = 0; i < cap; i++)
        s->entries[i].next = i + 1 < cap ? i + 1 : NO_ENTRY;
    s->free_head = 0;
    return 0;
}

int resolver_cache_new(struct resolver_cache **out, const struct resolver_cache_config *cfg)
{
    *out = NULL;
    if (cfg->size == 0 || cfg->size > UINT32_MAX / 4 || cfg->min_ttl > cfg->max_ttl ||
        cfg->memory < RESOLVER_CACHE_MIN_MEMORY)
        return UV_EINVAL;
    struct resolver_cache *cache = calloc(1, sizeof(*cache));
    if (!cache)
        return UV_ENOMEM;
    cache->cfg = *cfg;
    /* Small caches use fewer shards, so that each keeps a useful number of entries and room
     * for four of the largest answers. */
    size_t n = cfg->size / MIN_PER_SHARD;
    size_t by_memory = cfg->memory / (4 * (size_t)RESOLVER_CACHE_MAX_ANSWER);
    n = n < by_memory ? n : by_memory;
    cache->n_shards = pow2_at_most(n < 1 ? 1 : n > MAX_SHARDS ? MAX_SHARDS : (unsigned)n);
    size_t budget = cfg->memory / cache->n_shards;
    cache->max_answer =
        budget / 4 < RESOLVER_CACHE_MAX_ANSWER ? budget / 4 : RESOLVER_CACHE_MAX_ANSWER;
    cache->shards = calloc(cache->n_shards, sizeof(*cache->shards));
    int rc = cache->shards ? resolver_siphash_key_random(&cache->key) : UV_ENOMEM;
    for (unsigned i = 0; rc == 0 && i < cache->n_shards; i++) {
        /* The slices add up to cfg.size exactly: the first ones take the remainder. */
        size_t cap = cfg->size / cache->n_shards + (i < cfg->size % cache->n_shards ? 1 : 0);
        rc = shard_init(&cache->shards[i], (uint32_t)cap, budget);
        if (rc != 0)
            cache->n_shards = i; /* free() tears down the ones made */
    }
    if (rc != 0) {
        resolver_cache_free(cache);
        return rc;
    }
    *out = cache;
    return 0;
}

void resolver_cache_free(struct resolver_cache *cache)
{
    if (!cache)
        return;
    for (unsigned i = 0; cache->shards && i < cache->n_shards; i++) {
        struct shard *s = &cache->shards[i];
        for (uint32_t k = 0; k < s->cap; k++)
            free(s->entries[k].blob);
        free(s->entries);
        free(s->buckets);
        uv_mutex_destroy(&s->lock);
    }
    free(cache->shards);
    free(cache);
}

/* Lookup. */

static void key_init(const struct resolver_cache *cache, const struct dns_request *req,
                     struct key *k)
{
    uint8_t buf[DNS_MAX_NAME + 5];
    const struct dns_query *q = &req->q;
    k->qname = &q->qname;
    k->qtype = q->qtype;
    k->qclass = q->qclass;
    k->dnssec_ok = q->has_edns && (q->edns_flags & DNS_EDNS_DO);
    memcpy(buf, q->qname.wire, q->qname.len);
    dns_wire_put_u16(buf + q->qname.len, q->qtype);
    dns_wire_put_u16(buf + q->qname.len + 2, q->qclass);
    buf[q->qname.len + 4] = k->dnssec_ok;
    k->hash = resolver_siphash13(&cache->key, buf, (size_t)q->qname.len + 5);
}

static struct shard *shard_of(struct resolver_cache *cache, uint64_t hash)
{
    return &cache->shards[(hash >> 58) & (cache->n_shards - 1)];
}

static const uint8_t *entry_name(const struct entry *e)
{
    return e->blob + e->len + (size_t)e->n_ttl * 2;
}

static const uint8_t *entry_ttl_offsets(const struct entry *e)
{
    return e->blob + e->len;
}

static uint32_t shard_find(const struct shard *s, const struct key *k)
{
    for (uint32_t i = s->buckets[k->hash & s->mask]; i != NO_ENTRY; i = s->entries[i].next) {
        const struct entry *e = &s->entries[i];
        if (e->hash == k->hash && e->qtype == k->qtype && e->qclass == k->qclass &&
            e->dnssec_ok == k->dnssec_ok && e->qname_len == k->qname->len &&
            memcmp(entry_name(e), k->qname->wire, e->qname_len) == 0)
            return i;
    }
    return NO_ENTRY;
}

/* Copies entry e into req->ans for this client: its ID, flags and question case, each TTL
 * minus the age (or STALE_TTL), its OPT with the entry's EDE or the one given. */
static bool render(const struct entry *e, struct dns_request *req, uint64_t now, bool stale)
{
    const struct dns_query *q = &req->q;
    size_t qlen = (size_t)q->question_end - DNS_HEADER_SIZE;
    if ((size_t)e->qname_len + 4 != qlen || (size_t)e->len + OPT_ROOM > req->ans_cap)
        return false;
    if (e->truncated && req->proto != DNS_PROTO_UDP)
        return false; /* over TCP the client wants the whole answer, which is not here */
    memcpy(req->ans, e->blob, e->len);
    dns_wire_put_u16(req->ans, q->id);
    uint16_t stored = dns_wire_get_u16(e->blob + 2);
    bool want_ad = (q->flags & DNS_FLAG_AD) || (q->has_edns && (q->edns_flags & DNS_EDNS_DO));
    uint16_t flags =
        (uint16_t)(DNS_FLAG_QR | DNS_FLAG_RA | (q->flags & (DNS_FLAG_RD | DNS_FLAG_CD)) |
                   (stored & DNS_FLAG_TC) | ((stored & DNS_FLAG_AD) && want_ad ? DNS_FLAG_AD : 0) |
                   DNS_RCODE(stored));
    dns_wire_put_u16(req->ans + 2, flags);
    memcpy(req->ans + DNS_HEADER_SIZE, req->pkt + DNS_HEADER_SIZE, qlen);
    uint32_t age = (uint32_t)((now - e->inserted_ms) / 1000);
    const uint8_t *offs = entry_ttl_offsets(e);
    for (uint16_t i = 0; i < e->n_ttl; i++) {
        uint8_t *t = req->ans + dns_wire_get_u16(offs + 2 * (size_t)i);
        uint32_t ttl = dns_wire_get_u32(t);
        dns_wire_put_u32(t, stale ? STALE_TTL : ttl > age ? ttl - age : 0);
    }
    size_t n = e->len;
    if (q->has_edns) {
        struct dns_cursor c;
        dns_cursor_init(&c, req->ans, req->ans_cap);
        c.pos = n;
        dns_wire_put_opt(&c, q, DNS_RCODE(stored), stale ? DNS_EDE_STALE_ANSWER : e->ede);
        if (c.err)
            return false;
        n = c.pos;
        dns_wire_put_u16(req->ans + 10, 1);
    }
    req->ans_len = n;
    return true;
}

enum dns_verdict resolver_cache_serve(void *self, struct dns_request *req)
{
    struct resolver_cache *cache = self;
    struct key k;
    if (!req->q.has_question)
        return DNS_NEXT;
    key_init(cache, req, &k);
    struct shard *s = shard_of(cache, k.hash);
    uint64_t now = now_ms(cache);
    bool hit = false;
    uv_mutex_lock(&s->lock);
    uint32_t i = shard_find(s, &k);
    struct entry *e = i != NO_ENTRY ? &s->entries[i] : NULL;
    if (e && now < e->expire_ms && render(e, req, now, false)) {
        e->referenced = true;
        s->hits++;
        hit = true;
    } else if (e && now < e->stale_hold_ms && now < e->stale_until_ms &&
               render(e, req, now, true)) {
        /* The last refresh failed moments ago: answer stale at once instead of making every
         * client wait for the upstream deadline again. */
        s->served_stale++;
        hit = true;
    } else {
        s->misses++;
    }
    uv_mutex_unlock(&s->lock);
    return hit ? DNS_DONE : DNS_NEXT;
}

/* Insertion. */

static void bucket_unlink(struct shard *s, uint32_t i)
{
    uint32_t *pp = &s->buckets[s->entries[i].hash & s->mask];
    while (*pp != NO_ENTRY && *pp != i)
        pp = &s->entries[*pp].next;
    if (*pp == i)
        *pp = s->entries[i].next;
}

/* Frees entry i and returns its slot and bytes to the shard. */
static void shard_drop(struct resolver_cache *cache, struct shard *s, uint32_t i)
{
    struct entry *e = &s->entries[i];
    bucket_unlink(s, i);
    free(e->blob);
    e->blob = NULL;
    s->bytes -= e->cost;
    e->cost = 0;
    e->next = s->free_head;
    s->free_head = i;
    s->used--;
    atomic_fetch_sub(&cache->entries, 1);
}

/* CLOCK's victim, for a shard with at least one entry. Entries past any use (expired beyond
 * the stale window) go first; a referenced entry gets a second chance; after two sweeps the
 * hand takes whatever entry it points at. */
static void shard_evict_one(struct resolver_cache *cache, struct shard *s, uint64_t now)
{
    for (uint32_t steps = 0;; steps++) {
        uint32_t i = s->hand;
        struct entry *e = &s->entries[i];
        s->hand = (s->hand + 1) % s->cap;
        if (!e->blob)
            continue;
        bool dead = now >= e->stale_until_ms;
        if (e->referenced && !dead && steps < 2 * s->cap) {
            e->referenced = false;
            continue;
        }
        shard_drop(cache, s, i);
        s->evictions++;
        return;
    }
}

/* A slot for a new entry of this cost: entries are evicted until its bytes fit the budget
 * and a slot is free. */
static uint32_t shard_take_slot(struct resolver_cache *cache, struct shard *s, size_t cost,
                                uint64_t now)
{
    while (s->used > 0 && (s->bytes + cost > s->budget || s->free_head == NO_ENTRY))
        shard_evict_one(cache, s, now);
    uint32_t i = s->free_head;
    s->free_head = s->entries[i].next;
    s->used++;
    s->bytes += cost;
    atomic_fetch_add(&cache->entries, 1);
    return i;
}

/* What an entry of this many bytes costs: malloc's chunk, header and rounding included. */
static size_t blob_cost(size_t size)
{
    return (size + MALLOC_HEAD + 15) & ~(size_t)15;
}

struct stored {
    const uint8_t *reply;
    size_t len;
    const uint16_t *ttl_off;
    size_t n_ttl;
    uint32_t lifetime; /* seconds */
    bool stale_ok;
    bool truncated;
    int ede;
};

static void insert(struct resolver_cache *cache, const struct key *k, const struct stored *st,
                   uint64_t now)
{
    size_t size = st->len + st->n_ttl * 2 + k->qname->len;
    size_t cost = blob_cost(size);
    struct shard *s = shard_of(cache, k->hash);
    if (cost > s->budget / 2)
        return; /* the store keeps answers below a quarter of this; a bound is a bound */
    uint8_t *blob = malloc(size);
    if (!blob)
        return; /* a cache may forget; the answer still goes out */
    memcpy(blob, st->reply, st->len);
    for (size_t i = 0; i < st->n_ttl; i++)
        dns_wire_put_u16(blob + st->len + 2 * i, st->ttl_off[i]);
    memcpy(blob + st->len + st->n_ttl * 2, k->qname->wire, k->qname->len);
    uv_mutex_lock(&s->lock);
    uint32_t i = shard_find(s, k);
    if (i != NO_ENTRY)
        shard_drop(cache, s, i); /* replaced: its bytes and slot are free again */
    i = shard_take_slot(cache, s, cost, now);
    struct entry *e = &s->entries[i];
    e->hash = k->hash;
    e->next = s->buckets[k->hash & s->mask];
    s->buckets[k->hash & s->mask] = i;
    e->cost = (uint32_t)cost;
    e->blob = blob;
    e->len = (uint16_t)st->len;
    e->n_ttl = (uint16_t)st->n_ttl;
    e->qtype = k->qtype;
    e->qclass = k->qclass;
    e->qname_len = k->qname->len;
    e->dnssec_ok = k->dnssec_ok;
    e->referenced = false;
    e->truncated = st->truncated;
    e->ede = (int8_t)st->ede;
    e->inserted_ms = now;
    e->expire_ms = now + (uint64_t)st->lifetime * 1000;
    e->stale_until_ms =
        e->expire_ms + (st->stale_ok ? (uint64_t)cache->cfg.serve_stale_s * 1000 : 0);
    e->stale_hold_ms = 0;
    s->inserts++;
    s->oversized += st->truncated;
    uv_mutex_unlock(&s->lock);
    if (log_current_level >= LOG_LEVEL_DEBUG) {
        char name[DNS_MAX_NAME * 4 + 2];
        dns_name_to_text(k->qname, name, sizeof(name));
        log_debug("cache", "insert name=%s type=%u do=%d ttl=%u rcode=%u entries=%zu", name,
                  k->qtype, k->dnssec_ok, st->lifetime, DNS_RCODE(dns_wire_get_u16(st->reply + 2)),
                  atomic_load(&cache->entries));
    }
}

/* Caps every stored TTL to [min_ttl, max_ttl]; the entry lives as long as the lowest. */
static uint32_t clamp_ttls(const struct resolver_cache *cache, uint8_t *reply, const uint16_t *offs,
                           size_t n)
{
    uint32_t lifetime = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = dns_wire_get_u32(reply + offs[i]);
        if (t > cache->cfg.max_ttl)
            t = cache->cfg.max_ttl;
        if (t < cache->cfg.min_ttl)
            t = cache->cfg.min_ttl;
        dns_wire_put_u32(reply + offs[i], t);
        if (t < lifetime)
            lifetime = t;
    }
    return lifetime;
}

/* Scratch for one insert, per thread: a rewritten reply can be as large as the message. */
static _Thread_local uint8_t scratch[DNS_MAX_MSG];
static _Thread_local uint16_t scratch_ttl[MAX_TTL_OFFSETS];

void resolver_cache_store(struct resolver_cache *cache, const struct dns_request *req,
                          const uint8_t *msg, size_t len, const struct dns_names *own)
{
    const struct dns_query *q = &req->q;
    struct resolver_scrub_question sq = {&q->qname, q->qtype, q->qclass,
                                         q->has_edns && (q->edns_flags & DNS_EDNS_DO), own};
    struct resolver_scrub_reply info;
    if (!q->has_question || len < DNS_HEADER_SIZE)
        return;
    /* The forwarder checked already; checking again costs little and keeps this module
     * honest about what it stores, whoever calls. */
    if (resolver_scrub_check(msg, len, dns_wire_get_u16(msg), &sq, &info) != RESOLVER_SCRUB_OK ||
        (info.flags & DNS_FLAG_TC) ||
        (info.rcode != DNS_RCODE_NOERROR && info.rcode != DNS_RCODE_NXDOMAIN))
        return; /* RFC 2181 §9: a truncated reply is never cached */
    uint16_t flags =
        (uint16_t)(DNS_FLAG_QR | DNS_FLAG_RA | (info.flags & DNS_FLAG_AD) | DNS_RCODE(info.flags));
    struct resolver_scrub_out out = {.buf = scratch,
                                     .cap = sizeof(scratch) - OPT_ROOM,
                                     .ttl_off = scratch_ttl,
                                     .ttl_cap = MAX_TTL_OFFSETS};
    size_t qlen = (size_t)q->question_end - DNS_HEADER_SIZE;
    if (resolver_scrub_rewrite(msg, len, &sq, req->pkt + DNS_HEADER_SIZE, qlen, 0, flags, &out) <
            0 ||
        out.own_end)
        return; /* a chain into our own zone is answered from our data each time */
    if (out.negative && !out.has_soa)
        return; /* RFC 2308 §5: a negative answer without SOA is not cached */
    uint32_t lifetime = clamp_ttls(cache, scratch, scratch_ttl, out.n_ttl);
    if (out.n_ttl == 0 || lifetime == 0)
        return;
    struct key k;
    key_init(cache, req, &k);
    struct stored st = {scratch, out.len, scratch_ttl, out.n_ttl, lifetime, true, false, -1};
    if (out.len > cache->max_answer) {
        /* Whole, it would crowd out a hundred small answers (an upstream can make 64 KiB
         * answers at will): keep what a UDP client can be sent of it, TC and no records. */
        dns_wire_put_u16(scratch + 2, (uint16_t)(flags | DNS_FLAG_TC));
        dns_wire_reply_counts(scratch, 0, 0, 0);
        st.len = DNS_HEADER_SIZE + qlen;
        st.n_ttl = 0;
        st.truncated = true;
    }
    insert(cache, &k, &st, now_ms(cache));
}

/* Serve the expired entry if it is young enough (RFC 8767), else remember the SERVFAIL for a
 * few seconds (CoreDNS caches it 5 s). */
bool resolver_cache_fail(struct resolver_cache *cache, struct dns_request *req,
                         enum dns_failure why)
{
    const struct dns_query *q = &req->q;
    if (!q->has_question)
        return false;
    struct key k;
    key_init(cache, req, &k);
    uint64_t now = now_ms(cache);
    if (cache->cfg.serve_stale_s > 0) {
        struct shard *s = shard_of(cache, k.hash);
        bool served = false;
        uv_mutex_lock(&s->lock);
        uint32_t i = shard_find(s, &k);
        struct entry *e = i != NO_ENTRY ? &s->entries[i] : NULL;
        if (e && now < e->stale_until_ms && render(e, req, now, true)) {
            e->stale_hold_ms = now + STALE_HOLD_MS;
            s->served_stale++;
            served = true;
        }
        uv_mutex_unlock(&s->lock);
        if (served)
            return true;
    }
    if (cache->cfg.servfail_ttl == 0)
        return false;
    size_t qlen = (size_t)q->question_end - DNS_HEADER_SIZE;
    memset(scratch, 0, DNS_HEADER_SIZE);
    dns_wire_put_u16(scratch + 2, DNS_FLAG_QR | DNS_FLAG_RA | DNS_RCODE_SERVFAIL);
    dns_wire_put_u16(scratch + 4, 1);
    memcpy(scratch + DNS_HEADER_SIZE, req->pkt + DNS_HEADER_SIZE, qlen);
    int ede = why == DNS_FAILURE_SILENT ? DNS_EDE_NO_REACHABLE_AUTHORITY : DNS_EDE_NETWORK_ERROR;
    struct stored st = {
        scratch, DNS_HEADER_SIZE + qlen, NULL, 0, cache->cfg.servfail_ttl, false, false, ede};
    insert(cache, &k, &st, now);
    return false;
}

void resolver_cache_stats(struct resolver_cache *cache, struct resolver_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < cache->n_shards; i++) {
        struct shard *s = &cache->shards[i];
        uv_mutex_lock(&s->lock);
        out->hits += s->hits;
        out->misses += s->misses;
        out->inserts += s->inserts;
        out->evictions += s->evictions;
        out->served_stale += s->served_stale;
        out->oversized += s->oversized;
        out->entries += s->used;
        out->capacity += s->cap;
        out->bytes += s->bytes;
        out->memory += s->budget;
        uv_mutex_unlock(&s->lock);
    }
}

/* The decimal number at *p, at most limit; moves *p past it. 0, or -1 for no digit or too
 * large a number. */
static int read_number(const char **p, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    if (!isdigit((unsigned char)**p))
        return -1;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (uint64_t)(*(*p)++ - '0');
        if (v > limit)
            return -1;
    }
    *out = v;
    return 0;
}

int resolver_cache_parse_duration(const char *text, uint32_t *seconds)
{
    const uint64_t limit = (uint64_t)30 * 86400;
    uint64_t total = 0;
    const char *p = text;
    bool had_unit = false;
    if (!*p)
        return -1;
    while (*p) {
        uint64_t v = 0;
        if (read_number(&p, limit, &v) < 0)
            return -1;
        uint64_t unit = 0;
        switch (*p) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case '\0':
            if (had_unit)
                return -1; /* a bare number is seconds, but only on its own ("1h30" is not) */
            unit = 1;
            break;
        default:
            return -1;
        }
        if (*p) {
            p++;
            had_unit = true;
        }
        total += v * unit;
        if (total > limit)
            return -1;
    }
    *seconds = (uint32_t)total;
    return 0;
}

int resolver_cache_parse_size(const char *text, size_t *bytes)
{
    const uint64_t limit = (uint64_t)64 << 30;
    uint64_t v = 0;
    const char *p = text;
    if (read_number(&p, limit, &v) < 0)
        return -1;
    unsigned shift = 0;
    switch (*p) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift) {
        p++;
        if (*p == 'i')
            p++;
    }
    if (*p == 'B' || *p == 'b')
        p++;
    if (*p || v > limit >> shift)
        return -1;
    *bytes = (size_t)(v << shift);
    return 0;
}
