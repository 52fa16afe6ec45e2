/* tests/resolver/test_search.c - resolver/search.c with a fake zone behind dns_names.
 *
 * The zone is a table of names and how they stand (absent, empty, records); it knows one Pod
 * (127.0.0.5, in namespace "prod"); its answer is an authoritative NXDOMAIN with the apex SOA.
 * Two tables drive most tests. The first says, for a search configuration, a client and a
 * question, which name the stage makes the request follow (or none), which names it asked the
 * zone about, and which counter went up. The second plays the rest of the chain: the target's
 * answer, then dns_request_end_alias() as the chain's end does, and reads the client's reply
 * back with ldns. */
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

#define POD "127.0.0.5" /* the one Pod the fake knows: namespace prod */
#define STRANGER "127.0.0.9"
#define QUERY_ID 0x4242
#define TTL 5

/* --- the fake zone ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum dns_name_state how;
} fake_zone[] = {
    {"local", DNS_NAME_RECORDS}, /* SOA, NS */
    {"dns-version.local", DNS_NAME_RECORDS},
    {"svc.local", DNS_NAME_EMPTY},
    {"default.svc.local", DNS_NAME_EMPTY},
    {"prod.svc.local", DNS_NAME_EMPTY},
    {"other.svc.local", DNS_NAME_EMPTY},
    {"empty.svc.local", DNS_NAME_EMPTY}, /* a Namespace with nothing in it */
    {"echo.default.svc.local", DNS_NAME_RECORDS},
    {"echo.prod.svc.local", DNS_NAME_RECORDS},
    {"_tcp.echo.prod.svc.local", DNS_NAME_EMPTY},
    {"_http._tcp.echo.prod.svc.local", DNS_NAME_RECORDS},
    {"example.default.svc.local", DNS_NAME_RECORDS}, /* also a name upstream would know */
    {"gihyo.default.svc.local", DNS_NAME_RECORDS},   /* ExternalName: CNAME gihyo.jp. */
    {"web.other.svc.local", DNS_NAME_RECORDS},
    {"cluster.local", DNS_NAME_RECORDS},
    {"svc.cluster.local", DNS_NAME_EMPTY},
    {"default.svc.cluster.local", DNS_NAME_EMPTY},
    {"prod.svc.cluster.local", DNS_NAME_EMPTY},
    {"echo.default.svc.cluster.local", DNS_NAME_RECORDS},
};

static struct {
    char asked[512]; /* names looked up, space-separated */
    unsigned answered;
} fake;
static int fake_self;

static void name_text(const struct dns_name *n, char *out, size_t cap)
{
    ck_assert_int_ge(dns_name_to_text(n, out, cap), 0);
}

static enum dns_name_state zone_state(const struct dns_name *name)
{
    for (size_t i = 0; i < sizeof(fake_zone) / sizeof(fake_zone[0]); i++) {
        struct dns_name n;
        ck_assert_int_eq(dns_name_from_text(&n, fake_zone[i].name), 0);
        if (dns_name_equal(&n, name))
            return fake_zone[i].how;
    }
    return DNS_NAME_ABSENT;
}

static enum dns_name_state fake_lookup(const void *self, const struct dns_name *name)
{
    ck_assert_ptr_eq(self, &fake_self);
    char text[DNS_MAX_NAME * 4 + 2];
    name_text(name, text, sizeof(text));
    for (const char *p = text; *p; p++)
        ck_assert_msg(*p < 'A' || *p > 'Z', "lookup() got a name that is not lower-cased: %s",
                      text);
    size_t used = strlen(fake.asked);
    snprintf(fake.asked + used, sizeof(fake.asked) - used, "%s%s", used ? " " : "", text);
    return zone_state(name);
}

static bool fake_client_namespace(const void *self, const struct sockaddr_storage *client,
                                  uint8_t label[DNS_MAX_LABEL + 1])
{
    ck_assert_ptr_eq(self, &fake_self);
    struct in_addr pod;
    ck_assert_int_eq(inet_pton(AF_INET, POD, &pod), 1);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)client;
    if (client->ss_family != AF_INET || sin->sin_addr.s_addr != pod.s_addr)
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

/* The zone's authoritative answer: A 10.96.0.10 for an A question of a name with records,
 * else NXDOMAIN (the tests ask nothing else of it). */
static size_t fake_answer(const void *self, const struct dns_query *q, const uint8_t *pkt,
                          uint8_t *out, size_t cap)
{
    ck_assert_ptr_eq(self, &fake_self);
    fake.answered++;
    bool records = zone_state(&q->qname) == DNS_NAME_RECORDS && q->qtype == DNS_TYPE_A;
    unsigned rcode = records ? DNS_RCODE_NOERROR : DNS_RCODE_NXDOMAIN;
    struct dns_cursor c;
    dns_cursor_init(&c, out, cap);
    dns_wire_reply_begin(&c, q, pkt, DNS_FLAG_AA, rcode);
    if (records) {
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, DNS_TYPE_A);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, TTL);
        dns_cursor_put_u16(&c, 4);
        dns_cursor_put(&c, "\x0a\x60\x00\x0a", 4);
    } else {
        put_soa(&c);
    }
    uint16_t ar = 0;
    if (q->has_edns) {
        dns_wire_put_opt(&c, q, rcode, -1);
        ar = 1;
    }
    ck_assert(!c.err);
    dns_wire_reply_counts(out, records, !records, ar);
    return c.pos;
}

/* The search path never asks this; the forwarder does. */
static bool fake_is_authoritative(const void *self, const struct dns_name *name)
{
    (void)self;
    (void)name;
    ck_abort_msg("the search stage asked is_authoritative()");
    return false;
}

static const struct dns_names fake_names = {fake_lookup, fake_client_namespace, fake_answer,
                                            fake_is_authoritative, &fake_self};

/* --- the stage under test, and its requests --------------------------------------------- */

/* Search configurations by name: domain, --namespace, expand, autopath, forwarding. */
static const struct config {
    const char *name, *domain, *ns;
    bool expand, autopath, upstream;
} configs[] = {
    {"defaults", "local", "default", true, true, false},
    {"forwarding", "local", "default", true, true, true},
    {"namespace prod", "local", "prod", true, true, true},
    {"no-search-expand", "local", "default", false, true, true},
    {"no-autopath", "local", "default", true, false, true},
    {"cluster.local", "cluster.local", "default", true, true, true},
};

static struct resolver_search search;

static struct resolver_search *search_as(const char *config)
{
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        const struct config *c = &configs[i];
        if (strcmp(c->name, config) != 0)
            continue;
        struct resolver_search_config cfg;
        resolver_search_config_default(&cfg);
        cfg.cluster_domain = c->domain;
        cfg.namespace_name = c->ns;
        cfg.ttl = TTL;
        cfg.expand = c->expand;
        cfg.autopath = c->autopath;
        cfg.upstream = c->upstream;
        ck_assert_int_eq(resolver_search_init(&search, &cfg, &fake_names), 0);
        return &search;
    }
    ck_abort_msg("no configuration %s", config);
    return NULL;
}

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

/* The request follows target (lower-case text with the dot), with one CNAME from the asked
 * name (pointer 0xc00c: the client's question) to target as the prefix, and req->pkt holds
 * exactly the question a client asking for target would have sent. */
static void assert_follows(const struct dns_request *req, const char *target, uint16_t type)
{
    char text[DNS_MAX_NAME * 4 + 2];
    name_text(&req->q.qname, text, sizeof(text));
    ck_assert_msg(req->alias.active, "the request does not follow %s", target);
    ck_assert_str_eq(text, target);
    struct dns_name t;
    ck_assert_int_eq(dns_name_from_text(&t, target), 0);
    const struct dns_alias *alias = &req->alias;
    ck_assert_uint_eq(alias->prefix_count, 1);
    ck_assert_uint_eq(alias->prefix_len, 12u + t.len);
    ck_assert_uint_eq(dns_wire_get_u16(alias->prefix), DNS_QUESTION_PTR);
    ck_assert_uint_eq(dns_wire_get_u16(alias->prefix + 2), DNS_TYPE_CNAME);
    ck_assert_uint_eq(dns_wire_get_u16(alias->prefix + 4), DNS_CLASS_IN);
    ck_assert_uint_eq(dns_wire_get_u32(alias->prefix + 6), TTL);
    ck_assert_uint_eq(dns_wire_get_u16(alias->prefix + 10), t.len);
    ck_assert_mem_eq(alias->prefix + 12, t.wire, t.len);
    ck_assert_uint_eq(req->pkt_len, DNS_HEADER_SIZE + t.len + 4u);
    ck_assert_mem_eq(req->pkt + DNS_HEADER_SIZE, t.wire, t.len);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + DNS_HEADER_SIZE + t.len), type);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + DNS_HEADER_SIZE + t.len + 2), DNS_CLASS_IN);
    ck_assert_uint_eq(dns_wire_get_u16(req->pkt + 4), 1);
}

/* --- what the stage does with a question ----------------------------------------------- */

enum counted { NONE, EXPANDED, AUTOPATH };

/* What stands by for an answer that is not NOERROR: nothing, the asked name's NXDOMAIN (the
 * walk's last step), or the cluster's answer (a two-label name asked upstream first). */
enum fallback { NO_FALLBACK, WALK_NXDOMAIN, CLUSTER_ANSWER };

static const struct decision {
    const char *config;
    const char *client;
    const char *qname;
    uint16_t qtype, qclass;
    const char *target; /* the name the request follows; NULL: it goes on as it came */
    const char *asked;  /* the names looked up, in order */
    enum counted counted;
    enum fallback fallback;
} decisions[] = {
    /* Short names, as they arrive from dig, nslookup or a resolver without a search list. */
    {"defaults", STRANGER, "echo", 1, 1, "echo.default.svc.local.", "echo.default.svc.local.",
     EXPANDED, NO_FALLBACK},
    {"defaults", STRANGER, "EcHo.", 1, 1, "echo.default.svc.local.", "echo.default.svc.local.",
     EXPANDED, NO_FALLBACK},
    {"defaults", STRANGER, "ECHO.Default.", 1, 1, "echo.default.svc.local.",
     "echo.default.default.svc.local. echo.default.svc.local.", EXPANDED, NO_FALLBACK},
    /* echo.default.svc.local exists too: the Pod's own namespace comes first. */
    {"defaults", POD, "echo", 1, 1, "echo.prod.svc.local.", "echo.prod.svc.local.", EXPANDED,
     NO_FALLBACK},
    {"namespace prod", STRANGER, "echo", 1, 1, "echo.prod.svc.local.", "echo.prod.svc.local.",
     EXPANDED, NO_FALLBACK},
    {"defaults", POD, "web.other", 1, 1, "web.other.svc.local.",
     "web.other.prod.svc.local. web.other.svc.local.", EXPANDED, NO_FALLBACK},
    {"defaults", STRANGER, "dns-version", 16, 1, "dns-version.local.",
     "dns-version.default.svc.local. dns-version.svc.local. dns-version.local.", EXPANDED,
     NO_FALLBACK},
    {"forwarding", STRANGER, "echo.default.svc", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"forwarding", POD, "www.example.test.", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"forwarding", STRANGER, "Nothere", 1, 1, NULL,
     "nothere.default.svc.local. nothere.svc.local. nothere.local.", NONE, NO_FALLBACK},
    /* Two labels may be a public name: asked upstream first, the cluster's answer stands by
     * (a Namespace named like a TLD must not capture the public names under it). */
    {"forwarding", STRANGER, "ECHO.Default.", 1, 1, NULL,
     "echo.default.default.svc.local. echo.default.svc.local.", NONE, CLUSTER_ANSWER},
    {"forwarding", POD, "web.other", 1, 1, NULL, "web.other.prod.svc.local. web.other.svc.local.",
     NONE, CLUSTER_ANSWER},
    {"forwarding", STRANGER, "nothere.default", 1, 1, NULL,
     "nothere.default.default.svc.local. nothere.default.svc.local. nothere.default.local.", NONE,
     NO_FALLBACK},
    /* One label is no public name: the cluster wins, as the client's own walk would. */
    {"forwarding", STRANGER, "example", 1, 1, "example.default.svc.local.",
     "example.default.svc.local.", EXPANDED, NO_FALLBACK},
    {"forwarding", STRANGER, "Gihyo", 1, 1, "gihyo.default.svc.local.", "gihyo.default.svc.local.",
     EXPANDED, NO_FALLBACK},
    /* A namespace exists without records: not a Service. */
    {"defaults", STRANGER, "empty", 1, 1, NULL,
     "empty.default.svc.local. empty.svc.local. empty.local.", NONE, NO_FALLBACK},
    {"no-search-expand", POD, "echo", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"no-search-expand", POD, "echo.default", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"no-search-expand", POD, "gihyo", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"forwarding", STRANGER, "echo", 16, 3 /* CH */, NULL, "", NONE, NO_FALLBACK},
    {"forwarding", STRANGER, ".", 2, 1, NULL, "", NONE, NO_FALLBACK},
    {"cluster.local", STRANGER, "echo", 1, 1, "echo.default.svc.cluster.local.",
     "echo.default.svc.cluster.local.", EXPANDED, NO_FALLBACK},
    /* "local" is outside cluster.local, and four labels are no short name. */
    {"cluster.local", POD, "echo.default.svc.local", 1, 1, NULL, "", NONE, NO_FALLBACK},

    /* The ndots:5 walk cut short at its first step (autopath), for a Pod client. */
    {"forwarding", POD, "Echo.Default.prod.svc.local", 1, 1, "echo.default.svc.local.",
     "echo.default.prod.svc.local. echo.default.svc.local.", AUTOPATH, NO_FALLBACK},
    {"forwarding", POD, "dns-version.prod.svc.local.", 16, 1, "dns-version.local.",
     "dns-version.prod.svc.local. dns-version.svc.local. dns-version.local.", AUTOPATH,
     NO_FALLBACK},
    /* empty.svc.local is NODATA, which ends a client's walk too (musl stops there). */
    {"forwarding", POD, "empty.prod.svc.local", 1, 1, "empty.svc.local.",
     "empty.prod.svc.local. empty.svc.local.", AUTOPATH, NO_FALLBACK},
    {"forwarding", POD, "Api.Example.com.prod.svc.local.", 1, 1, "api.example.com.",
     "api.example.com.prod.svc.local. api.example.com.svc.local. api.example.com.local.", AUTOPATH,
     WALK_NXDOMAIN},
    {"forwarding", POD, "api.example.com.prod.svc.local.", 28, 1, "api.example.com.",
     "api.example.com.prod.svc.local. api.example.com.svc.local. api.example.com.local.", AUTOPATH,
     WALK_NXDOMAIN},
    {"cluster.local", POD, "api.example.com.prod.svc.cluster.local", 1, 1, "api.example.com.",
     "api.example.com.prod.svc.cluster.local. api.example.com.svc.cluster.local. "
     "api.example.com.cluster.local.",
     AUTOPATH, WALK_NXDOMAIN},
    {"no-search-expand", POD, "echo.default.prod.svc.local", 1, 1, "echo.default.svc.local.",
     "echo.default.prod.svc.local. echo.default.svc.local.", AUTOPATH, NO_FALLBACK},
    /* Without forwarding nothing outside can exist: the plain NXDOMAIN is the answer. */
    {"defaults", POD, "api.example.com.prod.svc.local", 1, 1, NULL,
     "api.example.com.prod.svc.local. api.example.com.svc.local. api.example.com.local.", NONE,
     NO_FALLBACK},
    /* Cluster names under the client's namespace answer as they are. */
    {"forwarding", POD, "echo.prod.svc.local.", 1, 1, NULL, "echo.prod.svc.local.", NONE,
     NO_FALLBACK},
    {"forwarding", POD, "_tcp.echo.prod.svc.local.", 1, 1, NULL, "_tcp.echo.prod.svc.local.", NONE,
     NO_FALLBACK},
    {"forwarding", POD, "_http._tcp.echo.prod.svc.local.", 1, 1, NULL,
     "_http._tcp.echo.prod.svc.local.", NONE, NO_FALLBACK},
    {"forwarding", POD, "prod.svc.local.", 1, 1, NULL, "", NONE, NO_FALLBACK},
    /* --namespace is for short names only: it does not tell where a walk started. */
    {"namespace prod", STRANGER, "api.example.com.prod.svc.local", 1, 1, NULL, "", NONE,
     NO_FALLBACK},
    {"namespace prod", STRANGER, "echo.default.default.svc.local", 1, 1, NULL, "", NONE,
     NO_FALLBACK},
    /* A walk that starts in another namespace is not this client's. */
    {"forwarding", POD, "api.example.com.other.svc.local", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"forwarding", POD, "echo.default.default.svc.local", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"no-autopath", POD, "api.example.com.prod.svc.local", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"no-autopath", POD, "echo.default.prod.svc.local", 1, 1, NULL, "", NONE, NO_FALLBACK},
    {"no-autopath", POD, "echo", 1, 1, "echo.prod.svc.local.", "echo.prod.svc.local.", EXPANDED,
     NO_FALLBACK},
};

START_TEST(the_stage_follows_the_name_the_search_list_reaches)
{
    const struct decision *d = &decisions[_i];
    struct resolver_search *s = search_as(d->config);
    struct dns_request *req = make_request(d->qname, d->qtype, d->qclass, d->client);
    uint8_t before[DNS_MAX_MSG];
    size_t before_len = req->pkt_len;
    memcpy(before, req->pkt, before_len);
    ck_assert_int_eq(resolver_search_serve(s, req), DNS_NEXT);
    ck_assert_msg(strcmp(fake.asked, d->asked) == 0, "%s %s: asked \"%s\", not \"%s\"", d->config,
                  d->qname, fake.asked, d->asked);
    if (d->target) {
        assert_follows(req, d->target, d->qtype);
    } else {
        /* The packet is the client's, untouched, for the stages after. */
        ck_assert_msg(!req->alias.active || !req->alias.followed, "%s %s: follows, and should not",
                      d->config, d->qname);
        ck_assert_uint_eq(req->pkt_len, before_len);
        ck_assert_mem_eq(req->pkt, before, before_len);
    }
    ck_assert_msg(req->alias.active == (d->target || d->fallback), "%s %s", d->config, d->qname);
    ck_assert((req->alias.fallback != NULL) == (d->fallback != NO_FALLBACK));
    ck_assert_uint_eq(fake.answered, 0); /* a fallback is made only when it is needed */
    ck_assert_uint_eq(dns_counter_get(&s->stats.expanded), d->counted == EXPANDED);
    ck_assert_uint_eq(dns_counter_get(&s->stats.autopath), d->counted == AUTOPATH);
}
END_TEST

/* --- the client's reply, once the later stages answered -------------------------------- */

/* The answer of the stages after search for the (followed) question in req->pkt: rcode and
 * at most one record owned by the question (an A, or a CNAME whose target text is given). */
static void later_stages_answer(struct dns_request *req, unsigned rcode, const char *a,
                                const char *cname)
{
    struct dns_cursor c;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, &req->q, req->pkt, DNS_FLAG_AA, rcode);
    uint16_t an = 0;
    if (a || cname) {
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, a ? DNS_TYPE_A : DNS_TYPE_CNAME);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, 30);
        if (a) {
            uint8_t addr[4];
            ck_assert_int_eq(inet_pton(AF_INET, a, addr), 1);
            dns_cursor_put_u16(&c, 4);
            dns_cursor_put(&c, addr, 4);
        } else {
            struct dns_name t;
            ck_assert_int_eq(dns_name_from_text(&t, cname), 0);
            dns_cursor_put_u16(&c, t.len);
            dns_cursor_put(&c, t.wire, t.len);
        }
        an = 1;
    }
    uint16_t ns = 0;
    if (rcode != DNS_RCODE_NOERROR || an == 0) {
        put_soa(&c);
        ns = 1;
    }
    uint16_t ar = 0;
    if (req->q.has_edns) {
        dns_wire_put_opt(&c, &req->q, rcode, -1);
        ar = 1;
    }
    ck_assert(!c.err);
    dns_wire_reply_counts(req->ans, an, ns, ar);
    req->ans_len = c.pos;
}

static char *rr_line(const ldns_rr *rr)
{
    char *line = ldns_rr2str(rr);
    size_t l = strlen(line);
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\t'))
        line[--l] = '\0';
    return line;
}

static const struct reply_case {
    const char *config, *client, *qname;
    uint16_t qtype;
    unsigned target_rcode;    /* what the later stages answer for the followed name */
    const char *target_a;     /* ... with this A record, or */
    const char *target_cname; /* this CNAME */
    unsigned rcode;           /* the client's reply */
    const char *answer;       /* its answer section, one line per record, wire order */
    bool soa;                 /* an SOA in the authority section */
    enum fallback fell_back;  /* which fallback answered, if any */
} replies[] = {
    {"defaults", STRANGER, "echo", 1, 0, "10.96.0.10", NULL, 0,
     "echo.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
     false, NO_FALLBACK},
    {"defaults", STRANGER, "EcHo.", 1, 0, "10.96.0.10", NULL, 0,
     "EcHo.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
     false, NO_FALLBACK},
    {"defaults", STRANGER, "ECHO.Default.", 1, 0, "10.96.0.10", NULL, 0,
     "ECHO.Default.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
     false, NO_FALLBACK},
    {"defaults", POD, "web.other", 1, 0, "10.96.7.7", NULL, 0,
     "web.other.\t5\tIN\tCNAME\tweb.other.svc.local.\n"
     "web.other.svc.local.\t30\tIN\tA\t10.96.7.7",
     false, NO_FALLBACK},
    {"forwarding", POD, "Echo.Default.prod.svc.local", 1, 0, "10.96.0.10", NULL, 0,
     "Echo.Default.prod.svc.local.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t30\tIN\tA\t10.96.0.10",
     false, NO_FALLBACK},
    /* The walk's upstream step resolved: the CNAME stays, also for NODATA. */
    {"forwarding", POD, "api.example.com.prod.svc.local", 1, 0, "192.0.2.10", NULL, 0,
     "api.example.com.prod.svc.local.\t5\tIN\tCNAME\tapi.example.com.\n"
     "api.example.com.\t30\tIN\tA\t192.0.2.10",
     false, NO_FALLBACK},
    {"forwarding", POD, "api.example.com.prod.svc.local", 28, 0, NULL, NULL, 0,
     "api.example.com.prod.svc.local.\t5\tIN\tCNAME\tapi.example.com.", true, NO_FALLBACK},
    /* It did not: NXDOMAIN upstream, a SERVFAIL, REFUSED past --max-concurrent or from the
     * upstream, FORMERR, NOTIMP. X.<ns>.svc.Z still does not exist: the client gets its
     * authoritative NXDOMAIN (never SERVFAIL, never a CNAME with the failure's rcode) and
     * walks on by itself, as without autopath. */
    {"forwarding", POD, "Api.Example.com.prod.svc.local", 1, 3, NULL, NULL, 3, "", true,
     WALK_NXDOMAIN},
    {"forwarding", POD, "api.example.com.prod.svc.local", 1, 2, NULL, NULL, 3, "", true,
     WALK_NXDOMAIN},
    {"forwarding", POD, "api.example.com.prod.svc.local", 1, 5, NULL, NULL, 3, "", true,
     WALK_NXDOMAIN},
    {"forwarding", POD, "api.example.com.prod.svc.local", 1, 1, NULL, NULL, 3, "", true,
     WALK_NXDOMAIN},
    {"forwarding", POD, "api.example.com.prod.svc.local", 1, 4, NULL, NULL, 3, "", true,
     WALK_NXDOMAIN},
    /* A two-label name the upstream has is the upstream's: the public name wins, with its
     * answer as it is (also NODATA: the name exists). */
    {"forwarding", STRANGER, "ECHO.Default.", 1, 0, "192.0.2.1", NULL, 0,
     "ECHO.Default.\t30\tIN\tA\t192.0.2.1", false, NO_FALLBACK},
    {"forwarding", STRANGER, "ECHO.Default.", 28, 0, NULL, NULL, 0, "", true, NO_FALLBACK},
    /* One the upstream does not have (NXDOMAIN, SERVFAIL or no reply, REFUSED) is the
     * cluster's: the CNAME to the Service and its records. */
    {"forwarding", STRANGER, "ECHO.Default.", 1, 3, NULL, NULL, 0,
     "ECHO.Default.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t5\tIN\tA\t10.96.0.10",
     false, CLUSTER_ANSWER},
    {"forwarding", STRANGER, "echo.default", 1, 2, NULL, NULL, 0,
     "echo.default.\t5\tIN\tCNAME\techo.default.svc.local.\n"
     "echo.default.svc.local.\t5\tIN\tA\t10.96.0.10",
     false, CLUSTER_ANSWER},
    {"forwarding", POD, "web.other", 1, 5, NULL, NULL, 0,
     "web.other.\t5\tIN\tCNAME\tweb.other.svc.local.\n"
     "web.other.svc.local.\t5\tIN\tA\t10.96.0.10",
     false, CLUSTER_ANSWER},
    /* A short name is no walk: its CNAME is true whatever the target answers. */
    {"forwarding", STRANGER, "gihyo", 1, 3, NULL, "gihyo.jp.", 3,
     "gihyo.\t5\tIN\tCNAME\tgihyo.default.svc.local.\n"
     "gihyo.default.svc.local.\t30\tIN\tCNAME\tgihyo.jp.",
     true, NO_FALLBACK},
};

START_TEST(the_client_gets_its_own_question_and_the_walks_result)
{
    const struct reply_case *r = &replies[_i];
    struct resolver_search *s = search_as(r->config);
    struct dns_request *req = make_request(r->qname, r->qtype, DNS_CLASS_IN, r->client);
    ck_assert_int_eq(resolver_search_serve(s, req), DNS_NEXT);
    ck_assert(req->alias.active);
    later_stages_answer(req, r->target_rcode, r->target_a, r->target_cname);
    dns_request_end_alias(req);
    ck_assert(!req->alias.active);
    ldns_pkt *pkt = support_pkt_from_wire(req->ans, req->ans_len);
    ck_assert_uint_eq(ldns_pkt_id(pkt), QUERY_ID);
    ck_assert(ldns_pkt_qr(pkt) && ldns_pkt_aa(pkt));
    ck_assert_int_eq(ldns_pkt_get_rcode(pkt), r->rcode);
    ck_assert_uint_eq(ldns_pkt_qdcount(pkt), 1);
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt), 0)));
    char want_q[DNS_MAX_NAME * 4 + 2];
    snprintf(want_q, sizeof(want_q), "%s%s", r->qname,
             r->qname[strlen(r->qname) - 1] == '.' ? "" : ".");
    ck_assert_str_eq(q, want_q);
    free(q);
    char answer[2048] = "";
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
        char *line = rr_line(ldns_rr_list_rr(an, i));
        size_t used = strlen(answer);
        snprintf(answer + used, sizeof(answer) - used, "%s%s", i ? "\n" : "", line);
        free(line);
    }
    ck_assert_str_eq(answer, r->answer);
    ldns_rr_list *ns = ldns_pkt_authority(pkt);
    ck_assert_uint_eq(ldns_rr_list_rr_count(ns), r->soa ? 1 : 0);
    if (r->soa)
        ck_assert_int_eq(ldns_rr_get_type(ldns_rr_list_rr(ns, 0)), LDNS_RR_TYPE_SOA);
    ck_assert_msg(ldns_pkt_edns(pkt), "the client asked with EDNS: the reply has no OPT");
    ck_assert_uint_eq(dns_counter_get(&s->stats.autopath_nxdomain), r->fell_back == WALK_NXDOMAIN);
    if (r->fell_back == CLUSTER_ANSWER)
        ck_assert_uint_eq(dns_counter_get(&s->stats.expanded), 1);
    ldns_pkt_free(pkt);
}
END_TEST

START_TEST(an_external_name_candidate_is_followed_through_its_own_cname)
{
    struct resolver_search *s = search_as("forwarding");
    struct dns_request *req = make_request("Gihyo", DNS_TYPE_A, DNS_CLASS_IN, STRANGER);
    ck_assert_int_eq(resolver_search_serve(s, req), DNS_NEXT);
    assert_follows(req, "gihyo.default.svc.local.", DNS_TYPE_A);
    /* The zones stage then follows the ExternalName: a second alias, and the forwarder
     * answers for gihyo.jp. */
    uint8_t cname[12 + DNS_MAX_NAME];
    struct dns_name target;
    ck_assert_int_eq(dns_name_from_text(&target, "gihyo.jp."), 0);
    dns_wire_put_u16(cname, DNS_QUESTION_PTR);
    dns_wire_put_u16(cname + 2, DNS_TYPE_CNAME);
    dns_wire_put_u16(cname + 4, DNS_CLASS_IN);
    dns_wire_put_u32(cname + 6, TTL);
    dns_wire_put_u16(cname + 10, target.len);
    memcpy(cname + 12, target.wire, target.len);
    ck_assert_int_eq(dns_request_follow(req, &target, cname, 12u + target.len, 1), 0);
    later_stages_answer(req, DNS_RCODE_NOERROR, "203.0.113.80", NULL);
    dns_request_end_alias(req);
    ldns_pkt *pkt = support_pkt_from_wire(req->ans, req->ans_len);
    char *an = support_section_text(pkt, LDNS_SECTION_ANSWER);
    ck_assert_str_eq(an, "Gihyo.\t5\tIN\tCNAME\tgihyo.default.svc.local.\n"
                         "gihyo.default.svc.local.\t5\tIN\tCNAME\tgihyo.jp.\n"
                         "gihyo.jp.\t30\tIN\tA\t203.0.113.80");
    free(an);
    ldns_pkt_free(pkt);
}
END_TEST

START_TEST(a_request_that_already_follows_is_left_alone)
{
    struct resolver_search *s = search_as("forwarding");
    struct dns_request *req = make_request("echo", DNS_TYPE_A, DNS_CLASS_IN, STRANGER);
    ck_assert_int_eq(resolver_search_serve(s, req), DNS_NEXT);
    fake.asked[0] = '\0';
    ck_assert_int_eq(resolver_search_serve(s, req), DNS_NEXT);
    ck_assert_str_eq(fake.asked, "");
    ck_assert_uint_eq(req->alias.prefix_count, 1);
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
    ck_assert_int_eq(resolver_search_init(&s, &cfg, &fake_names), -1);
    cfg.namespace_name = "default";
    cfg.cluster_domain = "bad..domain";
    ck_assert_int_eq(resolver_search_init(&s, &cfg, &fake_names), -1);
    cfg.cluster_domain = "cluster.local";
    ck_assert_int_eq(resolver_search_init(&s, &cfg, &fake_names), 0);
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
    TCase *tc = tcase_create("decisions");
    tcase_add_loop_test(tc, the_stage_follows_the_name_the_search_list_reaches, 0,
                        (int)(sizeof(decisions) / sizeof(decisions[0])));
    tcase_add_test(tc, a_request_that_already_follows_is_left_alone);
    suite_add_tcase(s, tc);

    tc = tcase_create("replies");
    tcase_add_loop_test(tc, the_client_gets_its_own_question_and_the_walks_result, 0,
                        (int)(sizeof(replies) / sizeof(replies[0])));
    tcase_add_test(tc, an_external_name_candidate_is_followed_through_its_own_cname);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, init_refuses_a_namespace_of_several_labels_and_a_bad_domain);
    tcase_add_test(tc, resolv_conf_names_the_pods_search_list_nameserver_and_ndots);
    suite_add_tcase(s, tc);
    return s;
}
