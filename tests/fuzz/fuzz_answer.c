/* tests/fuzz/fuzz_answer.c - well-formed queries made from the input, through the answer path:
 * the search stage, the zones stage and, for what leaves the cluster, a stand-in forwarder,
 * over a store built once from a small manifest set.
 *
 * fuzz_wire_query feeds raw bytes, most of which end in the parser; here every input is a
 * query the chain takes (a name of labels from the store's own vocabulary or raw bytes, a
 * type, a class, EDNS, the client: a Pod, so that autopath runs, or not), so the fuzzer's
 * time goes to the answers. Each query runs over UDP and over TCP, each as made and with its
 * name lower-cased. Every reply must:
 *   - be exactly one, fit its buffer, and on UDP the client's limit;
 *   - echo the ID, RD and the question byte for byte, with QR set and OPT exactly when the
 *     query had one;
 *   - parse with ldns and pass resolver_scrub_check() (every record whole, names in bounds);
 *   - for a name under the cluster domain that nothing forwarded: be authoritative, NOERROR
 *     or NXDOMAIN, with the SOA when the answer is empty;
 *   - not depend on the name's case (the replies equal but for the echoed question's case);
 *   - over UDP, equal the TCP reply, or be the empty TC reply of one that does not fit (ANY
 *     aside: RFC 8482 lets a UDP answer to ANY be smaller).
 *
 * Input (bytes past the end read as 0): flags (bit 0 EDNS, 1 DO, 2 the client is the Pod in
 * prod, 3 a plan with the forwarder, 4 RD, 5 CD, 6-7 what the forwarder answers: NOERROR,
 * NXDOMAIN, SERVFAIL, REFUSED); type (an index into the type table, past it a raw 16-bit
 * type from the next two bytes); class (IN mostly, CH, ANY; bit 3 upper-cases the name);
 * EDNS payload size (an index); the forwarder's A records / 16; the number of labels; then
 * each label: an index into the vocabulary, past it a raw label of up to 63 input bytes.
 *
 *   CC=clang cmake -B build-fuzz -G Ninja -DFUZZ=ON && cmake --build build-fuzz \
 *       --target fuzz_answer
 *   build-fuzz/tests/fuzz_answer -max_total_time=60 tests/fuzz/corpus/answer */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns/chain.h"
#include "dns/log.h"
#include "resolver/scrub.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/manifest.h"
#include "zones/model.h"
#include "zones/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char manifests[] =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod}\n"
    "spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20, 'fd00::20'],\n"
    "       ipFamilies: [IPv4, IPv6], ports: [{name: http, port: 80}, {name: dns, port: 53,\n"
    "       protocol: UDP}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: prod}\n"
    "spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: db-x, namespace: prod, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv4\nports: [{name: pg, port: 5433}]\n"
    "endpoints: [{addresses: [10.244.2.1], hostname: db-0}, {addresses: [10.244.2.2]},\n"
    "            {addresses: [10.244.2.3], conditions: {ready: false}}]\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: db-y, namespace: prod, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv6\nports: [{name: pg, port: 5433}]\nendpoints: [{addresses: ['fd00::7']}]\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: www.example.com}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: web.prod.svc.local}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: loop-a, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: loop-b.prod.svc.local}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: loop-b, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: loop-a.prod.svc.local}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\n"
    "spec: {clusterIP: None, ports: [{name: http, port: 80}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
    "status: {podIP: 127.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\n"
    "metadata: {name: web-0, namespace: default, labels: {app: big}}\n"
    "spec: {hostname: web-0, subdomain: big}\nstatus: {podIP: 10.244.9.9}\n";

/* The headless Service big gets 100 endpoints: over the UDP limit in every form. */
static char *big_manifest(void)
{
    static char text[16384];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                                "metadata: {name: big-x, namespace: default,\n"
                                "           labels: {kubernetes.io/service-name: big}}\n"
                                "addressType: IPv4\nports: [{name: http, port: 8080}]\n"
                                "endpoints:\n");
    for (int i = 1; i <= 100 && n < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "  - addresses: [10.244.100.%d]\n", i);
    return text;
}

static const char *const vocabulary[] = {
    "local",   "svc",      "pod",       "prod",        "default",    "empty",      "kube-system",
    "web",     "db",       "ext",       "alias",       "loop-a",     "loop-b",     "big",
    "db-0",    "web-0",    "_http",     "_tcp",        "_udp",       "_pg",        "_dns",
    "in-addr", "arpa",     "ip6",       "10",          "96",         "0",          "20",
    "244",     "2",        "1",         "9",           "10-244-2-1", "10-244-2-2", "10-244-9-9",
    "fd00--7", "fd00--20", "127-0-0-1", "dns-version", "www",        "example",    "com",
    "ns",      "dns",      "*",         "a",           "b",          "c",          "d",
    "e",       "f",        "3",         "4",           "5",          "6",          "7",
    "8",       "version",  "bind",      "hostname",    "cluster",    "WEB",        "Svc",
};
#define N_VOCABULARY (sizeof(vocabulary) / sizeof(vocabulary[0]))

static const uint16_t types[] = {
    DNS_TYPE_A,
    DNS_TYPE_AAAA,
    DNS_TYPE_SRV,
    DNS_TYPE_PTR,
    DNS_TYPE_CNAME,
    DNS_TYPE_TXT,
    DNS_TYPE_SOA,
    DNS_TYPE_NS,
    DNS_TYPE_ANY,
    DNS_TYPE_MX,
    DNS_TYPE_HINFO,
    DNS_TYPE_OPT,
    DNS_TYPE_AXFR,
    DNS_TYPE_IXFR,
    0,
    99,
    65535,
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

static const uint16_t payloads[] = {512, 1232, 4096, 0, 511, 1233, 65535, 1400};
#define N_PAYLOADS (sizeof(payloads) / sizeof(payloads[0]))

#define ID 0x4242

/* The two plans: with forwarding (search with upstream, chase outside, reverse misses fall
 * through, a stand-in forwarder) and without. */
struct plan {
    struct zones_answer zones;
    struct resolver_search search;
    struct dns_chain chain;
};
static struct plan plans[2];
static struct zones_objects objs;
static struct zones_store *store;

/* What the current query asks of the stand-in forwarder, and whether it ran. */
static unsigned upstream_rcode;
static unsigned upstream_count;
static bool forwarded;
static int sent;

/* Answers the (possibly followed) question the way an upstream reply ends up: rcode, A
 * records, an SOA for a negative answer, OPT when the client had one. */
static enum dns_verdict fake_forward(void *self, struct dns_request *req)
{
    (void)self;
    forwarded = true;
    struct dns_cursor c;
    uint16_t an = 0;
    uint16_t ns = 0;
    uint16_t ar = 0;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, &req->q, req->pkt, DNS_FLAG_RA, upstream_rcode);
    if (upstream_rcode == DNS_RCODE_NOERROR && req->q.qtype == DNS_TYPE_A) {
        for (; an < upstream_count; an++) {
            static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2};
            dns_cursor_put(&c, rr, sizeof(rr));
            dns_cursor_put_u8(&c, (uint8_t)an);
        }
    }
    if (an == 0 && (upstream_rcode == DNS_RCODE_NOERROR || upstream_rcode == DNS_RCODE_NXDOMAIN)) {
        static const uint8_t soa[] = {0, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0, 0, 0, 0, 1,
                                      0, 0, 0, 1, 0, 0, 0, 1, 0,  0, 0,  1, 0, 0, 0, 60};
        dns_cursor_put(&c, soa, sizeof(soa));
        ns = 1;
    }
    if (req->q.has_edns) {
        dns_wire_put_opt(&c, &req->q, 0, -1);
        ar = 1;
    }
    if (c.err) {
        dns_chain_reply_error(req, DNS_RCODE_SERVFAIL, -1);
        return DNS_DONE;
    }
    dns_wire_reply_counts(req->ans, an, ns, ar);
    req->ans_len = c.pos;
    return DNS_DONE;
}

static void init_plan(struct plan *p, bool forwarding)
{
    p->zones.store = store;
    p->zones.cfg.fallthrough_reverse = forwarding;
    p->zones.cfg.recursion_available = forwarding;
    p->zones.cfg.chase_outside = forwarding;
    struct resolver_search_config scfg;
    resolver_search_config_default(&scfg);
    scfg.upstream = forwarding;
    struct dns_names names = zones_answer_names(&p->zones);
    if (resolver_search_init(&p->search, &scfg, &names) < 0)
        abort();
    dns_chain_init(&p->chain);
    p->chain.recursion_available = forwarding;
    dns_chain_set(&p->chain, DNS_STAGE_SEARCH,
                  &(struct dns_stage_handler){resolver_search_serve, &p->search});
    dns_chain_set(&p->chain, DNS_STAGE_ZONES,
                  &(struct dns_stage_handler){zones_answer_serve, &p->zones});
    if (forwarding)
        dns_chain_set(&p->chain, DNS_STAGE_FORWARD,
                      &(struct dns_stage_handler){fake_forward, NULL});
}

static void init(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    zones_objects_init(&objs);
    zones_manifest_load_buffer(&objs, "fuzz.yaml", manifests, sizeof(manifests) - 1);
    const char *big = big_manifest();
    zones_manifest_load_buffer(&objs, "big.yaml", big, strlen(big));
    struct zones_cidr cidrs[2];
    if (zones_cidr_parse("10.96.0.0/12", &cidrs[0]) != 0 ||
        zones_cidr_parse("fd00::/108", &cidrs[1]) != 0)
        abort();
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    if (objs.n_diags || zones_model_build(&store, &objs, &cfg, cidrs, 2, NULL) < 0)
        abort();
    init_plan(&plans[0], false);
    init_plan(&plans[1], true);
}

/* --- the query ------------------------------------------------------------------------- */

struct input {
    const uint8_t *data;
    size_t size, pos;
};

static uint8_t next(struct input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

struct query {
    uint8_t wire[512];
    size_t len;
    size_t question_len; /* bytes after the header */
    bool edns, forwarding;
    uint16_t qtype, qclass;
    struct sockaddr_in client;
};

/* The name in wire form; labels that would make it longer than 255 bytes are left off.
 * Returns its length. */
static size_t make_name(struct input *in, uint8_t *out, bool upper)
{
    size_t len = 0;
    unsigned labels = next(in) % 10;
    for (unsigned i = 0; i < labels; i++) {
        uint8_t pick = next(in);
        uint8_t label[DNS_MAX_LABEL];
        size_t n;
        if (pick < N_VOCABULARY) {
            n = strlen(vocabulary[pick]);
            memcpy(label, vocabulary[pick], n);
        } else {
            n = (size_t)(pick - N_VOCABULARY) % DNS_MAX_LABEL + 1;
            for (size_t k = 0; k < n; k++)
                label[k] = next(in);
        }
        if (len + 1 + n + 1 > DNS_MAX_NAME)
            break;
        out[len++] = (uint8_t)n;
        for (size_t k = 0; k < n; k++)
            out[len++] = upper ? (uint8_t)toupper(label[k]) : label[k];
    }
    out[len++] = 0;
    return len;
}

static void make_query(struct input *in, struct query *q)
{
    uint8_t flags = next(in);
    uint8_t type = next(in);
    uint8_t klass = next(in);
    uint16_t payload = payloads[next(in) % N_PAYLOADS];
    upstream_count = 16u * next(in);
    upstream_rcode = (unsigned[]){DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, DNS_RCODE_SERVFAIL,
                                  DNS_RCODE_REFUSED}[flags >> 6];
    q->edns = flags & 1;
    q->forwarding = flags & 8;
    if (type < N_TYPES) {
        q->qtype = types[type];
    } else {
        uint8_t hi = next(in);
        q->qtype = (uint16_t)(hi << 8 | next(in));
    }
    q->qclass = (klass & 7) < 6 ? DNS_CLASS_IN : (klass & 7) == 6 ? DNS_CLASS_CH : DNS_CLASS_ANY;
    memset(&q->client, 0, sizeof(q->client));
    q->client.sin_family = AF_INET;
    q->client.sin_addr.s_addr = htonl(flags & 4 ? 0x7f000001 : 0x7f000002);

    struct dns_cursor c;
    dns_cursor_init(&c, q->wire, sizeof(q->wire));
    dns_cursor_put_u16(&c, ID);
    dns_cursor_put_u16(&c,
                       (uint16_t)((flags & 16 ? DNS_FLAG_RD : 0) | (flags & 32 ? DNS_FLAG_CD : 0)));
    dns_cursor_put_u16(&c, 1);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, q->edns ? 1 : 0);
    uint8_t name[DNS_MAX_NAME];
    size_t name_len = make_name(in, name, klass & 8);
    dns_cursor_put(&c, name, name_len);
    dns_cursor_put_u16(&c, q->qtype);
    dns_cursor_put_u16(&c, q->qclass);
    q->question_len = c.pos - DNS_HEADER_SIZE;
    if (q->edns) {
        dns_cursor_put_u8(&c, 0);
        dns_cursor_put_u16(&c, DNS_TYPE_OPT);
        dns_cursor_put_u16(&c, payload);
        dns_cursor_put_u32(&c, flags & 2 ? DNS_EDNS_DO : 0);
        dns_cursor_put_u16(&c, 0);
    }
    if (c.err)
        abort();
    q->len = c.pos;
}

static void lower_name(struct query *q)
{
    for (size_t i = DNS_HEADER_SIZE; i < DNS_HEADER_SIZE + q->question_len - 4; i++)
        q->wire[i] = (uint8_t)tolower(q->wire[i]);
}

/* --- running and checking ---------------------------------------------------------------- */

struct reply {
    uint8_t *bytes; /* DNS_MAX_MSG */
    size_t len;
    uint16_t max_size;
    bool forwarded;
};

static void on_send(struct dns_request *req)
{
    sent++;
    (void)req;
}

/* Runs q through its plan; the reply is copied out. pkt and ans are exactly DNS_MAX_MSG
 * bytes, so ASan sees a write past either. */
static void run(const struct query *q, enum dns_proto proto, struct reply *out)
{
    static uint8_t *pkt, *ans;
    static struct dns_request req;
    if (pkt == NULL && ((pkt = malloc(DNS_MAX_MSG)) == NULL || (ans = malloc(DNS_MAX_MSG)) == NULL))
        abort();
    memset(&req, 0, sizeof(req));
    memcpy(pkt, q->wire, q->len);
    req.pkt = pkt;
    req.pkt_len = q->len;
    req.ans = ans;
    req.ans_cap = DNS_MAX_MSG;
    req.proto = proto;
    memcpy(&req.peer, &q->client, sizeof(q->client));
    req.send = on_send;
    sent = 0;
    forwarded = false;
    dns_chain_handle(&plans[q->forwarding].chain, &req);
    if (sent != 1 || req.ans_len > DNS_MAX_MSG)
        abort();
    memcpy(out->bytes, ans, req.ans_len);
    out->len = req.ans_len;
    out->max_size = req.max_size;
    out->forwarded = forwarded;
}

static bool is_under_zone(const struct query *q)
{
    struct dns_name name;
    struct dns_name zone;
    struct dns_cursor c;
    dns_cursor_init(&c, q->wire, q->len);
    c.pos = DNS_HEADER_SIZE;
    dns_cursor_name(&c, &name, true);
    return !c.err && dns_name_from_text(&zone, "local") == 0 && dns_name_is_subdomain(&name, &zone);
}

static void check_reply(const struct query *q, enum dns_proto proto, const struct reply *r)
{
    if (r->len < DNS_HEADER_SIZE || (proto == DNS_PROTO_UDP && r->len > r->max_size))
        abort();
    uint16_t flags = dns_wire_get_u16(r->bytes + 2);
    uint16_t qflags = dns_wire_get_u16(q->wire + 2);
    if (dns_wire_get_u16(r->bytes) != ID || !(flags & DNS_FLAG_QR) || DNS_OPCODE(flags) != 0 ||
        (flags & DNS_FLAG_RD) != (qflags & DNS_FLAG_RD))
        abort();
    if (dns_wire_get_u16(r->bytes + 4) != 1 || r->len < DNS_HEADER_SIZE + q->question_len ||
        memcmp(r->bytes + DNS_HEADER_SIZE, q->wire + DNS_HEADER_SIZE, q->question_len) != 0)
        abort();
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, r->bytes, r->len) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_free(p);

    struct dns_query parsed;
    if (dns_wire_parse_query(&parsed, q->wire, q->len) != DNS_PARSE_OK)
        return; /* a protocol error (qtype OPT, say): the header checks are what hold */
    struct resolver_scrub_question sq = {.qname = &parsed.qname,
                                         .qtype = parsed.qtype,
                                         .qclass = parsed.qclass,
                                         .dnssec_ok = parsed.edns_flags & DNS_EDNS_DO};
    struct resolver_scrub_reply info;
    if (resolver_scrub_check(r->bytes, r->len, ID, &sq, &info) != RESOLVER_SCRUB_OK ||
        info.has_opt != q->edns)
        abort();
    /* Under the cluster domain, with nothing forwarded: ours to answer, authoritatively. */
    bool special = q->qtype == DNS_TYPE_AXFR || q->qtype == DNS_TYPE_IXFR ||
                   q->qtype == DNS_TYPE_MAILA || q->qtype == DNS_TYPE_MAILB;
    if (r->forwarded || special || q->qclass == DNS_CLASS_CH || !is_under_zone(q))
        return;
    unsigned rcode = DNS_RCODE(flags);
    if (!(flags & DNS_FLAG_AA) || (rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN))
        abort();
    if (!(flags & DNS_FLAG_TC) && dns_wire_get_u16(r->bytes + 6) == 0 &&
        dns_wire_get_u16(r->bytes + 8) == 0)
        abort(); /* an empty answer without its SOA */
}

static bool equal_but_case(const struct reply *a, const struct reply *b)
{
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        if (tolower(a->bytes[i]) != tolower(b->bytes[i]))
            return false;
    }
    return true;
}

/* The UDP reply is the TCP one, or the empty TC reply of one that does not fit. */
static void check_udp_against_tcp(const struct query *q, const struct reply *udp,
                                  const struct reply *tcp)
{
    if (q->qtype == DNS_TYPE_ANY || q->qtype == DNS_TYPE_AXFR || q->qtype == DNS_TYPE_IXFR)
        return;
    if (dns_wire_get_u16(udp->bytes + 2) & DNS_FLAG_TC) {
        if (tcp->len <= udp->max_size || dns_wire_get_u16(udp->bytes + 6) != 0 ||
            dns_wire_get_u16(udp->bytes + 8) != 0)
            abort();
        return;
    }
    if (udp->len != tcp->len || memcmp(udp->bytes, tcp->bytes, udp->len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct query q;
    static struct reply replies[2][2]; /* [lower-cased][proto] */
    if (store == NULL) {
        init();
        for (int i = 0; i < 4; i++) {
            if ((replies[i / 2][i % 2].bytes = malloc(DNS_MAX_MSG)) == NULL)
                abort();
        }
    }
    struct input in = {data, size, 0};
    make_query(&in, &q);
    for (int lower = 0; lower < 2; lower++) {
        if (lower)
            lower_name(&q);
        for (int proto = 0; proto < 2; proto++) {
            struct reply *r = &replies[lower][proto];
            run(&q, proto ? DNS_PROTO_TCP : DNS_PROTO_UDP, r);
            check_reply(&q, proto ? DNS_PROTO_TCP : DNS_PROTO_UDP, r);
        }
        check_udp_against_tcp(&q, &replies[lower][0], &replies[lower][1]);
    }
    for (int proto = 0; proto < 2; proto++) {
        if (!equal_but_case(&replies[0][proto], &replies[1][proto]))
            abort();
    }
    return 0;
}
