/* zones/decode.c - Kubernetes objects out of a document tree: Service, EndpointSlice,
 * Endpoints, Pod, Namespace and ServiceCIDR, alone or in any List, whichever way the document
 * arrived.
 *
 * The API server's validation is the yardstick, never something stricter: what it accepts
 * loads here (kubernetes/kubernetes pkg/apis/core/validation and apimachinery's
 * pkg/util/validation are the sources of each rule below), and what it rejects is an error
 * with the position of the offending node and what to write instead. An object with an error
 * is left out whole and counted in n_invalid; the objects around it, in its List or its file,
 * still load. */
#include "zones/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST_DEPTH 8

/* ---- names ---- */

/* apimachinery's IsDNS1123Label and IsDNS1123Subdomain. Service names are labels too, not the
 * stricter DNS-1035 labels of old: RelaxedServiceNameValidation (KEP-5311, on by default since
 * 1.36) lets them start with a digit. */
enum name_rule {
    DNS1123_LABEL,     /* Service and namespace names, hostnames, subdomains, port names */
    DNS1123_SUBDOMAIN, /* Pod, EndpointSlice, Endpoints and ServiceCIDR names */
};

static bool is_label(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static bool is_subdomain(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (const char *end = s + len; s <= end;) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *stop = dot != NULL ? dot : end;
        if (!is_label(s, (size_t)(stop - s)))
            return false;
        s = stop + 1;
    }
    return true;
}

static bool name_fits(const struct zones_dom_node *name, enum name_rule rule)
{
    return rule == DNS1123_SUBDOMAIN ? is_subdomain(name->text, name->len)
                                     : is_label(name->text, name->len);
}

static bool check_name(struct zones_report *r, const struct zones_dom_node *name, const char *field,
                       enum name_rule rule)
{
    static const char *const rules[] = {
        [DNS1123_LABEL] = "is not a DNS label; use lower-case letters, digits and '-', at most "
                          "63 characters, starting and ending with a letter or digit",
        [DNS1123_SUBDOMAIN] = "is not a DNS name; use lower-case letters, digits, '-' and '.', "
                              "at most 253 characters, each dot-separated part starting and "
                              "ending with a letter or digit",
    };
    if (name_fits(name, rule))
        return true;
    char shown[ZONES_DOM_SHOW_CAP];
    zones_report_error_at(r, name, "%s %s %s", field, zones_dom_show(name, shown, sizeof(shown)),
                          rules[rule]);
    return false;
}

/* An optional name, checked, as an owned string; NULL when absent, empty (the API server's
 * "not set": an EndpointSlice's unnamed port is name: "") or wrong. */
static char *get_name(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                      const char *key, enum name_rule rule)
{
    char field[ZONES_DOM_FIELD_CAP];
    const struct zones_dom_node *name = zones_dom_get_scalar(r, map, path, key);
    if (name == NULL || name->len == 0 ||
        !check_name(r, name, zones_dom_join(field, path, key), rule))
        return NULL;
    return zones_objects_strndup(r->objs, name->text, name->len);
}

/* ---- shared object parts ---- */

static bool parse_ip(struct zones_report *r, const struct zones_dom_node *node, const char *field,
                     const char *hint, struct zones_ip *out)
{
    if (node->kind != ZONES_DOM_SCALAR) {
        zones_dom_fail_type(r, node, field, ZONES_DOM_SCALAR);
        return false;
    }
    if (memchr(node->text, '\0', node->len) == NULL && zones_ip_parse(node->text, out) == 0)
        return true;
    char shown[ZONES_DOM_SHOW_CAP];
    zones_report_error_at(r, node, "%s %s is not an IP address; write an IPv4 or IPv6 address%s",
                          field, zones_dom_show(node, shown, sizeof(shown)), hint);
    return false;
}

struct meta {
    const struct zones_dom_node *node;   /* metadata */
    const struct zones_dom_node *name;   /* NULL when missing or not a string */
    const struct zones_dom_node *labels; /* NULL when absent */
    char *ns;                            /* owned; "default" when absent */
    struct zones_where where;            /* the name, else metadata, else the object */
};

static void read_meta(struct zones_report *r, const struct zones_dom_node *obj, const char *kind,
                      enum name_rule rule, struct meta *meta)
{
    memset(meta, 0, sizeof(*meta));
    meta->where = zones_report_where(r, obj);
    meta->node = zones_dom_get(r, obj, "", "metadata", ZONES_DOM_MAP);
    if (meta->node == NULL) {
        if (!zones_dom_has(obj, "metadata"))
            zones_report_error_at(r, obj,
                                  "metadata is missing; every %s needs metadata with a name", kind);
        return;
    }
    meta->where = zones_report_where(r, meta->node);
    meta->name = zones_dom_get_scalar(r, meta->node, "metadata", "name");
    if (meta->name != NULL) {
        meta->where = zones_report_where(r, meta->name);
        if (!check_name(r, meta->name, "metadata.name", rule))
            meta->name = NULL;
    } else if (!zones_dom_has(meta->node, "name")) {
        zones_report_error_at(r, meta->node, "metadata.name is missing; every %s needs a name",
                              kind);
    }
    const struct zones_dom_node *ns = zones_dom_lookup(meta->node, "namespace").value;
    if (ns != NULL && !zones_dom_is_null(ns) && !zones_dom_scalar_is(ns, ""))
        meta->ns = get_name(r, meta->node, "metadata", "namespace", DNS1123_LABEL);
    else /* as kubectl: no namespace is the default one */
        meta->ns = zones_objects_strndup(r->objs, "default", 7);
    meta->labels = zones_dom_get(r, meta->node, "metadata", "labels", ZONES_DOM_MAP);
}

static char *meta_name(struct zones_report *r, const struct meta *meta)
{
    return meta->name != NULL ? zones_objects_strndup(r->objs, meta->name->text, meta->name->len)
                              : NULL;
}

/* A mapping of strings (labels, a selector). Values that are not strings are reported. */
static size_t read_labels(struct zones_report *r, const struct zones_dom_node *map,
                          const char *path, struct zones_label **out)
{
    *out = NULL;
    if (map == NULL || map->n < 2)
        return 0;
    struct zones_label *labels = zones_objects_alloc(r->objs, map->n / 2 * sizeof(labels[0]));
    size_t n = 0;
    for (const struct zones_dom_node *k = map->first; k != NULL && k->next != NULL;
         k = k->next->next) {
        const struct zones_dom_node *key = zones_dom_deref(k);
        const struct zones_dom_node *value = zones_dom_deref(k->next);
        char field[ZONES_DOM_FIELD_CAP];
        if (key->kind != ZONES_DOM_SCALAR || memchr(key->text, '\0', key->len) != NULL) {
            zones_report_error_at(r, key, "%s has a key that is not a string; write key: value",
                                  path);
            continue;
        }
        zones_dom_join(field, path, key->text);
        if (value->kind != ZONES_DOM_SCALAR || memchr(value->text, '\0', value->len) != NULL) {
            zones_dom_fail_type(r, value, field, ZONES_DOM_SCALAR);
            continue;
        }
        labels[n].key = zones_objects_strndup(r->objs, key->text, key->len);
        labels[n].value = zones_dom_is_null(value)
                              ? zones_objects_strndup(r->objs, "", 0)
                              : zones_objects_strndup(r->objs, value->text, value->len);
        n++;
    }
    *out = labels;
    return n;
}

static char *read_protocol(struct zones_report *r, const struct zones_dom_node *port,
                           const char *path)
{
    char field[ZONES_DOM_FIELD_CAP];
    char shown[ZONES_DOM_SHOW_CAP];
    const struct zones_dom_node *value = zones_dom_get_scalar(r, port, path, "protocol");
    if (value == NULL || zones_dom_scalar_is(value, "TCP"))
        return zones_objects_strndup(r->objs, "tcp", 3);
    if (zones_dom_scalar_is(value, "UDP"))
        return zones_objects_strndup(r->objs, "udp", 3);
    if (zones_dom_scalar_is(value, "SCTP"))
        return zones_objects_strndup(r->objs, "sctp", 4);
    zones_report_error_at(
        r, value, "%s %s is not TCP, UDP or SCTP; write one of those, in upper case",
        zones_dom_join(field, path, "protocol"), zones_dom_show(value, shown, sizeof(shown)));
    return NULL;
}

struct port_name {
    const struct zones_dom_node *node;
    size_t index;
};

static int compare_port_names(const void *a, const void *b)
{
    const struct port_name *x = a;
    const struct port_name *y = b;
    int c = strcmp(x->node->text, y->node->text);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* As the API server: with several ports each needs a name, and names are unique. Sorting
 * keeps this fast for a fuzzer's Service with a hundred thousand ports. */
static void check_port_names(struct zones_report *r, const struct zones_dom_node *list,
                             const char *path)
{
    struct port_name *names = zones_xcalloc(list->n, sizeof(names[0]));
    size_t n = 0;
    size_t index = 0;
    char field[ZONES_DOM_FIELD_CAP];
    for (const struct zones_dom_node *p = list->first; p != NULL; p = p->next, index++) {
        const struct zones_dom_node *port = zones_dom_deref(p);
        const struct zones_dom_node *name =
            port->kind == ZONES_DOM_MAP ? zones_dom_lookup(port, "name").value : NULL;
        if (name != NULL && !zones_dom_is_null(name) && name->kind == ZONES_DOM_SCALAR)
            names[n++] = (struct port_name){.node = name, .index = index};
        else if (zones_dom_is_null(name) && port->kind == ZONES_DOM_MAP && list->n > 1)
            zones_report_error_at(r, port,
                                  "%s has no name; when a Service has several ports, name each one",
                                  zones_dom_item(field, path, index));
    }
    qsort(names, n, sizeof(names[0]), compare_port_names);
    for (size_t i = 1; i < n; i++) {
        char shown[ZONES_DOM_SHOW_CAP];
        if (strcmp(names[i - 1].node->text, names[i].node->text) == 0)
            zones_report_error_at(r, names[i].node,
                                  "%s.name %s is used by an earlier port too; give each "
                                  "port its own name",
                                  zones_dom_item(field, path, names[i].index),
                                  zones_dom_show(names[i].node, shown, sizeof(shown)));
    }
    free(names);
}

/* ports[] of a Service, an EndpointSlice or an Endpoints subset. An EndpointSlice port with
 * no number means "all ports" and gives no SRV record, so it is left out. */
static size_t read_ports(struct zones_report *r, const struct zones_dom_node *list,
                         const char *path, bool port_required, struct zones_port **out)
{
    char field[ZONES_DOM_FIELD_CAP];
    *out = NULL;
    if (list == NULL || list->n == 0)
        return 0;
    struct zones_port *ports = zones_objects_alloc(r->objs, list->n * sizeof(ports[0]));
    size_t n = 0;
    size_t index = 0;
    for (const struct zones_dom_node *p = list->first; p != NULL; p = p->next, index++) {
        const struct zones_dom_node *port = zones_dom_deref(p);
        zones_dom_item(field, path, index);
        if (port->kind != ZONES_DOM_MAP) {
            zones_dom_fail_type(r, port, field, ZONES_DOM_MAP);
            continue;
        }
        struct zones_port *dst = &ports[n];
        dst->name = get_name(r, port, field, "name", DNS1123_LABEL);
        dst->protocol = read_protocol(r, port, field);
        if (zones_dom_get_port(r, port, field, port_required, &dst->port) &&
            dst->protocol != NULL) {
            n++;
            continue;
        }
        memset(dst, 0, sizeof(*dst)); /* the slot is reused; its strings stay in the arena */
    }
    *out = ports;
    return n;
}

/* ---- Service ---- */

static enum zones_service_kind read_service_type(struct zones_report *r,
                                                 const struct zones_dom_node *spec)
{
    const struct zones_dom_node *type = zones_dom_get_scalar(r, spec, "spec", "type");
    if (type == NULL || type->len == 0 || zones_dom_scalar_is(type, "ClusterIP") ||
        zones_dom_scalar_is(type, "NodePort") || zones_dom_scalar_is(type, "LoadBalancer"))
        return ZONES_SVC_CLUSTER_IP;
    if (zones_dom_scalar_is(type, "ExternalName"))
        return ZONES_SVC_EXTERNAL_NAME;
    char shown[ZONES_DOM_SHOW_CAP];
    zones_report_error_at(r, type,
                          "spec.type %s is not ClusterIP, NodePort, LoadBalancer or ExternalName; "
                          "use one of those",
                          zones_dom_show(type, shown, sizeof(shown)));
    return ZONES_SVC_CLUSTER_IP;
}

static char *read_external_name(struct zones_report *r, const struct zones_dom_node *spec)
{
    const struct zones_dom_node *value = zones_dom_get_scalar(r, spec, "spec", "externalName");
    if (value == NULL) {
        if (!zones_dom_has(spec, "externalName"))
            zones_report_error_at(r, spec,
                                  "spec.externalName is missing; an ExternalName Service needs the "
                                  "host name it stands for, e.g. externalName: example.com");
        return NULL;
    }
    size_t len = value->len;
    if (len > 1 && value->text[len - 1] == '.')
        len--;
    char *name = zones_objects_strndup(r->objs, value->text, len);
    for (size_t i = 0; i < len; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    }
    /* The API server checks IsDNS1123Subdomain of the name without its trailing dot, which an
     * IPv4 address passes: it is served as written (a CNAME to "192.0.2.1.", as CoreDNS does),
     * with a warning, since no resolver will find an address behind it. */
    char shown[ZONES_DOM_SHOW_CAP];
    if (!is_subdomain(name, len)) {
        zones_report_error_at(r, value,
                              "spec.externalName %s is not a DNS name; use letters, digits, '-' "
                              "and '.', at most 253 characters, each dot-separated part at most 63",
                              zones_dom_show(value, shown, sizeof(shown)));
        return NULL;
    }
    struct zones_ip ip;
    if (zones_ip_parse(name, &ip) == 0) {
        struct zones_where where = zones_report_where(r, value);
        zones_objects_warn(r->objs, &where,
                           "spec.externalName %s is an IP address, served as the name it also "
                           "is; for an address, use a Service without a selector and an "
                           "EndpointSlice",
                           zones_dom_show(value, shown, sizeof(shown)));
    }
    return name;
}

#define HEADLESS_HINT ", or None for a headless Service"

/* spec.clusterIPs: None alone, or at most one address of each family. */
static void read_cluster_ip_list(struct zones_report *r, const struct zones_dom_node *list,
                                 struct zones_service *svc)
{
    char field[ZONES_DOM_FIELD_CAP];
    size_t index = 0;
    if (list->n == 1 && zones_dom_scalar_is(zones_dom_deref(list->first), "None")) {
        svc->kind = ZONES_SVC_HEADLESS;
        return;
    }
    if (list->n > 2) {
        zones_report_error_at(r, list,
                              "spec.clusterIPs has %zu entries; list at most one IPv4 and one IPv6 "
                              "address",
                              list->n);
        return;
    }
    svc->ips = zones_objects_alloc(r->objs, list->n * sizeof(svc->ips[0]));
    for (const struct zones_dom_node *p = list->first; p != NULL; p = p->next, index++) {
        const struct zones_dom_node *entry = zones_dom_deref(p);
        zones_dom_item(field, "spec.clusterIPs", index);
        if (zones_dom_scalar_is(entry, "None")) {
            zones_report_error_at(
                r, entry, "%s is None beside an address; None must be the only entry", field);
            continue;
        }
        if (!parse_ip(r, entry, field, HEADLESS_HINT, &svc->ips[svc->n_ips]))
            continue;
        if (svc->n_ips == 1 && svc->ips[0].family == svc->ips[1].family) {
            zones_report_error_at(r, entry,
                                  "%s is a second IPv%u address; list at most one IPv4 and one "
                                  "IPv6 address",
                                  field, svc->ips[1].family);
            continue;
        }
        svc->n_ips++;
    }
}

/* Equal text ("None"), or the same address written differently ("fd00::a", "FD00:0::A"). */
static bool same_address(const struct zones_dom_node *a, const struct zones_dom_node *b)
{
    struct zones_ip x;
    struct zones_ip y;
    if (strcmp(a->text, b->text) == 0)
        return true;
    return zones_ip_parse(a->text, &x) == 0 && zones_ip_parse(b->text, &y) == 0 &&
           memcmp(&x, &y, sizeof(x)) == 0;
}

/* spec.clusterIPs wins over spec.clusterIP, which must then agree with its first entry, as
 * the API server demands. "None" is headless; "" or absent asks for an assigned address. */
static void read_cluster_ips(struct zones_report *r, const struct zones_dom_node *spec,
                             struct zones_service *svc)
{
    const struct zones_dom_node *list = zones_dom_get(r, spec, "spec", "clusterIPs", ZONES_DOM_SEQ);
    const struct zones_dom_node *one = zones_dom_get_scalar(r, spec, "spec", "clusterIP");
    char shown[ZONES_DOM_SHOW_CAP];
    if (list != NULL && list->n > 0) {
        svc->ips_where = zones_report_where(r, list);
        read_cluster_ip_list(r, list, svc);
        const struct zones_dom_node *first = zones_dom_deref(list->first);
        if (one != NULL && one->len > 0 && first->kind == ZONES_DOM_SCALAR &&
            !same_address(one, first))
            zones_report_error_at(r, one,
                                  "spec.clusterIP %s differs from spec.clusterIPs[0]; make them "
                                  "equal or leave spec.clusterIP out",
                                  zones_dom_show(one, shown, sizeof(shown)));
        return;
    }
    if (one == NULL || one->len == 0)
        return;
    svc->ips_where = zones_report_where(r, one);
    if (zones_dom_scalar_is(one, "None")) {
        svc->kind = ZONES_SVC_HEADLESS;
        return;
    }
    struct zones_ip ip;
    if (!parse_ip(r, one, "spec.clusterIP", HEADLESS_HINT, &ip))
        return;
    svc->ips = zones_objects_alloc(r->objs, sizeof(svc->ips[0]));
    svc->ips[0] = ip;
    svc->n_ips = 1;
}

static void read_service(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    read_meta(r, obj, "Service", DNS1123_LABEL, &meta);
    struct zones_service *svc = zones_objects_add_service(r->objs);
    svc->name = meta_name(r, &meta);
    svc->ns = meta.ns;
    svc->where = meta.where;
    svc->ips_where = meta.where;
    const struct zones_dom_node *spec = zones_dom_get(r, obj, "", "spec", ZONES_DOM_MAP);
    if (spec == NULL)
        return;
    svc->kind = read_service_type(r, spec);
    if (svc->kind == ZONES_SVC_EXTERNAL_NAME)
        svc->external_name = read_external_name(r, spec);
    else
        read_cluster_ips(r, spec, svc);
    const struct zones_dom_node *ports = zones_dom_get(r, spec, "spec", "ports", ZONES_DOM_SEQ);
    if (ports != NULL)
        check_port_names(r, ports, "spec.ports");
    svc->n_ports = read_ports(r, ports, "spec.ports", true, &svc->ports);
    const struct zones_dom_node *selector =
        zones_dom_get(r, spec, "spec", "selector", ZONES_DOM_MAP);
    svc->n_selector = read_labels(r, selector, "spec.selector", &svc->selector);
}

/* ---- EndpointSlice and Endpoints ---- */

static void read_slice_endpoint(struct zones_report *r, const struct zones_dom_node *ep,
                                const char *path, struct zones_endpoint *out)
{
    char field[ZONES_DOM_FIELD_CAP];
    char at[ZONES_DOM_FIELD_CAP];
    const struct zones_dom_node *addresses = zones_dom_get(r, ep, path, "addresses", ZONES_DOM_SEQ);
    zones_dom_join(field, path, "addresses");
    if (addresses != NULL && addresses->n > 0) {
        out->ips = zones_objects_alloc(r->objs, addresses->n * sizeof(out->ips[0]));
        size_t index = 0;
        for (const struct zones_dom_node *a = addresses->first; a != NULL; a = a->next, index++) {
            if (parse_ip(r, zones_dom_deref(a), zones_dom_item(at, field, index), "",
                         &out->ips[out->n_ips]))
                out->n_ips++;
        }
    }
    out->hostname = get_name(r, ep, path, "hostname", DNS1123_LABEL);
    out->ready = true;
    const struct zones_dom_node *conditions =
        zones_dom_get(r, ep, path, "conditions", ZONES_DOM_MAP);
    if (conditions != NULL)
        out->ready = zones_dom_get_bool(r, conditions, zones_dom_join(field, path, "conditions"),
                                        "ready", true);
}

/* The label that ties a slice to its Service, or NULL (the slice is then skipped). */
static const struct zones_dom_node *slice_service(struct zones_report *r, const struct meta *meta)
{
    if (meta->labels == NULL)
        return NULL;
    return zones_dom_get_scalar(r, meta->labels, "metadata.labels", "kubernetes.io/service-name");
}

static void read_endpointslice(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    char field[ZONES_DOM_FIELD_CAP];
    read_meta(r, obj, "EndpointSlice", DNS1123_SUBDOMAIN, &meta);
    const struct zones_dom_node *service = slice_service(r, &meta);
    const struct zones_dom_node *type = zones_dom_get_scalar(r, obj, "", "addressType");
    if (type != NULL && !zones_dom_scalar_is(type, "IPv4") && !zones_dom_scalar_is(type, "IPv6") &&
        !zones_dom_scalar_is(type, "FQDN")) {
        char shown[ZONES_DOM_SHOW_CAP];
        zones_report_error_at(r, type, "addressType %s is not IPv4, IPv6 or FQDN; use one of those",
                              zones_dom_show(type, shown, sizeof(shown)));
    }
    /* FQDN slices are deprecated and name no addresses; a slice with no Service is not ours. */
    if (service == NULL || zones_dom_scalar_is(type, "FQDN")) {
        r->objs->n_skipped++;
        return;
    }
    struct zones_slice *slice = zones_objects_add_slice(r->objs);
    slice->name = meta_name(r, &meta);
    slice->ns = meta.ns;
    slice->service = zones_objects_strndup(r->objs, service->text, service->len);
    slice->where = meta.where;
    const struct zones_dom_node *endpoints = zones_dom_get(r, obj, "", "endpoints", ZONES_DOM_SEQ);
    if (endpoints != NULL && endpoints->n > 0) {
        slice->endpoints = zones_objects_alloc(r->objs, endpoints->n * sizeof(slice->endpoints[0]));
        size_t index = 0;
        for (const struct zones_dom_node *e = endpoints->first; e != NULL; e = e->next, index++) {
            const struct zones_dom_node *ep = zones_dom_deref(e);
            zones_dom_item(field, "endpoints", index);
            if (ep->kind != ZONES_DOM_MAP)
                zones_dom_fail_type(r, ep, field, ZONES_DOM_MAP);
            else
                read_slice_endpoint(r, ep, field, &slice->endpoints[slice->n_endpoints++]);
        }
    }
    const struct zones_dom_node *ports = zones_dom_get(r, obj, "", "ports", ZONES_DOM_SEQ);
    slice->n_ports = read_ports(r, ports, "ports", false, &slice->ports);
}

/* addresses[] or notReadyAddresses[] of an Endpoints subset: {ip, hostname}. */
static void read_endpoint_addresses(struct zones_report *r, const struct zones_dom_node *subset,
                                    const char *path, const char *key, bool ready,
                                    struct zones_slice *slice)
{
    char list_path[ZONES_DOM_FIELD_CAP];
    char field[ZONES_DOM_FIELD_CAP];
    const struct zones_dom_node *list = zones_dom_get(r, subset, path, key, ZONES_DOM_SEQ);
    zones_dom_join(list_path, path, key);
    size_t index = 0;
    for (const struct zones_dom_node *a = list != NULL ? list->first : NULL; a != NULL;
         a = a->next, index++) {
        const struct zones_dom_node *address = zones_dom_deref(a);
        zones_dom_item(field, list_path, index);
        if (address->kind != ZONES_DOM_MAP) {
            zones_dom_fail_type(r, address, field, ZONES_DOM_MAP);
            continue;
        }
        if (slice->endpoints == NULL)
            break; /* sized from these very lists: cannot happen */
        struct zones_endpoint *ep = &slice->endpoints[slice->n_endpoints];
        const struct zones_dom_node *ip = zones_dom_get_scalar(r, address, field, "ip");
        struct zones_ip parsed;
        char ip_field[ZONES_DOM_FIELD_CAP];
        if (ip == NULL) {
            if (!zones_dom_has(address, "ip"))
                zones_report_error_at(r, address, "%s.ip is missing; give the endpoint's address",
                                      field);
            continue;
        }
        if (!parse_ip(r, ip, zones_dom_join(ip_field, field, "ip"), "", &parsed))
            continue;
        ep->ips = zones_objects_alloc(r->objs, sizeof(ep->ips[0]));
        ep->ips[0] = parsed;
        ep->n_ips = 1;
        ep->hostname = get_name(r, address, field, "hostname", DNS1123_LABEL);
        ep->ready = ready;
        slice->n_endpoints++;
    }
}

static size_t count_items(const struct zones_dom_node *map, const char *key)
{
    const struct zones_dom_node *list = zones_dom_lookup(map, key).value;
    return list != NULL && list->kind == ZONES_DOM_SEQ ? list->n : 0;
}

/* A v1 Endpoints object becomes one zones_slice per subset. */
static void read_endpoints(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    char path[ZONES_DOM_FIELD_CAP];
    read_meta(r, obj, "Endpoints", DNS1123_SUBDOMAIN, &meta);
    const struct zones_dom_node *subsets = zones_dom_get(r, obj, "", "subsets", ZONES_DOM_SEQ);
    size_t index = 0;
    for (const struct zones_dom_node *s = subsets != NULL ? subsets->first : NULL; s != NULL;
         s = s->next, index++) {
        const struct zones_dom_node *subset = zones_dom_deref(s);
        zones_dom_item(path, "subsets", index);
        if (subset->kind != ZONES_DOM_MAP) {
            zones_dom_fail_type(r, subset, path, ZONES_DOM_MAP);
            continue;
        }
        struct zones_slice *slice = zones_objects_add_slice(r->objs);
        slice->name = meta_name(r, &meta);
        slice->ns = meta.ns; /* in the arena: every subset's slice may share it */
        slice->service = meta_name(r, &meta);
        slice->where = meta.where;
        size_t n = count_items(subset, "addresses") + count_items(subset, "notReadyAddresses");
        slice->endpoints =
            n > 0 ? zones_objects_alloc(r->objs, n * sizeof(slice->endpoints[0])) : NULL;
        read_endpoint_addresses(r, subset, path, "addresses", true, slice);
        read_endpoint_addresses(r, subset, path, "notReadyAddresses", false, slice);
        char ports_path[ZONES_DOM_FIELD_CAP];
        const struct zones_dom_node *ports = zones_dom_get(r, subset, path, "ports", ZONES_DOM_SEQ);
        slice->n_ports =
            read_ports(r, ports, zones_dom_join(ports_path, path, "ports"), true, &slice->ports);
    }
}

/* ---- Pod and Namespace ---- */

static void read_pod_ips(struct zones_report *r, const struct zones_dom_node *status,
                         struct zones_pod *pod)
{
    char field[ZONES_DOM_FIELD_CAP];
    char ip_field[ZONES_DOM_FIELD_CAP];
    const struct zones_dom_node *list = zones_dom_get(r, status, "status", "podIPs", ZONES_DOM_SEQ);
    if (list != NULL && list->n > 0) {
        pod->ips = zones_objects_alloc(r->objs, list->n * sizeof(pod->ips[0]));
        size_t index = 0;
        for (const struct zones_dom_node *p = list->first; p != NULL; p = p->next, index++) {
            const struct zones_dom_node *entry = zones_dom_deref(p);
            zones_dom_item(field, "status.podIPs", index);
            if (entry->kind != ZONES_DOM_MAP) {
                zones_dom_fail_type(r, entry, field, ZONES_DOM_MAP);
                continue;
            }
            const struct zones_dom_node *ip = zones_dom_get_scalar(r, entry, field, "ip");
            if (ip != NULL &&
                parse_ip(r, ip, zones_dom_join(ip_field, field, "ip"), "", &pod->ips[pod->n_ips]))
                pod->n_ips++;
        }
        return;
    }
    const struct zones_dom_node *ip = zones_dom_get_scalar(r, status, "status", "podIP");
    if (ip == NULL || ip->len == 0)
        return;
    pod->ips = zones_objects_alloc(r->objs, sizeof(pod->ips[0]));
    if (parse_ip(r, ip, "status.podIP", "", &pod->ips[0]))
        pod->n_ips = 1;
}

/* Ready unless a Ready condition says otherwise: a Pod without conditions is served. */
static bool read_pod_ready(struct zones_report *r, const struct zones_dom_node *status)
{
    const struct zones_dom_node *conditions =
        zones_dom_get(r, status, "status", "conditions", ZONES_DOM_SEQ);
    for (const struct zones_dom_node *c = conditions != NULL ? conditions->first : NULL; c != NULL;
         c = c->next) {
        const struct zones_dom_node *condition = zones_dom_deref(c);
        if (condition->kind != ZONES_DOM_MAP)
            continue;
        if (zones_dom_scalar_is(zones_dom_get_scalar(r, condition, "status.conditions", "type"),
                                "Ready"))
            return zones_dom_scalar_is(
                zones_dom_get_scalar(r, condition, "status.conditions", "status"), "True");
    }
    return true;
}

static void read_pod(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    read_meta(r, obj, "Pod", DNS1123_SUBDOMAIN, &meta);
    struct zones_pod *pod = zones_objects_add_pod(r->objs);
    pod->name = meta_name(r, &meta);
    pod->ns = meta.ns;
    pod->where = meta.where;
    pod->n_labels = read_labels(r, meta.labels, "metadata.labels", &pod->labels);
    const struct zones_dom_node *spec = zones_dom_get(r, obj, "", "spec", ZONES_DOM_MAP);
    if (spec != NULL) {
        pod->hostname = get_name(r, spec, "spec", "hostname", DNS1123_LABEL);
        pod->subdomain = get_name(r, spec, "spec", "subdomain", DNS1123_LABEL);
    }
    pod->ready = true;
    const struct zones_dom_node *status = zones_dom_get(r, obj, "", "status", ZONES_DOM_MAP);
    if (status != NULL) {
        read_pod_ips(r, status, pod);
        pod->ready = read_pod_ready(r, status);
    }
}

static void read_namespace(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    read_meta(r, obj, "Namespace", DNS1123_LABEL, &meta); /* its meta.ns means nothing */
    struct zones_namespace *ns = zones_objects_add_namespace(r->objs);
    ns->name = meta_name(r, &meta);
    ns->where = meta.where;
}

/* ---- ServiceCIDR ---- */

/* networking.k8s.io/v1: spec.cidrs holds one range, or one of each family. */
static void read_service_cidr(struct zones_report *r, const struct zones_dom_node *obj)
{
    struct meta meta;
    char field[ZONES_DOM_FIELD_CAP];
    char shown[ZONES_DOM_SHOW_CAP];
    read_meta(r, obj, "ServiceCIDR", DNS1123_SUBDOMAIN, &meta);
    struct zones_service_cidr *sc = zones_objects_add_service_cidr(r->objs);
    sc->name = meta_name(r, &meta);
    sc->where = meta.where;
    const struct zones_dom_node *spec = zones_dom_get(r, obj, "", "spec", ZONES_DOM_MAP);
    const struct zones_dom_node *list =
        spec != NULL ? zones_dom_get(r, spec, "spec", "cidrs", ZONES_DOM_SEQ) : NULL;
    if (list == NULL || list->n == 0 || list->n > 2) {
        zones_report_error_at(r, list != NULL ? list : obj,
                              "spec.cidrs must list one range, or one IPv4 and one IPv6 range, "
                              "e.g. cidrs: [10.96.0.0/12]");
        return;
    }
    sc->cidrs = zones_objects_alloc(r->objs, list->n * sizeof(sc->cidrs[0]));
    size_t index = 0;
    for (const struct zones_dom_node *c = list->first; c != NULL; c = c->next, index++) {
        const struct zones_dom_node *entry = zones_dom_deref(c);
        zones_dom_item(field, "spec.cidrs", index);
        struct zones_cidr *cidr = &sc->cidrs[sc->n_cidrs];
        if (entry->kind != ZONES_DOM_SCALAR || memchr(entry->text, '\0', entry->len) != NULL ||
            zones_cidr_parse(entry->text, cidr) < 0) {
            zones_report_error_at(r, entry,
                                  "%s %s is not a CIDR; write a range such as "
                                  "10.96.0.0/12 or fd00:10:96::/112",
                                  field, zones_dom_show(entry, shown, sizeof(shown)));
            continue;
        }
        if (sc->n_cidrs == 1 && sc->cidrs[0].base.family == cidr->base.family) {
            zones_report_error_at(r, entry,
                                  "%s is a second IPv%u range; list at most one of "
                                  "each family",
                                  field, cidr->base.family);
            continue;
        }
        sc->n_cidrs++;
    }
}

/* ---- objects and documents ---- */

static void read_object(struct zones_report *r, const struct zones_dom_node *obj, unsigned lists,
                        const struct zones_dom_node *list_kind);

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* kind: List and every *List (ServiceList, PodList, ...) as kubectl prints them. The items of
 * a typed List, as the API server sends it, carry no kind of their own: ServiceList's items
 * are Services. */
/* NOLINTNEXTLINE(misc-no-recursion): Lists nest at most MAX_LIST_DEPTH deep. */
static void read_list(struct zones_report *r, const struct zones_dom_node *obj, unsigned lists,
                      const struct zones_dom_node *kind)
{
    /* Aliases could nest Lists as deep as the alias limit allows; kubectl never nests them. */
    if (lists == MAX_LIST_DEPTH) {
        zones_report_error_at(r, obj, "Lists nested more than %d deep; put the objects in one List",
                              MAX_LIST_DEPTH);
        return;
    }
    const struct zones_dom_node *items = zones_dom_get(r, obj, "", "items", ZONES_DOM_SEQ);
    for (const struct zones_dom_node *i = items != NULL ? items->first : NULL;
         i != NULL && !r->stop; i = i->next) {
        if (!zones_dom_is_null(zones_dom_deref(i)))
            read_object(r, zones_dom_deref(i), lists + 1, kind->len > 4 ? kind : NULL);
    }
}

static bool kind_is(const struct zones_dom_node *kind, bool from_list, const char *name)
{
    size_t len = strlen(name);
    if (from_list) /* "ServiceList" names its items' kind "Service" */
        return kind->len == len + 4 && memcmp(kind->text, name, len) == 0;
    return zones_dom_scalar_is(kind, name);
}

/* One object; list_kind is the kind of the typed List it is an item of, if any. An object
 * that produced an error is taken back whole: what loads is what the API server would have
 * accepted, and only that object is lost. */
/* NOLINTNEXTLINE(misc-no-recursion): Lists nest at most MAX_LIST_DEPTH deep. */
static void read_object(struct zones_report *r, const struct zones_dom_node *obj, unsigned lists,
                        const struct zones_dom_node *list_kind)
{
    static const struct {
        const char *kind;
        const char *api_version;
        void (*read)(struct zones_report *r, const struct zones_dom_node *obj);
    } readers[] = {
        {"Service", "v1", read_service},
        {"EndpointSlice", "discovery.k8s.io/v1", read_endpointslice},
        {"Endpoints", "v1", read_endpoints},
        {"Pod", "v1", read_pod},
        {"Namespace", "v1", read_namespace},
        {"ServiceCIDR", "networking.k8s.io/v1", read_service_cidr},
    };
    if (obj->kind != ZONES_DOM_MAP) {
        zones_report_error_at(r, obj,
                              "expected an object (a mapping with apiVersion, kind and metadata), "
                              "found %s",
                              zones_dom_kind_name(obj->kind));
        return;
    }
    const struct zones_dom_node *kind = zones_dom_get_scalar(r, obj, "", "kind");
    bool from_list = kind == NULL && list_kind != NULL && !zones_dom_has(obj, "kind");
    if (from_list) {
        kind = list_kind;
    } else if (kind == NULL) {
        if (!zones_dom_has(obj, "kind"))
            zones_report_error_at(r, obj,
                                  "kind is missing; every object needs apiVersion and kind, e.g. "
                                  "kind: Service");
        return;
    } else if (ends_with(kind->text, kind->len, "List")) {
        read_list(r, obj, lists, kind);
        return;
    }
    for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
        if (!kind_is(kind, from_list, readers[i].kind))
            continue;
        size_t errors = r->n_errors;
        struct zones_objects_mark mark = zones_objects_checkpoint(r->objs);
        if (!from_list && !zones_dom_has(obj, "apiVersion"))
            zones_report_error_at(r, obj, "apiVersion is missing; write it, e.g. apiVersion: %s",
                                  readers[i].api_version);
        readers[i].read(r, obj);
        if (r->n_errors != errors || r->stop) {
            zones_objects_rollback(r->objs, &mark);
            r->objs->n_invalid++;
        }
        return;
    }
    r->objs->n_skipped++;
}

void zones_decode_document(void *ctx, struct zones_report *r, const struct zones_dom_node *root)
{
    (void)ctx;
    read_object(r, root, 0, NULL);
}
