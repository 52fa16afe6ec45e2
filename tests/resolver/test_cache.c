/* tests/resolver/test_cache.c - the answer cache on its own: what it stores from the
 * forwarder's replies, how a hit is patched, TTL countdown on a fake clock, the entry bound,
 * negative caching, scrubbing and serve-stale. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <ldns/ldns.h>

#include "resolver/cache.h"
#include "resolver/forward.h"
#include "tests/resolver/upstream_fake.h"
#include "tests/support/support.h"

static uint64_t fake_now;

static uint64_t clock_ms(void)
{
    return fake_now;
}

struct creq {
    struct dns_request req;
    uint8_t pkt[512];
    uint8_t ans[DNS_MAX_MSG];
};

static struct resolver_cache *cache_sized(size_t size, size_t memory, uint32_t serve_stale_s)
{
    struct resolver_cache_config cfg;
    resolver_cache_config_default(&cfg);
    cfg.size = size;
    cfg.memory = memory;
    cfg.serve_stale_s = serve_stale_s;
    cfg.now_ms = clock_ms;
    struct resolver_cache *c = NULL;
    ck_assert_int_eq(resolver_cache_new(&c, &cfg), 0);
    fake_now = 1000000;
    return c;
}

static struct resolver_cache *cache_with(size_t size, uint32_t serve_stale_s)
{
    return cache_sized(size, (size_t)16 << 20, serve_stale_s);
}

/* A parsed client query in a request, as the chain would hand it to the handlers. */
static struct creq *query(const char *name, uint16_t type, uint16_t id, int edns, bool dnssec_ok)
{
    struct creq *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    size_t len = support_query_wire(r->pkt, sizeof(r->pkt), name, type, 1, id, edns);
    if (dnssec_ok)
        r->pkt[len - 4] |= 0x80; /* DO: the OPT TTL's low half, before RDLEN 0 */
    r->req.pkt = r->pkt;
    r->req.pkt_len = len;
    r->req.ans = r->ans;
    r->req.ans_cap = sizeof(r->ans);
    ck_assert_int_eq(dns_wire_parse_query(&r->req.q, r->pkt, len), DNS_PARSE_OK);
    return r;
}

/* What the forwarder does with an upstream reply to r: the cache keeps it (or, TC set,
 * refuses it itself), the client gets its own copy. */
static void answer_from_upstream(struct resolver_cache *c, struct creq *r, const uint8_t *msg,
                                 size_t len)
{
    bool tc = (dns_wire_get_u16(msg + 2) & DNS_FLAG_TC) != 0;
    resolver_cache_store(c, &r->req, msg, len, NULL);
    ck_assert_int_eq(resolver_forward_build_reply(&r->req, msg, len, tc, NULL), 0);
}

static void store(struct resolver_cache *c, const char *qname, uint16_t qtype, unsigned rcode,
                  const char *const *an, const char *const *ns, const char *const *ar,
                  uint16_t flags)
{
    uint8_t msg[4096];
    struct creq *r = query(qname, qtype, 1, 1232, false);
    size_t len = fake_reply(msg, sizeof(msg), 1, qname, qtype, rcode, an, ns, ar, flags, true);
    answer_from_upstream(c, r, msg, len);
    free(r);
}

/* Serves a query from the cache; returns the parsed reply or NULL on a miss. */
static ldns_pkt *hit(struct resolver_cache *c, const char *qname, uint16_t qtype, uint16_t id,
                     int edns)
{
    struct creq *r = query(qname, qtype, id, edns, false);
    ldns_pkt *p = NULL;
    if (resolver_cache_serve(c, &r->req) == DNS_DONE)
        p = support_pkt_from_wire(r->req.ans, r->req.ans_len);
    free(r);
    return p;
}

static uint32_t first_ttl(const ldns_pkt *p, ldns_pkt_section s)
{
    ldns_rr_list *l = ldns_pkt_get_section_clone(p, s);
    ck_assert_uint_gt(ldns_rr_list_rr_count(l), 0);
    uint32_t ttl = ldns_rr_ttl(ldns_rr_list_rr(l, 0));
    ldns_rr_list_deep_free(l);
    return ttl;
}

static const char *const www_a[] = {"www.example.test. 300 IN A 192.0.2.10", NULL};

START_TEST(cache_hit_patches_id_and_question_case)
{
    struct resolver_cache *c = cache_with(100, 0);
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, www_a, NULL, NULL, 0);
    ldns_pkt *p = hit(c, "WWW.Example.Test", LDNS_RR_TYPE_A, 0xbeef, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(ldns_pkt_id(p), 0xbeef);
    ck_assert(ldns_pkt_qr(p) && ldns_pkt_ra(p) && !ldns_pkt_aa(p) && !ldns_pkt_tc(p));
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
    ck_assert_str_eq(q, "WWW.Example.Test.");
    free(q);
    char *ans = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(ans, "WWW.Example.Test.\t300\tIN\tA\t192.0.2.10");
    free(ans);
    ck_assert(!ldns_pkt_edns(p)); /* this client sent no OPT */
    ldns_pkt_free(p);
    p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 1232);
    ck_assert(ldns_pkt_edns(p));
    ldns_pkt_free(p);
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_AAAA, 1, 0));
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 1);
    ck_assert_uint_eq(st.inserts, 1);
    ck_assert_uint_eq(st.entries, 1);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_ttl_counts_down_and_expires)
{
    struct resolver_cache *c = cache_with(100, 0);
    static const char *const two[] = {"www.example.test. 300 IN CNAME web.example.test.",
                                      "web.example.test. 120 IN A 192.0.2.11", NULL};
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, two, NULL, NULL, 0);
    fake_now += 10500;
    ldns_pkt *p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p);
    char *ans = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(ans, "web.example.test.\t110\tIN\tA\t192.0.2.11\n"
                          "www.example.test.\t290\tIN\tCNAME\tweb.example.test.");
    free(ans);
    ldns_pkt_free(p);
    fake_now += 109400; /* 119.9 s in: still there with TTL 1 ... */
    p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p);
    ldns_pkt_free(p);
    fake_now += 200; /* ... and gone at 120.1 s, with the lowest TTL */
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0));
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_caps_ttl_and_treats_high_bit_as_zero)
{
    struct resolver_cache_config cfg;
    resolver_cache_config_default(&cfg);
    cfg.max_ttl = 60;
    cfg.min_ttl = 10;
    cfg.now_ms = clock_ms;
    struct resolver_cache *c = NULL;
    ck_assert_int_eq(resolver_cache_new(&c, &cfg), 0);
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, www_a, NULL, NULL, 0);
    ldns_pkt *p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_ANSWER), 60);
    ldns_pkt_free(p);
    static const char *const low[] = {"low.example.test. 2 IN A 192.0.2.12", NULL};
    store(c, "low.example.test", LDNS_RR_TYPE_A, 0, low, NULL, NULL, 0);
    p = hit(c, "low.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_ANSWER), 10);
    ldns_pkt_free(p);
    /* TTL 2^31 + 5 counts as 0 (RFC 2181 §8), raised to the minimum of 10. */
    static const char *const msb[] = {"msb.example.test. 2147483653 IN A 192.0.2.13", NULL};
    store(c, "msb.example.test", LDNS_RR_TYPE_A, 0, msb, NULL, NULL, 0);
    p = hit(c, "msb.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_ANSWER), 10);
    ldns_pkt_free(p);
    resolver_cache_free(c);
}
END_TEST

/* An upstream answer of n A records for name, stored; returns the reply's length. */
static size_t store_many(struct resolver_cache *c, const char *name, unsigned n)
{
    static uint8_t msg[DNS_MAX_MSG];
    static char lines[2000][80];
    static const char *an[2001];
    ck_assert_uint_lt(n, 2000);
    for (unsigned i = 0; i < n; i++) {
        snprintf(lines[i], sizeof(lines[i]), "%s. 300 IN A 10.%u.%u.%u", name, i >> 16,
                 (i >> 8) & 255, i & 255);
        an[i] = lines[i];
    }
    an[n] = NULL;
    struct creq *r = query(name, LDNS_RR_TYPE_A, 1, 1232, false);
    size_t len = fake_reply(msg, sizeof(msg), 1, name, LDNS_RR_TYPE_A, 0, an, NULL, NULL, 0, true);
    resolver_cache_store(c, &r->req, msg, len, NULL);
    free(r);
    return len;
}

/* --cache-memory: the entries' bytes never pass the bound, whatever their number, and each
 * entry is counted for what it holds, once. */
START_TEST(cache_memory_bounds_the_bytes_entries_hold)
{
    struct resolver_cache *c = cache_sized(1000, RESOLVER_CACHE_MIN_MEMORY, 0);
    struct resolver_cache_stats st;
    store_many(c, "first.example.test", 120);
    /* A hit without OPT is the stored reply; the entry also keeps 120 TTL offsets and its
     * name, in a malloc chunk rounded to 16 bytes with a 16-byte header. */
    struct creq *r = query("first.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    ck_assert_int_eq(resolver_cache_serve(c, &r->req), DNS_DONE);
    size_t blob = r->req.ans_len + 120 * 2 + r->req.q.qname.len;
    free(r);
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.bytes, (blob + 16 + 15) / 16 * 16);
    ck_assert_uint_eq(st.memory, RESOLVER_CACHE_MIN_MEMORY);
    store_many(c, "first.example.test", 120); /* replaced, not counted twice */
    size_t one = st.bytes;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.bytes, one);
    ck_assert_uint_eq(st.entries, 1);
    char name[64];
    for (unsigned i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "n%u.example.test", i);
        store_many(c, name, 120);
        resolver_cache_stats(c, &st);
        ck_assert_uint_le(st.bytes, RESOLVER_CACHE_MIN_MEMORY);
    }
    /* About 2.2 KB each: the bytes, not the 1000 entries, are the bound. */
    ck_assert_uint_ge(st.entries, RESOLVER_CACHE_MIN_MEMORY / one - 1);
    ck_assert_uint_le(st.entries, RESOLVER_CACHE_MIN_MEMORY / one);
    ck_assert_uint_eq(st.evictions, 101 - st.entries);
    ck_assert_uint_eq(st.bytes, st.entries * one);
    ldns_pkt *p = hit(c, "n99.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p); /* the newest is always there */
    ldns_pkt_free(p);
    ck_assert_ptr_null(hit(c, "n0.example.test", LDNS_RR_TYPE_A, 1, 0));
    resolver_cache_free(c);
    /* A bound under 64 KiB is refused. */
    struct resolver_cache_config cfg;
    resolver_cache_config_default(&cfg);
    cfg.memory = RESOLVER_CACHE_MIN_MEMORY - 1;
    ck_assert_int_eq(resolver_cache_new(&c, &cfg), UV_EINVAL);
}
END_TEST

/* An answer longer than an entry may hold (an upstream can make them 64 KiB at will) is kept
 * as what a UDP client can be sent of it: the header with TC, for the client to ask again
 * over TCP, where it is a miss and the forwarder fetches it whole. */
START_TEST(cache_keeps_an_oversized_answer_as_its_truncation)
{
    struct resolver_cache *c = cache_with(100, 0);
    size_t len = store_many(c, "big.example.test", 1200);
    ck_assert_uint_gt(len, RESOLVER_CACHE_MAX_ANSWER);
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.oversized, 1);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_lt(st.bytes, 256);
    ldns_pkt *p = hit(c, "BIG.example.test", LDNS_RR_TYPE_A, 0x5151, 1232);
    ck_assert_ptr_nonnull(p);
    ck_assert(ldns_pkt_tc(p) && ldns_pkt_qr(p) && ldns_pkt_ra(p));
    ck_assert_uint_eq(ldns_pkt_id(p), 0x5151);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p) + ldns_pkt_nscount(p), 0);
    ldns_pkt_free(p);
    struct creq *r = query("big.example.test", LDNS_RR_TYPE_A, 2, 1232, false);
    r->req.proto = DNS_PROTO_TCP;
    ck_assert_int_eq(resolver_cache_serve(c, &r->req), DNS_NEXT);
    free(r);
    /* An answer just under the limit is kept whole. */
    len = store_many(c, "large.example.test", 900);
    ck_assert_uint_le(len, RESOLVER_CACHE_MAX_ANSWER);
    r = query("large.example.test", LDNS_RR_TYPE_A, 3, 1232, false);
    r->req.proto = DNS_PROTO_TCP;
    ck_assert_int_eq(resolver_cache_serve(c, &r->req), DNS_DONE);
    ck_assert_uint_eq(dns_wire_get_u16(r->req.ans + 6), 900);
    free(r);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_eviction_keeps_the_bound)
{
    struct resolver_cache *c = cache_with(4, 0);
    char name[64], line[128];
    for (unsigned i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "n%u.example.test", i);
        snprintf(line, sizeof(line), "%s. 300 IN A 192.0.2.%u", name, i);
        const char *an[] = {line, NULL};
        store(c, name, LDNS_RR_TYPE_A, 0, an, NULL, NULL, 0);
        struct resolver_cache_stats st;
        resolver_cache_stats(c, &st);
        ck_assert_uint_le(st.entries, 4);
    }
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.entries, 4);
    ck_assert_uint_eq(st.capacity, 4);
    ck_assert_uint_eq(st.evictions, 6);
    ck_assert_uint_eq(st.inserts, 10);
    ldns_pkt *p = hit(c, "n9.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p); /* the newest is always there */
    ldns_pkt_free(p);
    unsigned present = 0;
    for (unsigned i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "n%u.example.test", i);
        p = hit(c, name, LDNS_RR_TYPE_A, 1, 0);
        if (p) {
            present++;
            ldns_pkt_free(p);
        }
    }
    ck_assert_uint_eq(present, 4);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_clock_gives_hit_entries_a_second_chance)
{
    struct resolver_cache *c = cache_with(2, 0);
    static const char *const a[] = {"a.example.test. 300 IN A 192.0.2.1", NULL};
    static const char *const b[] = {"b.example.test. 300 IN A 192.0.2.2", NULL};
    static const char *const n[] = {"n.example.test. 300 IN A 192.0.2.3", NULL};
    store(c, "a.example.test", LDNS_RR_TYPE_A, 0, a, NULL, NULL, 0);
    store(c, "b.example.test", LDNS_RR_TYPE_A, 0, b, NULL, NULL, 0);
    ldns_pkt_free(hit(c, "a.example.test", LDNS_RR_TYPE_A, 1, 0));
    store(c, "n.example.test", LDNS_RR_TYPE_A, 0, n, NULL, NULL, 0);
    ldns_pkt *p = hit(c, "a.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p); /* used, so b went */
    ldns_pkt_free(p);
    ck_assert_ptr_null(hit(c, "b.example.test", LDNS_RR_TYPE_A, 1, 0));
    resolver_cache_free(c);
}
END_TEST

static const char *const soa[] = {
    "example.test. 3600 IN SOA ns.example.test. host.example.test. 1 7200 1800 86400 30", NULL};

START_TEST(cache_negative_answers_live_for_soa_minimum)
{
    struct resolver_cache *c = cache_with(100, 0);
    store(c, "nope.example.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, soa, NULL, 0);
    store(c, "www.example.test", LDNS_RR_TYPE_AAAA, 0, NULL, soa, NULL, 0); /* NODATA */
    ldns_pkt *p = hit(c, "nope.example.test", LDNS_RR_TYPE_A, 5, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
    ck_assert_uint_eq(ldns_pkt_nscount(p), 1);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_AUTHORITY), 30); /* min(3600, 30) */
    ldns_pkt_free(p);
    fake_now += 29000;
    p = hit(c, "www.example.test", LDNS_RR_TYPE_AAAA, 5, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(p), 0);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_AUTHORITY), 1);
    ldns_pkt_free(p);
    fake_now += 1000;
    ck_assert_ptr_null(hit(c, "nope.example.test", LDNS_RR_TYPE_A, 5, 0));
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_AAAA, 5, 0));
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_skips_negative_without_soa_and_truncated)
{
    struct resolver_cache *c = cache_with(100, 0);
    store(c, "nosoa.example.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL, NULL, 0);
    store(c, "tc.example.test", LDNS_RR_TYPE_A, 0, NULL, NULL, NULL, DNS_FLAG_TC);
    static const char *const tca[] = {"tc2.example.test. 300 IN A 192.0.2.1", NULL};
    store(c, "tc2.example.test", LDNS_RR_TYPE_A, 0, tca, NULL, NULL, DNS_FLAG_TC);
    ck_assert_ptr_null(hit(c, "nosoa.example.test", LDNS_RR_TYPE_A, 1, 0));
    ck_assert_ptr_null(hit(c, "tc.example.test", LDNS_RR_TYPE_A, 1, 0));
    ck_assert_ptr_null(hit(c, "tc2.example.test", LDNS_RR_TYPE_A, 1, 0));
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.inserts, 0);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_scrubs_records_outside_the_chain)
{
    struct resolver_cache *c = cache_with(100, 0);
    static const char *const an[] = {
        "www.example.test. 300 IN CNAME web.example.test.",
        "web.example.test. 300 IN A 192.0.2.20",
        "bank.example.com. 86400 IN A 6.6.6.6",        /* not on the chain */
        "www.example.test. 300 IN TXT \"not asked\"",  /* wrong type */
        "other.example.test. 300 IN CNAME evil.test.", /* a CNAME off the chain */
        NULL};
    static const char *const ns[] = {"example.test. 86400 IN NS ns.evil.test.", NULL};
    static const char *const ar[] = {"ns.evil.test. 86400 IN A 6.6.6.7", NULL};
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, an, ns, ar, 0);
    ldns_pkt *p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p);
    char *text = support_section_text(p, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(text, "web.example.test.\t300\tIN\tA\t192.0.2.20\n"
                           "www.example.test.\t300\tIN\tCNAME\tweb.example.test.");
    free(text);
    ck_assert_uint_eq(ldns_pkt_nscount(p), 0);
    ck_assert_uint_eq(ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
    /* Nothing about the other names went in. */
    ck_assert_ptr_null(hit(c, "bank.example.com", LDNS_RR_TYPE_A, 1, 0));
    ck_assert_ptr_null(hit(c, "ns.evil.test", LDNS_RR_TYPE_A, 1, 0));
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_negative_keeps_only_the_soa_above_the_name)
{
    struct resolver_cache *c = cache_with(100, 0);
    static const char *const ns[] = {
        "evil.test. 3600 IN SOA ns.evil.test. host.evil.test. 1 7200 1800 86400 3600",
        "example.test. 3600 IN NS ns.evil.test.",
        "example.test. 3600 IN SOA ns.example.test. host.example.test. 1 7200 1800 86400 60", NULL};
    store(c, "gone.example.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, ns, NULL, 0);
    ldns_pkt *p = hit(c, "gone.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p);
    char *text = support_section_text(p, LDNS_SECTION_AUTHORITY);
    ck_assert_str_eq(text, "example.test.\t60\tIN\tSOA\tns.example.test. host.example.test. 1 "
                           "7200 1800 86400 60");
    free(text);
    ldns_pkt_free(p);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_keys_on_the_do_bit)
{
    struct resolver_cache *c = cache_with(100, 0);
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, www_a, NULL, NULL, 0);
    struct creq *r = query("www.example.test", LDNS_RR_TYPE_A, 1, 1232, true);
    ck_assert_int_eq(resolver_cache_serve(c, &r->req), DNS_NEXT);
    free(r);
    resolver_cache_free(c);
}
END_TEST

/* The forwarder gave up on every upstream, all silent: the stale answer when the cache has
 * one, else its own SERVFAIL, as resolver/forward.c's fail_all() does. */
static struct creq *forward_failure(struct resolver_cache *c, const char *qname, int edns)
{
    struct creq *r = query(qname, LDNS_RR_TYPE_A, 77, edns, false);
    if (!resolver_cache_fail(c, &r->req, DNS_FAILURE_SILENT))
        dns_chain_reply_error(&r->req, DNS_RCODE_SERVFAIL, DNS_EDE_NO_REACHABLE_AUTHORITY);
    return r;
}

static int ede_of(const struct dns_request *req)
{
    const uint8_t *a = req->ans;
    size_t n = req->ans_len;
    if (n < 6 || dns_wire_get_u16(a + n - 6) != DNS_EDNS_OPT_EDE)
        return -1;
    return dns_wire_get_u16(a + n - 2);
}

START_TEST(cache_serves_stale_when_forwarding_fails)
{
    struct resolver_cache *c = cache_with(100, 3600);
    static const char *const an[] = {"www.example.test. 10 IN A 192.0.2.30", NULL};
    store(c, "www.example.test", LDNS_RR_TYPE_A, 0, an, NULL, NULL, 0);
    fake_now += 20000; /* expired 10 s ago */
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0));
    struct creq *r = forward_failure(c, "www.example.test", 1232);
    ldns_pkt *p = support_pkt_from_wire(r->req.ans, r->req.ans_len);
    ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_id(p), 77);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_ANSWER), 30);
    ldns_pkt_free(p);
    ck_assert_int_eq(ede_of(&r->req), DNS_EDE_STALE_ANSWER);
    free(r);
    /* For the next 30 s the stale answer comes at once, without waiting for upstream. */
    fake_now += 1000;
    p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 2, 1232);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(first_ttl(p, LDNS_SECTION_ANSWER), 30);
    ldns_pkt_free(p);
    fake_now += 30000;
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_A, 3, 0));
    /* Past the stale window, the failure stands. */
    fake_now += 3600 * 1000;
    r = forward_failure(c, "www.example.test", 1232);
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(r->req.ans + 2)), DNS_RCODE_SERVFAIL);
    free(r);
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.served_stale, 2);
    resolver_cache_free(c);
}
END_TEST

START_TEST(cache_holds_servfail_briefly)
{
    struct resolver_cache *c = cache_with(100, 0);
    free(forward_failure(c, "down.example.test", 0));
    struct creq *r = query("down.example.test", LDNS_RR_TYPE_A, 9, 1232, false);
    ck_assert_int_eq(resolver_cache_serve(c, &r->req), DNS_DONE);
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(r->req.ans + 2)), DNS_RCODE_SERVFAIL);
    ck_assert_int_eq(ede_of(&r->req), DNS_EDE_NO_REACHABLE_AUTHORITY);
    free(r);
    fake_now += 5000;
    ck_assert_ptr_null(hit(c, "down.example.test", LDNS_RR_TYPE_A, 1, 0));
    resolver_cache_free(c);
}
END_TEST

/* Only answers (NOERROR, NXDOMAIN) without TC are kept, whoever calls: an upstream's REFUSED
 * or SERVFAIL, a truncated reply or a reply to another question never is. */
START_TEST(cache_stores_only_whole_answers_to_the_question)
{
    struct resolver_cache *c = cache_with(100, 0);
    uint8_t msg[512];
    struct creq *r = query("www.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    static const unsigned rcodes[] = {DNS_RCODE_REFUSED, DNS_RCODE_SERVFAIL, DNS_RCODE_FORMERR};
    for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
        size_t len = fake_reply(msg, sizeof(msg), 1, "www.example.test", LDNS_RR_TYPE_A, rcodes[i],
                                www_a, NULL, NULL, 0, false);
        resolver_cache_store(c, &r->req, msg, len, NULL);
    }
    size_t len = fake_reply(msg, sizeof(msg), 1, "www.example.test", LDNS_RR_TYPE_A, 0, www_a, NULL,
                            NULL, DNS_FLAG_TC, false);
    resolver_cache_store(c, &r->req, msg, len, NULL);
    len = fake_reply(msg, sizeof(msg), 1, "other.example.test", LDNS_RR_TYPE_A, 0, www_a, NULL,
                     NULL, 0, false);
    resolver_cache_store(c, &r->req, msg, len, NULL);
    free(r);
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0));
    struct resolver_cache_stats st;
    resolver_cache_stats(c, &st);
    ck_assert_uint_eq(st.inserts, 0);
    resolver_cache_free(c);
}
END_TEST

/* An upstream's chain into svcdns's own zone is answered from svcdns's data every time: the
 * reply is never kept, so no upstream record for a cluster name can be served from here. */
START_TEST(cache_never_stores_a_chain_into_our_own_zone)
{
    struct resolver_cache *c = cache_with(100, 0);
    uint8_t msg[512];
    static const char *const poisoned[] = {"www.example.test. 300 IN CNAME echo.default.svc.local.",
                                           "echo.default.svc.local. 86400 IN A 6.6.6.6", NULL};
    struct creq *r = query("www.example.test", LDNS_RR_TYPE_A, 1, 0, false);
    size_t len = fake_reply(msg, sizeof(msg), 1, "www.example.test", LDNS_RR_TYPE_A, 0, poisoned,
                            NULL, NULL, 0, false);
    resolver_cache_store(c, &r->req, msg, len, &fake_own_names);
    ck_assert_ptr_null(hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0));
    /* The same reply from a server with no zone of its own is an ordinary answer. */
    resolver_cache_store(c, &r->req, msg, len, NULL);
    ldns_pkt *p = hit(c, "www.example.test", LDNS_RR_TYPE_A, 1, 0);
    ck_assert_ptr_nonnull(p);
    ldns_pkt_free(p);
    free(r);
    resolver_cache_free(c);
}
END_TEST

static const struct {
    const char *text;
    int rc;
    uint32_t seconds;
} durations[] = {
    {"90", 0, 90},      {"90s", 0, 90}, {"30m", 0, 1800}, {"1h", 0, 3600},        {"2d", 0, 172800},
    {"1h30m", 0, 5400}, {"0", 0, 0},    {"", -1, 0},      {"h", -1, 0},           {"1h30", -1, 0},
    {"10x", -1, 0},     {"-5", -1, 0},  {"31d", -1, 0},   {"99999999999", -1, 0},
};

static const struct {
    const char *text;
    int rc;
    size_t bytes;
} sizes[] = {
    {"1048576", 0, 1048576},
    {"512K", 0, 524288},
    {"512k", 0, 524288},
    {"64M", 0, (size_t)64 << 20},
    {"64Mi", 0, (size_t)64 << 20},
    {"64MiB", 0, (size_t)64 << 20},
    {"64MB", 0, (size_t)64 << 20},
    {"1G", 0, (size_t)1 << 30},
    {"64G", 0, (size_t)64 << 30},
    {"0", 0, 0},
    {"65G", -1, 0},
    {"", -1, 0},
    {"M", -1, 0},
    {"10X", -1, 0},
    {"-1M", -1, 0},
    {"1.5G", -1, 0},
    {"64 M", -1, 0},
    {"99999999999999999999", -1, 0},
};

START_TEST(cache_parses_sizes)
{
    size_t n = 12345;
    int rc = resolver_cache_parse_size(sizes[_i].text, &n);
    ck_assert_msg(rc == sizes[_i].rc, "\"%s\": rc %d", sizes[_i].text, rc);
    if (rc == 0)
        ck_assert_uint_eq(n, sizes[_i].bytes);
}
END_TEST

START_TEST(cache_parses_durations)
{
    uint32_t s = 12345;
    int rc = resolver_cache_parse_duration(durations[_i].text, &s);
    ck_assert_msg(rc == durations[_i].rc, "\"%s\": rc %d", durations[_i].text, rc);
    if (rc == 0)
        ck_assert_uint_eq(s, durations[_i].seconds);
}
END_TEST

Suite *cache_suite(void); /* for tests/resolver/main.c */
Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cache_hit_patches_id_and_question_case);
    tcase_add_test(tc, cache_ttl_counts_down_and_expires);
    tcase_add_test(tc, cache_caps_ttl_and_treats_high_bit_as_zero);
    tcase_add_test(tc, cache_eviction_keeps_the_bound);
    tcase_add_test(tc, cache_memory_bounds_the_bytes_entries_hold);
    tcase_add_test(tc, cache_keeps_an_oversized_answer_as_its_truncation);
    tcase_add_test(tc, cache_clock_gives_hit_entries_a_second_chance);
    tcase_add_test(tc, cache_negative_answers_live_for_soa_minimum);
    tcase_add_test(tc, cache_skips_negative_without_soa_and_truncated);
    tcase_add_test(tc, cache_scrubs_records_outside_the_chain);
    tcase_add_test(tc, cache_negative_keeps_only_the_soa_above_the_name);
    tcase_add_test(tc, cache_keys_on_the_do_bit);
    tcase_add_test(tc, cache_serves_stale_when_forwarding_fails);
    tcase_add_test(tc, cache_holds_servfail_briefly);
    tcase_add_test(tc, cache_stores_only_whole_answers_to_the_question);
    tcase_add_test(tc, cache_never_stores_a_chain_into_our_own_zone);
    tcase_add_loop_test(tc, cache_parses_durations, 0,
                        (int)(sizeof(durations) / sizeof(durations[0])));
    tcase_add_loop_test(tc, cache_parses_sizes, 0, (int)(sizeof(sizes) / sizeof(sizes[0])));
    suite_add_tcase(s, tc);
    return s;
}
