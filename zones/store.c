/* zones/store.c - the tables workers answer from, and the one writer's changes to them.
 *
 * Invariant: what a worker can reach is never freed before the epoch says so. A view, a
 * namespace entry, a Pod's addresses or an SOA that is replaced or removed is retired, and so
 * is a table's slot array when the table grows. */
#include "zones/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zones/store_layout.h"

#define DNS_VERSION_TTL 28800
#define SOA_RDATA_MAX (2 * DNS_MAX_NAME + 20)

static const struct dns_name in_addr = {14, "\7in-addr\4arpa"};
static const struct dns_name ip6_arpa = {10, "\3ip6\4arpa"};

static void retire(struct zones_store *s, void *ptr)
{
    if (s->epoch != NULL)
        dns_epoch_retire(s->epoch, ptr, free);
    else
        free(ptr);
}

/* Hashes: every table keys by bytes, through one FNV-1a. */

static uint64_t hash_bytes(const void *data, size_t len)
{
    uint64_t h = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, data, len);
    return h ^ (h >> 29);
}

static uint64_t ip_hash(const struct zones_ip *ip)
{
    uint8_t key[17];
    key[0] = ip->family;
    memcpy(key + 1, ip->addr, 16);
    return hash_bytes(key, ip->family == 4 ? 5 : 17);
}

static uint64_t view_hash_of(const void *entry)
{
    return ((const struct zones_view *)entry)->hash;
}

static uint64_t ns_hash_of(const void *entry)
{
    return ((const struct zones_ns *)entry)->hash;
}

static uint64_t addr_hash_of(const void *entry)
{
    return ip_hash(&((const struct zones_view_addr *)entry)->ip);
}

static uint64_t rev_hash_of(const void *entry)
{
    return ((const struct zones_rev *)entry)->hash;
}

static uint64_t pod_hash_of(const void *entry)
{
    return ((const struct zones_pod_addr *)entry)->hash;
}

static bool ip_equal(const struct zones_ip *a, const struct zones_ip *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

/* Readers. */

static bool ns_matches(const void *entry, const void *key)
{
    const struct zones_ns *n = entry;
    const uint8_t *label = key;
    return n->label[0] == label[0] && memcmp(n->label + 1, label + 1, label[0]) == 0;
}

const struct zones_ns *zones_store_namespace(const struct zones_store *store, const uint8_t *label)
{
    return zones_table_find(&store->namespaces, hash_bytes(label, (size_t)label[0] + 1), ns_matches,
                            label);
}

static bool addr_matches(const void *entry, const void *key)
{
    return ip_equal(&((const struct zones_view_addr *)entry)->ip, key);
}

const struct zones_view_addr *zones_store_next_addr(const struct zones_store *store,
                                                    const struct zones_ip *ip, size_t *pos)
{
    return zones_table_next(&store->addrs, ip_hash(ip), addr_matches, ip, pos);
}

/* The key of a prefix: family, units, and the prefix's bytes with the unused bits cleared. */
static uint8_t rev_key(const struct zones_ip *ip, unsigned units, uint8_t *key)
{
    key[0] = ip->family;
    key[1] = (uint8_t)units;
    unsigned bytes = ip->family == 4 ? units : (units + 1) / 2;
    memcpy(key + 2, ip->addr, bytes);
    if (ip->family == 6 && units % 2 == 1)
        key[2 + bytes - 1] &= 0xf0;
    return (uint8_t)(2 + bytes);
}

struct rev_probe {
    uint8_t key[ZONES_REV_KEY];
    uint8_t len;
};

static bool rev_matches(const void *entry, const void *key)
{
    const struct zones_rev *r = entry;
    const struct rev_probe *p = key;
    return r->len == p->len && memcmp(r->key, p->key, p->len) == 0;
}

bool zones_store_reverse_exists(const struct zones_store *store, const struct zones_ip *prefix,
                                unsigned units)
{
    struct rev_probe p;
    p.len = rev_key(prefix, units, p.key);
    return zones_table_find(&store->reverse, hash_bytes(p.key, p.len), rev_matches, &p) != NULL;
}

static bool pod_matches(const void *entry, const void *key)
{
    return ip_equal(&((const struct zones_pod_addr *)entry)->ip, key);
}

const struct zones_pod_addr *zones_store_next_pod(const struct zones_store *store,
                                                  const struct zones_ip *ip, size_t *pos)
{
    return zones_table_next(&store->pods, ip_hash(ip), pod_matches, ip, pos);
}

enum zones_zone zones_store_zone_of(const struct zones_store *store, const struct dns_name *name)
{
    if (dns_name_is_subdomain(name, &store->zone))
        return ZONES_ZONE_CLUSTER;
    if (dns_name_is_subdomain(name, &in_addr))
        return ZONES_ZONE_REVERSE4;
    if (dns_name_is_subdomain(name, &ip6_arpa))
        return ZONES_ZONE_REVERSE6;
    return ZONES_ZONE_NONE;
}

/* Writers. */

/* Units of an address's reverse name: 4 octets or 32 nibbles; its strict prefixes are the
 * empty non-terminals between it and the reverse zone's apex. */
static unsigned reverse_units(const struct zones_ip *ip)
{
    return ip->family == 4 ? 4 : 32;
}

static void reverse_ref(struct zones_store *s, const struct zones_ip *ip, int delta)
{
    for (unsigned units = 1; units < reverse_units(ip); units++) {
        struct rev_probe p;
        p.len = rev_key(ip, units, p.key);
        uint64_t hash = hash_bytes(p.key, p.len);
        struct zones_rev *r = zones_table_find(&s->reverse, hash, rev_matches, &p);
        if (delta > 0) {
            if (r != NULL) {
                r->refs++;
                continue;
            }
            r = zones_xcalloc(1, sizeof(*r));
            r->hash = hash;
            r->refs = 1;
            r->len = p.len;
            memcpy(r->key, p.key, p.len);
            zones_table_put(&s->reverse, hash, NULL, r);
        } else if (r != NULL && --r->refs == 0) {
            zones_table_remove(&s->reverse, hash, r);
            retire(s, r);
        }
    }
}

/* Records of a view, roughly as a zone file would count them, for the summary. */
static size_t view_records(const struct zones_view *v)
{
    if (v == NULL)
        return 0;
    size_t srv = 0;
    for (size_t p = 0; p < v->n_ports; p++) {
        for (size_t a = 0; a < v->n_addrs; a++) {
            bool own = v->kind == ZONES_SVC_HEADLESS ? v->addrs[a].endpoint != ZONES_VIEW_NAME
                                                     : v->addrs[a].endpoint == ZONES_VIEW_NAME;
            if (own && v->addrs[a].ports == v->ports[p].group)
                srv += 2; /* at _port._proto and at the name */
        }
    }
    size_t endpoint_addrs = 0;
    for (size_t a = 0; a < v->n_addrs; a++)
        endpoint_addrs += v->addrs[a].endpoint != ZONES_VIEW_NAME;
    return (size_t)v->n_a + v->n_aaaa + (v->target_len > 0) + srv + endpoint_addrs + v->n_addrs;
}

static void count_view(struct zones_store *s, const struct zones_view *v, int sign)
{
    if (v == NULL)
        return;
    atomic_size_t *kind = v->kind == ZONES_SVC_HEADLESS        ? &s->n_headless
                          : v->kind == ZONES_SVC_EXTERNAL_NAME ? &s->n_external_name
                                                               : &s->n_cluster_ip;
    size_t endpoints = 0;
    for (size_t a = 0; a < v->n_addrs; a++)
        endpoints += v->addrs[a].endpoint != ZONES_VIEW_NAME;
    if (sign > 0) {
        atomic_fetch_add(kind, 1);
        atomic_fetch_add(&s->n_endpoints, endpoints);
        atomic_fetch_add(&s->n_records, view_records(v));
    } else {
        atomic_fetch_sub(kind, 1);
        atomic_fetch_sub(&s->n_endpoints, endpoints);
        atomic_fetch_sub(&s->n_records, view_records(v));
    }
}

void zones_store_put_view(struct zones_store *s, const struct zones_view *old,
                          struct zones_view *view)
{
    /* Addresses first out, then in: a PTR query meanwhile finds the old or the new. */
    for (size_t i = 0; old != NULL && i < old->n_addrs; i++) {
        zones_table_remove(&s->addrs, ip_hash(&old->addrs[i].ip), &old->addrs[i]);
        reverse_ref(s, &old->addrs[i].ip, -1);
    }
    if (old != NULL && view != NULL)
        zones_table_put(&s->services, view->hash, (void *)old, view);
    else if (view != NULL)
        zones_table_put(&s->services, view->hash, NULL, view);
    else if (old != NULL)
        zones_table_remove(&s->services, old->hash, old);
    for (size_t i = 0; view != NULL && i < view->n_addrs; i++) {
        zones_table_put(&s->addrs, ip_hash(&view->addrs[i].ip), NULL, (void *)&view->addrs[i]);
        reverse_ref(s, &view->addrs[i].ip, +1);
    }
    count_view(s, old, -1);
    count_view(s, view, +1);
    if (old != NULL)
        retire(s, (void *)old);
}

void zones_store_set_namespace(struct zones_store *s, const char *ns, bool exists)
{
    uint8_t label[DNS_MAX_LABEL + 1];
    if (!zones_label_from_text("", ns, label))
        return;
    size_t n = label[0];
    uint64_t hash = hash_bytes(label, n + 1);
    struct zones_ns *entry = zones_table_find(&s->namespaces, hash, ns_matches, label);
    if (exists && entry == NULL) {
        entry = zones_xcalloc(1, sizeof(*entry));
        entry->hash = hash;
        memcpy(entry->label, label, n + 1);
        zones_table_put(&s->namespaces, hash, NULL, entry);
        atomic_fetch_add(&s->n_namespaces, 1);
    } else if (!exists && entry != NULL) {
        zones_table_remove(&s->namespaces, hash, entry);
        atomic_fetch_sub(&s->n_namespaces, 1);
        retire(s, entry);
    }
}

struct zones_pod_addr *zones_store_add_pod_addr(struct zones_store *s, const char *ns,
                                                const struct zones_ip *ip)
{
    uint8_t label[DNS_MAX_LABEL + 1];
    if (!zones_label_from_text("", ns, label))
        return NULL;
    const struct zones_ns *nsp = zones_store_namespace(s, label);
    if (nsp == NULL)
        return NULL;
    struct zones_pod_addr *entry = zones_xcalloc(1, sizeof(*entry));
    entry->ip = *ip;
    entry->hash = ip_hash(ip);
    entry->ns = nsp;
    zones_table_put(&s->pods, entry->hash, NULL, entry);
    return entry;
}

void zones_store_remove_pod_addr(struct zones_store *s, struct zones_pod_addr *entry)
{
    if (entry == NULL)
        return;
    zones_table_remove(&s->pods, entry->hash, entry);
    retire(s, entry);
}

/* Name and rdata of an SOA: ns.dns.Z. hostmaster.Z. serial 7200 1800 86400 ttl. */
static size_t soa_rdata(const struct zones_store *s, uint32_t serial, uint8_t *rdata)
{
    struct dns_name mname;
    struct dns_name rname;
    char text[DNS_MAX_NAME * 4 + 32];
    snprintf(text, sizeof(text), "ns.dns.%s", s->zone_text);
    dns_name_from_text(&mname, text);
    snprintf(text, sizeof(text), "hostmaster.%s", s->zone_text);
    dns_name_from_text(&rname, text);
    size_t n = 0;
    memcpy(rdata, mname.wire, mname.len);
    n += mname.len;
    memcpy(rdata + n, rname.wire, rname.len);
    n += rname.len;
    uint32_t vals[5] = {serial, 7200, 1800, 86400, s->cfg.ttl};
    for (int i = 0; i < 5; i++, n += 4)
        dns_wire_put_u32(rdata + n, vals[i]);
    return n;
}

void zones_store_set_serial(struct zones_store *s, uint32_t serial)
{
    const struct dns_name *apex[3] = {&s->zone, &in_addr, &ip6_arpa};
    uint8_t rdata[SOA_RDATA_MAX];
    size_t rdlen = soa_rdata(s, serial, rdata);
    struct zones_soa *soa = zones_xcalloc(1, sizeof(*soa) + 3 * (DNS_MAX_NAME + 10 + rdlen));
    size_t at = 0;
    for (int z = 0; z < 3; z++) {
        soa->off[z] = (uint16_t)at;
        memcpy(soa->bytes + at, apex[z]->wire, apex[z]->len);
        at += apex[z]->len;
        dns_wire_put_u16(soa->bytes + at, DNS_TYPE_SOA);
        dns_wire_put_u16(soa->bytes + at + 2, DNS_CLASS_IN);
        dns_wire_put_u32(soa->bytes + at + 4, s->cfg.ttl);
        dns_wire_put_u16(soa->bytes + at + 8, (uint16_t)rdlen);
        memcpy(soa->bytes + at + 10, rdata, rdlen);
        at += 10 + rdlen;
        soa->len[z] = (uint16_t)(at - soa->off[z]);
    }
    soa->serial = serial;
    struct zones_soa *old = atomic_exchange(&s->soa, soa);
    if (old != NULL)
        retire(s, old);
}

/* Lifetime. */

int zones_store_new(struct zones_store **out, const struct zones_store_config *cfg,
                    struct dns_epoch *epoch)
{
    *out = NULL;
    struct zones_store *s = zones_xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->epoch = epoch;
    struct dns_name svc = {5, "\3svc"};
    struct dns_name pod = {5, "\3pod"};
    if (dns_name_from_text(&s->zone, cfg->cluster_domain) < 0 || s->zone.len <= 1 ||
        dns_name_concat(&s->svc_zone, &svc, &s->zone) < 0 ||
        dns_name_concat(&s->pod_zone, &pod, &s->zone) < 0) {
        free(s);
        return -EINVAL;
    }
    dns_name_to_text(&s->zone, s->zone_text, sizeof(s->zone_text));
    size_t len = strlen(s->zone_text);
    if (len > 1)
        s->zone_text[len - 1] = '\0'; /* no trailing dot: names are built as "x.%s" */
    zones_table_init(&s->services, view_hash_of, epoch);
    zones_table_init(&s->namespaces, ns_hash_of, epoch);
    zones_table_init(&s->addrs, addr_hash_of, epoch);
    zones_table_init(&s->reverse, rev_hash_of, epoch);
    zones_table_init(&s->pods, pod_hash_of, epoch);
    zones_store_set_serial(s, 1);
    *out = s;
    return 0;
}

static void free_entry(void *ctx, void *entry)
{
    (void)ctx;
    free(entry);
}

void zones_store_free(struct zones_store *store)
{
    if (store == NULL)
        return;
    /* The addresses live in their views and the Pods' arrays: only whole entries are freed. */
    zones_table_each(&store->services, free_entry, NULL);
    zones_table_each(&store->namespaces, free_entry, NULL);
    zones_table_each(&store->reverse, free_entry, NULL);
    zones_table_each(&store->pods, free_entry, NULL);
    zones_table_deinit(&store->services);
    zones_table_deinit(&store->namespaces);
    zones_table_deinit(&store->addrs);
    zones_table_deinit(&store->reverse);
    zones_table_deinit(&store->pods);
    free(atomic_load(&store->soa));
    free(store);
}

void zones_store_summarize(const struct zones_store *store, struct zones_store_summary *out)
{
    struct zones_store *s = (struct zones_store *)store; /* atomic loads want non-const */
    *out = (struct zones_store_summary){
        .records = atomic_load(&s->n_records),
        .serial = zones_store_soa(store)->serial,
        .cluster_ip = atomic_load(&s->n_cluster_ip),
        .headless = atomic_load(&s->n_headless),
        .external_name = atomic_load(&s->n_external_name),
        .endpoints = atomic_load(&s->n_endpoints),
        .pods = atomic_load(&s->n_pods),
        .namespaces = atomic_load(&s->n_namespaces),
    };
}

void zones_store_config_default(struct zones_store_config *cfg)
{
    cfg->cluster_domain = "local";
    cfg->ttl = 5;
    cfg->pods = ZONES_PODS_INSECURE;
}

int zones_store_parse_pods_mode(const char *text, enum zones_pods_mode *out)
{
    static const char *const names[] = {"disabled", "insecure", "verified"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (enum zones_pods_mode)i;
            return 0;
        }
    }
    return -1;
}

void zones_store_set_complete(struct zones_store *store, bool complete)
{
    atomic_store_explicit(&store->incomplete, !complete, memory_order_release);
}

bool zones_store_is_complete(const struct zones_store *store)
{
    /* C11 wants a non-const pointer for atomic loads; nothing is written. */
    return !atomic_load_explicit(&((struct zones_store *)store)->incomplete, memory_order_acquire);
}
