/* tests/zones/test_manifest.c - zones/manifest.c: every kind and field, Lists, multi-document
 * YAML, JSON, kubectl dumps, the tutorial manifests, errors with their exact positions, the
 * limits against YAML bombs, and directory walks through kubelet's ..data layout. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "zones/dom.h"
#include "zones/manifest.h"

#define NAME "test.yaml"

/* ---- helpers ---- */

static void load_text(struct zones_objects *objs, const char *text)
{
    zones_objects_init(objs);
    zones_manifest_load_buffer(objs, NAME, text, strlen(text));
}

static void load_ok(struct zones_objects *objs, const char *text)
{
    load_text(objs, text);
    for (size_t i = 0; i < objs->n_diags; i++)
        ck_abort_msg("unexpected error %u:%u: %s", objs->diags[i].where.line,
                     objs->diags[i].where.col, objs->diags[i].message);
}

static char *data_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
    return path;
}

static const struct zones_service *service(const struct zones_objects *objs, const char *ns,
                                           const char *name)
{
    for (size_t i = 0; i < objs->n_services; i++) {
        if (strcmp(objs->services[i].ns, ns) == 0 && strcmp(objs->services[i].name, name) == 0)
            return &objs->services[i];
    }
    ck_abort_msg("no Service %s/%s", ns, name);
    return NULL;
}

static const struct zones_pod *pod(const struct zones_objects *objs, const char *name)
{
    for (size_t i = 0; i < objs->n_pods; i++) {
        if (strcmp(objs->pods[i].name, name) == 0)
            return &objs->pods[i];
    }
    ck_abort_msg("no Pod %s", name);
    return NULL;
}

static const char *ip_text(const struct zones_ip *ip)
{
    static char text[4][64];
    static int next;
    next = (next + 1) % 4;
    return zones_ip_format(ip, text[next], sizeof(text[next]));
}

static const char *label(const struct zones_label *labels, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(labels[i].key, key) == 0)
            return labels[i].value;
    }
    return NULL;
}

static void assert_diag(const struct zones_objects *objs, size_t i, const char *file, unsigned line,
                        unsigned col, const char *fragment)
{
    ck_assert_msg(i < objs->n_diags, "expected error %zu, have %zu", i, objs->n_diags);
    const struct zones_diag *d = &objs->diags[i];
    ck_assert_msg(strcmp(d->where.file, file) == 0 && d->where.line == line &&
                      d->where.col == col && strstr(d->message, fragment) != NULL,
                  "expected %s:%u:%u ...%s..., got %s:%u:%u: %s", file, line, col, fragment,
                  d->where.file, d->where.line, d->where.col, d->message);
}

/* ---- Services ---- */

START_TEST(loads_service_with_cluster_ip)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\n"
                   "kind: Service\n"
                   "metadata:\n"
                   "  name: echo\n"
                   "  namespace: shop\n"
                   "spec:\n"
                   "  clusterIP: 10.96.12.34\n");
    ck_assert_uint_eq(objs.n_services, 1);
    const struct zones_service *svc = &objs.services[0];
    ck_assert_str_eq(svc->name, "echo");
    ck_assert_str_eq(svc->ns, "shop");
    ck_assert_int_eq(svc->kind, ZONES_SVC_CLUSTER_IP);
    ck_assert_uint_eq(svc->n_ips, 1);
    ck_assert_str_eq(ip_text(&svc->ips[0]), "10.96.12.34");
    ck_assert_str_eq(svc->where.file, NAME);
    ck_assert_uint_eq(svc->where.line, 4);
    ck_assert_uint_eq(svc->where.col, 9);
    ck_assert_uint_eq(svc->ips_where.line, 7);
    ck_assert_uint_eq(svc->ips_where.col, 14);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_service_with_cluster_ips)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\n"
                   "kind: Service\n"
                   "metadata: {name: dual}\n"
                   "spec:\n"
                   "  clusterIP: 10.96.0.50\n"
                   "  clusterIPs: [10.96.0.50, 'fd00::50']\n");
    const struct zones_service *svc = service(&objs, "default", "dual");
    ck_assert_uint_eq(svc->n_ips, 2);
    ck_assert_str_eq(ip_text(&svc->ips[0]), "10.96.0.50");
    ck_assert_str_eq(ip_text(&svc->ips[1]), "fd00::50");
    ck_assert_uint_eq(svc->ips[1].family, 6);
    ck_assert_uint_eq(svc->ips_where.line, 6);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_cluster_ips_without_cluster_ip)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\n"
                   "kind: Service\n"
                   "metadata: {name: six}\n"
                   "spec:\n"
                   "  clusterIPs:\n"
                   "  - fd00::1:2\n");
    const struct zones_service *svc = service(&objs, "default", "six");
    ck_assert_uint_eq(svc->n_ips, 1);
    ck_assert_str_eq(ip_text(&svc->ips[0]), "fd00::1:2");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_headless_service)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
                   "spec: {clusterIP: None}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"
                   "spec: {clusterIP: None, clusterIPs: [None]}\n");
    ck_assert_int_eq(service(&objs, "default", "a")->kind, ZONES_SVC_HEADLESS);
    ck_assert_int_eq(service(&objs, "default", "b")->kind, ZONES_SVC_HEADLESS);
    ck_assert_uint_eq(service(&objs, "default", "a")->n_ips, 0);
    ck_assert_uint_eq(service(&objs, "default", "b")->n_ips, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_node_port_and_load_balancer_as_cluster_ip)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: np}\n"
                   "spec: {type: NodePort, clusterIP: 10.96.1.1, ports: [{port: 80, nodePort: "
                   "30080}]}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\n"
                   "spec: {type: LoadBalancer, clusterIP: 10.96.1.2}\n"
                   "status: {loadBalancer: {ingress: [{ip: 203.0.113.9}]}}\n");
    ck_assert_int_eq(service(&objs, "default", "np")->kind, ZONES_SVC_CLUSTER_IP);
    ck_assert_int_eq(service(&objs, "default", "lb")->kind, ZONES_SVC_CLUSTER_IP);
    ck_assert_str_eq(ip_text(&service(&objs, "default", "lb")->ips[0]), "10.96.1.2");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_external_name_lower_cased_without_trailing_dot)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
                   "spec:\n  type: ExternalName\n  externalName: WWW.Example.COM.\n");
    const struct zones_service *svc = service(&objs, "default", "ext");
    ck_assert_int_eq(svc->kind, ZONES_SVC_EXTERNAL_NAME);
    ck_assert_str_eq(svc->external_name, "www.example.com");
    ck_assert_uint_eq(svc->n_ips, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(leaves_empty_or_absent_cluster_ip_to_be_assigned)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: ''}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: "
                   "80}]}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n");
    for (size_t i = 0; i < objs.n_services; i++) {
        ck_assert_int_eq(objs.services[i].kind, ZONES_SVC_CLUSTER_IP);
        ck_assert_uint_eq(objs.services[i].n_ips, 0);
    }
    ck_assert_uint_eq(objs.n_services, 3);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_ports_with_lower_cased_protocol)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: p}\n"
                   "spec:\n"
                   "  ports:\n"
                   "  - name: http\n"
                   "    port: 80\n"
                   "    targetPort: 8080\n"
                   "  - name: dns\n"
                   "    protocol: UDP\n"
                   "    port: 53\n"
                   "  - {name: sig, protocol: SCTP, port: 9999}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: one}\n"
                   "spec: {ports: [{port: 443}]}\n");
    const struct zones_service *svc = service(&objs, "default", "p");
    ck_assert_uint_eq(svc->n_ports, 3);
    ck_assert_str_eq(svc->ports[0].name, "http");
    ck_assert_str_eq(svc->ports[0].protocol, "tcp");
    ck_assert_uint_eq(svc->ports[0].port, 80);
    ck_assert_str_eq(svc->ports[1].name, "dns");
    ck_assert_str_eq(svc->ports[1].protocol, "udp");
    ck_assert_uint_eq(svc->ports[1].port, 53);
    ck_assert_str_eq(svc->ports[2].protocol, "sctp");
    ck_assert_uint_eq(svc->ports[2].port, 9999);
    const struct zones_service *one = service(&objs, "default", "one");
    ck_assert_uint_eq(one->n_ports, 1);
    ck_assert_ptr_null(one->ports[0].name);
    ck_assert_str_eq(one->ports[0].protocol, "tcp");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_selector)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "spec:\n  selector:\n    app: echo\n    release: summer\n");
    const struct zones_service *svc = service(&objs, "default", "s");
    ck_assert_uint_eq(svc->n_selector, 2);
    ck_assert_str_eq(label(svc->selector, svc->n_selector, "app"), "echo");
    ck_assert_str_eq(label(svc->selector, svc->n_selector, "release"), "summer");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(defaults_namespace_to_default)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: null}\n");
    ck_assert_str_eq(objs.services[0].ns, "default");
    ck_assert_str_eq(objs.pods[0].ns, "default");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(resolves_anchors_and_aliases)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Service\n"
                   "metadata:\n  name: s\n  labels: &app {app: shop}\n"
                   "spec:\n  selector: *app\n  ports: [&http {name: http, port: 80}]\n"
                   "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: &l {app: a}}\n"
                   "spec: {hostname: &h p-0}\n"
                   "status: {podIP: 10.0.0.1}\n");
    const struct zones_service *svc = service(&objs, "default", "s");
    ck_assert_str_eq(label(svc->selector, svc->n_selector, "app"), "shop");
    ck_assert_str_eq(pod(&objs, "p")->hostname, "p-0");
    zones_objects_free(&objs);
}
END_TEST

/* ---- EndpointSlice and Endpoints ---- */

START_TEST(loads_endpointslice)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: discovery.k8s.io/v1\n"
                   "kind: EndpointSlice\n"
                   "metadata:\n"
                   "  name: web-abc12\n"
                   "  namespace: shop\n"
                   "  labels:\n"
                   "    kubernetes.io/service-name: web\n"
                   "addressType: IPv4\n"
                   "endpoints:\n"
                   "- addresses: [10.244.0.12]\n"
                   "  hostname: web-0\n"
                   "- addresses: [10.244.0.13, 10.244.0.14]\n"
                   "  conditions: {ready: true}\n"
                   "- addresses: [10.244.0.15]\n"
                   "  conditions:\n"
                   "    ready: false\n"
                   "    serving: true\n"
                   "ports:\n"
                   "- name: http\n"
                   "  port: 8080\n"
                   "  protocol: TCP\n"
                   "- name: all\n");
    ck_assert_uint_eq(objs.n_slices, 1);
    const struct zones_slice *slice = &objs.slices[0];
    ck_assert_str_eq(slice->name, "web-abc12");
    ck_assert_str_eq(slice->ns, "shop");
    ck_assert_str_eq(slice->service, "web");
    ck_assert_uint_eq(slice->n_endpoints, 3);
    ck_assert_uint_eq(slice->endpoints[0].n_ips, 1);
    ck_assert_str_eq(ip_text(&slice->endpoints[0].ips[0]), "10.244.0.12");
    ck_assert_str_eq(slice->endpoints[0].hostname, "web-0");
    ck_assert(slice->endpoints[0].ready);
    ck_assert_uint_eq(slice->endpoints[1].n_ips, 2);
    ck_assert_str_eq(ip_text(&slice->endpoints[1].ips[1]), "10.244.0.14");
    ck_assert_ptr_null(slice->endpoints[1].hostname);
    ck_assert(slice->endpoints[1].ready);
    ck_assert(!slice->endpoints[2].ready);
    /* A port with no number means "all ports": no SRV record, so it is left out. */
    ck_assert_uint_eq(slice->n_ports, 1);
    ck_assert_str_eq(slice->ports[0].name, "http");
    ck_assert_str_eq(slice->ports[0].protocol, "tcp");
    ck_assert_uint_eq(slice->ports[0].port, 8080);
    ck_assert_uint_eq(slice->where.line, 4);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(skips_endpointslice_without_service_label)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                   "metadata: {name: orphan, labels: {app: x}}\n"
                   "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\n"
                   "---\n"
                   "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                   "metadata: {name: bare}\naddressType: IPv4\n");
    ck_assert_uint_eq(objs.n_slices, 0);
    ck_assert_uint_eq(objs.n_skipped, 2);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(skips_fqdn_endpointslice)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                   "metadata: {name: f, labels: {kubernetes.io/service-name: web}}\n"
                   "addressType: FQDN\nendpoints: [{addresses: [db.example.com]}]\n");
    ck_assert_uint_eq(objs.n_slices, 0);
    ck_assert_uint_eq(objs.n_skipped, 1);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_endpoints_subsets_as_slices)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, data_path("multi-doc.yaml")), 0);
    ck_assert_uint_eq(objs.n_slices, 2);
    const struct zones_slice *a = &objs.slices[0];
    const struct zones_slice *b = &objs.slices[1];
    ck_assert_str_eq(a->name, "db");
    ck_assert_str_eq(a->service, "db");
    ck_assert_str_eq(a->ns, "shop");
    ck_assert_uint_eq(a->n_endpoints, 3);
    ck_assert_str_eq(ip_text(&a->endpoints[0].ips[0]), "10.244.2.7");
    ck_assert_str_eq(a->endpoints[0].hostname, "db-0");
    ck_assert(a->endpoints[0].ready);
    ck_assert_ptr_null(a->endpoints[1].hostname);
    ck_assert(a->endpoints[1].ready);
    ck_assert_str_eq(ip_text(&a->endpoints[2].ips[0]), "10.244.2.9");
    ck_assert(!a->endpoints[2].ready);
    ck_assert_uint_eq(a->n_ports, 1);
    ck_assert_str_eq(a->ports[0].name, "pg");
    ck_assert_uint_eq(a->ports[0].port, 5432);
    ck_assert_str_eq(b->service, "db");
    ck_assert_uint_eq(b->n_endpoints, 1);
    ck_assert_str_eq(ip_text(&b->endpoints[0].ips[0]), "fd00:10:244:2::7");
    ck_assert_str_eq(b->ports[0].name, "pg-v6");
    ck_assert_uint_eq(b->ports[0].port, 5433);
    zones_objects_free(&objs);
}
END_TEST

/* ---- Pods and Namespaces ---- */

START_TEST(loads_pod)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Pod\n"
                   "metadata:\n  name: web-0\n  namespace: shop\n"
                   "  labels: {app: web, tier: front}\n"
                   "spec:\n  hostname: web-0\n  subdomain: web\n"
                   "status:\n"
                   "  podIP: 10.244.0.12\n"
                   "  podIPs:\n  - ip: 10.244.0.12\n  - ip: fd00::12\n"
                   "  conditions:\n"
                   "  - {type: Initialized, status: 'True'}\n"
                   "  - {type: Ready, status: 'True'}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: old}\n"
                   "status: {podIP: 10.244.0.13, conditions: [{type: Ready, status: 'False'}]}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\n"
                   "status: {podIP: 10.244.0.14}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: pending}\n"
                   "status: {phase: Pending}\n");
    const struct zones_pod *p = pod(&objs, "web-0");
    ck_assert_str_eq(p->ns, "shop");
    ck_assert_uint_eq(p->n_ips, 2);
    ck_assert_str_eq(ip_text(&p->ips[0]), "10.244.0.12");
    ck_assert_str_eq(ip_text(&p->ips[1]), "fd00::12");
    ck_assert_str_eq(p->hostname, "web-0");
    ck_assert_str_eq(p->subdomain, "web");
    ck_assert_uint_eq(p->n_labels, 2);
    ck_assert_str_eq(label(p->labels, p->n_labels, "tier"), "front");
    ck_assert(p->ready);
    const struct zones_pod *old = pod(&objs, "old");
    ck_assert_uint_eq(old->n_ips, 1);
    ck_assert_str_eq(ip_text(&old->ips[0]), "10.244.0.13");
    ck_assert(!old->ready);
    ck_assert_ptr_null(old->hostname);
    ck_assert_ptr_null(old->subdomain);
    ck_assert(pod(&objs, "bare")->ready);
    ck_assert_uint_eq(pod(&objs, "pending")->n_ips, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_namespace)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    ck_assert_uint_eq(objs.n_namespaces, 1);
    ck_assert_str_eq(objs.namespaces[0].name, "shop");
    ck_assert_uint_eq(objs.namespaces[0].where.line, 4);
    zones_objects_free(&objs);
}
END_TEST

/* ---- Lists, documents, JSON ---- */

START_TEST(loads_kind_list_and_typed_lists)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: v1\nkind: ServiceList\nitems:\n"
                   "- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n"
                   "- apiVersion: v1\n  kind: Service\n  metadata: {name: b}\n"
                   "---\n"
                   "apiVersion: v1\nkind: PodList\nmetadata: {resourceVersion: '1'}\nitems:\n"
                   "- {apiVersion: v1, kind: Pod, metadata: {name: p}}\n"
                   "---\n"
                   "apiVersion: v1\nkind: List\nitems: []\n"
                   "---\n"
                   "apiVersion: v1\nkind: List\nitems:\n"
                   "- {apiVersion: v1, kind: Namespace, metadata: {name: n}}\n"
                   "- {apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: r}}\n");
    ck_assert_uint_eq(objs.n_services, 2);
    ck_assert_uint_eq(objs.n_pods, 1);
    ck_assert_uint_eq(objs.n_namespaces, 1);
    ck_assert_uint_eq(objs.n_skipped, 1);
    ck_assert_uint_eq(objs.services[1].where.line, 9);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_multi_document_yaml)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, data_path("multi-doc.yaml")), 0);
    ck_assert_uint_eq(objs.n_services, 1);
    ck_assert_int_eq(objs.services[0].kind, ZONES_SVC_HEADLESS);
    ck_assert_uint_eq(objs.n_slices, 2);
    ck_assert_uint_eq(objs.n_pods, 1);
    ck_assert_uint_eq(objs.n_namespaces, 1);
    ck_assert_uint_eq(objs.n_skipped, 1);
    const struct zones_pod *p = pod(&objs, "db-0");
    ck_assert(!p->ready);
    ck_assert_str_eq(label(p->labels, p->n_labels, "role"), "primary");
    /* Lines count across documents: the Pod's name is on line 44 of the file. */
    ck_assert_uint_eq(p->where.line, 44);
    ck_assert_uint_eq(p->where.col, 9);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(ignores_empty_and_null_documents)
{
    struct zones_objects objs;
    load_ok(&objs, "");
    ck_assert_uint_eq(objs.n_services + objs.n_skipped, 0);
    zones_objects_free(&objs);
    load_ok(&objs, "# only a comment\n---\n---\n~\n---\nnull\n...\n");
    ck_assert_uint_eq(objs.n_services + objs.n_skipped, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_json_with_escapes)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, data_path("list.json")), 0);
    const struct zones_service *svc = service(&objs, "shop", "api");
    ck_assert_str_eq(ip_text(&svc->ips[0]), "10.96.100.7");
    ck_assert_str_eq(label(svc->selector, svc->n_selector, "app"), "api");
    ck_assert_str_eq(label(svc->selector, svc->n_selector, "tier"), "back-end");
    ck_assert_uint_eq(svc->n_ports, 2);
    ck_assert_str_eq(svc->ports[1].protocol, "udp");
    ck_assert_uint_eq(svc->where.line, 9);
    ck_assert_uint_eq(svc->where.col, 13);
    const struct zones_pod *p = pod(&objs, "api-0");
    ck_assert_uint_eq(p->n_ips, 2);
    ck_assert_str_eq(ip_text(&p->ips[1]), "fd00:10:244:1::5");
    ck_assert_uint_eq(objs.n_skipped, 1);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_compact_json)
{
    struct zones_objects objs;
    load_ok(&objs, "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":"
                   "\"\\u0065cho\"},\"spec\":{\"clusterIP\":\"10.96.0.9\",\"ports\":[{\"port\":"
                   "80,\"name\":\"h\\u0074tp\"}]}}");
    const struct zones_service *svc = service(&objs, "default", "echo");
    ck_assert_str_eq(svc->ports[0].name, "http");
    ck_assert_uint_eq(svc->where.col, 56);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_kubectl_list_dump)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, data_path("kubectl-list.yaml")), 0);
    ck_assert_uint_eq(objs.n_services, 4);
    ck_assert_uint_eq(objs.n_slices, 3);
    ck_assert_uint_eq(objs.n_pods, 2);
    ck_assert_uint_eq(objs.n_namespaces, 3);
    ck_assert_uint_eq(objs.n_skipped, 0);
    const struct zones_service *echo = service(&objs, "default", "echo");
    ck_assert_str_eq(ip_text(&echo->ips[0]), "10.111.36.1");
    ck_assert_str_eq(label(echo->selector, echo->n_selector, "release"), "summer");
    const struct zones_service *dns = service(&objs, "kube-system", "kube-dns");
    ck_assert_uint_eq(dns->n_ports, 3);
    ck_assert_str_eq(dns->ports[0].protocol, "udp");
    ck_assert_int_eq(service(&objs, "shop", "web")->kind, ZONES_SVC_HEADLESS);
    const struct zones_slice *kube_dns = &objs.slices[1];
    ck_assert_str_eq(kube_dns->service, "kube-dns");
    ck_assert(kube_dns->endpoints[0].ready);
    ck_assert(!kube_dns->endpoints[1].ready);
    ck_assert_str_eq(objs.slices[2].endpoints[0].hostname, "web-0");
    ck_assert(pod(&objs, "web-0")->ready);
    ck_assert_str_eq(pod(&objs, "web-0")->subdomain, "web");
    ck_assert(!pod(&objs, "coredns-5d78c9869d-9qz7m")->ready);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(counts_skipped_kinds)
{
    struct zones_objects objs;
    load_ok(&objs, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n"
                   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\n"
                   "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n");
    ck_assert_uint_eq(objs.n_skipped, 3);
    ck_assert_uint_eq(objs.n_services, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(loads_tutorial_examples)
{
    static const char *const files[] = {"simple-service.yaml", "simple-node-port-service.yaml",
                                        "gihyo-external-name.yaml",
                                        "simple-replicaset-with-label.yaml"};
    char path[512];
    struct zones_objects objs;
    for (size_t i = 0; i < 4; i++) {
        zones_objects_init(&objs);
        snprintf(path, sizeof(path), "%s/../../../examples/%s", TEST_DATA_DIR, files[i]);
        ck_assert_uint_eq(zones_manifest_load_path(&objs, path), 0);
        if (i < 2) {
            const struct zones_service *echo = service(&objs, "default", "echo");
            ck_assert_int_eq(echo->kind, ZONES_SVC_CLUSTER_IP);
            ck_assert_uint_eq(echo->n_ips, 0);
            ck_assert_str_eq(echo->ports[0].name, "http");
            ck_assert_uint_eq(echo->ports[0].port, 80);
        } else if (i == 2) {
            const struct zones_service *gihyo = service(&objs, "default", "gihyo");
            ck_assert_int_eq(gihyo->kind, ZONES_SVC_EXTERNAL_NAME);
            ck_assert_str_eq(gihyo->external_name, "gihyo.jp");
        } else {
            ck_assert_uint_eq(objs.n_services, 0);
            ck_assert_uint_eq(objs.n_skipped, 2);
        }
        zones_objects_free(&objs);
    }
    /* Together, the two echo manifests are one Service applied twice (examples/README.md): the
     * later file, simple-service.yaml, replaces the NodePort one, with a warning. */
    zones_objects_init(&objs);
    snprintf(path, sizeof(path), "%s/../../../examples", TEST_DATA_DIR);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, path), 0);
    ck_assert_uint_eq(objs.n_services, 3);
    ck_assert_uint_eq(objs.n_skipped, 2);
    ck_assert_uint_eq(objs.n_diags, 0);
    /* Merging them is the model's: tests/zones/test_model.c. */
    ck_assert_uint_eq(objs.services[2].n_selector, 2); /* app, release: simple-service.yaml */
    zones_objects_free(&objs);
}
END_TEST

START_TEST(accepts_utf8_bom_and_crlf)
{
    struct zones_objects objs;
    load_ok(&objs, "\xef\xbb\xbf"
                   "apiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: crlf\r\n---\r\n"
                   "apiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: two\r\n");
    ck_assert_uint_eq(objs.services[0].where.line, 4);
    ck_assert_uint_eq(objs.services[0].where.col, 9);
    ck_assert_uint_eq(objs.services[1].where.line, 9);
    zones_objects_free(&objs);
}
END_TEST

/* ---- errors: each at the exact position of the offending node ---- */

struct error_case {
    const char *text;
    unsigned line;
    unsigned col;
    const char *fragment;
};

#define SVC "apiVersion: v1\nkind: Service\n"
#define SVC_ECHO SVC "metadata:\n  name: echo\n"
#define SLICE                                                                                      \
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                                       \
    "metadata: {name: s, labels: {kubernetes.io/service-name: s}}\n"
#define POD "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"

static const struct error_case error_cases[] = {
    /* syntax */
    {SVC "metadata:\n  name: x\n namespace: y\n", 5, 2, "invalid YAML: did not find expected key"},
    {SVC "metadata:\n\tname: x\n", 4, 1, "tabs"},
    {SVC "metadata:\n  name: \"x\n", 4, 9, "found unexpected end of stream"},
    {SVC "metadata: {name: x\n", 4, 1, "close the mapping with '}'"},
    {"{\"kind\": \"Service\", \"metadata\": {\"name\": \"x\"},, }\n", 1, 47,
     "invalid YAML: did not find expected node content"},
    {SVC "metadata:\n  name: a: b\n", 4, 10, "mapping values are not allowed"},
    {"kind: Service\nx: \"a\xff\"\n", 2, 6, "invalid YAML: invalid leading UTF-8 octet"},
    {"\xff\xfek\0i\0n\0d\0", 1, 1, "save the file as UTF-8"},
    {"kind: Service\nx: \x01\n", 2, 4, "control characters are not allowed"},
    {SVC "metadata:\n  name: *nowhere\n", 4, 9, "alias *nowhere has no anchor"},
    {"kind: List\nitems: &a [*a]\n", 2, 12, "alias *a is inside the node it refers to"},
    /* names */
    {SVC "metadata:\n  name: Echo_1\n", 4, 9,
     "metadata.name \"Echo_1\" is not a DNS label; use lower-case letters, digits and '-', at "
     "most 63 characters"},
    {SVC "metadata:\n  name: a123456789012345678901234567890123456789012345678901234567890123\n", 4,
     9, "is not a DNS label"},
    {SVC "metadata:\n  name: echo-\n", 4, 9, "is not a DNS label"},
    {SVC "metadata:\n  namespace: shop\n", 4, 3, "metadata.name is missing"},
    {SVC "spec: {}\n", 1, 1, "metadata is missing"},
    {SVC_ECHO "  namespace: Shop\n", 5, 14, "metadata.namespace \"Shop\" is not a DNS label"},
    {SVC "metadata:\n  name: \"ec\\0ho\"\n", 4, 9, "contains a NUL character"},
    {SVC_ECHO "  name: again\n", 5, 3, "metadata.name is given twice (first on line 4)"},
    {SVC "metadata:\n  name: [echo]\n", 4, 9, "metadata.name must be a string, not a list"},
    {SVC "metadata: echo\n", 3, 11, "metadata must be a mapping, not a string"},
    /* cluster IPs */
    {SVC_ECHO "spec:\n  clusterIP: 10.0.0.300\n", 6, 14,
     "spec.clusterIP \"10.0.0.300\" is not an IP address; write an IPv4 or IPv6 address, or None "
     "for a headless Service"},
    {SVC_ECHO "spec:\n  clusterIP: '::g'\n", 6, 14, "is not an IP address"},
    {SVC_ECHO "spec:\n  clusterIP: none\n", 6, 14, "or None for a headless Service"},
    {SVC_ECHO "spec:\n  clusterIPs: [10.0.0.1, 10.0.0.2]\n", 6, 26,
     "spec.clusterIPs[1] is a second IPv4 address"},
    {SVC_ECHO "spec:\n  clusterIPs: [10.0.0.1, nope]\n", 6, 26,
     "spec.clusterIPs[1] \"nope\" is not an IP address"},
    {SVC_ECHO "spec:\n  clusterIP: 10.0.0.2\n  clusterIPs: [10.0.0.1]\n", 6, 14,
     "differs from spec.clusterIPs[0]"},
    {SVC_ECHO "spec:\n  clusterIPs: 10.0.0.1\n", 6, 15, "spec.clusterIPs must be a list"},
    /* found by fuzz_manifest: a mapping where clusterIPs[0] belongs, beside clusterIP None */
    {SVC_ECHO "spec:\n  clusterIP: None\n  clusterIPs:\n  - {a: b}\n", 8, 5,
     "spec.clusterIPs[0] must be a string, not a mapping"},
    /* type and ExternalName */
    {SVC_ECHO "spec:\n  type: Magic\n", 6, 9, "spec.type \"Magic\" is not ClusterIP"},
    {SVC_ECHO "spec:\n  type: ExternalName\n", 6, 3, "spec.externalName is missing"},
    {SVC_ECHO "spec:\n  type: ExternalName\n  externalName: bad..name\n", 7, 17,
     "spec.externalName \"bad..name\" is not a DNS name"},
    {SVC_ECHO "spec:\n  type: ExternalName\n  externalName: under_score.example\n", 7, 17,
     "is not a DNS name"},
    /* ports */
    {SVC_ECHO "spec:\n  ports: {port: 80}\n", 6, 10, "spec.ports must be a list"},
    {SVC_ECHO "spec:\n  ports:\n  - port: 70000\n", 7, 11,
     "spec.ports[0].port \"70000\" is not a port number; use a number from 1 to 65535"},
    {SVC_ECHO "spec:\n  ports:\n  - port: 0\n", 7, 11, "is not a port number"},
    {SVC_ECHO "spec:\n  ports:\n  - port: 99999999999999999999999\n", 7, 11,
     "is not a port number"},
    {SVC_ECHO "spec:\n  ports:\n  - port: '80'\n", 7, 11, "is a string; write the port number"},
    {SVC_ECHO "spec:\n  ports:\n  - name: http\n", 7, 5, "spec.ports[0].port is missing"},
    {SVC_ECHO "spec:\n  ports:\n  - port: 80\n    protocol: tcp\n", 8, 15,
     "spec.ports[0].protocol \"tcp\" is not TCP, UDP or SCTP"},
    {SVC_ECHO "spec:\n  ports:\n  - port: 80\n    name: HTTP\n", 8, 11,
     "spec.ports[0].name \"HTTP\" is not a DNS label"},
    {SVC_ECHO "spec:\n  ports:\n  - {name: a, port: 80}\n  - {port: 81}\n", 8, 5,
     "spec.ports[1] has no name"},
    {SVC_ECHO "spec:\n  ports:\n  - {name: a, port: 80}\n  - {name: a, port: 81}\n", 8, 12,
     "spec.ports[1].name \"a\" is used by an earlier port too"},
    {SVC_ECHO "spec:\n  selector:\n    app: {x: y}\n", 7, 10,
     "spec.selector.app must be a string, not a mapping"},
    /* EndpointSlice, Endpoints, Pod */
    {SLICE "endpoints:\n- addresses: [10.0.0.1, 10.0.0.999]\n", 5, 25,
     "endpoints[0].addresses[1] \"10.0.0.999\" is not an IP address"},
    {SLICE "endpoints:\n- addresses: [10.0.0.1]\n  hostname: Web_0\n", 6, 13,
     "endpoints[0].hostname \"Web_0\" is not a DNS label"},
    {SLICE "endpoints:\n- addresses: [10.0.0.1]\n  conditions: {ready: maybe}\n", 6, 23,
     "endpoints[0].conditions.ready \"maybe\" is not a boolean"},
    {SLICE "addressType: IPv5\n", 4, 14, "addressType \"IPv5\" is not IPv4, IPv6 or FQDN"},
    {SLICE "ports:\n- {name: http, port: 65536}\n", 5, 22, "ports[0].port"},
    {"apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n"
     "- addresses:\n  - ip: 10.1.1\n",
     6, 9, "subsets[0].addresses[0].ip \"10.1.1\" is not an IP address"},
    {"apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n"
     "- notReadyAddresses:\n  - hostname: x\n",
     6, 5, "subsets[0].notReadyAddresses[0].ip is missing"},
    {POD "spec: {hostname: Web}\n", 4, 18, "spec.hostname \"Web\" is not a DNS label"},
    {POD "spec: {subdomain: -web}\n", 4, 19, "spec.subdomain \"-web\" is not a DNS label"},
    {POD "status: {podIP: 10.0.0.256}\n", 4, 17, "status.podIP \"10.0.0.256\" is not an IP"},
    {POD "status: {podIPs: [{ip: x}]}\n", 4, 24, "status.podIPs[0].ip \"x\" is not an IP"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: Big_Pod}\n", 3, 18, "is not a DNS name"},
    {"apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n", 3, 18, "is not a DNS label"},
    /* objects */
    {"apiVersion: v1\nmetadata: {name: x}\n", 1, 1, "kind is missing"},
    {"kind: Service\nmetadata: {name: x}\n", 1, 1, "apiVersion is missing"},
    {"- kind: Service\n", 1, 1, "expected an object"},
};

START_TEST(reports_errors_at_their_position)
{
    const struct error_case *c = &error_cases[_i];
    struct zones_objects objs;
    zones_objects_init(&objs);
    /* Some cases hold a NUL byte; their length runs to the last non-NUL byte. */
    size_t len = strlen(c->text);
    if (c->text[0] == '\xff')
        len = 11;
    size_t n = zones_manifest_load_buffer(&objs, "bad.yaml", c->text, len);
    ck_assert_msg(n >= 1, "case %d: no error for:\n%s", _i, c->text);
    assert_diag(&objs, 0, "bad.yaml", c->line, c->col, c->fragment);
    ck_assert_uint_eq(objs.n_services + objs.n_slices + objs.n_pods + objs.n_namespaces, 0);
    zones_objects_free(&objs);
}
END_TEST

/* What the API server accepts loads, with no error: each case names the rule in
 * kubernetes/kubernetes pkg/apis/core/validation (ValidateService, ValidatePodSpec,
 * ValidateEndpoints) or pkg/apis/discovery/validation, over apimachinery's
 * pkg/util/validation (IsDNS1123Label, IsDNS1123Subdomain). */
static const struct {
    const char *text;
    const char *rule;
} accepted[] = {
    {SVC "metadata: {name: 1kubernetes}\n",
     "Service names are RFC 1123 labels under RelaxedServiceNameValidation (KEP-5311, on by "
     "default in 1.36): a leading digit is fine"},
    {SVC "metadata: {name: 9, namespace: 0-team}\n",
     "namespace names are RFC 1123 labels (ValidateNamespaceName = NameIsDNSLabel)"},
    {SVC "metadata: {name: echo, namespace: ''}\n", "an empty namespace is the default one"},
    {SVC_ECHO "spec:\n  type: ExternalName\n  externalName: 192.0.2.1\n",
     "externalName is checked with IsDNS1123Subdomain without its trailing dot, which an IPv4 "
     "address passes (a warning says what it means)"},
    {SVC_ECHO "spec:\n  type: ExternalName\n  externalName: Example.COM.\n",
     "a trailing dot is allowed; svcdns lower-cases the target"},
    {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
     "metadata: {name: echo-abc, labels: {kubernetes.io/service-name: echo}}\n"
     "addressType: IPv4\nports: [{name: '', port: 8080, protocol: TCP}]\n"
     "endpoints: [{addresses: [10.1.0.1], hostname: ''}]\n",
     "an unnamed EndpointSlice port is name: \"\" (validateEndpointPorts checks only a non-empty "
     "name)"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
     "spec: {hostname: 0web, subdomain: 1sub}\n",
     "Pod hostname and subdomain are RFC 1123 labels (ValidatePodSpec)"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostname: ''}\n",
     "an empty hostname is no hostname"},
    {"kind: ServiceList\napiVersion: v1\nmetadata: {resourceVersion: '42'}\n"
     "items:\n- metadata: {name: echo, namespace: default}\n  spec: {clusterIP: 10.0.0.1}\n",
     "the API server's typed Lists carry no kind on their items (kubernetes#3030)"},
    {SVC_ECHO "spec: {clusterIP: 34.118.224.10}\n",
     "a clusterIP is any valid IP: GKE's range is 34.118.224.0/20"},
    {"apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\n"
     "spec: {cidrs: [10.96.0.0/28, 'fd00:10:96::/112']}\n",
     "a ServiceCIDR has one range, or one of each family (ValidateServiceCIDR)"},
};

START_TEST(accepts_what_the_api_server_accepts)
{
    struct zones_objects objs;
    load_text(&objs, accepted[_i].text);
    ck_assert_msg(objs.n_diags == 0, "%s: %s", accepted[_i].rule,
                  objs.n_diags ? objs.diags[0].message : "");
    ck_assert_msg(objs.n_services + objs.n_slices + objs.n_pods + objs.n_service_cidrs == 1,
                  "%s: nothing loaded", accepted[_i].rule);
    ck_assert_uint_eq(objs.n_invalid, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(reads_what_relaxed_rules_accept_as_meant)
{
    struct zones_objects objs;
    load_ok(&objs, accepted[6].text);
    ck_assert_str_eq(objs.pods[0].hostname, "0web");
    zones_objects_free(&objs);
    load_ok(&objs, accepted[7].text);
    ck_assert_ptr_null(objs.pods[0].hostname);
    zones_objects_free(&objs);
    load_ok(&objs, accepted[5].text);
    ck_assert_ptr_null(objs.slices[0].ports[0].name);
    ck_assert_ptr_null(objs.slices[0].endpoints[0].hostname);
    zones_objects_free(&objs);
    load_ok(&objs, accepted[3].text);
    ck_assert_str_eq(objs.services[0].external_name, "192.0.2.1");
    ck_assert_uint_eq(objs.n_warnings, 1);
    ck_assert(strstr(objs.warnings[0].message, "is an IP address") != NULL);
    zones_objects_free(&objs);
    load_ok(&objs, accepted[2].text);
    ck_assert_str_eq(objs.services[0].ns, "default");
    zones_objects_free(&objs);
    load_ok(&objs, accepted[8].text);
    ck_assert_str_eq(objs.services[0].name, "echo");
    ck_assert_uint_eq(objs.services[0].n_ips, 1);
    zones_objects_free(&objs);
    load_ok(&objs, accepted[10].text);
    ck_assert_uint_eq(objs.service_cidrs[0].n_cidrs, 2);
    ck_assert_uint_eq(objs.service_cidrs[0].cidrs[0].prefix, 28);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(broken_document_loses_only_itself)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    const char *path = data_path("broken-middle.yaml");
    ck_assert_uint_eq(zones_manifest_load_path(&objs, path), 1);
    assert_diag(&objs, 0, path, 12, 2, "did not find expected key");
    ck_assert_uint_eq(objs.n_services, 2);
    ck_assert_str_eq(objs.services[0].name, "first");
    ck_assert_str_eq(objs.services[1].name, "last");
    ck_assert_uint_eq(objs.services[1].where.line, 19);
    zones_objects_free(&objs);

    /* An object with a wrong value is lost, and only it: not the List it is in. */
    load_text(&objs, "apiVersion: v1\nkind: List\nitems:\n"
                     "- {apiVersion: v1, kind: Service, metadata: {name: a}}\n"
                     "- {apiVersion: v1, kind: Service, metadata: {name: b}, "
                     "spec: {clusterIP: x}}\n"
                     "- {apiVersion: v1, kind: Service, metadata: {name: No}}\n"
                     "---\n"
                     "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n");
    ck_assert_uint_eq(objs.n_diags, 2);
    assert_diag(&objs, 0, NAME, 5, 74, "spec.clusterIP \"x\"");
    assert_diag(&objs, 1, NAME, 6, 52, "metadata.name \"No\" is not a DNS label");
    ck_assert_uint_eq(objs.n_services, 2);
    ck_assert_str_eq(objs.services[0].name, "a");
    ck_assert_str_eq(objs.services[1].name, "c");
    ck_assert_uint_eq(objs.n_invalid, 2);
    ck_assert_uint_eq(objs.n_unread, 0);
    zones_objects_free(&objs);
}
END_TEST

START_TEST(reports_every_error_of_a_document)
{
    struct zones_objects objs;
    load_text(&objs, SVC "metadata:\n  name: Bad\nspec:\n  clusterIP: 1.2.3\n"
                         "  ports: [{port: 0}]\n");
    ck_assert_uint_eq(objs.n_diags, 3);
    assert_diag(&objs, 0, NAME, 4, 9, "metadata.name");
    assert_diag(&objs, 1, NAME, 6, 14, "spec.clusterIP");
    assert_diag(&objs, 2, NAME, 7, 18, "spec.ports[0].port");
    zones_objects_free(&objs);
}
END_TEST

/* ---- limits ---- */

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

START_TEST(rejects_billion_laughs_quickly)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct zones_objects objs;
    zones_objects_init(&objs);
    const char *path = data_path("billion-laughs.yaml");
    ck_assert_uint_eq(zones_manifest_load_path(&objs, path), 1);
    assert_diag(&objs, 0, path, 14, 13, "more than 16000000 nodes once aliases are expanded");
    ck_assert_uint_eq(objs.n_skipped, 0);
    ck_assert_msg(seconds_since(&start) < 2.0, "took %.2f s", seconds_since(&start));
    zones_objects_free(&objs);
}
END_TEST

START_TEST(rejects_too_many_aliases)
{
    size_t n = ZONES_MANIFEST_MAX_ALIASES + 10;
    char *text = malloc(n * 5 + 64);
    size_t len = (size_t)sprintf(text, "a: &x 1\nb: [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "*x, ");
    len += (size_t)sprintf(text + len, "]\n");
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_buffer(&objs, NAME, text, len), 1);
    assert_diag(&objs, 0, NAME, 2, 5 + 4 * ZONES_MANIFEST_MAX_ALIASES, "more than 10000 aliases");
    zones_objects_free(&objs);
    free(text);
}
END_TEST

START_TEST(rejects_deep_nesting_quickly)
{
    size_t depth = 10000;
    char *text = malloc(2 * depth + 1);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct zones_objects objs;
    zones_objects_init(&objs);
    /* The next document still loads. */
    char *doc = malloc(2 * depth + 64);
    memcpy(doc, text, 2 * depth);
    const char *next = "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n";
    memcpy(doc + 2 * depth, next, strlen(next));
    ck_assert_uint_eq(zones_manifest_load_buffer(&objs, NAME, doc, 2 * depth + strlen(next)), 1);
    assert_diag(&objs, 0, NAME, 1, ZONES_MANIFEST_MAX_DEPTH + 1, "nesting deeper than 64");
    ck_assert_uint_eq(objs.n_namespaces, 1);
    ck_assert_msg(seconds_since(&start) < 1.0, "took %.2f s", seconds_since(&start));
    zones_objects_free(&objs);
    free(doc);
    free(text);
}
END_TEST

START_TEST(rejects_lists_nested_through_aliases)
{
    struct zones_objects objs;
    load_text(&objs, "a: &l0 {kind: List, items: []}\n"
                     "b: &l1 {kind: List, items: [*l0]}\n"
                     "c: &l2 {kind: List, items: [*l1]}\n"
                     "d: &l3 {kind: List, items: [*l2]}\n"
                     "e: &l4 {kind: List, items: [*l3]}\n"
                     "f: &l5 {kind: List, items: [*l4]}\n"
                     "g: &l6 {kind: List, items: [*l5]}\n"
                     "h: &l7 {kind: List, items: [*l6]}\n"
                     "i: &l8 {kind: List, items: [*l7]}\n"
                     "kind: List\n"
                     "items: [*l8]\n");
    ck_assert_uint_eq(objs.n_diags, 1);
    assert_diag(&objs, 0, NAME, 2, 4, "Lists nested more than 8 deep");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(rejects_an_oversized_buffer_without_reading_it)
{
    /* The size is checked before a byte is read, so a short buffer stands for a huge one. */
    static const char small[] = "kind: Service\n";
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(
        zones_manifest_load_buffer(&objs, NAME, small, (size_t)ZONES_MANIFEST_MAX_BYTES + 1), 1);
    assert_diag(&objs, 0, NAME, 0, 0, "more than the limit");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(stops_after_too_many_errors)
{
    size_t n = ZONES_DOM_MAX_ERRORS + 50;
    char *text = malloc(n * 64 + 64);
    size_t len = (size_t)sprintf(text, "apiVersion: v1\nkind: List\nitems:\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "- {apiVersion: v1, kind: Service, metadata: {}}\n");
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_buffer(&objs, NAME, text, len), ZONES_DOM_MAX_ERRORS + 1);
    ck_assert(strstr(objs.diags[ZONES_DOM_MAX_ERRORS].message, "too many errors") != NULL);
    ck_assert_uint_eq(objs.n_services, 0);
    zones_objects_free(&objs);
    free(text);
}
END_TEST

/* ---- paths ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *namespace_doc(const char *name)
{
    static char text[128];
    snprintf(text, sizeof(text), "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", name);
    return text;
}

/* kubelet's ConfigMap volume: the data lives in ..<timestamp>/, ..data links to it, and each
 * visible name links through ..data. */
START_TEST(loads_directory_with_configmap_layout)
{
    char dir[] = "/tmp/svcdns-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    char target[512];
    snprintf(path, sizeof(path), "%s/..2026_01_12_09_30_00.123456789", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    static const char *const names[] = {"b.yaml", "a.yml", "c.json", "notes.txt"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/..2026_01_12_09_30_00.123456789/%s", dir, names[i]);
        write_file(path, namespace_doc(i == 0 ? "bee" : i == 1 ? "ay" : "see"));
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(target, sizeof(target), "..data/%s", names[i]);
        ck_assert_int_eq(symlink(target, path), 0);
    }
    snprintf(path, sizeof(path), "%s/..data", dir);
    ck_assert_int_eq(symlink("..2026_01_12_09_30_00.123456789", path), 0);
    snprintf(path, sizeof(path), "%s/.hidden.yaml", dir);
    write_file(path, namespace_doc("hidden"));
    snprintf(path, sizeof(path), "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/sub/d.yaml", dir);
    write_file(path, namespace_doc("dee"));
    snprintf(path, sizeof(path), "%s/sub/loop", dir);
    ck_assert_int_eq(symlink("..", path), 0);

    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, dir), 0);
    ck_assert_uint_eq(objs.n_namespaces, 4);
    /* Sorted: a.yml, b.yaml, c.json, sub/d.yaml. */
    ck_assert_str_eq(objs.namespaces[0].name, "ay");
    ck_assert_str_eq(objs.namespaces[1].name, "bee");
    ck_assert_str_eq(objs.namespaces[2].name, "see");
    ck_assert_str_eq(objs.namespaces[3].name, "dee");
    snprintf(path, sizeof(path), "%s/sub/d.yaml", dir);
    ck_assert_str_eq(objs.namespaces[3].where.file, path);
    zones_objects_free(&objs);
    /* Cleanup is best effort: the temporary directory is unique to this run. */
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

static uint64_t signature_of(const char *path)
{
    struct zones_manifest_list list;
    zones_manifest_list(&path, 1, &list);
    uint64_t signature = list.signature;
    zones_manifest_list_free(&list);
    return signature;
}

/* The signature changes with what the loader would read, and only with that. */
START_TEST(signature_follows_the_manifests)
{
    char dir[] = "/tmp/svcdns-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/sub/a.yaml", dir);
    write_file(path, namespace_doc("ay"));
    uint64_t first = signature_of(dir);
    ck_assert_uint_eq(signature_of(dir), first);
    /* Not read by the loader: no change. */
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    write_file(path, "notes");
    snprintf(path, sizeof(path), "%s/.hidden.yaml", dir);
    write_file(path, namespace_doc("hidden"));
    ck_assert_uint_eq(signature_of(dir), first);
    /* A new manifest, in a subdirectory. */
    snprintf(path, sizeof(path), "%s/sub/b.yaml", dir);
    write_file(path, namespace_doc("bee"));
    uint64_t second = signature_of(dir);
    ck_assert_uint_ne(second, first);
    /* The same size, only a newer time. */
    struct timespec times[2] = {{.tv_sec = 1700000000}, {.tv_sec = 1700000000}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
    uint64_t third = signature_of(dir);
    ck_assert_uint_ne(third, second);
    /* Gone again: back to the first set of files. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_uint_eq(signature_of(dir), first);
    ck_assert_uint_ne(signature_of("/nonexistent/manifests"), signature_of("/nonexistent/other"));
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

/* Two links to the level below at every level, 14 deep: 2^14 paths lead to the one file at the
 * bottom. Each real directory and file is visited once (issue: a --check of such a tree took
 * 5.5 s and 253 MB when every path was walked). */
START_TEST(walks_a_symlink_diamond_once)
{
    char dir[] = "/tmp/svcdns-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    char target[32];
    for (int level = 14; level >= 0; level--) {
        snprintf(path, sizeof(path), "%s/l%d", dir, level);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        if (level == 14) {
            snprintf(path, sizeof(path), "%s/l14/bottom.yaml", dir);
            write_file(path, namespace_doc("bottom"));
            continue;
        }
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof(path), "%s/l%d/%c", dir, level, 'a' + k);
            snprintf(target, sizeof(target), "../l%d", level + 1);
            ck_assert_int_eq(symlink(target, path), 0);
        }
    }
    snprintf(path, sizeof(path), "%s/l0", dir);
    const char *top = path;
    struct zones_manifest_list list;
    zones_manifest_list(&top, 1, &list);
    ck_assert_uint_eq(list.n, 1);
    ck_assert_uint_eq(list.problems.n_diags, 0);
    ck_assert(strstr(list.files[0].path, "bottom.yaml") != NULL);
    zones_manifest_list_free(&list);
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

/* A FIFO named like a manifest is not opened (an open would block until a writer came): in a
 * directory it is a warning, named on the command line an error; the other files load. */
START_TEST(never_opens_what_is_not_a_regular_file)
{
    char dir[] = "/tmp/svcdns-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/a.yaml", dir);
    write_file(path, namespace_doc("ay"));
    snprintf(path, sizeof(path), "%s/b.yaml", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, dir), 0);
    ck_assert_uint_eq(objs.n_namespaces, 1);
    ck_assert_uint_eq(objs.n_warnings, 1);
    ck_assert(strstr(objs.warnings[0].message, "is not a regular file") != NULL);
    zones_objects_free(&objs);
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, path), 1);
    assert_diag(&objs, 0, path, 0, 0, "is not a regular file");
    zones_objects_free(&objs);
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_file(&objs, path), 1); /* raced: opened, then seen */
    assert_diag(&objs, 0, path, 0, 0, "is not a regular file");
    ck_assert_uint_eq(objs.n_unread, 1);
    zones_objects_free(&objs);
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

START_TEST(reports_missing_path)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, "/nonexistent/manifests"), 1);
    assert_diag(&objs, 0, "/nonexistent/manifests", 0, 0, "No such file or directory");
    zones_objects_free(&objs);
}
END_TEST

START_TEST(reads_stdin_for_dash)
{
    char path[] = "/tmp/svcdns-stdin-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x]\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    int saved = dup(STDIN_FILENO);
    ck_assert_int_eq(dup2(fd, STDIN_FILENO), STDIN_FILENO);
    struct zones_objects objs;
    zones_objects_init(&objs);
    ck_assert_uint_eq(zones_manifest_load_path(&objs, "-"), 1);
    dup2(saved, STDIN_FILENO);
    close(saved);
    close(fd);
    unlink(path);
    assert_diag(&objs, 0, "-", 4, 9, "metadata.name must be a string");
    zones_objects_free(&objs);
}
END_TEST

Suite *manifest_suite(void); /* for tests/zones/main.c */
Suite *manifest_suite(void)
{
    Suite *s = suite_create("manifest");
    TCase *kinds = tcase_create("kinds");
    tcase_add_test(kinds, loads_service_with_cluster_ip);
    tcase_add_test(kinds, loads_service_with_cluster_ips);
    tcase_add_test(kinds, loads_cluster_ips_without_cluster_ip);
    tcase_add_test(kinds, loads_headless_service);
    tcase_add_test(kinds, loads_node_port_and_load_balancer_as_cluster_ip);
    tcase_add_test(kinds, loads_external_name_lower_cased_without_trailing_dot);
    tcase_add_test(kinds, leaves_empty_or_absent_cluster_ip_to_be_assigned);
    tcase_add_test(kinds, loads_ports_with_lower_cased_protocol);
    tcase_add_test(kinds, loads_selector);
    tcase_add_test(kinds, defaults_namespace_to_default);
    tcase_add_test(kinds, resolves_anchors_and_aliases);
    tcase_add_test(kinds, loads_endpointslice);
    tcase_add_test(kinds, skips_endpointslice_without_service_label);
    tcase_add_test(kinds, skips_fqdn_endpointslice);
    tcase_add_test(kinds, loads_endpoints_subsets_as_slices);
    tcase_add_test(kinds, loads_pod);
    tcase_add_test(kinds, loads_namespace);
    suite_add_tcase(s, kinds);

    TCase *formats = tcase_create("formats");
    tcase_add_test(formats, loads_kind_list_and_typed_lists);
    tcase_add_test(formats, loads_multi_document_yaml);
    tcase_add_test(formats, ignores_empty_and_null_documents);
    tcase_add_test(formats, loads_json_with_escapes);
    tcase_add_test(formats, loads_compact_json);
    tcase_add_test(formats, loads_kubectl_list_dump);
    tcase_add_test(formats, counts_skipped_kinds);
    tcase_add_test(formats, loads_tutorial_examples);
    tcase_add_test(formats, accepts_utf8_bom_and_crlf);
    suite_add_tcase(s, formats);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, reports_errors_at_their_position, 0,
                        (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    tcase_add_loop_test(errors, accepts_what_the_api_server_accepts, 0,
                        (int)(sizeof(accepted) / sizeof(accepted[0])));
    tcase_add_test(errors, reads_what_relaxed_rules_accept_as_meant);
    tcase_add_test(errors, broken_document_loses_only_itself);
    tcase_add_test(errors, reports_every_error_of_a_document);
    suite_add_tcase(s, errors);

    TCase *limits = tcase_create("limits");
    tcase_set_timeout(limits, 30);
    tcase_add_test(limits, rejects_billion_laughs_quickly);
    tcase_add_test(limits, rejects_too_many_aliases);
    tcase_add_test(limits, rejects_deep_nesting_quickly);
    tcase_add_test(limits, rejects_lists_nested_through_aliases);
    tcase_add_test(limits, rejects_an_oversized_buffer_without_reading_it);
    tcase_add_test(limits, stops_after_too_many_errors);
    suite_add_tcase(s, limits);

    TCase *paths = tcase_create("paths");
    tcase_add_test(paths, loads_directory_with_configmap_layout);
    tcase_add_test(paths, signature_follows_the_manifests);
    tcase_add_test(paths, walks_a_symlink_diamond_once);
    tcase_add_test(paths, never_opens_what_is_not_a_regular_file);
    tcase_add_test(paths, reports_missing_path);
    tcase_add_test(paths, reads_stdin_for_dash);
    suite_add_tcase(s, paths);
    return s;
}
