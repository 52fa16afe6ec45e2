/* tests/zones/test_cache.c - zones/cache.c: a file's objects written and read back whole, and
 * every kind of stale or damaged entry a miss that leaves nothing behind. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "zones/cache.h"
#include "zones/manifest.h"

/* One of each kind, with every field the cache keeps set. */
static const char everything[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    "spec: {clusterIPs: [10.96.0.20, 'fd00::14'], ports: [{name: http, port: 80},\n"
    "       {name: dns, port: 53, protocol: UDP}], selector: {app: web, tier: front}}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: shop}\n"
    "spec: {type: ExternalName, externalName: Example.COM.}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\nports: [{name: http, port: 8080}]\n"
    "endpoints: [{addresses: [10.1.0.1], hostname: web-0},\n"
    "            {addresses: [10.1.0.2], conditions: {ready: false}}]\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, labels: {app: web}}\n"
    "spec: {hostname: h, subdomain: s}\nstatus: {podIPs: [{ip: 10.1.0.1}, {ip: 'fd00::1'}]}\n"
    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    "---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\n"
    "spec: {cidrs: [10.100.0.0/16]}\n"
    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: skipped}\n";

static void load(struct zones_objects *objs)
{
    zones_objects_init(objs);
    ck_assert_uint_eq(zones_manifest_load_buffer(objs, "f.yaml", everything, strlen(everything)),
                      0);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Written and read back, the objects are the same, field by field. */
START_TEST(round_trips_every_field)
{
    struct zones_objects a;
    struct zones_objects b;
    load(&a);
    a.newest_mtime = 1700000123;
    size_t len = 0;
    uint8_t *buf = zones_cache_encode("build-1", "f.yaml", 42, &a, &len);
    zones_objects_init(&b);
    ck_assert(zones_cache_decode(buf, len, "build-1", "f.yaml", 42, &b));
    ck_assert_uint_eq(b.n_services, 2);
    ck_assert_uint_eq(b.n_slices, 1);
    ck_assert_uint_eq(b.n_pods, 1);
    ck_assert_uint_eq(b.n_namespaces, 1);
    ck_assert_uint_eq(b.n_service_cidrs, 1);
    ck_assert_uint_eq(b.n_skipped, 1);
    ck_assert_int_eq(b.newest_mtime, 1700000123);
    const struct zones_service *x = &a.services[0];
    const struct zones_service *y = &b.services[0];
    ck_assert(same_str(x->name, y->name) && same_str(x->ns, y->ns));
    ck_assert_uint_eq(y->n_ips, 2);
    ck_assert_mem_eq(x->ips, y->ips, 2 * sizeof(x->ips[0]));
    ck_assert_uint_eq(y->n_ports, 2);
    ck_assert(same_str(y->ports[1].name, "dns") && same_str(y->ports[1].protocol, "udp"));
    ck_assert_uint_eq(y->ports[1].port, 53);
    ck_assert_uint_eq(y->n_selector, 2);
    ck_assert(same_str(y->selector[1].key, "tier") && same_str(y->selector[1].value, "front"));
    ck_assert_str_eq(y->where.file, "f.yaml");
    ck_assert_uint_eq(y->where.line, x->where.line);
    ck_assert_uint_eq(y->ips_where.col, x->ips_where.col);
    ck_assert_str_eq(b.services[1].external_name, "example.com");
    ck_assert_int_eq(b.services[1].kind, ZONES_SVC_EXTERNAL_NAME);
    const struct zones_slice *s = &b.slices[0];
    ck_assert(same_str(s->service, "web") && s->n_endpoints == 2);
    ck_assert(same_str(s->endpoints[0].hostname, "web-0") && s->endpoints[0].ready);
    ck_assert(s->endpoints[1].hostname == NULL && !s->endpoints[1].ready);
    ck_assert_uint_eq(s->ports[0].port, 8080);
    const struct zones_pod *p = &b.pods[0];
    ck_assert(same_str(p->hostname, "h") && same_str(p->subdomain, "s") && p->n_ips == 2);
    ck_assert(same_str(p->labels[0].value, "web") && p->ready);
    ck_assert_str_eq(b.namespaces[0].name, "shop");
    ck_assert_uint_eq(b.service_cidrs[0].cidrs[0].prefix, 16);
    /* Encoding what was read back gives the same bytes. */
    size_t len2 = 0;
    uint8_t *buf2 = zones_cache_encode("build-1", "f.yaml", 42, &b, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    free(buf);
    free(buf2);
    zones_objects_free(&a);
    zones_objects_free(&b);
}
END_TEST

/* Another build, path or stamp, or any cut or changed byte: a miss, with nothing added. */
START_TEST(anything_stale_or_damaged_is_a_miss)
{
    struct zones_objects a;
    struct zones_objects b;
    load(&a);
    size_t len = 0;
    uint8_t *buf = zones_cache_encode("build-1", "f.yaml", 42, &a, &len);
    zones_objects_init(&b);
    ck_assert(!zones_cache_decode(buf, len, "build-2", "f.yaml", 42, &b));
    ck_assert(!zones_cache_decode(buf, len, "build-1", "g.yaml", 42, &b));
    ck_assert(!zones_cache_decode(buf, len, "build-1", "f.yaml", 43, &b));
    for (size_t cut = 0; cut < len; cut += 7) {
        ck_assert(!zones_cache_decode(buf, cut, "build-1", "f.yaml", 42, &b));
        ck_assert_uint_eq(b.n_services + b.n_slices + b.n_pods + b.n_namespaces, 0);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    ck_assert(!zones_cache_decode(longer, len + 1, "build-1", "f.yaml", 42, &b));
    free(longer);
    zones_objects_free(&b);
    free(buf);
    zones_objects_free(&a);
}
END_TEST

START_TEST(stores_and_loads_through_a_directory)
{
    char dir[] = "/tmp/svcdns-cache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct zones_objects a;
    struct zones_objects b;
    load(&a);
    zones_objects_init(&b);
    ck_assert(!zones_cache_load(dir, "b", "/m/f.yaml", 7, &b));
    ck_assert_int_eq(zones_cache_store(dir, "b", "/m/f.yaml", 7, &a), 0);
    ck_assert(zones_cache_load(dir, "b", "/m/f.yaml", 7, &b));
    ck_assert_uint_eq(b.n_services, 2);
    zones_objects_free(&b);
    zones_objects_init(&b);
    ck_assert(!zones_cache_load(dir, "b", "/m/f.yaml", 8, &b)); /* the file changed */
    ck_assert_int_eq(zones_cache_store("/nonexistent/dir", "b", "/m/f.yaml", 7, &a) < 0, 1);
    zones_objects_free(&a);
    zones_objects_free(&b);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

Suite *cache_suite(void); /* for tests/zones/main.c */
Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("entries");
    tcase_add_test(tc, round_trips_every_field);
    tcase_add_test(tc, anything_stale_or_damaged_is_a_miss);
    tcase_add_test(tc, stores_and_loads_through_a_directory);
    suite_add_tcase(s, tc);
    return s;
}
