/* tests/zones/test_model.c - zones/model.c: sources and their ranks, per-object changes, and
 * ClusterIP assignment, read back from the store the model writes. */
#include <stdbool.h> /* before ldns, which would make bool a signed char */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/wire.h"
#include "tests/zones/ask.h"
#include "zones/manifest.h"
#include "zones/model.h"

/* ---- helpers ---- */

static struct zones_cidr cidr(const char *text)
{
    struct zones_cidr c;
    ck_assert_msg(zones_cidr_parse(text, &c) == 0, "cannot parse %s", text);
    return c;
}

/* Up to 8 sources of YAML text, each a file of its own. */
struct fixture {
    struct zones_model *model;
    struct zones_objects files[8];
    uint32_t ids[8];
    size_t n;
};

static void start(struct fixture *f, const struct zones_cidr *cidrs, size_t n_cidrs)
{
    memset(f, 0, sizeof(*f));
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    ck_assert_int_eq(zones_model_new(&f->model, &cfg, NULL, cidrs, n_cidrs), 0);
}

/* A new source ranked after those before it, holding text; returns its index. */
static size_t add_file(struct fixture *f, const char *name, const char *text)
{
    size_t i = f->n++;
    zones_objects_init(&f->files[i]);
    ck_assert_uint_eq(zones_manifest_load_buffer(&f->files[i], name, text, strlen(text)), 0);
    f->ids[i] = zones_model_add_source(f->model, (uint32_t)i + 1);
    zones_model_set_source(f->model, f->ids[i], &f->files[i]);
    return i;
}

static void commit(struct fixture *f)
{
    zones_model_commit(f->model, 1);
}

static void finish(struct fixture *f)
{
    zones_model_free(f->model);
    for (size_t i = 0; i < f->n; i++)
        zones_objects_free(&f->files[i]);
}

static const char *a_of(struct fixture *f, const char *name)
{
    return zones_test_addresses(zones_model_store(f->model), name, DNS_TYPE_A);
}

static const char *aaaa_of(struct fixture *f, const char *name)
{
    return zones_test_addresses(zones_model_store(f->model), name, DNS_TYPE_AAAA);
}

static const struct zones_objects *diags(struct fixture *f)
{
    return zones_model_diags(f->model);
}

static void assert_no_diags(struct fixture *f)
{
    const struct zones_objects *d = diags(f);
    for (size_t i = 0; i < d->n_diags; i++)
        ck_abort_msg("unexpected error %s:%u:%u: %s", d->diags[i].where.file,
                     d->diags[i].where.line, d->diags[i].where.col, d->diags[i].message);
}

/* A Service manifest: name, namespace and optional extra spec lines. */
static const char *service(const char *ns, const char *name, const char *spec)
{
    static char text[8][512];
    static int next;
    next = (next + 1) % 8;
    snprintf(text[next], sizeof(text[next]),
             "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n"
             "  ports: [{port: 80}]\n%s",
             name, ns, spec != NULL ? spec : "");
    return text[next];
}

static const struct zones_cidr *default_cidrs(void)
{
    static struct zones_cidr cidrs[2];
    cidrs[0] = cidr("10.96.0.0/12");
    cidrs[1] = cidr("fd00::/108");
    return cidrs;
}

/* ---- assignment ---- */

START_TEST(assigns_stable_documented_addresses)
{
    /* FNV-1a 64 of "namespace/name" modulo the usable range, from the range's third address:
     * pinned here so a change of hash shows up as a failing test, not as moved Services. */
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "a.yaml", service("default", "echo", NULL));
    add_file(&f, "b.yaml", service("shop", "web", NULL));
    add_file(&f, "c.yaml", service("default", "gihyo", NULL));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "10.97.137.21");
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.106.103.112");
    ck_assert_str_eq(a_of(&f, "gihyo.default.svc.local."), "10.107.140.255");
    finish(&f);

    struct zones_cidr six = cidr("fd00::/108");
    start(&f, &six, 1);
    add_file(&f, "a.yaml", service("default", "echo", NULL));
    commit(&f);
    ck_assert_str_eq(aaaa_of(&f, "echo.default.svc.local."), "fd00::e:2dd6");
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "");
    finish(&f);
}
END_TEST

START_TEST(assignment_is_independent_of_load_order)
{
    static const char *const names[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
    struct zones_cidr narrow = cidr("10.0.0.0/29"); /* 5 usable addresses for 6 Services */
    struct fixture forward;
    struct fixture backward;
    start(&forward, &narrow, 1);
    start(&backward, &narrow, 1);
    for (int i = 0; i < 6; i++) {
        add_file(&forward, "f.yaml", service("default", names[i], NULL));
        add_file(&backward, "b.yaml", service("default", names[5 - i], NULL));
    }
    commit(&forward);
    commit(&backward);
    ck_assert_uint_eq(diags(&forward)->n_diags, 1);
    ck_assert_uint_eq(diags(&backward)->n_diags, 1);
    ck_assert(strstr(diags(&forward)->diags[0].message, "no free address left") != NULL);
    for (int i = 0; i < 6; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s.default.svc.local.", names[i]);
        char got[64];
        snprintf(got, sizeof(got), "%s", a_of(&forward, name));
        ck_assert_str_eq(got, a_of(&backward, name));
    }
    finish(&forward);
    finish(&backward);
}
END_TEST

START_TEST(assigns_distinct_addresses_inside_the_cidr)
{
    struct zones_cidr c = cidr("10.96.0.0/22"); /* 1021 usable: many collisions */
    struct fixture f;
    start(&f, &c, 1);
    size_t cap = 1000 * 160;
    char *yaml = malloc(cap);
    size_t used = 0;
    for (int i = 0; i < 1000; i++)
        used += (size_t)snprintf(yaml + used, cap - used,
                                 "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, "
                                 "namespace: %s}\nspec: {ports: [{port: 80}]}\n",
                                 i, i % 2 ? "odd" : "even");
    add_file(&f, "many.yaml", yaml);
    free(yaml);
    commit(&f);
    assert_no_diags(&f);
    char *seen = calloc(1024, 1);
    for (int i = 0; i < 1000; i++) {
        char name[64];
        snprintf(name, sizeof(name), "svc-%d.%s.svc.local.", i, i % 2 ? "odd" : "even");
        struct zones_ip ip;
        ck_assert_int_eq(zones_ip_parse(a_of(&f, name), &ip), 0);
        ck_assert(zones_cidr_contains(&c, &ip));
        unsigned offset = (unsigned)(ip.addr[2] & 3) << 8 | ip.addr[3];
        ck_assert_msg(offset >= 2 && offset <= 1022, "got %s", a_of(&f, name));
        ck_assert_msg(!seen[offset], "%s given twice", a_of(&f, name));
        seen[offset] = 1;
    }
    free(seen);
    finish(&f);
}
END_TEST

START_TEST(skips_network_first_host_and_broadcast)
{
    struct zones_cidr c = cidr("192.0.2.0/30"); /* .0 network, .1 first host, .3 broadcast */
    struct fixture f;
    start(&f, &c, 1);
    add_file(&f, "a.yaml", service("default", "only", NULL));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "only.default.svc.local."), "192.0.2.2");
    add_file(&f, "b.yaml", service("default", "more", NULL));
    commit(&f);
    ck_assert_uint_eq(diags(&f)->n_diags, 1);
    /* In (namespace, name) order, "more" comes first and takes the one address. */
    ck_assert(strstr(diags(&f)->diags[0].message,
                     "no free address left in any service CIDR for Service default/only") != NULL);
    ck_assert_str_eq(a_of(&f, "more.default.svc.local."), "192.0.2.2");
    /* With no address and no named port, the Service has no record: not in the DNS. */
    ck_assert_str_eq(a_of(&f, "only.default.svc.local."), "NXDOMAIN");
    finish(&f);

    /* IPv6 has no broadcast: a /126 leaves ::2 and ::3. */
    struct zones_cidr six = cidr("fd00::/126");
    start(&f, &six, 1);
    add_file(&f, "a.yaml", service("default", "a", NULL));
    add_file(&f, "a.yaml", service("default", "b", NULL));
    commit(&f);
    assert_no_diags(&f);
    char a[64];
    snprintf(a, sizeof(a), "%s", aaaa_of(&f, "a.default.svc.local."));
    const char *b = aaaa_of(&f, "b.default.svc.local.");
    ck_assert(strcmp(a, b) != 0);
    ck_assert(strcmp(a, "fd00::2") == 0 || strcmp(a, "fd00::3") == 0);
    ck_assert(strcmp(b, "fd00::2") == 0 || strcmp(b, "fd00::3") == 0);
    finish(&f);
}
END_TEST

/* echo would get 10.97.137.21; whatever object states that address, echo moves on. */
static const char *const squatters[] = {
    "apiVersion: v1\nkind: Service\nmetadata: {name: squatter, namespace: zzz}\n"
    "spec: {clusterIP: 10.97.137.21}\n",
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: s-1, namespace: zzz, labels: {kubernetes.io/service-name: s}}\n"
    "addressType: IPv4\nendpoints: [{addresses: [10.97.137.21]}]\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: zzz}\n"
    "status: {podIP: 10.97.137.21}\n",
};

START_TEST(never_assigns_a_stated_address)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "a.yaml", service("default", "echo", NULL));
    add_file(&f, "b.yaml", squatters[_i]);
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "10.97.137.22");
    /* The squatter goes: echo gets its own address back. */
    zones_model_set_source(f.model, f.ids[1], NULL);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "10.97.137.21");
    finish(&f);
}
END_TEST

START_TEST(takes_the_ranges_in_order_ipv4_first)
{
    /* IPv4 ranges before IPv6 ones, each in the order given; a full range passes on. */
    struct zones_cidr cidrs[3] = {cidr("fd00::/108"), cidr("192.0.2.0/30"), cidr("10.96.0.0/12")};
    struct fixture f;
    start(&f, cidrs, 3);
    add_file(&f, "a.yaml", service("default", "echo", NULL));
    add_file(&f, "b.yaml", service("default", "second", NULL));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "192.0.2.2");
    struct zones_ip ip;
    ck_assert_int_eq(zones_ip_parse(a_of(&f, "second.default.svc.local."), &ip), 0);
    ck_assert(zones_cidr_contains(&cidrs[2], &ip));
    finish(&f);
}
END_TEST

START_TEST(service_cidr_objects_add_ranges)
{
    /* networking.k8s.io/v1 ServiceCIDR (Kubernetes 1.33): its ranges come after
     * --service-cidr's, so with that one full the Service gets an address from it. */
    struct zones_cidr full = cidr("192.0.2.0/30");
    struct fixture f;
    start(&f, &full, 1);
    add_file(&f, "a.yaml", service("default", "alpha", NULL)); /* first in order: 192.0.2.2 */
    add_file(&f, "b.yaml", service("default", "echo", NULL));
    add_file(&f, "cidr.yaml",
             "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\n"
             "spec: {cidrs: [10.100.0.0/16, 'fd00:10:100::/112']}\n");
    commit(&f);
    assert_no_diags(&f);
    struct zones_ip ip;
    struct zones_cidr extra = cidr("10.100.0.0/16");
    ck_assert_int_eq(zones_ip_parse(a_of(&f, "echo.default.svc.local."), &ip), 0);
    ck_assert_msg(zones_cidr_contains(&extra, &ip), "got %s", a_of(&f, "echo.default.svc.local."));
    /* Without the object, echo has nowhere to go (and no record: not in the DNS). */
    zones_model_set_source(f.model, f.ids[2], NULL);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "NXDOMAIN");
    finish(&f);
}
END_TEST

START_TEST(assigns_nothing_to_headless_or_external_services)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "a.yaml", service("default", "headless", "  clusterIP: None\n"));
    add_file(&f, "b.yaml",
             service("default", "ext", "  type: ExternalName\n  externalName: example.com\n"));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "headless.default.svc.local."), "NXDOMAIN"); /* no endpoints */
    ldns_pkt *reply =
        zones_test_ask(zones_model_store(f.model), "ext.default.svc.local.", DNS_TYPE_A, true);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 1); /* the CNAME alone */
    ldns_pkt_free(reply);
    finish(&f);
}
END_TEST

START_TEST(without_a_cidr_assigns_nothing)
{
    struct fixture f;
    start(&f, NULL, 0);
    add_file(&f, "a.yaml", service("default", "echo", NULL));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "echo.default.svc.local."), "NXDOMAIN");
    finish(&f);
}
END_TEST

/* ---- merging ---- */

START_TEST(reports_a_service_twice_in_one_source_and_keeps_the_first)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    char text[2048];
    snprintf(text, sizeof(text), "%s---\n%s---\n%s",
             service("shop", "web", "  clusterIP: 10.96.4.4\n"), service("shop", "other", NULL),
             service("shop", "web", "  clusterIP: 10.96.5.5\n"));
    add_file(&f, "one.yaml", text);
    commit(&f);
    ck_assert_uint_eq(diags(&f)->n_diags, 1);
    const struct zones_diag *d = &diags(&f)->diags[0];
    ck_assert_str_eq(d->where.file, "one.yaml");
    ck_assert_uint_eq(d->where.line, 21);
    ck_assert_uint_eq(d->where.col, 9);
    ck_assert_msg(strstr(d->message, "Service shop/web is defined twice in this file, first at "
                                     "one.yaml:4:9") != NULL,
                  "%s", d->message);
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.96.4.4");
    finish(&f);
}
END_TEST

START_TEST(a_higher_rank_wins_and_ranks_can_move)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "one.yaml", service("shop", "web", "  clusterIP: 10.96.4.4\n"));
    add_file(&f, "two.yaml", service("shop", "web", "  clusterIP: 10.96.5.5\n"));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_uint_eq(diags(&f)->n_warnings, 1);
    ck_assert_str_eq(diags(&f)->warnings[0].where.file, "two.yaml");
    ck_assert_msg(strstr(diags(&f)->warnings[0].message,
                         "Service shop/web replaces its definition at one.yaml:4:9") != NULL,
                  "%s", diags(&f)->warnings[0].message);
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.96.5.5");
    /* one.yaml now loads after two.yaml (a file came or went before it): it wins. */
    zones_model_set_rank(f.model, f.ids[0], 3);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.96.4.4");
    /* And the Kubernetes API wins over every file. */
    struct zones_objects api;
    zones_objects_init(&api);
    const char *text = service("shop", "web", "  clusterIP: 10.96.6.6\n");
    ck_assert_uint_eq(zones_manifest_load_buffer(&api, "api", text, strlen(text)), 0);
    zones_model_put_service(f.model, ZONES_MODEL_API_SOURCE, NULL, &api.services[0]);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.96.6.6");
    zones_model_put_service(f.model, ZONES_MODEL_API_SOURCE, &api.services[0], NULL);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "web.shop.svc.local."), "10.96.4.4");
    zones_objects_free(&api);
    finish(&f);
}
END_TEST

/* Stated addresses are served as stated: kubeadm's 10.96.0.0/12 is only where svcdns
 * allocates, and EKS (10.100.0.0/16), k3s (10.43.0.0/16) or GKE (34.118.224.0/20) addresses
 * load without a flag. */
START_TEST(serves_stated_addresses_outside_every_cidr)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "a.yaml", service("default", "inside", "  clusterIP: 10.96.0.10\n"));
    add_file(&f, "b.yaml", service("default", "gke", "  clusterIP: 34.118.224.10\n"));
    add_file(&f, "c.yaml", service("default", "six", "  clusterIPs: [10.100.0.12, 'fd01::c']\n"));
    commit(&f);
    assert_no_diags(&f);
    ck_assert_str_eq(a_of(&f, "gke.default.svc.local."), "34.118.224.10");
    ck_assert_str_eq(a_of(&f, "six.default.svc.local."), "10.100.0.12");
    ck_assert_str_eq(aaaa_of(&f, "six.default.svc.local."), "fd01::c");
    finish(&f);
}
END_TEST

START_TEST(two_services_stating_one_address_both_answer_and_are_reported)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    add_file(&f, "a.yaml", service("shop", "first", "  clusterIP: 10.96.0.10\n"));
    add_file(&f, "b.yaml", service("alpha", "second", "  clusterIP: 10.96.0.10\n"));
    commit(&f);
    ck_assert_uint_eq(diags(&f)->n_diags, 1);
    const struct zones_diag *d = &diags(&f)->diags[0];
    ck_assert_msg(strstr(d->message, "is also stated by Service") != NULL &&
                      strstr(d->message, "both names answer it") != NULL,
                  "%s", d->message);
    ck_assert_str_eq(a_of(&f, "first.shop.svc.local."), "10.96.0.10");
    ck_assert_str_eq(a_of(&f, "second.alpha.svc.local."), "10.96.0.10");
    ldns_pkt *reply =
        zones_test_ask(zones_model_store(f.model), "10.0.96.10.in-addr.arpa.", DNS_TYPE_PTR, true);
    ck_assert_uint_eq(ldns_pkt_ancount(reply), 2);
    ldns_pkt_free(reply);
    finish(&f);
}
END_TEST

START_TEST(replacing_a_source_takes_away_what_it_no_longer_has)
{
    struct fixture f;
    start(&f, default_cidrs(), 2);
    size_t i = add_file(&f, "a.yaml", service("gone", "echo", "  clusterIP: 10.96.0.10\n"));
    commit(&f);
    ck_assert_str_eq(a_of(&f, "echo.gone.svc.local."), "10.96.0.10");
    struct zones_objects next;
    zones_objects_init(&next);
    const char *text = service("kept", "web", "  clusterIP: 10.96.0.11\n");
    ck_assert_uint_eq(zones_manifest_load_buffer(&next, "a.yaml", text, strlen(text)), 0);
    zones_model_set_source(f.model, f.ids[i], &next);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "echo.gone.svc.local."), "NXDOMAIN");
    ck_assert_str_eq(a_of(&f, "gone.svc.local."), "NXDOMAIN"); /* the namespace went too */
    ck_assert_str_eq(a_of(&f, "web.kept.svc.local."), "10.96.0.11");
    zones_model_remove_source(f.model, f.ids[i]);
    commit(&f);
    ck_assert_str_eq(a_of(&f, "web.kept.svc.local."), "NXDOMAIN");
    zones_objects_free(&next);
    finish(&f);
}
END_TEST

Suite *model_suite(void); /* for tests/zones/main.c */
Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *assign = tcase_create("assign");
    tcase_add_test(assign, assigns_stable_documented_addresses);
    tcase_add_test(assign, assignment_is_independent_of_load_order);
    tcase_add_test(assign, assigns_distinct_addresses_inside_the_cidr);
    tcase_add_test(assign, skips_network_first_host_and_broadcast);
    tcase_add_loop_test(assign, never_assigns_a_stated_address, 0,
                        (int)(sizeof(squatters) / sizeof(squatters[0])));
    tcase_add_test(assign, takes_the_ranges_in_order_ipv4_first);
    tcase_add_test(assign, service_cidr_objects_add_ranges);
    tcase_add_test(assign, assigns_nothing_to_headless_or_external_services);
    tcase_add_test(assign, without_a_cidr_assigns_nothing);
    suite_add_tcase(s, assign);
    TCase *merge = tcase_create("merge");
    tcase_add_test(merge, reports_a_service_twice_in_one_source_and_keeps_the_first);
    tcase_add_test(merge, a_higher_rank_wins_and_ranks_can_move);
    tcase_add_test(merge, serves_stated_addresses_outside_every_cidr);
    tcase_add_test(merge, two_services_stating_one_address_both_answer_and_are_reported);
    tcase_add_test(merge, replacing_a_source_takes_away_what_it_no_longer_has);
    suite_add_tcase(s, merge);
    return s;
}
