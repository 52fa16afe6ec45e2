/* tests/resolver/test_search.c - resolver/search.c with a fake zone behind its callbacks.
 *
 * The zone is a table of names and how they stand (ABSENT, EMPTY, RECORDS); the client
 * namespace function knows one Pod (127.0.0.5, in "prod"); the answer function writes an
 * authoritative NXDOMAIN and notes the question it answered. Each test builds a dns_request
 * by hand (pkt from support_query_wire, parsed into req->q), runs resolver_search_serve() as
 * the chain would, and where the query was rewritten plays the rest of the chain: a reply for
 * the rewritten question in req->ans, the on_answer hook, then dns_request_restore() as
 * dns/chain.c's finish() does. The final message is read back with ldns. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <check.h>
#include <ldns/ldns.h>

#include "dns/request.h"
#include "dns/wire.h"
#include "resolver/search.h"
#include "tests/support/support.h"

#define POD_IP "127.0.0.5"   /* the one Pod the fake knows: namespace prod */
#define STRANGER "127.0.0.9" /* no Pod has this address */
#define QUERY_ID 0x4242
#define TTL 5

#define EMPTY RESOLVER_SEARCH_EMPTY
#define RECORDS RESOLVER_SEARCH_RECORDS

/* --- the fake zone ------------------------------------------------------------------------ */

struct fake_name {
    const char *name;
    enum resolver_search_existence how;
};

/* Everything not listed is ABSENT. Both cluster domains the tests use are here. */
static const struct fake_name fake_zone[] = {
    {"local", RECORDS}, /* SOA, NS */
    {"dns-version.local", RECORDS},
    {"svc.local", EMPTY},
    {"default.svc.local", EMPTY},
    {"prod.svc.local", EMPTY},
    {"other.svc.local", EMPTY},
    {"empty.svc.local", EMPTY}, /* a Namespace with nothing in it */
    {"echo.default.svc.local", RECORDS},
    {"echo.prod.svc.local", RECORDS},
    {"_tcp.echo.prod.svc.local", EMPTY},
    {"_http._tcp.echo.prod.svc.local", RECORDS},
    {"example.default.svc.local", RECORDS}, /* also a name upstream would know */
    {"gihyo.default.svc.local", RECORDS},   /* ExternalName: CNAME gihyo.jp. */
    {"web.other.svc.local", RECORDS},
    {"cluster.local", RECORDS},
    {"svc.cluster.local", EMPTY},
    {"default.svc.cluster.local", EMPTY},
    {"prod.svc.cluster.local", EMPTY},
    {"echo.default.svc.cluster.local", RECORDS},
};

#define MAX_ASKED 16

static struct fake {
    int ctx_tag; /* its address is the ctx the search hands back */
    char asked[MAX_ASKED][DNS_MAX_NAME * 4 + 2];
    unsigned n_asked;
    unsigned answered;
    char answered_name[DNS_MAX_NAME * 4 + 2];
} fake;

static void name_text(const struct dns_name *n, char *out, size_t cap)
{
    ck_assert_int_ge(dns_name_to_text(n, out, cap), 0);
}

static enum resolver_search_existence fake_exists(void *ctx, const struct dns_name *name)
{
    ck_assert_ptr_eq(ctx, &fake);
    char text[DNS_MAX_NAME * 4 + 2];
    name_text(name, text, sizeof(text));
    for (const char *p = text; *p; p++)
        ck_assert_msg(*p < 'A' || *p > 'Z', "exists() got a name that is not lower-cased: %s",
                      text);
    ck_assert_uint_lt(fake.n_asked, MAX_ASKED);
    snprintf(fake.asked[fake.n_asked++], sizeof(fake.asked[0]), "%s", text);
    for (size_t i = 0; i < sizeof(fake_zone) / sizeof(fake_zone[0]); i++) {
        struct dns_name n;
        ck_assert_int_eq(dns_name_from_text(&n, fake_zone[i].name), 0);
        if (dns_name_equal(&n, name))
            return fake_zone[i].how;
    }
    return RESOLVER_SEARCH_ABSENT;
}

static bool fake_client_ns(void *ctx, const struct sockaddr_storage *peer,
                           uint8_t label[DNS_MAX_LABEL + 1])
{
    ck_assert_ptr_eq(ctx, &fake);
    struct in_addr pod;
    ck_assert_int_eq(inet_pton(AF_INET, POD_IP, &pod), 1);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
    if (peer->ss_family != AF_INET || sin->sin_addr.s_addr != pod.s_addr)
        return false;
    memcpy(label, "\4prod", 5);
    return true;
}

static void put_name(struct dns_cursor *c, const char *text)
{
    struct dns_name n;
    ck_assert_int_eq(dns_name_from_text(&n, text), 0);
    dns_cursor_put(c, n.wire, n.len);
}

/* An SOA for the zone apex "local.", as the zone puts in negative answers. */
static void put_soa(struct dns_cursor *c)
{
    put_name(c, "local.");
    dns_cursor_put_u16(c, DNS_TYPE_SOA);
    dns_cursor_put_u16(c, DNS_CLASS_IN);
    dns_cursor_put_u32(c, TTL);
    size_t rdlen_at = c->pos;
    dns_cursor_put_u16(c, 0);
    size_t start = c->pos;
    put_name(c, "ns.dns.local.");
    put_name(c, "hostmaster.local.");
    const uint32_t fields[] = {1, 7200, 1800, 86400, TTL};
    for (size_t i = 0; i < 5; i++)
        dns_cursor_put_u32(c, fields[i]);
    ck_assert(!c->err);
    dns_wire_put_u16(c->buf + rdlen_at, (uint16_t)(c->pos - start));
}

/* The zone's authoritative NXDOMAIN for whatever req->q asks. */
static void fake_answer(void *ctx, struct dns_request *req)
{
    ck_assert_ptr_eq(ctx, &fake);
    fake.answered++;
    name_text(&req->q.qname, fake.answered_name, sizeof(fake.answered_name));
    struct dns_cursor c;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, &req->q, req->pkt, DNS_FLAG_AA, DNS_RCODE_NXDOMAIN);
    put_soa(&c);
    uint16_t ar = 0;
    if (req->q.has_edns) {
        dns_wire_put_opt(&c, &req->q, DNS_RCODE_NXDOMAIN, -1);
        ar = 1;
    }
    ck_assert(!c.err);
    dns_wire_reply_counts(req->ans, 0, 1, ar);
    req->ans_len = c.pos;
}

/* --- the search under test ------------------------------------------------------------- */

static struct resolver_search search;

static struct resolver_search *search_with(const char *domain, const char *ns, bool expand,
                                           bool autopath, bool upstream)
{
    struct resolver_search_config cfg;
    resolver_search_config_default(&cfg);
    cfg.cluster_domain = domain;
    cfg.namespace_name = ns;
    cfg.ttl = TTL;
    cfg.expand = expand;
    cfg.autopath = autopath;
    cfg.upstream = upstream;
    ck_assert_int_eq(
        resolver_search_init(&search, &cfg, fake_exists, fake_client_ns, fake_answer, &fake), 0);
    return &search;
}

/* The defaults of main.c: --cluster-domain local, --namespace default, both on. */
static struct resolver_search *search_default(bool upstream)
{
    return search_with("local", "default", true, true, upstream);
}

/* --- requests --------------------------------------------------------------------------- */

static struct {
    struct dns_request req;
    uint8_t pkt[DNS_MAX_MSG];
    uint8_t ans[DNS_MAX_MSG];
} slot;

static struct dns_request *make_request(const char *name, uint16_t type, uint16_t klass,
                                        const char *client)
{
    memset(&slot, 0, sizeof(slot));
    memset(&fake, 0, sizeof(fake));
    struct dns_request *req = &slot.req;
    req->pkt = slot.pkt;
    req->ans = slot.ans;
    req->ans_cap = sizeof(slot.ans);
    req->pkt_len = support_query_wire(slot.pkt, DNS_MAX_MSG, name, type, klass, QUERY_ID, 1232);
    ck_assert_int_eq(dns_wire_parse_query(&req->q, req->pkt, req->pkt_len), DNS_PARSE_OK);
    struct sockaddr_in *sin = (struct sockaddr_in *)&req->peer;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
    ck_assert_int_eq(inet_pton(AF_INET, client, &sin->sin_addr), 1);
    req->proto = DNS_PROTO_UDP;
    req->max_size = DNS_MAX_UDP;
    return req;
}

static struct dns_request *query_a(const char *name, const char *client)
{
    return make_request(name, DNS_TYPE_A, DNS_CLASS_IN, client);
}

static enum dns_verdict serve(struct resolver_search *s, struct dns_request *req)
{
    return resolver_search_serve(s, req);
}

static void assert_qname(const struct dns_request *req, const char *expected)
{
    char text[DNS_MAX_NAME * 4 + 2];
    name_text(&req->q.qname, text, sizeof(text));
    ck_assert_str_eq(text, expected);
}

/* The query goes on as it came: same name, no rewrite, no flags. */
static void assert_untouched(const struct dns_request *req, const char *lower_name)
{
    ck_assert_uint_eq(req->flags, 0);
    assert_qname(req, lower_name);
    ck_assert_uint_eq(req->rewrite.prefix_count, 0);
}

/* The query was rewritten to target (lower-case text with the dot), with one CNAME from the
 * asked name (pointer 0xc00c: the client's question) to target as the prefix, and req->pkt
 * holds exactly the question a client asking for target would have sent. */
static void assert_rewritten(const struct dns_request *req, const char *target, uint16_t type)
{
    ck_assert_msg(req->flags & DNS_REQ_REWRITTEN, "the query was not rewritten (to %s)", target);
    assert_qname(req, target);
    struct dns_name t;
    ck_assert_int_eq(dns_name_from_text(&t, target), 0);
    /* The prefix: 0xc00c CNAME IN TTL rdlen target. */
    const struct dns_rewrite *rw = &req->rewrite;
    ck_assert_uint_eq(rw->prefix_count, 1);
    ck_assert_uint_eq(rw->prefix_len, 12u + t.len);
    ck_assert_uint_eq(dns_wire_get_u16(rw->prefix), DNS_QUESTION_PTR);
    ck_assert_uint_eq(dns_wire_get_u16(rw->prefix + 2), DNS_TYPE_CNAME);
    ck_assert_uint_eq(dns_wire_get_u16(rw->prefix + 4), DNS_CLASS_IN);
    ck_assert_uint_eq(dns_wire_get_u32(rw->prefix + 6), TTL);
    ck_assert_uint_eq(dns_wire_get_u16(rw->prefix + 10), t.len);
    ck_assert_mem_eq(rw->prefix + 12, t.wire, t.len);
    /* The query as the next handlers see it. */
    ck_assert_uint_eq(req->pkt_len, DNS_HEADER_SIZE + t.len + 4u);
    ck_assert_mem_eq(req->pkt + DNS_HEADER_SIZE, t.wire, t.len);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + DNS_HEADER_SIZE + t.len), type);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + DNS_HEADER_SIZE + t.len + 2), DNS_CLASS_IN);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + 4), 1);
}

static void assert_asked(unsigned n, const char *const *names)
{
    ck_assert_uint_eq(fake.n_asked, n);
    for (unsigned i = 0; i < n; i++)
        ck_assert_str_eq(fake.asked[i], names[i]);
}

/* --- the rest of the chain, played by the test ----------------------------------------- */

struct fake_rr {
    const char *owner; /* NULL: the current question (pointer 0xc00c) */
    uint16_t type;     /* A or CNAME */
    const char *data;  /* address or target */
};

/* What the handlers after search would answer for the (rewritten) question in req->pkt. */
static void chain_answers(struct dns_request *req, unsigned rcode, const struct fake_rr *rrs,
                          size_t n)
{
    struct dns_cursor c;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, &req->q, req->pkt, DNS_FLAG_AA, rcode);
    for (size_t i = 0; i < n; i++) {
        if (rrs[i].owner)
            put_name(&c, rrs[i].owner);
        else
            dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, rrs[i].type);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, 30);
        if (rrs[i].type == DNS_TYPE_A) {
            uint8_t addr[4];
            ck_assert_int_eq(inet_pton(AF_INET, rrs[i].data, addr), 1);
            dns_cursor_put_u16(&c, 4);
            dns_cursor_put(&c, addr, 4);
        } else {
            struct dns_name t;
            ck_assert_int_eq(dns_name_from_text(&t, rrs[i].data), 0);
            dns_cursor_put_u16(&c, t.len);
            dns_cursor_put(&c, t.wire, t.len);
        }
    }
    uint16_t ns = 0;
    if (rcode != DNS_RCODE_NOERROR || n == 0) {
        put_soa(&c);
        ns = 1;
    }
    uint16_t ar = 0;
    if (req->q.has_edns) {
        dns_wire_put_opt(&c, &req->q, rcode, -1);
        ar = 1;
    }
    ck_assert(!c.err);
    dns_wire_reply_counts(req->ans, (uint16_t)n, ns, ar);
    req->ans_len = c.pos;
}

/* dns/chain.c's finish(), for a chain of one search handler: on_answer, then the splice. */
static void finish(struct resolver_search *s, struct dns_request *req)
{
    resolver_search_on_answer(s, req);
    if (req->flags & DNS_REQ_REWRITTEN)
        dns_request_restore(req);
}

static char *rr_line(const ldns_rr *rr)
{
    char *line = ldns_rr2str(rr);
    size_t l = strlen(line);
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\t'))
        line[--l] = '\0';
    return line;
}

/* The final reply: ID, rcode, the question as the client wrote it, and the answer section in
 * wire order, one zone-file line each. */
static ldns_pkt *assert_reply(const struct dns_request *req, ldns_pkt_rcode rcode,
                              const char *question, const char *const *answer, size_t n)
{
    ldns_pkt *pkt = support_pkt_from_wire(req->ans, req->ans_len);
    ck_assert_uint_eq(ldns_pkt_id(pkt), QUERY_ID);
    ck_assert(ldns_pkt_qr(pkt));
    ck_assert_int_eq(ldns_pkt_get_rcode(pkt), rcode);
    ck_assert_uint_eq(ldns_pkt_qdcount(pkt), 1);
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt), 0)));
    ck_assert_str_eq(q, question);
    free(q);
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    ck_assert_uint_eq(ldns_rr_list_rr_count(an), n);
    for (size_t i = 0; i < n; i++) {
        char *line = rr_line(ldns_rr_list_rr(an, i));
        ck_assert_str_eq(line, answer[i]);
        free(line);
    }
    ck_assert_msg(ldns_pkt_edns(pkt), "the client asked with EDNS: the reply has no OPT");
    return pkt;
}

static void assert_soa_authority(ldns_pkt *pkt)
{
    ldns_rr_list *ns = ldns_pkt_authority(pkt);
    ck_assert_uint_eq(ldns_rr_list_rr_count(ns), 1);
    const ldns_rr *soa = ldns_rr_list_rr(ns, 0);
    ck_assert_int_eq(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
    char *owner = ldns_rdf2str(ldns_rr_owner(soa));
    ck_assert_str_eq(owner, "local.");
    free(owner);
}

/* --- short names -------------------------------------------------------------------------- */

START_TEST(a_one_label_name_from_an_unknown_client_is_tried_in_the_default_namespace)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("echo", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.local.", DNS_TYPE_A);
    assert_asked(1, (const char *const[]){"echo.default.svc.local."});
    ck_assert_uint_eq(s->stats.expanded, 1);

    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "10.96.0.10"}}, 1);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ldns_pkt *pkt = assert_reply(req, LDNS_RCODE_NOERROR, "echo.",
                                 (const char *const[]){
                                     "echo.\t5\tIN\tCNAME\techo.default.svc.local.",
                                     "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
                                 },
                                 2);
    ck_assert(ldns_pkt_aa(pkt));
    ldns_pkt_free(pkt);
}
END_TEST

START_TEST(an_upper_case_name_with_a_trailing_dot_keeps_its_case_in_question_and_cname)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("EcHo.", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.local.", DNS_TYPE_A);
    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "10.96.0.10"}}, 1);
    finish(s, req);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "EcHo.",
                               (const char *const[]){
                                   "EcHo.\t5\tIN\tCNAME\techo.default.svc.local.",
                                   "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
                               },
                               2));
}
END_TEST

START_TEST(a_two_label_upper_case_name_is_matched_lower_cased)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("ECHO.Default.", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.local.", DNS_TYPE_A);
    assert_asked(
        2, (const char *const[]){"echo.default.default.svc.local.", "echo.default.svc.local."});
    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "10.96.0.10"}}, 1);
    finish(s, req);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "ECHO.Default.",
                               (const char *const[]){
                                   "ECHO.Default.\t5\tIN\tCNAME\techo.default.svc.local.",
                                   "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
                               },
                               2));
}
END_TEST

START_TEST(a_one_label_name_from_a_pod_is_tried_in_the_pods_namespace)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("echo", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    /* echo.default.svc.local exists too: the Pod's own namespace comes first. */
    assert_rewritten(req, "echo.prod.svc.local.", DNS_TYPE_A);
    assert_asked(1, (const char *const[]){"echo.prod.svc.local."});
}
END_TEST

START_TEST(the_namespace_flag_sets_where_unknown_clients_look)
{
    struct resolver_search *s = search_with("local", "prod", true, true, false);
    struct dns_request *req = query_a("echo", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.prod.svc.local.", DNS_TYPE_A);
}
END_TEST

START_TEST(a_two_label_name_is_a_service_in_another_namespace)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("web.other", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "web.other.svc.local.", DNS_TYPE_A);
    assert_asked(2, (const char *const[]){"web.other.prod.svc.local.", "web.other.svc.local."});
    chain_answers(req, DNS_RCODE_NOERROR, (const struct fake_rr[]){{NULL, DNS_TYPE_A, "10.96.7.7"}},
                  1);
    finish(s, req);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "web.other.",
                               (const char *const[]){
                                   "web.other.\t5\tIN\tCNAME\tweb.other.svc.local.",
                                   "web.other.svc.local.\t30\tIN\tA\t10.96.7.7",
                               },
                               2));
}
END_TEST

START_TEST(the_last_candidate_is_a_name_right_under_the_zone)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = make_request("dns-version", DNS_TYPE_TXT, DNS_CLASS_IN, STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "dns-version.local.", DNS_TYPE_TXT);
    assert_asked(3, (const char *const[]){"dns-version.default.svc.local.",
                                          "dns-version.svc.local.", "dns-version.local."});
}
END_TEST

START_TEST(a_name_of_three_labels_is_left_alone)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("echo.default.svc", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "echo.default.svc.");
    ck_assert_uint_eq(fake.n_asked, 0);
    req = query_a("www.example.test.", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "www.example.test.");
    ck_assert_uint_eq(fake.n_asked, 0);
    ck_assert_uint_eq(s->stats.expanded, 0);
}
END_TEST

START_TEST(a_short_name_that_matches_nothing_goes_on_as_asked)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("Nothere", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "nothere.");
    assert_asked(3, (const char *const[]){"nothere.default.svc.local.", "nothere.svc.local.",
                                          "nothere.local."});
    /* The packet is the client's, untouched, for the forwarder. */
    uint8_t again[DNS_MAX_MSG];
    size_t len = support_query_wire(again, sizeof(again), "Nothere", DNS_TYPE_A, DNS_CLASS_IN,
                                    QUERY_ID, 1232);
    ck_assert_uint_eq(req->pkt_len, len);
    ck_assert_mem_eq(req->pkt, again, len);
    ck_assert_uint_eq(s->stats.expanded, 0);
}
END_TEST

START_TEST(the_cluster_wins_over_an_upstream_name_as_the_clients_own_walk_would)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("example", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "example.default.svc.local.", DNS_TYPE_A);
    ck_assert_uint_eq(req->flags & DNS_REQ_AUTOPATH, 0);
}
END_TEST

START_TEST(an_external_name_candidate_is_followed_through_its_own_cname)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("Gihyo", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "gihyo.default.svc.local.", DNS_TYPE_A);
    /* The zone then follows the ExternalName as the zone handler does: a second rewrite,
     * and the forwarder answers for gihyo.jp. */
    uint8_t cname[12 + DNS_MAX_NAME];
    struct dns_name target;
    ck_assert_int_eq(dns_name_from_text(&target, "gihyo.jp."), 0);
    dns_wire_put_u16(cname, DNS_QUESTION_PTR);
    dns_wire_put_u16(cname + 2, DNS_TYPE_CNAME);
    dns_wire_put_u16(cname + 4, DNS_CLASS_IN);
    dns_wire_put_u32(cname + 6, TTL);
    dns_wire_put_u16(cname + 10, target.len);
    memcpy(cname + 12, target.wire, target.len);
    ck_assert_int_eq(dns_request_rewrite(req, &target, cname, 12u + target.len, 1), 0);
    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "203.0.113.80"}}, 1);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "Gihyo.",
                               (const char *const[]){
                                   "Gihyo.\t5\tIN\tCNAME\tgihyo.default.svc.local.",
                                   "gihyo.default.svc.local.\t5\tIN\tCNAME\tgihyo.jp.",
                                   "gihyo.jp.\t30\tIN\tA\t203.0.113.80",
                               },
                               3));
}
END_TEST

START_TEST(an_empty_candidate_is_not_used_for_a_short_name)
{
    /* empty.svc.local is a namespace: it exists, with no records. */
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("empty", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "empty.");
    assert_asked(
        3, (const char *const[]){"empty.default.svc.local.", "empty.svc.local.", "empty.local."});
}
END_TEST

START_TEST(no_search_expand_leaves_short_names_as_they_are)
{
    struct resolver_search *s = search_with("local", "default", false, true, true);
    const char *names[] = {"echo", "echo.default", "gihyo"};
    for (size_t i = 0; i < 3; i++) {
        struct dns_request *req = query_a(names[i], POD_IP);
        ck_assert_int_eq(serve(s, req), DNS_NEXT);
        ck_assert_uint_eq(req->flags, 0);
        ck_assert_uint_eq(fake.n_asked, 0);
    }
    /* Autopath is a separate switch. */
    struct dns_request *req = query_a("echo.default.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.local.", DNS_TYPE_A);
}
END_TEST

START_TEST(queries_of_other_classes_and_the_root_are_left_alone)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = make_request("echo", DNS_TYPE_TXT, DNS_CLASS_CH, STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    ck_assert_uint_eq(req->flags, 0);
    ck_assert_uint_eq(fake.n_asked, 0);
    req = make_request(".", DNS_TYPE_NS, DNS_CLASS_IN, STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    ck_assert_uint_eq(req->flags, 0);
    ck_assert_uint_eq(fake.n_asked, 0);
}
END_TEST

START_TEST(a_multi_label_cluster_domain_builds_the_same_search_list)
{
    struct resolver_search *s = search_with("cluster.local", "default", true, true, true);
    struct dns_request *req = query_a("echo", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.cluster.local.", DNS_TYPE_A);
    /* "local" is outside cluster.local: a short name like any other. */
    req = query_a("echo.default.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    ck_assert_uint_eq(req->flags, 0);
    req = query_a("api.example.com.prod.svc.cluster.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "api.example.com.", DNS_TYPE_A);
    assert_asked(3, (const char *const[]){"api.example.com.prod.svc.cluster.local.",
                                          "api.example.com.svc.cluster.local.",
                                          "api.example.com.cluster.local."});
}
END_TEST

/* --- autopath ------------------------------------------------------------------------------- */

START_TEST(autopath_answers_the_first_candidate_with_the_service_it_reaches)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("Echo.Default.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.default.svc.local.", DNS_TYPE_A);
    ck_assert_uint_eq(req->flags & DNS_REQ_AUTOPATH, 0);
    assert_asked(2,
                 (const char *const[]){"echo.default.prod.svc.local.", "echo.default.svc.local."});
    ck_assert_uint_eq(s->stats.autopath, 1);
    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "10.96.0.10"}}, 1);
    finish(s, req);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "Echo.Default.prod.svc.local.",
                               (const char *const[]){
                                   "Echo.Default.prod.svc.local.\t5\tIN\tCNAME\t"
                                   "echo.default.svc.local.",
                                   "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
                               },
                               2));
}
END_TEST

START_TEST(autopath_answers_with_the_name_under_the_zone_when_that_is_the_first_that_exists)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req =
        make_request("dns-version.prod.svc.local.", DNS_TYPE_TXT, DNS_CLASS_IN, POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "dns-version.local.", DNS_TYPE_TXT);
    ck_assert_uint_eq(req->flags & DNS_REQ_AUTOPATH, 0);
    assert_asked(3, (const char *const[]){"dns-version.prod.svc.local.", "dns-version.svc.local.",
                                          "dns-version.local."});
}
END_TEST

START_TEST(autopath_stops_at_a_candidate_that_exists_without_records)
{
    /* empty.svc.local answers NODATA, which ends a client's walk too (musl stops there;
     * CoreDNS autopath returns the first non-NXDOMAIN answer). */
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("empty.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "empty.svc.local.", DNS_TYPE_A);
    ck_assert_uint_eq(req->flags & DNS_REQ_AUTOPATH, 0);
}
END_TEST

START_TEST(autopath_sends_a_name_outside_the_cluster_upstream_as_the_walks_last_step)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("Api.Example.com.prod.svc.local.", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "api.example.com.", DNS_TYPE_A);
    ck_assert_uint_ne(req->flags & DNS_REQ_AUTOPATH, 0);
    assert_asked(3, (const char *const[]){"api.example.com.prod.svc.local.",
                                          "api.example.com.svc.local.", "api.example.com.local."});
    ck_assert_uint_eq(s->stats.autopath, 1);
}
END_TEST

START_TEST(autopath_without_upstream_leaves_a_name_outside_the_cluster_alone)
{
    struct resolver_search *s = search_default(false);
    struct dns_request *req = query_a("api.example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "api.example.com.prod.svc.local.");
    ck_assert_uint_eq(s->stats.autopath, 0);
}
END_TEST

START_TEST(autopath_leaves_a_cluster_name_under_the_clients_namespace_alone)
{
    struct resolver_search *s = search_default(true);
    const char *names[] = {"echo.prod.svc.local.", "_tcp.echo.prod.svc.local.",
                           "_http._tcp.echo.prod.svc.local.", "prod.svc.local."};
    for (size_t i = 0; i < 4; i++) {
        struct dns_request *req = query_a(names[i], POD_IP);
        ck_assert_int_eq(serve(s, req), DNS_NEXT);
        assert_untouched(req, names[i]);
    }
    ck_assert_uint_eq(s->stats.autopath, 0);
}
END_TEST

START_TEST(autopath_leaves_clients_whose_namespace_is_unknown_alone)
{
    /* --namespace is for short names only: it does not tell where a walk started. */
    struct resolver_search *s = search_with("local", "prod", true, true, true);
    struct dns_request *req = query_a("api.example.com.prod.svc.local", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "api.example.com.prod.svc.local.");
    req = query_a("echo.default.default.svc.local", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "echo.default.default.svc.local.");
}
END_TEST

START_TEST(autopath_leaves_a_walk_in_another_namespace_alone)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("api.example.com.other.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "api.example.com.other.svc.local.");
    req = query_a("echo.default.default.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "echo.default.default.svc.local.");
}
END_TEST

START_TEST(no_autopath_leaves_the_walk_to_the_client)
{
    struct resolver_search *s = search_with("local", "default", true, false, true);
    struct dns_request *req = query_a("api.example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "api.example.com.prod.svc.local.");
    req = query_a("echo.default.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_untouched(req, "echo.default.prod.svc.local.");
    /* Short names are a separate switch. */
    req = query_a("echo", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "echo.prod.svc.local.", DNS_TYPE_A);
}
END_TEST

/* --- the answer hook ------------------------------------------------------------------------ */

static const unsigned failing_rcodes[] = {DNS_RCODE_NXDOMAIN, DNS_RCODE_SERVFAIL};

START_TEST(a_failed_upstream_walk_is_answered_as_the_asked_names_nxdomain)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("Api.Example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "api.example.com.", DNS_TYPE_A);
    chain_answers(req, failing_rcodes[_i], NULL, 0);
    finish(s, req);
    /* The answer function ran for the client's question, and nothing is spliced. */
    ck_assert_uint_eq(fake.answered, 1);
    ck_assert_str_eq(fake.answered_name, "api.example.com.prod.svc.local.");
    ck_assert_uint_eq(req->flags & (DNS_REQ_REWRITTEN | DNS_REQ_AUTOPATH), 0);
    assert_qname(req, "api.example.com.prod.svc.local.");
    ck_assert_uint_eq(s->stats.autopath_nxdomain, 1);
    ldns_pkt *pkt =
        assert_reply(req, LDNS_RCODE_NXDOMAIN, "Api.Example.com.prod.svc.local.", NULL, 0);
    ck_assert(ldns_pkt_aa(pkt));
    assert_soa_authority(pkt);
    ldns_pkt_free(pkt);
}
END_TEST

/* The forwarder answers REFUSED when --max-concurrent queries are in flight; an upstream may
 * answer REFUSED, FORMERR or NOTIMP. X.<ns>.svc.Z still does not exist: the client must get
 * its authoritative NXDOMAIN (operations.md: never SERVFAIL or a timeout for a name under
 * the cluster suffixes), not a CNAME to X with the failure's rcode. */
static const unsigned other_failing_rcodes[] = {DNS_RCODE_REFUSED, DNS_RCODE_FORMERR,
                                                DNS_RCODE_NOTIMP};

START_TEST(a_walk_whose_upstream_step_is_refused_is_answered_as_the_asked_names_nxdomain)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("api.example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "api.example.com.", DNS_TYPE_A);
    chain_answers(req, other_failing_rcodes[_i], NULL, 0);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 1);
    ck_assert_uint_eq(req->flags & (DNS_REQ_REWRITTEN | DNS_REQ_AUTOPATH), 0);
    ldns_pkt *pkt =
        assert_reply(req, LDNS_RCODE_NXDOMAIN, "api.example.com.prod.svc.local.", NULL, 0);
    assert_soa_authority(pkt);
    ldns_pkt_free(pkt);
}
END_TEST

START_TEST(a_successful_upstream_walk_keeps_the_cname)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("api.example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    chain_answers(req, DNS_RCODE_NOERROR,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_A, "192.0.2.10"}}, 1);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ck_assert_uint_eq(s->stats.autopath_nxdomain, 0);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NOERROR, "api.example.com.prod.svc.local.",
                               (const char *const[]){
                                   "api.example.com.prod.svc.local.\t5\tIN\tCNAME\t"
                                   "api.example.com.",
                                   "api.example.com.\t30\tIN\tA\t192.0.2.10",
                               },
                               2));
}
END_TEST

START_TEST(an_upstream_walk_that_ends_in_nodata_keeps_the_cname)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req =
        make_request("api.example.com.prod.svc.local", DNS_TYPE_AAAA, DNS_CLASS_IN, POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "api.example.com.", DNS_TYPE_AAAA);
    chain_answers(req, DNS_RCODE_NOERROR, NULL, 0);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ldns_pkt *pkt = assert_reply(req, LDNS_RCODE_NOERROR, "api.example.com.prod.svc.local.",
                                 (const char *const[]){"api.example.com.prod.svc.local.\t5\tIN"
                                                       "\tCNAME\tapi.example.com."},
                                 1);
    assert_soa_authority(pkt);
    ldns_pkt_free(pkt);
}
END_TEST

START_TEST(the_hook_leaves_a_failed_short_name_rewrite_alone)
{
    /* Not the walk: the CNAME is true whatever its target answers. */
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("gihyo", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    assert_rewritten(req, "gihyo.default.svc.local.", DNS_TYPE_A);
    chain_answers(req, DNS_RCODE_NXDOMAIN,
                  (const struct fake_rr[]){{NULL, DNS_TYPE_CNAME, "gihyo.jp."}}, 1);
    finish(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ldns_pkt_free(assert_reply(req, LDNS_RCODE_NXDOMAIN, "gihyo.",
                               (const char *const[]){
                                   "gihyo.\t5\tIN\tCNAME\tgihyo.default.svc.local.",
                                   "gihyo.default.svc.local.\t30\tIN\tCNAME\tgihyo.jp.",
                               },
                               2));
}
END_TEST

START_TEST(the_hook_ignores_requests_it_did_not_rewrite_and_empty_replies)
{
    struct resolver_search *s = search_default(true);
    struct dns_request *req = query_a("nope.default.svc.local", STRANGER);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    fake_answer(&fake, req);
    fake.answered = 0;
    size_t len = req->ans_len;
    resolver_search_on_answer(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ck_assert_uint_eq(req->ans_len, len);
    /* A dropped reply (ans_len 0) after an autopath rewrite: nothing to judge, no answer. */
    req = query_a("api.example.com.prod.svc.local", POD_IP);
    ck_assert_int_eq(serve(s, req), DNS_NEXT);
    req->ans_len = 0;
    resolver_search_on_answer(s, req);
    ck_assert_uint_eq(fake.answered, 0);
    ck_assert_uint_eq(req->ans_len, 0);
}
END_TEST

/* --- configuration and resolv.conf ------------------------------------------------------- */

START_TEST(init_refuses_a_namespace_of_several_labels_and_a_bad_domain)
{
    struct resolver_search_config cfg;
    resolver_search_config_default(&cfg);
    ck_assert_str_eq(cfg.cluster_domain, "local");
    ck_assert_str_eq(cfg.namespace_name, "default");
    ck_assert(cfg.expand);
    ck_assert(cfg.autopath);
    ck_assert(!cfg.upstream);
    struct resolver_search s;
    cfg.namespace_name = "a.b";
    ck_assert_int_eq(
        resolver_search_init(&s, &cfg, fake_exists, fake_client_ns, fake_answer, &fake), -1);
    cfg.namespace_name = "default";
    cfg.cluster_domain = "bad..domain";
    ck_assert_int_eq(
        resolver_search_init(&s, &cfg, fake_exists, fake_client_ns, fake_answer, &fake), -1);
    cfg.cluster_domain = "cluster.local";
    ck_assert_int_eq(
        resolver_search_init(&s, &cfg, fake_exists, fake_client_ns, fake_answer, &fake), 0);
}
END_TEST

START_TEST(resolv_conf_names_the_pods_search_list_nameserver_and_ndots)
{
    char out[512];
    int n = resolver_search_resolv_conf("cluster.local", "prod", "10.96.0.10", out, sizeof(out));
    const char *want = "# resolv.conf for a pod in namespace prod, resolving through svcdns\n"
                       "search prod.svc.cluster.local svc.cluster.local cluster.local\n"
                       "nameserver 10.96.0.10\n"
                       "options ndots:5\n";
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(n, (int)strlen(want));
    /* One byte short of the terminator: refused, not cut. */
    ck_assert_int_eq(
        resolver_search_resolv_conf("cluster.local", "prod", "10.96.0.10", out, strlen(want)), -1);
    ck_assert_int_eq(resolver_search_resolv_conf("local", "default", "::1", out, sizeof(out)),
                     (int)strlen(out));
    ck_assert_ptr_nonnull(strstr(out, "\nsearch default.svc.local svc.local local\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nnameserver ::1\n"));
}
END_TEST

Suite *search_suite(void); /* for tests/resolver/main.c */
Suite *search_suite(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("short names");
    tcase_add_test(tc, a_one_label_name_from_an_unknown_client_is_tried_in_the_default_namespace);
    tcase_add_test(tc, an_upper_case_name_with_a_trailing_dot_keeps_its_case_in_question_and_cname);
    tcase_add_test(tc, a_two_label_upper_case_name_is_matched_lower_cased);
    tcase_add_test(tc, a_one_label_name_from_a_pod_is_tried_in_the_pods_namespace);
    tcase_add_test(tc, the_namespace_flag_sets_where_unknown_clients_look);
    tcase_add_test(tc, a_two_label_name_is_a_service_in_another_namespace);
    tcase_add_test(tc, the_last_candidate_is_a_name_right_under_the_zone);
    tcase_add_test(tc, a_name_of_three_labels_is_left_alone);
    tcase_add_test(tc, a_short_name_that_matches_nothing_goes_on_as_asked);
    tcase_add_test(tc, the_cluster_wins_over_an_upstream_name_as_the_clients_own_walk_would);
    tcase_add_test(tc, an_external_name_candidate_is_followed_through_its_own_cname);
    tcase_add_test(tc, an_empty_candidate_is_not_used_for_a_short_name);
    tcase_add_test(tc, no_search_expand_leaves_short_names_as_they_are);
    tcase_add_test(tc, queries_of_other_classes_and_the_root_are_left_alone);
    tcase_add_test(tc, a_multi_label_cluster_domain_builds_the_same_search_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("autopath");
    tcase_add_test(tc, autopath_answers_the_first_candidate_with_the_service_it_reaches);
    tcase_add_test(
        tc, autopath_answers_with_the_name_under_the_zone_when_that_is_the_first_that_exists);
    tcase_add_test(tc, autopath_stops_at_a_candidate_that_exists_without_records);
    tcase_add_test(tc, autopath_sends_a_name_outside_the_cluster_upstream_as_the_walks_last_step);
    tcase_add_test(tc, autopath_without_upstream_leaves_a_name_outside_the_cluster_alone);
    tcase_add_test(tc, autopath_leaves_a_cluster_name_under_the_clients_namespace_alone);
    tcase_add_test(tc, autopath_leaves_clients_whose_namespace_is_unknown_alone);
    tcase_add_test(tc, autopath_leaves_a_walk_in_another_namespace_alone);
    tcase_add_test(tc, no_autopath_leaves_the_walk_to_the_client);
    suite_add_tcase(s, tc);

    tc = tcase_create("answer hook");
    tcase_add_loop_test(tc, a_failed_upstream_walk_is_answered_as_the_asked_names_nxdomain, 0,
                        (int)(sizeof(failing_rcodes) / sizeof(failing_rcodes[0])));
    tcase_add_loop_test(
        tc, a_walk_whose_upstream_step_is_refused_is_answered_as_the_asked_names_nxdomain, 0,
        (int)(sizeof(other_failing_rcodes) / sizeof(other_failing_rcodes[0])));
    tcase_add_test(tc, a_successful_upstream_walk_keeps_the_cname);
    tcase_add_test(tc, an_upstream_walk_that_ends_in_nodata_keeps_the_cname);
    tcase_add_test(tc, the_hook_leaves_a_failed_short_name_rewrite_alone);
    tcase_add_test(tc, the_hook_ignores_requests_it_did_not_rewrite_and_empty_replies);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, init_refuses_a_namespace_of_several_labels_and_a_bad_domain);
    tcase_add_test(tc, resolv_conf_names_the_pods_search_list_nameserver_and_ndots);
    suite_add_tcase(s, tc);
    return s;
}
