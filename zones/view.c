/* zones/view.c - building a Service's view from its objects.
 *
 * The rules are the Kubernetes DNS specification's, with CoreDNS's choices where it is
 * silent: a ClusterIP Service answers its ClusterIPs and has SRV records for its named ports;
 * a headless one answers the addresses of its ready endpoints, each endpoint named by its
 * hostname or its address with dashes, with SRV records per endpoint and named port of its
 * EndpointSlice; without any EndpointSlice, the ready Pods the selector picks are the
 * endpoints (named by spec.hostname when spec.subdomain is the Service's name), as the
 * endpoints controller would make them. Duplicates (one endpoint in two slices) count once. */
#include "zones/view.h"

#include <stdlib.h>
#include <string.h>

/* An address with the name it belongs to, while building. */
struct item {
    uint8_t label[DNS_MAX_LABEL + 1]; /* the endpoint's wire label; [0] == 0: the Service */
    struct zones_ip ip;
    uint16_t group;
};

struct builder {
    const struct zones_view_input *in;
    struct item *items;
    size_t n_items;
    bool headless;
};

uint64_t zones_view_hash(const uint8_t *key, size_t len)
{
    uint64_t h = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, key, len);
    return h ^ (h >> 29);
}

/* "10-244-1-7" for IPv4; for IPv6 the compressed text with ':' as '-' ("fd00--7"). */
static void dashed_label(const struct zones_ip *ip, uint8_t *label)
{
    char text[64];
    zones_ip_format(ip, text, sizeof(text));
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++)
        label[1 + i] = (uint8_t)(text[i] == '.' || text[i] == ':' ? '-' : text[i]);
    label[0] = (uint8_t)n;
}

static void add_item(struct builder *b, const uint8_t *label, const struct zones_ip *ip,
                     uint16_t group)
{
    if (b->n_items >= ZONES_VIEW_MAX)
        return; /* a Service this size answers with its first 65534 addresses */
    struct item *it = &b->items[b->n_items++];
    memset(it, 0, sizeof(*it));
    if (label != NULL)
        memcpy(it->label, label, (size_t)label[0] + 1);
    it->ip = *ip;
    it->group = group;
}

/* One ready endpoint: each address is a name of its own unless the endpoint has a hostname. */
static void add_endpoint(struct builder *b, const struct zones_endpoint *e, uint16_t group)
{
    if (!e->ready)
        return;
    for (size_t i = 0; i < e->n_ips; i++) {
        uint8_t label[DNS_MAX_LABEL + 1];
        if (e->hostname == NULL)
            dashed_label(&e->ips[i], label);
        else if (!zones_label_from_text("", e->hostname, label))
            continue;
        add_item(b, label, &e->ips[i], group);
    }
}

static bool selector_matches(const struct zones_service *svc, const struct zones_pod *pod)
{
    if (svc->n_selector == 0)
        return false; /* no selector: endpoints are managed by hand, never derived */
    for (size_t i = 0; i < svc->n_selector; i++) {
        bool found = false;
        for (size_t j = 0; j < pod->n_labels && !found; j++) {
            found = strcmp(svc->selector[i].key, pod->labels[j].key) == 0 &&
                    strcmp(svc->selector[i].value, pod->labels[j].value) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

static void collect(struct builder *b)
{
    const struct zones_view_input *in = b->in;
    const struct zones_service *svc = in->svc;
    if (svc->kind == ZONES_SVC_CLUSTER_IP) {
        for (size_t i = 0; i < in->n_ips; i++)
            add_item(b, NULL, &in->ips[i], 0);
    }
    if (svc->kind == ZONES_SVC_EXTERNAL_NAME)
        return;
    for (size_t s = 0; s < in->n_slices; s++) {
        const struct zones_slice *sl = in->slices[s];
        for (size_t e = 0; e < sl->n_endpoints; e++)
            add_endpoint(b, &sl->endpoints[e], (uint16_t)(s + 1));
    }
    if (in->n_slices > 0)
        return;
    for (size_t p = 0; p < in->n_pods; p++) {
        const struct zones_pod *pod = in->pods[p];
        if (strcmp(pod->ns, svc->ns) != 0 || !selector_matches(svc, pod))
            continue;
        struct zones_endpoint e = {
            .ips = pod->ips,
            .n_ips = pod->n_ips,
            .hostname =
                (pod->subdomain && strcmp(pod->subdomain, svc->name) == 0) ? pod->hostname : NULL,
            .ready = pod->ready,
        };
        add_endpoint(b, &e, 0);
    }
}

static int compare_ip(const struct zones_ip *x, const struct zones_ip *y)
{
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return memcmp(x->addr, y->addr, x->family == 4 ? 4 : 16);
}

/* By name (the Service's own first), then A before AAAA, then address, then port group. */
static int compare_items(const void *a, const void *b)
{
    const struct item *x = a;
    const struct item *y = b;
    int c = memcmp(x->label, y->label,
                   (size_t)(x->label[0] < y->label[0] ? x->label[0] : y->label[0]) + 1);
    if (c == 0)
        c = x->label[0] - y->label[0];
    if (c == 0)
        c = compare_ip(&x->ip, &y->ip);
    if (c == 0)
        c = (x->group > y->group) - (x->group < y->group);
    return c;
}

static bool same_label(const uint8_t *a, const uint8_t *b)
{
    return a[0] == b[0] && memcmp(a, b, (size_t)a[0] + 1) == 0;
}

/* Named ports of one group: the Service's (0) or one slice's. */
static const struct zones_port *group_ports(const struct zones_view_input *in, uint16_t group,
                                            size_t *n)
{
    if (group == 0) {
        *n = in->svc->n_ports;
        return in->svc->ports;
    }
    *n = in->slices[group - 1]->n_ports;
    return in->slices[group - 1]->ports;
}

/* Which groups have SRV records: the Service's for a ClusterIP Service; for a headless one
 * the groups its endpoints use. */
static bool group_used(const struct builder *b, uint16_t group)
{
    if (!b->headless)
        return group == 0;
    for (size_t i = 0; i < b->n_items; i++) {
        if (b->items[i].label[0] != 0 && b->items[i].group == group)
            return true;
    }
    return false;
}

/* A byte sink over the view's blob: sizes when data is NULL. */
struct blob {
    uint8_t *data;
    size_t len;
};

static uint32_t put(struct blob *bl, const void *data, size_t n)
{
    uint32_t at = (uint32_t)bl->len;
    if (bl->data != NULL)
        memcpy(bl->data + bl->len, data, n);
    bl->len += n;
    return at;
}

static void put_rr(struct blob *bl, uint16_t type, uint32_t ttl, const struct zones_ip *ip)
{
    uint8_t rr[12 + 16];
    size_t n = ip->family == 4 ? 4 : 16;
    dns_wire_put_u16(rr, DNS_QUESTION_PTR);
    dns_wire_put_u16(rr + 2, type);
    dns_wire_put_u16(rr + 4, DNS_CLASS_IN);
    dns_wire_put_u32(rr + 6, ttl);
    dns_wire_put_u16(rr + 10, (uint16_t)n);
    memcpy(rr + 12, ip->addr, n);
    put(bl, rr, 12 + n);
}

static int compare_ip_ptr(const void *a, const void *b)
{
    return compare_ip(a, b);
}

/* The name's own A then AAAA records, each address once, in address order: its ClusterIPs,
 * or (headless) every ready endpoint's address. */
static void put_name_answers(const struct builder *b, struct zones_view *v, struct blob *bl,
                             struct zones_ip *scratch)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_items; i++) {
        const struct item *it = &b->items[i];
        if (b->headless ? it->label[0] != 0 : it->label[0] == 0)
            scratch[n++] = it->ip;
    }
    qsort(scratch, n, sizeof(scratch[0]), compare_ip_ptr);
    v->n_a = v->n_aaaa = 0;
    v->a_off = v->aaaa_off = (uint32_t)bl->len;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && compare_ip(&scratch[i - 1], &scratch[i]) == 0)
            continue;
        if (scratch[i].family == 6 && v->n_aaaa == 0)
            v->aaaa_off = (uint32_t)bl->len;
        put_rr(bl, scratch[i].family == 4 ? DNS_TYPE_A : DNS_TYPE_AAAA, b->in->ttl, &scratch[i]);
        if (scratch[i].family == 4) {
            v->n_a++;
            v->aaaa_off = (uint32_t)bl->len;
        } else {
            v->n_aaaa++;
        }
    }
    v->a_len = (uint16_t)(v->aaaa_off - v->a_off);
    v->aaaa_len = (uint16_t)(bl->len - v->aaaa_off);
}

/* One endpoint per distinct name, in the items' order (sorted by name). */
static void fill_endpoints(const struct builder *b, struct zones_view *v,
                           struct zones_view_endpoint *endpoints, struct blob *bl)
{
    size_t e = 0;
    for (size_t i = 0; i < b->n_items; i++) {
        const struct item *it = &b->items[i];
        if (it->label[0] == 0)
            continue;
        if (e > 0 && same_label(b->items[i - 1].label, it->label)) {
            if (endpoints)
                endpoints[e - 1].count++;
            continue;
        }
        uint32_t at = put(bl, it->label, (size_t)it->label[0] + 1);
        if (endpoints)
            endpoints[e] = (struct zones_view_endpoint){at, (uint16_t)i, 1};
        e++;
    }
    v->n_endpoints = (uint16_t)e;
}

/* The named ports of the groups in use. */
static void fill_ports(const struct builder *b, struct zones_view *v, struct zones_view_port *ports,
                       struct blob *bl)
{
    const struct zones_view_input *in = b->in;
    size_t np = 0;
    size_t groups = b->headless ? in->n_slices + 1 : 1;
    for (size_t g = 0; g < groups; g++) {
        if (!group_used(b, (uint16_t)g))
            continue;
        size_t n;
        const struct zones_port *list = group_ports(in, (uint16_t)g, &n);
        for (size_t k = 0; k < n && np < ZONES_VIEW_MAX; k++) {
            uint8_t name[DNS_MAX_LABEL + 1];
            uint8_t proto[DNS_MAX_LABEL + 1];
            if (list[k].name == NULL || !zones_label_from_text("_", list[k].name, name) ||
                !zones_label_from_text("_", list[k].protocol ? list[k].protocol : "tcp", proto))
                continue;
            uint32_t name_at = put(bl, name, (size_t)name[0] + 1);
            uint32_t proto_at = put(bl, proto, (size_t)proto[0] + 1);
            if (ports)
                ports[np] = (struct zones_view_port){name_at, proto_at, list[k].port, (uint16_t)g};
            np++;
        }
    }
    v->n_ports = (uint16_t)np;
}

/* Everything after the fixed arrays: key, endpoint labels, port labels, the name's rendered
 * answers, the target. Run twice: to size (data NULL, arrays NULL), then to fill. */
static void fill(const struct builder *b, struct zones_view *v, const uint8_t *key, size_t key_len,
                 struct zones_view_endpoint *endpoints, struct zones_view_port *ports,
                 struct blob *bl, const struct dns_name *target, struct zones_ip *scratch)
{
    put(bl, key, key_len);
    fill_endpoints(b, v, endpoints, bl);
    fill_ports(b, v, ports, bl);
    put_name_answers(b, v, bl, scratch);
    v->target_len = 0;
    if (target != NULL) {
        v->target_off = put(bl, target->wire, target->len);
        v->target_len = target->len;
    }
}

/* The key: the Service's name and namespace as two wire labels. */
static bool make_key(const struct zones_service *svc, uint8_t *key, size_t *len)
{
    if (!zones_label_from_text("", svc->name, key) ||
        !zones_label_from_text("", svc->ns, key + key[0] + 1))
        return false;
    *len = (size_t)key[0] + 1 + key[key[0] + 1] + 1;
    return true;
}

struct zones_view *zones_view_build(const struct zones_view_input *in)
{
    uint8_t key[2 * (DNS_MAX_LABEL + 1)];
    size_t key_len;
    if (!make_key(in->svc, key, &key_len))
        return NULL;
    struct dns_name target;
    const struct dns_name *tp = NULL;
    if (in->svc->kind == ZONES_SVC_EXTERNAL_NAME && in->svc->external_name &&
        dns_name_from_text(&target, in->svc->external_name) == 0)
        tp = &target;
    size_t bound = in->n_ips;
    for (size_t s = 0; s < in->n_slices; s++) {
        for (size_t e = 0; e < in->slices[s]->n_endpoints; e++)
            bound += in->slices[s]->endpoints[e].n_ips;
    }
    for (size_t p = 0; in->n_slices == 0 && p < in->n_pods; p++)
        bound += in->pods[p]->n_ips;
    struct builder b = {.in = in, .headless = in->svc->kind == ZONES_SVC_HEADLESS};
    b.items = zones_xrealloc(NULL, (bound + 1) * sizeof(b.items[0]));
    struct zones_ip *scratch = zones_xrealloc(NULL, (bound + 1) * sizeof(scratch[0]));
    collect(&b);
    qsort(b.items, b.n_items, sizeof(b.items[0]), compare_items);
    /* Sizing pass, then one allocation: header, arrays, bytes. */
    struct zones_view probe = {0};
    struct blob sizing = {NULL, 0};
    fill(&b, &probe, key, key_len, NULL, NULL, &sizing, tp, scratch);
    size_t addrs_size = b.n_items * sizeof(struct zones_view_addr);
    size_t endpoints_size = (size_t)probe.n_endpoints * sizeof(struct zones_view_endpoint);
    size_t ports_size = (size_t)probe.n_ports * sizeof(struct zones_view_port);
    uint8_t *mem = zones_xcalloc(1, sizeof(struct zones_view) + addrs_size + endpoints_size +
                                        ports_size + sizing.len);
    struct zones_view *v = (struct zones_view *)(void *)mem;
    struct zones_view_addr *addrs = (struct zones_view_addr *)(void *)(v + 1);
    struct zones_view_endpoint *endpoints =
        (struct zones_view_endpoint *)(void *)((uint8_t *)addrs + addrs_size);
    struct zones_view_port *ports =
        (struct zones_view_port *)(void *)((uint8_t *)endpoints + endpoints_size);
    uint8_t *bytes = (uint8_t *)ports + ports_size;
    struct blob bl = {bytes, 0};
    fill(&b, v, key, key_len, endpoints, ports, &bl, tp, scratch);
    v->kind = (uint8_t)in->svc->kind;
    v->key_len = (uint8_t)key_len;
    v->hash = zones_view_hash(key, key_len);
    v->n_addrs = (uint16_t)b.n_items;
    v->addrs = addrs;
    v->endpoints = endpoints;
    v->ports = ports;
    v->bytes = bytes;
    /* Each address knows its endpoint (for PTR) and its view (the PTR table holds addresses). */
    size_t e = 0;
    for (size_t i = 0; i < b.n_items; i++) {
        const struct item *it = &b.items[i];
        uint16_t endpoint = ZONES_VIEW_NAME;
        if (it->label[0] != 0) {
            while (e + 1 < v->n_endpoints && i >= (size_t)endpoints[e].first + endpoints[e].count)
                e++;
            endpoint = (uint16_t)e;
        }
        addrs[i] = (struct zones_view_addr){v, it->ip, endpoint, it->group};
    }
    free(b.items);
    free(scratch);
    return v;
}

bool zones_view_exists(const struct zones_view *v)
{
    return v->n_a > 0 || v->n_aaaa > 0 || v->target_len > 0 ||
           (v->kind == ZONES_SVC_CLUSTER_IP && v->n_ports > 0);
}
