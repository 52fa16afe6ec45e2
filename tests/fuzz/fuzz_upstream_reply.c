/* tests/fuzz/fuzz_upstream_reply.c - hostile upstream replies through validation, scrubbing,
 * the client reply, the cache insert, a cache hit and a stale answer (Unbound's fuzz_1 idea:
 * a fixed question, the reply is the input). Must never crash, leak or write out of bounds,
 * and whatever it emits must parse again as a reply to the same question.
 *
 *   CC=clang cmake -B build-fuzz -G Ninja -DFUZZ=ON && cmake --build build-fuzz -j2 \
 *       --target fuzz_upstream_reply
 *   build-fuzz/tests/fuzz_upstream_reply -max_total_time=60 tests/fuzz/corpus/upstream_reply
 *
 * Input: one control byte, then the message. Control bit 0 clear: the message is taken from
 * byte 12 on, after a header built from the input's first 12 bytes with our ID and QDCOUNT 1
 * and our question, so the fuzzer spends its time on the records; set: the bytes are the whole
 * reply as is (ID and question must match by luck, which exercises the mismatch paths). Bits
 * 1-2 pick the question type (A, AAAA, MX, ANY), bit 3 the client's EDNS, bit 4 its DO bit,
 * bit 5 whether svcdns has a zone of its own ("local."), which a chain may lead into. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns/chain.h"
#include "dns/log.h"
#include "resolver/cache.h"
#include "resolver/forward.h"
#include "resolver/scrub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID 0x4242

static uint64_t clock_now;

static uint64_t fake_clock(void)
{
    return clock_now;
}

static uint8_t msg[DNS_MAX_MSG + 64];
static uint8_t ans[DNS_MAX_MSG];
static const uint8_t qname_wire[] = "\3www\7example\4test";

static size_t make_query(uint8_t *out, uint16_t qtype, bool edns, bool dnssec_ok)
{
    struct dns_cursor c;
    dns_cursor_init(&c, out, 512);
    dns_cursor_put_u16(&c, 0x1111);
    dns_cursor_put_u16(&c, DNS_FLAG_RD);
    dns_cursor_put_u16(&c, 1);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, edns ? 1 : 0);
    dns_cursor_put(&c, "\3WwW\7exAMple\4TEST", sizeof(qname_wire));
    dns_cursor_put_u16(&c, qtype);
    dns_cursor_put_u16(&c, DNS_CLASS_IN);
    if (edns) {
        dns_cursor_put_u8(&c, 0);
        dns_cursor_put_u16(&c, DNS_TYPE_OPT);
        dns_cursor_put_u16(&c, 1232);
        dns_cursor_put_u32(&c, dnssec_ok ? DNS_EDNS_DO : 0);
        dns_cursor_put_u16(&c, 0);
    }
    return c.pos;
}

/* svcdns's own zone: everything under "local.", answered with an authoritative NXDOMAIN. */
static bool own_is_authoritative(const void *self, const struct dns_name *name)
{
    (void)self;
    static const struct dns_name local = {7, "\5local"};
    return dns_name_is_subdomain(name, &local);
}

static size_t own_answer(const void *self, const struct dns_query *q, const uint8_t *pkt,
                         uint8_t *out, size_t cap)
{
    (void)self;
    return dns_wire_error_reply(out, cap, q, pkt, DNS_RCODE_NXDOMAIN, DNS_FLAG_AA, -1);
}

static const struct dns_names own_names = {NULL, NULL, own_answer, own_is_authoritative, NULL};

static void request(struct dns_request *req, uint8_t *pkt, size_t len)
{
    memset(req, 0, sizeof(*req));
    req->pkt = pkt;
    req->pkt_len = len;
    req->ans = ans;
    req->ans_cap = sizeof(ans);
    if (dns_wire_parse_query(&req->q, pkt, len) != DNS_PARSE_OK)
        __builtin_trap();
}

/* Whatever we emit must be a well-formed reply to the client's question, with its ID. */
static void require_reply(const struct dns_request *req)
{
    struct resolver_scrub_question sq = {&req->q.qname, req->q.qtype, req->q.qclass,
                                         req->q.has_edns && (req->q.edns_flags & DNS_EDNS_DO),
                                         NULL};
    struct resolver_scrub_reply info;
    if (req->ans_len > req->ans_cap ||
        resolver_scrub_check(req->ans, req->ans_len, req->q.id, &sq, &info) != RESOLVER_SCRUB_OK)
        __builtin_trap();
}

static size_t build_message(const uint8_t *data, size_t size, bool raw, uint16_t qtype)
{
    if (raw) {
        memcpy(msg, data, size);
        return size;
    }
    if (size < DNS_HEADER_SIZE)
        return 0;
    memcpy(msg, data, DNS_HEADER_SIZE);
    dns_wire_put_u16(msg, ID);
    msg[2] |= 0x80; /* QR */
    msg[2] &= 0x87; /* opcode QUERY */
    dns_wire_put_u16(msg + 4, 1);
    size_t n = DNS_HEADER_SIZE;
    memcpy(msg + n, qname_wire, sizeof(qname_wire));
    n += sizeof(qname_wire);
    dns_wire_put_u16(msg + n, qtype);
    dns_wire_put_u16(msg + n + 2, DNS_CLASS_IN);
    n += 4;
    memcpy(msg + n, data + DNS_HEADER_SIZE, size - DNS_HEADER_SIZE);
    return n + size - DNS_HEADER_SIZE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t types[] = {DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX, DNS_TYPE_ANY};
    static uint8_t pkt[512], pkt2[512];
    static struct dns_request req, req2;
    if (size < 1 || size > DNS_MAX_MSG)
        return 0;
    log_set_level(LOG_LEVEL_ERROR);
    uint8_t ctl = data[0];
    uint16_t qtype = types[(ctl >> 1) & 3];
    bool edns = ctl & 8, dnssec_ok = ctl & 16;
    const struct dns_names *own = (ctl & 32) ? &own_names : NULL;
    size_t len = build_message(data + 1, size - 1, ctl & 1, qtype);
    if (len == 0)
        return 0;

    request(&req, pkt, make_query(pkt, qtype, edns, dnssec_ok));
    struct dns_name lower = req.q.qname;
    struct resolver_scrub_question sq = {&lower, qtype, DNS_CLASS_IN, dnssec_ok, NULL};
    struct resolver_scrub_reply info;
    if (resolver_scrub_check(msg, len, ID, &sq, &info) != RESOLVER_SCRUB_OK)
        return 0;
    if (resolver_forward_build_reply(&req, msg, len, (info.flags & DNS_FLAG_TC) != 0, own) < 0)
        return 0;
    if (req.alias.active)
        dns_request_end_alias(&req); /* a chain into our zone: spliced as the chain's end does */
    require_reply(&req);

    struct resolver_cache_config cfg;
    resolver_cache_config_default(&cfg);
    cfg.size = 4;
    cfg.memory = RESOLVER_CACHE_MIN_MEMORY; /* one shard: large answers are kept truncated */
    cfg.serve_stale_s = 60;
    cfg.now_ms = fake_clock;
    struct resolver_cache *cache = NULL;
    if (resolver_cache_new(&cache, &cfg) != 0)
        __builtin_trap();
    clock_now = 1000;
    request(&req, pkt, make_query(pkt, qtype, edns, dnssec_ok));
    resolver_cache_store(cache, &req, msg, len, own);

    request(&req2, pkt2, make_query(pkt2, qtype, !edns, dnssec_ok && !edns));
    req2.q.id = 0x2222;
    if (resolver_cache_serve(cache, &req2) == DNS_DONE)
        require_reply(&req2);

    /* Past any TTL, the forwarder fails: a stale answer, if one was stored. */
    clock_now += 3601u * 1000u;
    request(&req2, pkt2, make_query(pkt2, qtype, edns, dnssec_ok));
    if (!resolver_cache_fail(cache, &req2, DNS_FAILURE_SILENT))
        dns_chain_reply_error(&req2, DNS_RCODE_SERVFAIL, DNS_EDE_NO_REACHABLE_AUTHORITY);
    require_reply(&req2);
    resolver_cache_free(cache);
    return 0;
}
