/* tests/zones/test_objects.c - zones/objects.c: IPs and CIDRs, the object container, and the
 * copies of one object. ClusterIP assignment is the model's: tests/zones/test_model.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "zones/manifest.h"
#include "zones/objects.h"

/* ---- helpers ---- */

static struct zones_cidr cidr(const char *text)
{
    struct zones_cidr c;
    ck_assert_msg(zones_cidr_parse(text, &c) == 0, "cannot parse %s", text);
    return c;
}

static struct zones_ip ip(const char *text)
{
    struct zones_ip out;
    ck_assert_msg(zones_ip_parse(text, &out) == 0, "cannot parse %s", text);
    return out;
}

static const char *ip_text(const struct zones_ip *addr)
{
    static char text[4][64];
    static int next;
    next = (next + 1) % 4;
    return zones_ip_format(addr, text[next], sizeof(text[next]));
}

/* ---- IPs and CIDRs ---- */

START_TEST(parses_and_formats_ips)
{
    struct zones_ip a = ip("10.96.0.10");
    ck_assert_uint_eq(a.family, 4);
    ck_assert_uint_eq(a.addr[0], 10);
    ck_assert_uint_eq(a.addr[3], 10);
    ck_assert_str_eq(ip_text(&a), "10.96.0.10");
    struct zones_ip b = ip("FD00:0:0::0A");
    ck_assert_uint_eq(b.family, 6);
    ck_assert_str_eq(ip_text(&b), "fd00::a");
    ck_assert_str_eq(ip_text(&(struct zones_ip){.family = 0}), "?");
}
END_TEST

static const char *const bad_ips[] = {"10.0.0.256", "::g",     "1.2.3",        " 1.2.3.4",
                                      "1.2.3.4 ",   "",        "fe80::1%eth0", "10.0.0.1/32",
                                      "None",       "01.2.3.4"};

START_TEST(rejects_bad_ips)
{
    struct zones_ip out;
    ck_assert_msg(zones_ip_parse(bad_ips[_i], &out) == -1, "accepted %s", bad_ips[_i]);
}
END_TEST

START_TEST(parses_ipv4_cidr)
{
    struct zones_cidr c = cidr("10.96.0.0/12");
    ck_assert_uint_eq(c.prefix, 12);
    ck_assert_str_eq(ip_text(&c.base), "10.96.0.0");
    ck_assert(zones_cidr_contains(&c, &(struct zones_ip){0}) == false);
    struct zones_ip inside = ip("10.111.255.255");
    struct zones_ip below = ip("10.95.255.255");
    struct zones_ip above = ip("10.112.0.0");
    struct zones_ip six = ip("::ffff:10.96.0.1");
    ck_assert(zones_cidr_contains(&c, &inside));
    ck_assert(!zones_cidr_contains(&c, &below));
    ck_assert(!zones_cidr_contains(&c, &above));
    ck_assert(!zones_cidr_contains(&c, &six));
    /* Host bits are cleared, as net.ParseCIDR does. */
    struct zones_cidr host = cidr("10.96.7.9/12");
    ck_assert_str_eq(ip_text(&host.base), "10.96.0.0");
    struct zones_cidr all = cidr("0.0.0.0/0");
    ck_assert(zones_cidr_contains(&all, &below));
    struct zones_cidr one = cidr("192.0.2.7/32");
    struct zones_ip same = ip("192.0.2.7");
    struct zones_ip next = ip("192.0.2.8");
    ck_assert(zones_cidr_contains(&one, &same));
    ck_assert(!zones_cidr_contains(&one, &next));
}
END_TEST

START_TEST(parses_ipv6_cidr)
{
    struct zones_cidr c = cidr("fd00:10:96::/108");
    ck_assert_uint_eq(c.prefix, 108);
    ck_assert_uint_eq(c.base.family, 6);
    struct zones_ip inside = ip("fd00:10:96::f:ffff");
    struct zones_ip outside = ip("fd00:10:96::10:0");
    struct zones_ip four = ip("10.96.0.1");
    ck_assert(zones_cidr_contains(&c, &inside));
    ck_assert(!zones_cidr_contains(&c, &outside));
    ck_assert(!zones_cidr_contains(&c, &four));
    struct zones_cidr odd = cidr("fd00::ffff/117");
    ck_assert_str_eq(ip_text(&odd.base), "fd00::f800");
}
END_TEST

static const char *const bad_cidrs[] = {
    "10.96.0.0",    "10.96.0.0/",     "10.96.0.0/33",  "10.96.0.0/1a",
    "10.96.0.0/-1", "fd00::/129",     "x/8",           "",
    "/12",          "10.96.0.0/12/1", "10.96.0.0/ 12", "fd00::/00000128",
    "300.0.0.0/8"};

START_TEST(rejects_bad_cidrs)
{
    struct zones_cidr out;
    ck_assert_msg(zones_cidr_parse(bad_cidrs[_i], &out) == -1, "accepted %s", bad_cidrs[_i]);
}
END_TEST

/* ---- the container ---- */

START_TEST(rolls_back_to_a_checkpoint)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    for (int i = 0; i < 5; i++)
        zones_objects_add_service(&objs)->name = zones_objects_strndup(&objs, "kept", 4);
    struct zones_objects_mark mark = zones_objects_checkpoint(&objs);
    for (int i = 0; i < 20; i++) {
        struct zones_service *svc = zones_objects_add_service(&objs);
        svc->name = zones_objects_strndup(&objs, "dropped", 7);
        svc->ips = zones_objects_alloc(&objs, sizeof(*svc->ips));
        svc->n_ips = 1;
        zones_objects_add_pod(&objs)->labels =
            zones_objects_alloc(&objs, sizeof(struct zones_label));
        zones_objects_add_slice(&objs)->service = zones_objects_strndup(&objs, "x", 1);
        zones_objects_add_namespace(&objs)->name = zones_objects_strndup(&objs, "ns", 2);
        objs.n_skipped++;
    }
    zones_objects_rollback(&objs, &mark);
    ck_assert_uint_eq(objs.n_services, 5);
    ck_assert_uint_eq(objs.n_pods + objs.n_slices + objs.n_namespaces + objs.n_skipped, 0);
    /* Adding after a rollback reuses the array. */
    for (int i = 0; i < 40; i++)
        zones_objects_add_service(&objs);
    ck_assert_str_eq(objs.services[4].name, "kept");
    ck_assert_ptr_null(objs.services[5].name);
    zones_objects_free(&objs);
    ck_assert_uint_eq(objs.n_services, 0);
    zones_objects_free(&objs); /* freeing twice is harmless */
}
END_TEST

/* The objects' memory: zeroed, aligned, and big arrays beside the small ones. */
START_TEST(allocates_zeroed_aligned_memory_freed_with_the_objects)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    char *text = zones_objects_strndup(&objs, "echo-and-more", 4);
    ck_assert_str_eq(text, "echo");
    size_t sizes[] = {1, 17, 3, 200000, 24, 65536, 5};
    for (size_t round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = zones_objects_alloc(&objs, sizes[i]);
            ck_assert_uint_eq((uintptr_t)p % 8, 0);
            bool zero = true;
            for (size_t k = 0; k < sizes[i]; k++)
                zero = zero && p[k] == 0;
            ck_assert(zero);
            memset(p, 0xa5, sizes[i]); /* ASan: every byte is ours, and no block overlaps */
        }
    }
    ck_assert_str_eq(text, "echo");
    zones_objects_free(&objs);
    ck_assert_ptr_null(objs.blocks.head);
}
END_TEST

START_TEST(keeps_its_own_copy_of_error_file_names)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    char file[32] = "first.yaml";
    struct zones_where where = {.file = file, .line = 3, .col = 4};
    zones_objects_error(&objs, &where, "bad %s at %d", "thing", 7);
    strcpy(file, "overwritten");
    ck_assert_str_eq(objs.diags[0].where.file, "first.yaml");
    ck_assert_str_eq(objs.diags[0].message, "bad thing at 7");
    ck_assert_uint_eq(objs.diags[0].where.line, 3);
    const char *interned = zones_objects_intern_file(&objs, "x.yaml");
    where.file = interned;
    zones_objects_error(&objs, &where, "again");
    ck_assert_ptr_eq(objs.diags[1].where.file, interned);
    zones_objects_free(&objs);
}
END_TEST

/* ---- copies of one object ---- */

static const char clone_manifest[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: prod}\n"
    "spec:\n  clusterIPs: [10.96.0.7, fd00::7]\n  selector: {app: db}\n"
    "  ports: [{name: pg, port: 5432}, {name: metrics, port: 9187, protocol: UDP}]\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: Example.COM.}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n"
    "metadata:\n  name: db-abc\n  namespace: prod\n  labels: {kubernetes.io/service-name: db}\n"
    "endpoints:\n"
    "  - {addresses: [10.244.0.1], hostname: db-0, conditions: {ready: true}}\n"
    "  - {addresses: [10.244.0.2], conditions: {ready: false}}\n"
    "  - {addresses: [10.244.0.3, 10.244.0.4]}\n"
    "ports: [{name: pg, port: 5432}]\n"
    "---\n"
    "apiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: prod, labels: {app: db}}\n"
    "spec: {hostname: db-0, subdomain: db}\n"
    "status: {podIPs: [{ip: 10.244.0.1}, {ip: 'fd00::1'}]}\n"
    "---\n"
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n";

static void load_clone_manifest(struct zones_objects *objs)
{
    zones_objects_init(objs);
    ck_assert_uint_eq(
        zones_manifest_load_buffer(objs, "clone.yaml", clone_manifest, strlen(clone_manifest)), 0);
}

/* Overwrites the source's strings, so a copy that still pointed into them would show it. */
static void scribble(char *s)
{
    if (s != NULL)
        memset(s, 'x', strlen(s));
}

static bool is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0)
            return false;
    }
    return true;
}

START_TEST(clones_a_service_without_its_selector)
{
    struct zones_objects objs;
    load_clone_manifest(&objs);
    struct zones_service *svc = zones_objects_clone_service(&objs.services[0], 24);
    const char *file = objs.services[0].where.file;
    unsigned line = objs.services[0].where.line;
    scribble(objs.services[0].name);
    scribble(objs.services[0].ports[0].name);
    zones_objects_free(&objs);
    ck_assert_str_eq(svc->name, "db");
    ck_assert_str_eq(svc->ns, "prod");
    ck_assert_int_eq(svc->kind, ZONES_SVC_CLUSTER_IP);
    ck_assert_uint_eq(svc->n_ips, 2);
    ck_assert_str_eq(ip_text(&svc->ips[0]), "10.96.0.7");
    ck_assert_str_eq(ip_text(&svc->ips[1]), "fd00::7");
    ck_assert_uint_eq(svc->n_ports, 2);
    ck_assert_str_eq(svc->ports[0].name, "pg");
    ck_assert_str_eq(svc->ports[0].protocol, "tcp");
    ck_assert_uint_eq(svc->ports[0].port, 5432);
    ck_assert_str_eq(svc->ports[1].name, "metrics");
    ck_assert_str_eq(svc->ports[1].protocol, "udp");
    ck_assert_uint_eq(svc->ports[1].port, 9187);
    ck_assert_uint_eq(svc->n_selector, 0);
    ck_assert_ptr_null(svc->selector);
    ck_assert_ptr_eq(svc->where.file, file); /* the pointer: the name itself is not copied */
    ck_assert_uint_eq(svc->where.line, line);
    ck_assert((uintptr_t)(svc + 1) % _Alignof(uint64_t) == 0);
    ck_assert(is_zero(svc + 1, 24));
    free(svc);
}
END_TEST

START_TEST(clones_an_external_name)
{
    struct zones_objects objs;
    load_clone_manifest(&objs);
    struct zones_service *svc = zones_objects_clone_service(&objs.services[1], 0);
    zones_objects_free(&objs);
    ck_assert_int_eq(svc->kind, ZONES_SVC_EXTERNAL_NAME);
    ck_assert_str_eq(svc->external_name, "example.com");
    ck_assert_uint_eq(svc->n_ips, 0);
    ck_assert_ptr_null(svc->ips);
    ck_assert_uint_eq(svc->n_ports, 0);
    free(svc);
}
END_TEST

START_TEST(clones_a_slice_with_its_ready_endpoints_only)
{
    struct zones_objects objs;
    load_clone_manifest(&objs);
    ck_assert_uint_eq(objs.slices[0].n_endpoints, 3);
    struct zones_slice *slice = zones_objects_clone_slice(&objs.slices[0], 8);
    scribble(objs.slices[0].endpoints[0].hostname);
    zones_objects_free(&objs);
    ck_assert_str_eq(slice->name, "db-abc");
    ck_assert_str_eq(slice->ns, "prod");
    ck_assert_str_eq(slice->service, "db");
    ck_assert_uint_eq(slice->n_endpoints, 2); /* 10.244.0.2 is not ready */
    ck_assert_str_eq(slice->endpoints[0].hostname, "db-0");
    ck_assert_uint_eq(slice->endpoints[0].n_ips, 1);
    ck_assert_str_eq(ip_text(&slice->endpoints[0].ips[0]), "10.244.0.1");
    ck_assert(slice->endpoints[0].ready);
    ck_assert_ptr_null(slice->endpoints[1].hostname);
    ck_assert_uint_eq(slice->endpoints[1].n_ips, 2);
    ck_assert_str_eq(ip_text(&slice->endpoints[1].ips[1]), "10.244.0.4");
    ck_assert(slice->endpoints[1].ready); /* no conditions: ready */
    ck_assert_uint_eq(slice->n_ports, 1);
    ck_assert_str_eq(slice->ports[0].name, "pg");
    ck_assert(is_zero(slice + 1, 8));
    free(slice);
}
END_TEST

START_TEST(clones_a_pod_as_its_addresses)
{
    struct zones_objects objs;
    load_clone_manifest(&objs);
    struct zones_pod *pod = zones_objects_clone_pod(&objs.pods[0], 0);
    scribble(objs.pods[0].ns);
    zones_objects_free(&objs);
    ck_assert_str_eq(pod->name, "db-0");
    ck_assert_str_eq(pod->ns, "prod");
    ck_assert_uint_eq(pod->n_ips, 2);
    ck_assert_str_eq(ip_text(&pod->ips[1]), "fd00::1");
    ck_assert(pod->ready);
    ck_assert_uint_eq(pod->n_labels, 0);
    ck_assert_ptr_null(pod->hostname);
    ck_assert_ptr_null(pod->subdomain);
    free(pod);
}
END_TEST

START_TEST(clones_a_namespace)
{
    struct zones_objects objs;
    load_clone_manifest(&objs);
    struct zones_namespace *ns = zones_objects_clone_namespace(&objs.namespaces[0], 16);
    scribble(objs.namespaces[0].name);
    zones_objects_free(&objs);
    ck_assert_str_eq(ns->name, "prod");
    ck_assert(is_zero(ns + 1, 16));
    free(ns);
}
END_TEST

START_TEST(clones_an_empty_slice)
{
    char name[] = "e";
    char ns[] = "default";
    char service[] = "svc";
    struct zones_slice empty = {.name = name, .ns = ns, .service = service};
    struct zones_slice *slice = zones_objects_clone_slice(&empty, 0);
    ck_assert_uint_eq(slice->n_endpoints, 0);
    ck_assert_ptr_null(slice->endpoints);
    ck_assert_uint_eq(slice->n_ports, 0);
    ck_assert_str_eq(slice->service, "svc");
    free(slice);
}
END_TEST

Suite *objects_suite(void); /* for tests/zones/main.c */
Suite *objects_suite(void)
{
    Suite *s = suite_create("objects");
    TCase *addresses = tcase_create("addresses");
    tcase_add_test(addresses, parses_and_formats_ips);
    tcase_add_loop_test(addresses, rejects_bad_ips, 0, (int)(sizeof(bad_ips) / sizeof(bad_ips[0])));
    tcase_add_test(addresses, parses_ipv4_cidr);
    tcase_add_test(addresses, parses_ipv6_cidr);
    tcase_add_loop_test(addresses, rejects_bad_cidrs, 0,
                        (int)(sizeof(bad_cidrs) / sizeof(bad_cidrs[0])));
    suite_add_tcase(s, addresses);

    TCase *container = tcase_create("container");
    tcase_add_test(container, rolls_back_to_a_checkpoint);
    tcase_add_test(container, allocates_zeroed_aligned_memory_freed_with_the_objects);
    tcase_add_test(container, keeps_its_own_copy_of_error_file_names);
    suite_add_tcase(s, container);

    TCase *clones = tcase_create("clones");
    tcase_add_test(clones, clones_a_service_without_its_selector);
    tcase_add_test(clones, clones_an_external_name);
    tcase_add_test(clones, clones_a_slice_with_its_ready_endpoints_only);
    tcase_add_test(clones, clones_a_pod_as_its_addresses);
    tcase_add_test(clones, clones_a_namespace);
    tcase_add_test(clones, clones_an_empty_slice);
    suite_add_tcase(s, clones);
    return s;
}
