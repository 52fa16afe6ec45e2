/* zones/model.c - merging sources, tracking what depends on what, committing to the store.
 *
 * Everything here runs on one thread (the control loop, or --check's). The maps are plain
 * open-addressing tables keyed by (namespace, name). A Service's entry gathers its
 * definitions, its EndpointSlices and what was published for it; it exists while any of
 * those does. A change marks entries dirty; commit() rebuilds their views.
 *
 * Invariants. A namespace exists in the store exactly while some effective object lives in
 * it or a Namespace object names it; it comes before the Pods' addresses that point at it and
 * goes after them. An address is assigned only to a ClusterIP Service without one, the same
 * for the same set of Services whatever the order they arrived in (zones_objects.h's rule). */
#include "zones/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zones/store_layout.h"
#include "zones/view.h"

/* --- a small map of entries by (namespace, name) ----------------------------------------- */

struct entry_head {
    char *ns;
    char *name;
    uint64_t hash;
};

struct map {
    struct entry_head **slots; /* NULL empty, TOMB deleted */
    size_t mask, used, tombs;
};

static struct entry_head tomb_entry;
#define TOMB (&tomb_entry)

static uint64_t key_hash(const char *ns, const char *name)
{
    uint64_t h = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, ns, strlen(ns) + 1);
    return zones_fnv1a(h, name, strlen(name));
}

static void map_init(struct map *m)
{
    m->mask = 63;
    m->slots = zones_xcalloc(m->mask + 1, sizeof(struct entry_head *));
    m->used = m->tombs = 0;
}

static struct entry_head **map_slot(const struct map *m, const char *ns, const char *name,
                                    uint64_t hash, bool for_insert)
{
    struct entry_head **tomb = NULL;
    for (size_t i = (size_t)hash & m->mask;; i = (i + 1) & m->mask) {
        struct entry_head *e = m->slots[i];
        if (e == NULL)
            return for_insert && tomb ? tomb : &m->slots[i];
        if (e == TOMB) {
            if (tomb == NULL)
                tomb = &m->slots[i];
            continue;
        }
        if (e->hash == hash && strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0)
            return &m->slots[i];
    }
}

static void *map_get(const struct map *m, const char *ns, const char *name)
{
    struct entry_head **slot = map_slot(m, ns, name, key_hash(ns, name), false);
    return *slot;
}

static void map_grow(struct map *m)
{
    struct map bigger;
    size_t n = 64;
    while (n < (m->used + 1) * 4)
        n *= 2;
    bigger.mask = n - 1;
    bigger.slots = zones_xcalloc(n, sizeof(struct entry_head *));
    bigger.used = m->used;
    bigger.tombs = 0;
    for (size_t i = 0; i <= m->mask; i++) {
        struct entry_head *e = m->slots[i];
        if (e != NULL && e != TOMB)
            *map_slot(&bigger, e->ns, e->name, e->hash, true) = e;
    }
    free(m->slots);
    *m = bigger;
}

/* Finds or makes the entry; size is the entry's whole struct, which starts with the head. */
static void *map_obtain(struct map *m, const char *ns, const char *name, size_t size, bool *made)
{
    uint64_t hash = key_hash(ns, name);
    struct entry_head **slot = map_slot(m, ns, name, hash, false);
    *made = false;
    if (*slot != NULL)
        return *slot;
    if ((m->used + m->tombs + 1) * 2 > m->mask + 1)
        map_grow(m);
    slot = map_slot(m, ns, name, hash, true);
    if (*slot == TOMB)
        m->tombs--;
    /* The entry and its key in one allocation: 100k Services make 100k of them. */
    size_t nl = strlen(ns) + 1;
    size_t ml = strlen(name) + 1;
    struct entry_head *e = zones_xcalloc(1, size + nl + ml);
    e->ns = (char *)e + size;
    memcpy(e->ns, ns, nl);
    e->name = e->ns + nl;
    memcpy(e->name, name, ml);
    e->hash = hash;
    *slot = e;
    m->used++;
    *made = true;
    return e;
}

static void map_drop(struct map *m, struct entry_head *e)
{
    struct entry_head **slot = map_slot(m, e->ns, e->name, e->hash, false);
    if (*slot == e) {
        *slot = TOMB;
        m->used--;
        m->tombs++;
    }
    free(e);
}

static void map_each(struct map *m, void (*fn)(void *ctx, void *entry), void *ctx)
{
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i] != NULL && m->slots[i] != TOMB)
            fn(ctx, m->slots[i]);
    }
}

/* --- entries --------------------------------------------------------------------------------- */

/* A growing array of (source, object) definitions. */
struct defs {
    struct def {
        uint32_t source;
        const void *obj;
    } * items;
    size_t n, cap;
};

static void defs_add(struct defs *d, uint32_t source, const void *obj)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1; /* most objects have one definition */
        d->items = zones_xrealloc(d->items, d->cap * sizeof(d->items[0]));
    }
    d->items[d->n++] = (struct def){source, obj};
}

static bool defs_remove(struct defs *d, const void *obj)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].obj == obj) {
            d->items[i] = d->items[--d->n];
            return true;
        }
    }
    return false;
}

static bool defs_has_source(const struct defs *d, const void *obj, uint32_t source)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].obj == obj)
            return d->items[i].source == source;
    }
    return false;
}

static uint32_t rank_of(const struct zones_model *m, uint32_t source);

/* The definition that counts: the highest rank; within one rank, the first. */
static const void *defs_best(const struct zones_model *m, const struct defs *d)
{
    const struct def *best = NULL;
    uint32_t best_rank = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint32_t rank = rank_of(m, d->items[i].source);
        if (best == NULL || rank > best_rank) {
            best = &d->items[i];
            best_rank = rank;
        }
    }
    return best ? best->obj : NULL;
}

/* Whether the definitions come from more than one source: only then can a rank decide. */
static bool defs_contested(const struct defs *d)
{
    for (size_t i = 1; i < d->n; i++) {
        if (d->items[i].source != d->items[0].source)
            return true;
    }
    return false;
}

struct ns_entry;

struct svc_entry {
    struct entry_head head; /* namespace, name */
    struct defs services;   /* const struct zones_service * */
    struct defs slices;     /* const struct zones_slice *: every definition of its slices */
    const struct zones_service *effective;
    struct zones_view *view; /* what the store has */
    struct zones_ip assigned;
    bool has_assigned;
    bool dirty;
    struct svc_entry *next_dirty;
    struct ns_entry *ns;
    struct svc_entry *ns_prev, *ns_next; /* in its namespace's list */
};

struct pod_entry {
    struct entry_head head;
    struct defs pods; /* const struct zones_pod * */
    const struct zones_pod *effective;
    const struct zones_pod *published; /* what the store's addresses were made from */
    struct zones_pod_addr **addrs;     /* the store's entries for it */
    size_t n_addrs;
    bool dirty;
    struct pod_entry *next_dirty;
    struct ns_entry *ns;
    struct pod_entry *ns_prev, *ns_next;
};

struct ns_entry {
    struct entry_head head; /* "", name */
    size_t namespace_defs;  /* Namespace objects naming it */
    size_t objects;         /* effective objects living in it */
    bool published;
    bool dirty;
    struct ns_entry *next_dirty;
    struct svc_entry *services; /* for Pods that a selector may pick */
    struct pod_entry *pods;
};

struct source {
    uint32_t rank;
    bool used;
    const struct zones_objects *objs; /* what set_source() gave, if anything */
};

struct zones_model {
    struct zones_store *store;
    struct zones_store_config cfg;
    struct zones_cidr *cidrs; /* --service-cidr: allocation ranges before any ServiceCIDR's */
    size_t n_cidrs;
    struct map services, pods, namespaces;
    struct source *sources; /* by id; ZONES_MODEL_API_SOURCE is always there */
    size_t n_sources;
    bool ranks_changed;
    struct defs service_cidrs; /* const struct zones_service_cidr *, from every source */
    struct svc_entry *dirty_services;
    struct pod_entry *dirty_pods;
    struct ns_entry *dirty_namespaces;
    bool assignment_dirty; /* the Services without an address, or the taken ones, changed */
    size_t n_unaddressed;  /* effective ClusterIP Services that state no address */
    struct zones_objects diags;
};

static uint32_t rank_of(const struct zones_model *m, uint32_t source)
{
    return m->sources[source].rank;
}

/* --- namespaces ----------------------------------------------------------------------------- */

static struct ns_entry *ns_obtain(struct zones_model *m, const char *ns)
{
    bool made;
    return map_obtain(&m->namespaces, "", ns, sizeof(struct ns_entry), &made);
}

static void ns_touch(struct zones_model *m, struct ns_entry *n)
{
    if (!n->dirty) {
        n->dirty = true;
        n->next_dirty = m->dirty_namespaces;
        m->dirty_namespaces = n;
    }
}

static void ns_count(struct zones_model *m, struct ns_entry *n, int delta)
{
    n->objects = (size_t)((long)n->objects + delta);
    ns_touch(m, n);
}

static bool ns_exists(const struct ns_entry *n)
{
    return n->namespace_defs > 0 || n->objects > 0;
}

/* --- Services ---------------------------------------------------------------------------- */

static void svc_touch(struct zones_model *m, struct svc_entry *e)
{
    if (!e->dirty) {
        e->dirty = true;
        e->next_dirty = m->dirty_services;
        m->dirty_services = e;
    }
}

static struct svc_entry *svc_obtain(struct zones_model *m, const char *ns, const char *name)
{
    bool made;
    struct svc_entry *e = map_obtain(&m->services, ns, name, sizeof(struct svc_entry), &made);
    if (made) {
        e->ns = ns_obtain(m, ns);
        e->ns_next = e->ns->services;
        if (e->ns->services)
            e->ns->services->ns_prev = e;
        e->ns->services = e;
    }
    return e;
}

static bool needs_address(const struct zones_service *svc)
{
    return svc != NULL && svc->kind == ZONES_SVC_CLUSTER_IP && svc->n_ips == 0;
}

/* After a change of its definitions: the effective one, and what depends on it. */
static void svc_settle(struct zones_model *m, struct svc_entry *e)
{
    const struct zones_service *best = defs_best(m, &e->services);
    if (best == e->effective) {
        svc_touch(m, e);
        return;
    }
    if (e->effective != NULL)
        ns_count(m, e->ns, -1);
    if (best != NULL)
        ns_count(m, e->ns, +1);
    bool was = needs_address(e->effective);
    bool is = needs_address(best);
    m->n_unaddressed = m->n_unaddressed + is - was;
    /* Any change of stated addresses can move an assigned one. */
    if (was || is || m->n_unaddressed > 0)
        m->assignment_dirty = true;
    e->effective = best;
    svc_touch(m, e);
}

static const char *where_file(const struct zones_where *w)
{
    return w->file ? w->file : "?";
}

void zones_model_put_service(struct zones_model *m, uint32_t source,
                             const struct zones_service *old, const struct zones_service *svc)
{
    if (old != NULL) {
        struct svc_entry *e = map_get(&m->services, old->ns, old->name);
        if (e != NULL && defs_remove(&e->services, old))
            svc_settle(m, e);
    }
    if (svc == NULL || svc->name == NULL || svc->ns == NULL)
        return;
    struct svc_entry *e = svc_obtain(m, svc->ns, svc->name);
    const struct zones_service *before = defs_best(m, &e->services);
    for (size_t i = 0; i < e->services.n; i++) {
        const struct def *d = &e->services.items[i];
        if (d->source != source)
            continue;
        const struct zones_service *first = d->obj;
        zones_objects_error(&m->diags, &svc->where,
                            "Service %s/%s is defined twice in this file, first at %s:%u:%u; "
                            "keep one of them or rename this one",
                            svc->ns, svc->name, where_file(&first->where), first->where.line,
                            first->where.col);
        return;
    }
    defs_add(&e->services, source, svc);
    bool api = source == ZONES_MODEL_API_SOURCE;
    if (before != NULL &&
        (api ? old == NULL : defs_has_source(&e->services, before, ZONES_MODEL_API_SOURCE))) {
        /* The API follows the live cluster: say so at the file's definition, which loses (once,
         * not at each change the API makes). */
        const struct zones_service *file = api ? before : svc;
        zones_objects_warn(&m->diags, &file->where,
                           "Service %s/%s is also defined by the Kubernetes API, which wins: this "
                           "definition is not served; remove it to silence this",
                           svc->ns, svc->name);
    } else if (before != NULL) {
        const struct zones_service *winner = defs_best(m, &e->services);
        const struct zones_service *loser = winner == svc ? before : svc;
        zones_objects_warn(&m->diags, &winner->where,
                           "Service %s/%s replaces its definition at %s:%u:%u, as a second "
                           "kubectl apply would; remove one of them to silence this",
                           svc->ns, svc->name, where_file(&loser->where), loser->where.line,
                           loser->where.col);
    }
    svc_settle(m, e);
}

/* --- EndpointSlices ------------------------------------------------------------------------ */

void zones_model_put_slice(struct zones_model *m, uint32_t source, const struct zones_slice *old,
                           const struct zones_slice *slice)
{
    if (old != NULL && old->service != NULL) {
        struct svc_entry *e = map_get(&m->services, old->ns, old->service);
        if (e != NULL && defs_remove(&e->slices, old)) {
            ns_count(m, e->ns, -1);
            svc_touch(m, e);
        }
    }
    if (slice == NULL || slice->service == NULL || slice->ns == NULL)
        return;
    struct svc_entry *e = svc_obtain(m, slice->ns, slice->service);
    defs_add(&e->slices, source, slice);
    ns_count(m, e->ns, +1);
    svc_touch(m, e);
    if (m->n_unaddressed > 0) /* its addresses are taken now */
        m->assignment_dirty = true;
}

/* The effective slices of a Service: of two with one name, the higher rank's. */
static size_t effective_slices(const struct zones_model *m, const struct svc_entry *e,
                               const struct zones_slice **out)
{
    size_t n = 0;
    for (size_t i = 0; i < e->slices.n; i++) {
        const struct def *d = &e->slices.items[i];
        const struct zones_slice *s = d->obj;
        bool beaten = false;
        for (size_t j = 0; j < e->slices.n && !beaten; j++) {
            const struct def *o = &e->slices.items[j];
            const struct zones_slice *t = o->obj;
            beaten = rank_of(m, o->source) > rank_of(m, d->source) && s->name && t->name &&
                     strcmp(s->name, t->name) == 0;
        }
        if (!beaten)
            out[n++] = s;
    }
    return n;
}

/* --- Pods ----------------------------------------------------------------------------------- */

static void pod_touch(struct zones_model *m, struct pod_entry *e)
{
    if (!e->dirty) {
        e->dirty = true;
        e->next_dirty = m->dirty_pods;
        m->dirty_pods = e;
    }
}

/* Services of the Pod's namespace that derive endpoints from Pods: a change of this Pod may
 * change them. */
static void touch_selecting(struct zones_model *m, struct ns_entry *ns)
{
    for (struct svc_entry *s = ns->services; s != NULL; s = s->ns_next) {
        if (s->effective && s->effective->n_selector > 0 && s->slices.n == 0)
            svc_touch(m, s);
    }
}

/* After a change of its definitions: the effective one, and what depends on it. */
static void pod_settle(struct zones_model *m, struct pod_entry *e)
{
    const struct zones_pod *best = defs_best(m, &e->pods);
    if (best == e->effective)
        return;
    if (e->effective)
        ns_count(m, e->ns, -1);
    if (best)
        ns_count(m, e->ns, +1);
    e->effective = best;
    pod_touch(m, e);
    touch_selecting(m, e->ns);
}

void zones_model_put_pod(struct zones_model *m, uint32_t source, const struct zones_pod *old,
                         const struct zones_pod *pod)
{
    if (m->n_unaddressed > 0) /* the addresses it states are no longer, or now, taken */
        m->assignment_dirty = true;
    if (old != NULL && old->name != NULL) {
        struct pod_entry *e = map_get(&m->pods, old->ns, old->name);
        if (e != NULL && defs_remove(&e->pods, old))
            pod_settle(m, e);
    }
    if (pod == NULL || pod->name == NULL || pod->ns == NULL)
        return;
    bool made;
    struct pod_entry *e = map_obtain(&m->pods, pod->ns, pod->name, sizeof(*e), &made);
    if (made) {
        e->ns = ns_obtain(m, pod->ns);
        e->ns_next = e->ns->pods;
        if (e->ns->pods)
            e->ns->pods->ns_prev = e;
        e->ns->pods = e;
    }
    defs_add(&e->pods, source, pod);
    pod_settle(m, e);
}

void zones_model_put_namespace(struct zones_model *m, uint32_t source,
                               const struct zones_namespace *old, const struct zones_namespace *ns)
{
    (void)source;
    if (old != NULL && old->name != NULL) {
        struct ns_entry *n = map_get(&m->namespaces, "", old->name);
        if (n != NULL && n->namespace_defs > 0) {
            n->namespace_defs--;
            ns_touch(m, n);
        }
    }
    if (ns != NULL && ns->name != NULL) {
        struct ns_entry *n = ns_obtain(m, ns->name);
        n->namespace_defs++;
        ns_touch(m, n);
    }
}

void zones_model_put_service_cidr(struct zones_model *m, uint32_t source,
                                  const struct zones_service_cidr *old,
                                  const struct zones_service_cidr *sc)
{
    if (old != NULL && defs_remove(&m->service_cidrs, old))
        m->assignment_dirty = true;
    if (sc != NULL && sc->n_cidrs > 0) {
        defs_add(&m->service_cidrs, source, sc);
        m->assignment_dirty = true;
    }
}

/* --- sources -------------------------------------------------------------------------------- */

uint32_t zones_model_add_source(struct zones_model *m, uint32_t rank)
{
    size_t id = 0;
    while (id < m->n_sources && m->sources[id].used)
        id++;
    if (id == m->n_sources) {
        m->sources = zones_xrealloc(m->sources, (m->n_sources + 1) * sizeof(m->sources[0]));
        m->n_sources++;
    }
    m->sources[id] = (struct source){.rank = rank, .used = true};
    return (uint32_t)id;
}

void zones_model_set_rank(struct zones_model *m, uint32_t source, uint32_t rank)
{
    if (m->sources[source].rank != rank) {
        m->sources[source].rank = rank;
        m->ranks_changed = true;
    }
}

static void put_all(struct zones_model *m, uint32_t source, const struct zones_objects *objs,
                    bool remove)
{
    for (size_t i = 0; i < objs->n_namespaces; i++)
        zones_model_put_namespace(m, source, remove ? &objs->namespaces[i] : NULL,
                                  remove ? NULL : &objs->namespaces[i]);
    for (size_t i = 0; i < objs->n_service_cidrs; i++)
        zones_model_put_service_cidr(m, source, remove ? &objs->service_cidrs[i] : NULL,
                                     remove ? NULL : &objs->service_cidrs[i]);
    for (size_t i = 0; i < objs->n_services; i++)
        zones_model_put_service(m, source, remove ? &objs->services[i] : NULL,
                                remove ? NULL : &objs->services[i]);
    for (size_t i = 0; i < objs->n_slices; i++)
        zones_model_put_slice(m, source, remove ? &objs->slices[i] : NULL,
                              remove ? NULL : &objs->slices[i]);
    for (size_t i = 0; i < objs->n_pods; i++)
        zones_model_put_pod(m, source, remove ? &objs->pods[i] : NULL,
                            remove ? NULL : &objs->pods[i]);
}

void zones_model_set_source(struct zones_model *m, uint32_t source,
                            const struct zones_objects *objs)
{
    struct source *src = &m->sources[source];
    if (src->objs == objs)
        return;
    if (src->objs != NULL)
        put_all(m, source, src->objs, true);
    src->objs = objs;
    if (objs != NULL)
        put_all(m, source, objs, false);
}

void zones_model_remove_source(struct zones_model *m, uint32_t source)
{
    zones_model_set_source(m, source, NULL);
    if (source != ZONES_MODEL_API_SOURCE)
        m->sources[source].used = false;
}

/* Ranks moved: what more than one source defines may have another winner now. */
static void settle_contested_service(void *ctx, void *entry)
{
    struct svc_entry *e = entry;
    if (defs_contested(&e->services))
        svc_settle(ctx, e);
    else if (defs_contested(&e->slices))
        svc_touch(ctx, e);
}

static void settle_contested_pod(void *ctx, void *entry)
{
    struct pod_entry *e = entry;
    if (defs_contested(&e->pods))
        pod_settle(ctx, e);
}

/* --- addresses for Services that state none ----------------------------------------------- */

struct ip_set {
    struct zones_ip *slots; /* family 0: empty */
    size_t mask, n;
};

static void ip_set_init(struct ip_set *set, size_t expected)
{
    size_t size = 16;
    while (size < expected * 2)
        size *= 2;
    set->slots = zones_xcalloc(size, sizeof(set->slots[0]));
    set->mask = size - 1;
    set->n = 0;
}

/* Finds ip's slot: where it is, or the empty one where it goes. */
static struct zones_ip *ip_set_slot(const struct ip_set *set, const struct zones_ip *ip)
{
    size_t i = (size_t)zones_fnv1a(ZONES_FNV_OFFSET_BASIS, ip, sizeof(*ip)) & set->mask;
    while (set->slots[i].family != 0 && memcmp(&set->slots[i], ip, sizeof(*ip)) != 0)
        i = (i + 1) & set->mask;
    return &set->slots[i];
}

/* Returns true when ip was already in the set. The set stays at most half full, so a probe
 * always meets an empty slot. */
static bool ip_set_add(struct ip_set *set, const struct zones_ip *ip)
{
    if ((set->n + 1) * 2 > set->mask + 1) {
        struct ip_set bigger;
        ip_set_init(&bigger, set->mask + 1);
        for (size_t i = 0; i <= set->mask; i++) {
            if (set->slots[i].family != 0)
                *ip_set_slot(&bigger, &set->slots[i]) = set->slots[i];
        }
        bigger.n = set->n;
        free(set->slots);
        *set = bigger;
    }
    struct zones_ip *slot = ip_set_slot(set, ip);
    if (slot->family != 0)
        return true;
    *slot = *ip;
    set->n++;
    return false;
}

struct gather {
    struct svc_entry **unaddressed;
    size_t n_unaddressed;
    struct ip_set *taken;
};

static void take_all(struct ip_set *taken, const struct zones_ip *ips, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ip_set_add(taken, &ips[i]);
}

/* Services that need an address, and (with taken) every address a loaded object states: a
 * Service's, an endpoint's, a Pod's, whichever definition of it counts. */
static void gather_one(void *ctx, void *entry)
{
    struct gather *g = ctx;
    struct svc_entry *e = entry;
    for (size_t i = 0; g->taken && i < e->slices.n; i++) {
        const struct zones_slice *slice = e->slices.items[i].obj;
        for (size_t k = 0; k < slice->n_endpoints; k++)
            take_all(g->taken, slice->endpoints[k].ips, slice->endpoints[k].n_ips);
    }
    const struct zones_service *svc = e->effective;
    if (svc == NULL)
        return;
    if (needs_address(svc))
        g->unaddressed[g->n_unaddressed++] = e;
    else if (g->taken)
        take_all(g->taken, svc->ips, svc->n_ips);
}

static void gather_pod(void *ctx, void *entry)
{
    const struct pod_entry *e = entry;
    for (size_t i = 0; i < e->pods.n; i++) {
        const struct zones_pod *pod = e->pods.items[i].obj;
        take_all(ctx, pod->ips, pod->n_ips);
    }
}

static int compare_entries(const void *a, const void *b)
{
    const struct svc_entry *x = *(const struct svc_entry *const *)a;
    const struct svc_entry *y = *(const struct svc_entry *const *)b;
    int c = strcmp(x->head.ns, y->head.ns);
    return c ? c : strcmp(x->head.name, y->head.name);
}

static void set_assigned(struct zones_model *m, struct svc_entry *e, const struct zones_ip *ip)
{
    bool same =
        ip ? e->has_assigned && memcmp(&e->assigned, ip, sizeof(*ip)) == 0 : !e->has_assigned;
    if (same)
        return;
    e->has_assigned = ip != NULL;
    if (ip)
        e->assigned = *ip;
    svc_touch(m, e);
}

/* Offsets [2, 2 + count) from the range's base: IPv4 loses the network address, the first
 * host and the broadcast; IPv6 has no broadcast. */
static uint64_t pool_size(const struct zones_cidr *cidr)
{
    unsigned host_bits = (cidr->base.family == 4 ? 32U : 128U) - cidr->prefix;
    unsigned reserved = cidr->base.family == 4 ? 3 : 2;
    if (host_bits >= 64)
        return UINT64_MAX - 1;
    return (UINT64_C(1) << host_bits) > reserved ? (UINT64_C(1) << host_bits) - reserved : 0;
}

static struct zones_ip pool_address(const struct zones_cidr *cidr, uint64_t offset)
{
    struct zones_ip ip = cidr->base;
    unsigned last = ip.family == 4 ? 3 : 15;
    for (unsigned i = 0; i < 8 && i <= last; i++)
        ip.addr[last - i] |= (uint8_t)(offset >> (8 * i));
    return ip;
}

static int pick(const struct zones_cidr *cidr, const struct svc_entry *e, struct ip_set *taken,
                struct zones_ip *out)
{
    uint64_t hash = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, e->head.ns, strlen(e->head.ns));
    hash = zones_fnv1a(hash, "/", 1);
    hash = zones_fnv1a(hash, e->head.name, strlen(e->head.name));
    uint64_t count = pool_size(cidr);
    /* Among taken->n + 1 candidates at least one is free, so the probe is short even in a
     * huge IPv6 range; only a range smaller than that can be full. */
    uint64_t tries = count < taken->n + 1 ? count : taken->n + 1;
    uint64_t offset = count > 0 ? hash % count : 0;
    for (uint64_t t = 0; t < tries; t++, offset = offset + 1 == count ? 0 : offset + 1) {
        struct zones_ip ip = pool_address(cidr, 2 + offset);
        if (!ip_set_add(taken, &ip)) {
            *out = ip;
            return 0;
        }
    }
    return -1;
}

static int compare_service_cidrs(const void *a, const void *b)
{
    const struct zones_service_cidr *x = ((const struct def *)a)->obj;
    const struct zones_service_cidr *y = ((const struct def *)b)->obj;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

/* The ranges to allocate from, in order: the IPv4 ones of --service-cidr, then of the
 * ServiceCIDR objects by name; then the IPv6 ones the same way. */
static size_t ranges(struct zones_model *m, const struct zones_cidr ***out)
{
    if (m->service_cidrs.n > 1)
        qsort(m->service_cidrs.items, m->service_cidrs.n, sizeof(struct def),
              compare_service_cidrs);
    size_t cap = m->n_cidrs + 2 * m->service_cidrs.n;
    const struct zones_cidr **list = zones_xcalloc(cap + 1, sizeof(const struct zones_cidr *));
    size_t n = 0;
    for (uint8_t family = 4; family <= 6; family += 2) {
        for (size_t i = 0; i < m->n_cidrs; i++) {
            if (m->cidrs[i].base.family == family)
                list[n++] = &m->cidrs[i];
        }
        for (size_t i = 0; i < m->service_cidrs.n; i++) {
            const struct zones_service_cidr *sc = m->service_cidrs.items[i].obj;
            for (size_t k = 0; k < sc->n_cidrs; k++) {
                if (sc->cidrs[k].base.family == family)
                    list[n++] = &sc->cidrs[k];
            }
        }
    }
    *out = list;
    return n;
}

/* In (namespace, name) order, each Service without an address takes the first free one from
 * FNV-1a of "namespace/name" on, in the first range with one free (see ranges()), skipping the
 * network address, the first host (the kubernetes Service's) and the IPv4 broadcast, and every
 * address a loaded object states. */
static void assign(struct zones_model *m)
{
    if (m->n_unaddressed == 0 && !m->assignment_dirty)
        return;
    m->assignment_dirty = false;
    struct gather g = {zones_xcalloc(m->n_unaddressed + 1, sizeof(struct svc_entry *)), 0, NULL};
    map_each(&m->services, gather_one, &g);
    if (g.n_unaddressed == 0) {
        free(g.unaddressed);
        return;
    }
    struct ip_set taken;
    ip_set_init(&taken, m->services.used + m->pods.used + g.n_unaddressed);
    g.taken = &taken;
    g.n_unaddressed = 0;
    map_each(&m->services, gather_one, &g);
    map_each(&m->pods, gather_pod, &taken);
    qsort(g.unaddressed, g.n_unaddressed, sizeof(struct svc_entry *), compare_entries);
    const struct zones_cidr **pools = NULL;
    size_t n_pools = ranges(m, &pools);
    for (size_t k = 0; k < g.n_unaddressed; k++) {
        struct svc_entry *e = g.unaddressed[k];
        struct zones_ip ip;
        size_t p = 0;
        while (p < n_pools && pick(pools[p], e, &taken, &ip) < 0)
            p++;
        if (p < n_pools) {
            set_assigned(m, e, &ip);
            continue;
        }
        if (n_pools > 0 && e->effective != NULL)
            zones_objects_error(&m->diags, &e->effective->where,
                                "no free address left in any service CIDR for Service %s/%s; "
                                "add a --service-cidr or a ServiceCIDR, or give it a clusterIP",
                                e->head.ns, e->head.name);
        set_assigned(m, e, NULL);
    }
    free(pools);
    free(taken.slots);
    free(g.unaddressed);
}

/* --- conflicts --------------------------------------------------------------------------- */

/* Two Services stating one address both keep it (their names answer it, its PTR names both);
 * it is reported at the later one, which may be either, as a mistake to fix. */
static void report_clashes(struct zones_model *m, const struct svc_entry *e)
{
    const struct zones_service *svc = e->effective;
    if (svc == NULL || needs_address(svc))
        return;
    for (size_t i = 0; i < svc->n_ips; i++) {
        size_t pos = SIZE_MAX;
        for (const struct zones_view_addr *a;
             (a = zones_store_next_addr(m->store, &svc->ips[i], &pos));) {
            if (a->endpoint != ZONES_VIEW_NAME || a->view == e->view)
                continue;
            const struct zones_view *other = a->view;
            char ip[64];
            char other_name[2 * DNS_MAX_LABEL + 2];
            snprintf(other_name, sizeof(other_name), "%.*s/%.*s", other->bytes[other->bytes[0] + 1],
                     (const char *)other->bytes + other->bytes[0] + 2, other->bytes[0],
                     (const char *)other->bytes + 1);
            zones_objects_error(&m->diags, &svc->ips_where,
                                "clusterIP %s of Service %s/%s is also stated by Service %s; both "
                                "names answer it: give each Service its own address, or remove "
                                "one to have it assigned",
                                zones_ip_format(&svc->ips[i], ip, sizeof(ip)), svc->ns, svc->name,
                                other_name);
            return;
        }
    }
}

/* --- commit ----------------------------------------------------------------------------------- */

static void rebuild(struct zones_model *m, struct svc_entry *e)
{
    struct zones_view *view = NULL;
    const struct zones_service *svc = e->effective;
    if (svc != NULL) {
        const struct zones_slice **slices =
            zones_xcalloc(e->slices.n + 1, sizeof(struct zones_slice *));
        size_t n_slices = effective_slices(m, e, slices);
        const struct zones_pod **pods = NULL;
        size_t n_pods = 0;
        if (n_slices == 0 && svc->n_selector > 0) {
            size_t cap = 0;
            for (struct pod_entry *p = e->ns->pods; p != NULL; p = p->ns_next)
                cap++;
            pods = zones_xcalloc(cap + 1, sizeof(struct zones_pod *));
            for (struct pod_entry *p = e->ns->pods; p != NULL; p = p->ns_next) {
                if (p->effective != NULL)
                    pods[n_pods++] = p->effective;
            }
        }
        bool assigned = needs_address(svc);
        struct zones_view_input in = {
            .svc = svc,
            .ips = assigned ? (e->has_assigned ? &e->assigned : NULL) : svc->ips,
            .n_ips = assigned ? (e->has_assigned ? 1 : 0) : svc->n_ips,
            .slices = slices,
            .n_slices = n_slices,
            .pods = pods,
            .n_pods = n_pods,
            .ttl = m->cfg.ttl,
        };
        view = zones_view_build(&in);
        free(slices);
        free(pods);
    }
    zones_store_put_view(m->store, e->view, view);
    e->view = view;
    report_clashes(m, e);
}

/* The new addresses go in before the old ones come out, so that a Pod read again unchanged
 * (its file reloaded) never disappears for a moment: a query in between would get NXDOMAIN
 * for its record, or no autopath for it as a client. */
static void republish_pod(struct zones_model *m, struct pod_entry *e)
{
    struct zones_pod_addr **old = e->addrs;
    size_t n_old = e->n_addrs;
    e->addrs = NULL;
    e->n_addrs = 0;
    const struct zones_pod *pod = e->effective;
    e->published = pod;
    if (pod != NULL && pod->n_ips > 0) {
        e->addrs = zones_xcalloc(pod->n_ips, sizeof(struct zones_pod_addr *));
        for (size_t i = 0; i < pod->n_ips; i++) {
            struct zones_pod_addr *a = zones_store_add_pod_addr(m->store, pod->ns, &pod->ips[i]);
            if (a != NULL)
                e->addrs[e->n_addrs++] = a;
        }
    }
    for (size_t i = 0; i < n_old; i++)
        zones_store_remove_pod_addr(m->store, old[i]);
    free(old);
}

static void svc_unlink(struct svc_entry *e)
{
    if (e->ns_prev)
        e->ns_prev->ns_next = e->ns_next;
    else
        e->ns->services = e->ns_next;
    if (e->ns_next)
        e->ns_next->ns_prev = e->ns_prev;
}

static void pod_unlink(struct pod_entry *e)
{
    if (e->ns_prev)
        e->ns_prev->ns_next = e->ns_next;
    else
        e->ns->pods = e->ns_next;
    if (e->ns_next)
        e->ns_next->ns_prev = e->ns_prev;
}

size_t zones_model_commit(struct zones_model *m, uint32_t serial)
{
    if (m->ranks_changed) {
        m->ranks_changed = false;
        map_each(&m->services, settle_contested_service, m);
        map_each(&m->pods, settle_contested_pod, m);
    }
    assign(m);
    /* Namespaces that come into being first: Pods' addresses point at them. */
    for (struct ns_entry *n = m->dirty_namespaces; n != NULL; n = n->next_dirty) {
        if (ns_exists(n) && !n->published) {
            zones_store_set_namespace(m->store, n->head.name, true);
            n->published = true;
        }
    }
    while (m->dirty_pods != NULL) {
        struct pod_entry *e = m->dirty_pods;
        m->dirty_pods = e->next_dirty;
        e->dirty = false;
        if (e->effective != e->published || e->effective == NULL)
            republish_pod(m, e);
        if (e->pods.n == 0 && e->n_addrs == 0) {
            pod_unlink(e);
            free(e->pods.items);
            free(e->addrs);
            map_drop(&m->pods, &e->head);
        }
    }
    size_t changed = 0;
    while (m->dirty_services != NULL) {
        struct svc_entry *e = m->dirty_services;
        m->dirty_services = e->next_dirty;
        e->dirty = false;
        rebuild(m, e);
        changed++;
        if (e->services.n == 0 && e->slices.n == 0 && e->view == NULL) {
            svc_unlink(e);
            free(e->services.items);
            free(e->slices.items);
            map_drop(&m->services, &e->head);
        }
    }
    /* Namespaces that go, last: nothing points at them any more. */
    while (m->dirty_namespaces != NULL) {
        struct ns_entry *n = m->dirty_namespaces;
        m->dirty_namespaces = n->next_dirty;
        n->dirty = false;
        if (!ns_exists(n) && n->published) {
            zones_store_set_namespace(m->store, n->head.name, false);
            n->published = false;
        }
        if (!ns_exists(n) && n->services == NULL && n->pods == NULL)
            map_drop(&m->namespaces, &n->head);
    }
    if (serial != zones_store_soa(m->store)->serial)
        zones_store_set_serial(m->store, serial);
    return changed;
}

/* --- lifetime ----------------------------------------------------------------------------- */

int zones_model_new(struct zones_model **out, const struct zones_store_config *cfg,
                    struct dns_epoch *epoch, const struct zones_cidr *cidrs, size_t n_cidrs)
{
    *out = NULL;
    struct zones_model *m = zones_xcalloc(1, sizeof(*m));
    int rc = zones_store_new(&m->store, cfg, epoch);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->cfg = *cfg;
    m->cidrs = zones_xcalloc(n_cidrs + 1, sizeof(m->cidrs[0]));
    if (n_cidrs > 0)
        memcpy(m->cidrs, cidrs, n_cidrs * sizeof(m->cidrs[0]));
    m->n_cidrs = n_cidrs;
    map_init(&m->services);
    map_init(&m->pods);
    map_init(&m->namespaces);
    zones_objects_init(&m->diags);
    uint32_t api = zones_model_add_source(m, ZONES_MODEL_API_RANK);
    (void)api; /* the first id: ZONES_MODEL_API_SOURCE */
    *out = m;
    return 0;
}

static void free_svc_entry(void *ctx, void *entry)
{
    (void)ctx;
    struct svc_entry *e = entry;
    free(e->services.items);
    free(e->slices.items);
    free(e);
}

static void free_pod_entry(void *ctx, void *entry)
{
    (void)ctx;
    struct pod_entry *e = entry;
    free(e->pods.items);
    free(e->addrs); /* the entries themselves are the store's */
    free(e);
}

static void free_ns_entry(void *ctx, void *entry)
{
    (void)ctx;
    struct ns_entry *e = entry;
    free(e);
}

static void free_model(struct zones_model *m)
{
    map_each(&m->services, free_svc_entry, NULL);
    map_each(&m->pods, free_pod_entry, NULL);
    map_each(&m->namespaces, free_ns_entry, NULL);
    free(m->services.slots);
    free(m->pods.slots);
    free(m->namespaces.slots);
    free(m->sources);
    free(m->service_cidrs.items);
    free(m->cidrs);
    zones_objects_free(&m->diags);
    free(m);
}

void zones_model_free(struct zones_model *model)
{
    if (model == NULL)
        return;
    zones_store_free(model->store); /* frees the views too */
    free_model(model);
}

void zones_model_set_epoch(struct zones_model *model, struct dns_epoch *epoch)
{
    struct zones_store *s = model->store;
    s->epoch = epoch;
    s->services.epoch = s->namespaces.epoch = s->addrs.epoch = s->reverse.epoch = s->pods.epoch =
        epoch;
}

struct zones_store *zones_model_store(struct zones_model *model)
{
    return model->store;
}

struct zones_store *zones_model_detach(struct zones_model *model)
{
    struct zones_store *store = model->store;
    free_model(model);
    return store;
}

struct zones_objects *zones_model_diags(struct zones_model *model)
{
    return &model->diags;
}

int zones_model_build(struct zones_store **out, const struct zones_objects *objs,
                      const struct zones_store_config *cfg, const struct zones_cidr *cidrs,
                      size_t n_cidrs, struct zones_objects *diags)
{
    struct zones_model *model = NULL;
    int rc = zones_model_new(&model, cfg, NULL, cidrs, n_cidrs);
    if (rc < 0)
        return rc;
    zones_model_set_source(model, zones_model_add_source(model, 1), objs);
    zones_model_commit(model, objs->newest_mtime > 0 ? (uint32_t)objs->newest_mtime : 1);
    for (size_t i = 0; diags != NULL && i < model->diags.n_diags; i++)
        zones_objects_error(diags, &model->diags.diags[i].where, "%s",
                            model->diags.diags[i].message);
    for (size_t i = 0; diags != NULL && i < model->diags.n_warnings; i++)
        zones_objects_warn(diags, &model->diags.warnings[i].where, "%s",
                           model->diags.warnings[i].message);
    *out = zones_model_detach(model);
    return 0;
}
