/* tests/zones/test_answer.c - the record table of DESIGN.md section 3, answered from a store
 * built from manifests. Expected records are zone text, compared after ldns parses the reply. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/addr.h"
#include "tests/support/support.h"
#include "tests/zones/ask.h"
#include "zones/answer.h"
#include "zones/manifest.h"
#include "zones/model.h"
#include "zones/store.h"

static const char manifests[] =
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: web, namespace: prod}\n"
    "spec:\n"
    "  clusterIPs: [10.96.0.20, 'fd00:10:96::20']\n"
    "  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: web-x, namespace: prod, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\n"
    "ports: [{name: http, port: 8080}]\n"
    "endpoints:\n"
    "  - addresses: [10.244.1.7]\n"
    "    hostname: web-0\n"
    "  - addresses: [10.244.1.8]\n"
    "  - addresses: [10.244.1.9]\n"
    "    conditions: {ready: false}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: db, namespace: prod}\n"
    "spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: db-x, namespace: prod, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv4\n"
    "ports: [{name: pg, port: 5433}]\n"
    "endpoints:\n"
    "  - addresses: [10.244.2.1]\n"
    "    hostname: db-0\n"
    "  - addresses: [10.244.2.2]\n"
    "    conditions: {ready: true}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: idle, namespace: prod}\n"
    "spec: {clusterIP: None}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: ext, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: example.com}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: alias, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: web.prod.svc.local}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: loop-a, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: loop-b.prod.svc.local}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: loop-b, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: loop-a.prod.svc.local}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: self, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: self.prod.svc.local}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: List\n"
    "items:\n"
    "- {apiVersion: v1, kind: Service, metadata: {name: ring-x, namespace: prod},\n"
    "   spec: {type: ExternalName, externalName: ring-y.prod.svc.local}}\n"
    "- {apiVersion: v1, kind: Service, metadata: {name: ring-y, namespace: prod},\n"
    "   spec: {type: ExternalName, externalName: ring-z.prod.svc.local}}\n"
    "- {apiVersion: v1, kind: Service, metadata: {name: ring-z, namespace: prod},\n"
    "   spec: {type: ExternalName, externalName: ring-x.prod.svc.local}}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Namespace\n"
    "metadata: {name: empty}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata: {name: p, namespace: prod}\n"
    "status: {podIP: 10.244.3.3}\n";

static struct zones_objects objs;
static struct zones_store *store;

static void build(enum zones_pods_mode pods)
{
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_buffer(&objs, "test.yaml", manifests, strlen(manifests)),
                      0);
    struct zones_cidr cidrs[2];
    ck_assert_int_eq(zones_cidr_parse("10.96.0.0/12", &cidrs[0]), 0);
    ck_assert_int_eq(zones_cidr_parse("fd00:10:96::/112", &cidrs[1]), 0);
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    cfg.pods = pods;
    struct zones_objects diags;
    zones_objects_init(&diags);
    ck_assert_int_eq(zones_model_build(&store, &objs, &cfg, cidrs, 2, &diags), 0);
    ck_assert_uint_eq(diags.n_diags, 0);
    zones_objects_free(&diags);
}

static void setup(void)
{
    build(ZONES_PODS_INSECURE);
}

static void teardown(void)
{
    zones_store_free(store);
    zones_objects_free(&objs);
}

/* Answers name/type and returns the parsed reply; ANY in full as over TCP, or as over UDP. */
static ldns_pkt *ask_as(const char *name, uint16_t type, bool any_in_full)
{
    return zones_test_ask(store, name, type, any_in_full);
}

static ldns_pkt *ask(const char *name, uint16_t type)
{
    return ask_as(name, type, false);
}

struct answer_case {
    const char *name;
    uint16_t type;
    int rcode;
    const char *answer;     /* sorted zone lines; NULL: empty answer */
    const char *additional; /* checked when not NULL (without the OPT) */
};

static const struct answer_case cases[] = {
    {"web.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "web.prod.svc.local.\t5\tIN\tA\t10.96.0.20", NULL},
    {"WEB.Prod.svc.local.", DNS_TYPE_AAAA, LDNS_RCODE_NOERROR,
     "WEB.Prod.svc.local.\t5\tIN\tAAAA\tfd00:10:96::20", NULL},
    {"web.prod.svc.local.", DNS_TYPE_TXT, LDNS_RCODE_NOERROR, NULL, NULL},
    {"web-0.web.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "web-0.web.prod.svc.local.\t5\tIN\tA\t10.244.1.7", NULL},
    {"10-244-1-8.web.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "10-244-1-8.web.prod.svc.local.\t5\tIN\tA\t10.244.1.8", NULL},
    {"10-244-1-9.web.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"_http._tcp.web.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NOERROR,
     "_http._tcp.web.prod.svc.local.\t5\tIN\tSRV\t0 100 80 web.prod.svc.local.",
     "web.prod.svc.local.\t5\tIN\tA\t10.96.0.20\nweb.prod.svc.local.\t5\tIN\tAAAA\tfd00:10:96::20"},
    {"_dns._udp.web.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NOERROR,
     "_dns._udp.web.prod.svc.local.\t5\tIN\tSRV\t0 100 53 web.prod.svc.local.", NULL},
    {"_tcp.web.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NOERROR, NULL, NULL},
    {"_nope._tcp.web.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"web.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NOERROR,
     "web.prod.svc.local.\t5\tIN\tSRV\t0 50 53 web.prod.svc.local.\n"
     "web.prod.svc.local.\t5\tIN\tSRV\t0 50 80 web.prod.svc.local.",
     NULL},
    {"db.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "db.prod.svc.local.\t5\tIN\tA\t10.244.2.1\ndb.prod.svc.local.\t5\tIN\tA\t10.244.2.2", NULL},
    {"_pg._tcp.db.prod.svc.local.", DNS_TYPE_SRV, LDNS_RCODE_NOERROR,
     "_pg._tcp.db.prod.svc.local.\t5\tIN\tSRV\t0 50 5433 10-244-2-2.db.prod.svc.local.\n"
     "_pg._tcp.db.prod.svc.local.\t5\tIN\tSRV\t0 50 5433 db-0.db.prod.svc.local.",
     "10-244-2-2.db.prod.svc.local.\t5\tIN\tA\t10.244.2.2\n"
     "db-0.db.prod.svc.local.\t5\tIN\tA\t10.244.2.1"},
    {"idle.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"ext.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "ext.prod.svc.local.\t5\tIN\tCNAME\texample.com.", NULL},
    {"ext.prod.svc.local.", DNS_TYPE_MX, LDNS_RCODE_NOERROR,
     "ext.prod.svc.local.\t5\tIN\tCNAME\texample.com.", NULL},
    {"x.ext.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"alias.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "alias.prod.svc.local.\t5\tIN\tCNAME\tweb.prod.svc.local.\n"
     "web.prod.svc.local.\t5\tIN\tA\t10.96.0.20",
     NULL},
    /* ExternalName chains that loop: NOERROR with the chain up to the loop, as CoreDNS
     * answers (NXDOMAIN would say the name does not exist, which is false). */
    {"loop-a.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "loop-a.prod.svc.local.\t5\tIN\tCNAME\tloop-b.prod.svc.local.\n"
     "loop-b.prod.svc.local.\t5\tIN\tCNAME\tloop-a.prod.svc.local.",
     NULL},
    {"self.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "self.prod.svc.local.\t5\tIN\tCNAME\tself.prod.svc.local.", NULL},
    {"ring-y.prod.svc.local.", DNS_TYPE_AAAA, LDNS_RCODE_NOERROR,
     "ring-x.prod.svc.local.\t5\tIN\tCNAME\tring-y.prod.svc.local.\n"
     "ring-y.prod.svc.local.\t5\tIN\tCNAME\tring-z.prod.svc.local.\n"
     "ring-z.prod.svc.local.\t5\tIN\tCNAME\tring-x.prod.svc.local.",
     NULL},
    {"20.0.96.10.in-addr.arpa.", DNS_TYPE_PTR, LDNS_RCODE_NOERROR,
     "20.0.96.10.in-addr.arpa.\t5\tIN\tPTR\tweb.prod.svc.local.", NULL},
    {"7.1.244.10.in-addr.arpa.", DNS_TYPE_PTR, LDNS_RCODE_NOERROR,
     "7.1.244.10.in-addr.arpa.\t5\tIN\tPTR\tweb-0.web.prod.svc.local.", NULL},
    {"0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", DNS_TYPE_PTR,
     LDNS_RCODE_NOERROR,
     "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.\t5\tIN\tPTR\tweb."
     "prod.svc.local.",
     NULL},
    {"9.9.9.9.in-addr.arpa.", DNS_TYPE_PTR, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"10-244-3-3.prod.pod.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "10-244-3-3.prod.pod.local.\t5\tIN\tA\t10.244.3.3", NULL},
    {"1-2-3-4.empty.pod.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR,
     "1-2-3-4.empty.pod.local.\t5\tIN\tA\t1.2.3.4", NULL},
    {"1-2-3-4.empty.pod.local.", DNS_TYPE_AAAA, LDNS_RCODE_NOERROR, NULL, NULL},
    {"fd00--7.empty.pod.local.", DNS_TYPE_AAAA, LDNS_RCODE_NOERROR,
     "fd00--7.empty.pod.local.\t5\tIN\tAAAA\tfd00::7", NULL},
    {"1-2-3.empty.pod.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"300-1-1-1.empty.pod.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"1-2-3-4.nowhere.pod.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"dns-version.local.", DNS_TYPE_TXT, LDNS_RCODE_NOERROR,
     "dns-version.local.\t28800\tIN\tTXT\t\"1.1.0\"", NULL},
    {"local.", DNS_TYPE_NS, LDNS_RCODE_NOERROR, "local.\t5\tIN\tNS\tns.dns.local.", NULL},
    {"svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR, NULL, NULL},
    {"pod.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR, NULL, NULL},
    {"empty.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR, NULL, NULL},
    {"prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NOERROR, NULL, NULL},
    {"nowhere.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"a.nowhere.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"nope.prod.svc.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
    {"x.local.", DNS_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL},
};

static void check_case(const struct answer_case *c)
{
    ldns_pkt *reply = ask(c->name, c->type);
    ck_assert_msg((int)ldns_pkt_get_rcode(reply) == c->rcode, "%s: rcode %d", c->name,
                  ldns_pkt_get_rcode(reply));
    ck_assert_msg(ldns_pkt_aa(reply), "%s: AA", c->name);
    char *answer = support_section_text(reply, LDNS_SECTION_ANSWER);
    ck_assert_msg(strcmp(answer, c->answer ? c->answer : "") == 0, "%s: got\n%s", c->name, answer);
    if (!c->answer) {
        /* Every negative answer carries the SOA of its zone. */
        char *auth = support_section_text(reply, LDNS_SECTION_AUTHORITY);
        ck_assert_msg(strstr(auth, "\tSOA\t") != NULL, "%s: no SOA in\n%s", c->name, auth);
        free(auth);
    }
    if (c->additional) {
        char *additional = support_section_text(reply, LDNS_SECTION_ADDITIONAL);
        ck_assert_msg(strcmp(additional, c->additional) == 0, "%s: additional\n%s", c->name,
                      additional);
        free(additional);
    }
    free(answer);
    ldns_pkt_free(reply);
}

START_TEST(answers_the_record_table)
{
    check_case(&cases[_i]);
}
END_TEST

START_TEST(negative_answers_carry_the_apex_soa)
{
    ldns_pkt *reply = ask("nope.prod.svc.local.", DNS_TYPE_A);
    ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_authority(reply), 0);
    char *owner = ldns_rdf2str(ldns_rr_owner(soa));
    ck_assert_str_eq(owner, "local.");
    ck_assert_uint_eq(ldns_rr_ttl(soa), 5);
    char *mname = ldns_rdf2str(ldns_rr_rdf(soa, 0));
    ck_assert_str_eq(mname, "ns.dns.local.");
    free(owner);
    free(mname);
    ldns_pkt_free(reply);
    reply = ask("9.9.9.9.in-addr.arpa.", DNS_TYPE_PTR);
    owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_authority(reply), 0)));
    ck_assert_str_eq(owner, "in-addr.arpa.");
    free(owner);
    ldns_pkt_free(reply);
}
END_TEST

START_TEST(names_outside_our_zones_are_not_ours)
{
    static uint8_t pkt[512], out[512];
    size_t len = support_query_wire(pkt, sizeof(pkt), "example.com.", DNS_TYPE_A, 1, 7, 0);
    struct dns_query q;
    dns_wire_parse_query(&q, pkt, len);
    struct zones_answer_config cfg = {0};
    size_t n;
    ck_assert_int_eq(zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, NULL),
                     ZONES_ANSWER_NOT_OURS);
    /* With a forwarder, reverse names without a cluster address go to it. */
    cfg.fallthrough_reverse = true;
    len = support_query_wire(pkt, sizeof(pkt), "9.9.9.9.in-addr.arpa.", DNS_TYPE_PTR, 1, 7, 0);
    dns_wire_parse_query(&q, pkt, len);
    ck_assert_int_eq(zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, NULL),
                     ZONES_ANSWER_NOT_OURS);
}
END_TEST

START_TEST(external_names_leaving_the_cluster_are_chased)
{
    static uint8_t pkt[512], out[512];
    size_t len = support_query_wire(pkt, sizeof(pkt), "ext.prod.svc.local.", DNS_TYPE_A, 1, 7, 0);
    struct dns_query q;
    dns_wire_parse_query(&q, pkt, len);
    struct zones_answer_config cfg = {0};
    struct zones_chase chase;
    size_t n;
    zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, &chase);
    ck_assert_uint_eq(chase.count, 1);
    ck_assert_uint_eq(chase.target.len, 13);
    ck_assert_mem_eq(chase.target.wire, "\7example\3com", 13);
}
END_TEST

START_TEST(verified_pods_need_a_pod_with_that_address)
{
    teardown();
    build(ZONES_PODS_VERIFIED);
    ldns_pkt *reply = ask("10-244-3-3.prod.pod.local.", DNS_TYPE_A);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
    ldns_pkt_free(reply);
    reply = ask("1-2-3-4.prod.pod.local.", DNS_TYPE_A);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(reply);
    teardown();
    build(ZONES_PODS_DISABLED);
    reply = ask("10-244-3-3.prod.pod.local.", DNS_TYPE_A);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(reply);
}
END_TEST

/* The dns_names interface the search path asks through. */
START_TEST(names_tell_pods_namespaces_and_existence)
{
    struct zones_answer za = {.store = store};
    struct dns_names names = zones_answer_names(&za);
    struct sockaddr_storage client;
    uint8_t label[DNS_MAX_LABEL + 1];
    ck_assert_int_eq(dns_addr_parse("10.244.3.3:40000", 53, &client), 0);
    ck_assert(names.client_namespace(names.self, &client, label));
    ck_assert_mem_eq(label, "\4prod", 5);
    ck_assert_int_eq(dns_addr_parse("10.244.3.4:40000", 53, &client), 0);
    ck_assert(!names.client_namespace(names.self, &client, label));
    struct dns_name name;
    dns_name_from_text(&name, "web.prod.svc.local");
    ck_assert_int_eq(names.lookup(names.self, &name), DNS_NAME_RECORDS);
    dns_name_from_text(&name, "prod.svc.local");
    ck_assert_int_eq(names.lookup(names.self, &name), DNS_NAME_EMPTY);
    dns_name_from_text(&name, "nothere.prod.svc.local");
    ck_assert_int_eq(names.lookup(names.self, &name), DNS_NAME_ABSENT);
    /* The reply the zones stage would give, as the search path's fallback. */
    static uint8_t pkt[512], out[512];
    size_t len = support_query_wire(pkt, sizeof(pkt), "x.prod.svc.local.", DNS_TYPE_A, 1, 7, 0);
    struct dns_query q;
    dns_wire_parse_query(&q, pkt, len);
    size_t n = names.answer(names.self, &q, pkt, out, sizeof(out));
    ck_assert_uint_gt(n, DNS_HEADER_SIZE);
    ck_assert_uint_eq(DNS_RCODE(dns_wire_get_u16(out + 2)), DNS_RCODE_NXDOMAIN);
    len = support_query_wire(pkt, sizeof(pkt), "example.com.", DNS_TYPE_A, 1, 7, 0);
    dns_wire_parse_query(&q, pkt, len);
    ck_assert_uint_eq(names.answer(names.self, &q, pkt, out, sizeof(out)), 0); /* not ours */
}
END_TEST

/* What no upstream may speak for: the cluster zone, and the reverse names of cluster
 * addresses when the rest of the reverse zones falls through to the forwarder. */
START_TEST(names_tell_what_svcdns_is_the_authority_for)
{
    struct zones_answer za = {.store = store, .cfg = {.fallthrough_reverse = true}};
    struct dns_names names = zones_answer_names(&za);
    static const struct {
        const char *name;
        bool ours;
    } authority[] = {
        {"web.prod.svc.local", true},
        {"nothere.prod.svc.local", true},
        {"local", true},
        {"20.0.96.10.in-addr.arpa", true},
        {"7.1.244.10.in-addr.arpa", true},
        {"0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa", true},
        {"9.9.9.9.in-addr.arpa", false},
        {"0.96.10.in-addr.arpa", false},
        {"in-addr.arpa", false},
        {"example.com", false},
        {"localhost", false},
    };
    for (size_t i = 0; i < sizeof(authority) / sizeof(authority[0]); i++) {
        struct dns_name name;
        dns_name_from_text(&name, authority[i].name);
        ck_assert_msg(names.is_authoritative(names.self, &name) == authority[i].ours, "%s",
                      authority[i].name);
    }
    /* Without a forwarder the reverse zones are answered whole. */
    za.cfg.fallthrough_reverse = false;
    struct dns_name name;
    dns_name_from_text(&name, "9.9.9.9.in-addr.arpa");
    ck_assert(names.is_authoritative(names.self, &name));
}
END_TEST

START_TEST(any_in_full_returns_every_rrset)
{
    ldns_pkt *reply = ask_as("web.prod.svc.local.", DNS_TYPE_ANY, true);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 4); /* A, AAAA and two SRV */
    ldns_rr_list *an = ldns_pkt_answer(reply);
    static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_SRV,
                                         LDNS_RR_TYPE_SRV};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(ldns_rr_get_type(ldns_rr_list_rr(an, i)), types[i]);
        char *owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(an, i)));
        ck_assert_str_eq(owner, "web.prod.svc.local.");
        free(owner);
    }
    ck_assert_uint_eq(ldns_pkt_arcount(reply), 0); /* no glue for ANY */
    ldns_pkt_free(reply);
    reply = ask_as("local.", DNS_TYPE_ANY, true);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 2); /* NS and SOA */
    ldns_pkt_free(reply);
    /* An alias answers ANY with its CNAME alone; a name with no records, with NODATA. */
    reply = ask_as("alias.prod.svc.local.", DNS_TYPE_ANY, true);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
    ck_assert_int_eq(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(reply), 0)),
                     LDNS_RR_TYPE_CNAME);
    ldns_pkt_free(reply);
    reply = ask_as("prod.svc.local.", DNS_TYPE_ANY, true);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
    ck_assert_uint_eq(ldns_pkt_nscount(reply), 1);
    ldns_pkt_free(reply);
}
END_TEST

/* RFC 8482 over UDP: one RRset, the first the full answer would carry. */
static const struct answer_case any_cases[] = {
    {"web.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR,
     "web.prod.svc.local.\t5\tIN\tA\t10.96.0.20", NULL},
    {"db.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR,
     "db.prod.svc.local.\t5\tIN\tA\t10.244.2.1\ndb.prod.svc.local.\t5\tIN\tA\t10.244.2.2", NULL},
    {"web-0.web.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR,
     "web-0.web.prod.svc.local.\t5\tIN\tA\t10.244.1.7", NULL},
    {"_http._tcp.web.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR,
     "_http._tcp.web.prod.svc.local.\t5\tIN\tSRV\t0 100 80 web.prod.svc.local.", ""},
    {"alias.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR,
     "alias.prod.svc.local.\t5\tIN\tCNAME\tweb.prod.svc.local.", NULL},
    {"local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR, "local.\t5\tIN\tNS\tns.dns.local.", NULL},
    {"prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NOERROR, NULL, NULL},
    {"nope.prod.svc.local.", DNS_TYPE_ANY, LDNS_RCODE_NXDOMAIN, NULL, NULL},
};

START_TEST(any_over_udp_returns_one_rrset)
{
    check_case(&any_cases[_i]);
}
END_TEST

START_TEST(dump_prints_each_record_once)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_int_eq(zones_store_dump(store, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "web.prod.svc.local.\t5\tIN\tA\t10.96.0.20\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "alias.prod.svc.local.\t5\tIN\tCNAME\tweb.prod.svc.local.\n"));
    const char *a = strstr(text, "\nweb.prod.svc.local.\t5\tIN\tA\t");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(strstr(a + 1, "\nweb.prod.svc.local.\t5\tIN\tA\t"));
    free(text);
}
END_TEST

/* A headless Service whose endpoints' IPv6 addresses are spread over the whole space: each
 * PTR owner brings up to 31 new ancestors, ten times more names than records, and the
 * builder's name table has to grow with them (it once was sized from the records, and a
 * lookup in the full table never ended). */
START_TEST(spread_ipv6_reverse_names_all_resolve)
{
    enum { N = 2700 }; /* about the most records a 64k-slot table was sized for */
    static struct zones_ip ips[N];
    size_t cap = (size_t)N * 64 + 512;
    char *yaml = malloc(cap);
    ck_assert_ptr_nonnull(yaml);
    size_t used = (size_t)snprintf(
        yaml, cap,
        "kind: Service\napiVersion: v1\nmetadata: {name: h}\nspec: {clusterIP: None}\n---\n"
        "kind: EndpointSlice\napiVersion: discovery.k8s.io/v1\n"
        "metadata: {name: h-x, labels: {kubernetes.io/service-name: h}}\n"
        "addressType: IPv6\nendpoints:\n");
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++) {
        char text[64];
        uint16_t g[8];
        for (int k = 0; k < 8; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            g[k] = (uint16_t)(x >> 48);
        }
        snprintf(text, sizeof(text), "fd%02x:%x:%x:%x:%x:%x:%x:%x", g[0] & 0xff, g[1], g[2], g[3],
                 g[4], g[5], g[6], g[7]);
        ck_assert_int_eq(zones_ip_parse(text, &ips[i]), 0);
        used += (size_t)snprintf(yaml + used, cap - used, "- addresses: ['%s']\n", text);
    }
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_buffer(&objs, "v6.yaml", yaml, used), 0);
    free(yaml);
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    ck_assert_int_eq(zones_model_build(&store, &objs, &cfg, NULL, 0, NULL), 0);
    for (size_t i = 0; i < N; i += 97) {
        char rev[128];
        size_t n = 0;
        for (int b = 15; b >= 0; b--)
            n += (size_t)snprintf(rev + n, sizeof(rev) - n, "%x.%x.", ips[i].addr[b] & 0xf,
                                  ips[i].addr[b] >> 4);
        snprintf(rev + n, sizeof(rev) - n, "ip6.arpa.");
        ldns_pkt *reply = ask(rev, DNS_TYPE_PTR);
        ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
        char *text = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), 0));
        const char *suffix = ".h.default.svc.local.";
        ck_assert_str_eq(text + strlen(text) - strlen(suffix), suffix);
        free(text);
        ldns_pkt_free(reply);
        /* An ancestor halfway up is an empty non-terminal: NODATA, not NXDOMAIN. */
        reply = ask(rev + 32, DNS_TYPE_PTR);
        ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
        ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
        ldns_pkt_free(reply);
    }
}
END_TEST

/* The SOA serial of a build is the newest manifest's time (the daemon keeps reloads from
 * going back: tests/e2e/test_reload.py). */
/* Until every source has loaded, cluster names are SERVFAIL (EDE 14, Not Ready), never an
 * NXDOMAIN a client would cache; reverse names go to the forwarder when there is one. */
START_TEST(an_incomplete_store_answers_servfail)
{
    static uint8_t pkt[512], out[512];
    struct dns_query q;
    struct zones_answer_config cfg = {0};
    size_t n = 0;
    const char *names[] = {"web.prod.svc.local.", "nope.prod.svc.local.", "local.",
                           "20.0.96.10.in-addr.arpa."};
    zones_store_set_complete(store, false);
    ck_assert(!zones_store_is_complete(store));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = support_query_wire(pkt, sizeof(pkt), names[i], DNS_TYPE_A, 1, 7, 1232);
        ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
        ck_assert_int_eq(zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, NULL),
                         ZONES_ANSWER_DONE);
        ldns_pkt *reply = support_pkt_from_wire(out, n);
        ck_assert_msg(ldns_pkt_get_rcode(reply) == LDNS_RCODE_SERVFAIL, "%s", names[i]);
        ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
        ck_assert_uint_eq(ldns_pkt_nscount(reply), 0);
        ck_assert_mem_eq(out + n - 6, "\0\x0f\0\x02\0\x0e", 6); /* EDE option, code 14 */
        ldns_pkt_free(reply);
    }
    cfg.fallthrough_reverse = true;
    size_t len =
        support_query_wire(pkt, sizeof(pkt), "20.0.96.10.in-addr.arpa.", DNS_TYPE_PTR, 1, 7, 0);
    dns_wire_parse_query(&q, pkt, len);
    ck_assert_int_eq(zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, NULL),
                     ZONES_ANSWER_NOT_OURS);
    /* No client namespace either, so autopath does not run on half the data. */
    struct zones_answer za = {.store = store};
    struct dns_names iface = zones_answer_names(&za);
    struct sockaddr_storage client;
    uint8_t label[DNS_MAX_LABEL + 1];
    ck_assert_int_eq(dns_addr_parse("10.244.3.3:40000", 53, &client), 0);
    ck_assert(!iface.client_namespace(iface.self, &client, label));
    zones_store_set_complete(store, true);
    ck_assert(iface.client_namespace(iface.self, &client, label));
    ldns_pkt *reply = ask("web.prod.svc.local.", DNS_TYPE_A);
    ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
    ldns_pkt_free(reply);
}
END_TEST

START_TEST(soa_serial_is_the_newest_manifest_time)
{
    zones_objects_init(&objs);
    objs.newest_mtime = 1750000000;
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    ck_assert_int_eq(zones_model_build(&store, &objs, &cfg, NULL, 0, NULL), 0);
    ldns_pkt *reply = ask("local.", DNS_TYPE_SOA);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
    ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
    ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), 1750000000u);
    ldns_pkt_free(reply);
    zones_store_free(store);
    zones_objects_free(&objs);
    store = NULL;
    zones_objects_init(&objs);
}
END_TEST

static void teardown_built(void)
{
    if (store)
        zones_store_free(store);
    store = NULL;
    zones_objects_free(&objs);
}

Suite *answer_suite(void); /* for tests/zones/main.c */
Suite *answer_suite(void)
{
    Suite *s = suite_create("answer");
    TCase *tc = tcase_create("records");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, answers_the_record_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, negative_answers_carry_the_apex_soa);
    tcase_add_test(tc, names_outside_our_zones_are_not_ours);
    tcase_add_test(tc, external_names_leaving_the_cluster_are_chased);
    tcase_add_test(tc, verified_pods_need_a_pod_with_that_address);
    tcase_add_test(tc, names_tell_pods_namespaces_and_existence);
    tcase_add_test(tc, any_in_full_returns_every_rrset);
    tcase_add_loop_test(tc, any_over_udp_returns_one_rrset, 0,
                        (int)(sizeof(any_cases) / sizeof(any_cases[0])));
    tcase_add_test(tc, names_tell_what_svcdns_is_the_authority_for);
    tcase_add_test(tc, dump_prints_each_record_once);
    tcase_add_test(tc, an_incomplete_store_answers_servfail);
    suite_add_tcase(s, tc);
    tc = tcase_create("build");
    tcase_add_checked_fixture(tc, NULL, teardown_built);
    tcase_add_test(tc, spread_ipv6_reverse_names_all_resolve);
    tcase_add_test(tc, soa_serial_is_the_newest_manifest_time);
    suite_add_tcase(s, tc);
    return s;
}
