/* zones/kube.c - one reflector per kind, following the API server into the model.
 *
 * A kind's life: LIST (pages of page_size, continue) into a list of kept objects; when the
 * last page is in, the list replaces the kind's objects (unchanged resourceVersions keep their
 * object, missing ones are deleted), and a WATCH starts from the list's resourceVersion. Each
 * ADDED, MODIFIED or DELETED event replaces one object; BOOKMARKs and events move the
 * resourceVersion a new watch resumes from. A watch that ends (its timeoutSeconds, a cut
 * stream, an API server restart) is started again from there; one that says 410 Gone (an
 * ERROR event, or the status) means that history is gone: LIST again. Failures back off
 * (800 ms doubling to 30 s, jittered) and are logged once per kind and status.
 *
 * Everything runs on one thread: the reflector's own, or --check's. Objects are decoded
 * there; changes wait in a batch and are applied to the model under the model's lock, then
 * committed; the objects they replaced are freed after the commit, when the model no longer
 * points at them. Each kept object is one allocation: the decoded object's copy, then a
 * struct kept with a hash of its resourceVersion (zones_objects_clone_*'s extra bytes). */
#include "zones/kube.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns/counter.h"
#include "dns/log.h"
#include "zones/decode.h"
#include "zones/json.h"
#include "zones/kubehttp.h"
#include "zones/store.h"
#include "zones/table.h"

#define BACKOFF_FIRST_MS 800
#define BACKOFF_MAX_MS 30000
#define LIST_TIMEOUT_S 120           /* one page */
#define WATCH_SLACK_S 30             /* past timeoutSeconds, before we give up on a silent stream */
#define SHORT_WATCH_MS 1000          /* a watch that ends sooner, without events, backs off */
#define IDLE_FLUSH_MS 10             /* a batch is applied once the sockets are quiet this long */
#define MAX_BODY (256U << 20)        /* one list page, or one watch event */
#define API_SOURCE_FILE "kubernetes" /* zones_where.file of every API object */

/* After each kept object, in the same allocation: what it takes to tell a list's copy of it
 * from the one served. 100,000 Services and their EndpointSlices make 200,000 of these. */
struct kept {
    uint64_t rv;   /* FNV-1a of its resourceVersion: only ever compared for equality */
    uint32_t list; /* the last list that returned it */
    uint8_t kind;  /* enum zones_kube_kind: which object comes before */
};

struct key {
    const char *ns, *name;
};

static const struct kind_spec {
    const char *name;        /* the resource */
    const char *path;        /* the collection, cluster-wide */
    const char *kind;        /* its objects' kind */
    const char *api_version; /* and apiVersion */
    const char *group;       /* the API group, for RBAC messages */
} specs[ZONES_KUBE_KINDS] = {
    [ZONES_KUBE_NAMESPACES] = {"namespaces", "/api/v1/namespaces", "Namespace", "v1", ""},
    [ZONES_KUBE_SERVICES] = {"services", "/api/v1/services", "Service", "v1", ""},
    [ZONES_KUBE_ENDPOINTSLICES] = {"endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
                                   "EndpointSlice", "discovery.k8s.io/v1", "discovery.k8s.io"},
    [ZONES_KUBE_PODS] = {"pods", "/api/v1/pods", "Pod", "v1", ""},
};

enum request { REQ_NONE, REQ_LIST, REQ_WATCH };

struct buf {
    char *data;
    size_t len, cap;
};

struct kind {
    struct zones_kube *k;
    enum zones_kube_kind id;
    const struct kind_spec *spec;
    bool enabled;
    /* The request in flight. */
    enum request req;
    struct buf body;     /* a list's response; a watch's unfinished line; an error's Status */
    uint64_t started_ms; /* of the watch */
    unsigned req_events; /* events of this watch */
    bool answered;       /* the watch's status came: 200 */
    bool relist;         /* the watch said 410 Gone */
    int watch_error;     /* the status of an ERROR event other than 410 */
    char watch_message[256];
    /* Where the kind stands. */
    bool listed;                  /* a list is served: watch next */
    char *cont;                   /* the continue token of the list under way */
    char rv[128];                 /* the resourceVersion to watch from */
    struct zones_objects listing; /* what the list under way returned so far, decoded */
    struct listed {
        size_t index;   /* in listing's array of the kind */
        const char *rv; /* in listing */
    } * list_items;
    size_t n_list_items, cap_list_items;
    uint32_t list_gen;
    struct zones_table objects; /* struct kept *: what is served */
    /* Retrying. */
    uint64_t next_ms;  /* no request before */
    unsigned failures; /* in a row */
    int reported;      /* the status last logged as an error (-1: none), so each is logged once */
    unsigned list_starts; /* lists begun: each after the first is a relist */
    /* Statistics: written here, read by zones_kube_stats() on any thread. */
    atomic_bool synced;
    atomic_size_t n_objects;
    _Atomic int64_t last_sync;
    struct dns_counter lists, relists, watches, restarts, events;
    _Atomic int codes[ZONES_KUBE_MAX_CODES];
    struct dns_counter code_counts[ZONES_KUBE_MAX_CODES];
};

struct change {
    enum zones_kube_kind kind;
    struct kept *old, *now; /* either may be NULL */
};

struct zones_kube {
    struct zones_kube_config cfg;
    struct zones_model *model;
    uv_mutex_t *lock;
    struct zones_kubehttp *http;
    struct kind kinds[ZONES_KUBE_KINDS];
    struct change *changes; /* the batch */
    size_t n_changes, cap_changes;
    uint64_t batch_ms; /* when the batch's first change came */
    bool once;         /* zones_kube_list_once(): no watches, no retries */
    bool failed;
    atomic_bool stopping;
    atomic_bool synced;
    bool running;
    uv_thread_t thread;
    uint64_t started_ms;
    uint64_t rng;
};

void zones_kube_config_default(struct zones_kube_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->page_size = 500;
    cfg->batch_ms = 100;
    cfg->user_agent = "svcdns";
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter and watch timeouts, nothing that needs to be unpredictable. */
static uint64_t next_random(struct zones_kube *k)
{
    k->rng ^= k->rng >> 12;
    k->rng ^= k->rng << 25;
    k->rng ^= k->rng >> 27;
    return k->rng * 0x2545F4914F6CDD1DULL;
}

static void buf_append(struct buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : (size_t)64 * 1024;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = zones_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_reset(struct buf *b)
{
    /* Keep a small buffer for the next request; give a large one (a list page) back. */
    if (b->cap > (size_t)1024 * 1024) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
}

/* ---- kept objects ---- */

static uint64_t key_hash(const char *ns, const char *name)
{
    uint64_t h = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, ns, strlen(ns) + 1);
    return zones_fnv1a(h, name, strlen(name));
}

static size_t object_size(enum zones_kube_kind kind)
{
    switch (kind) {
    case ZONES_KUBE_SERVICES:
        return sizeof(struct zones_service);
    case ZONES_KUBE_ENDPOINTSLICES:
        return sizeof(struct zones_slice);
    case ZONES_KUBE_PODS:
        return sizeof(struct zones_pod);
    default:
        return sizeof(struct zones_namespace);
    }
}

/* The object a kept record follows: the start of their allocation. */
static const void *kept_obj(const struct kept *kp)
{
    return (const char *)kp - object_size((enum zones_kube_kind)kp->kind);
}

static struct key object_key(enum zones_kube_kind kind, const void *obj)
{
    switch (kind) {
    case ZONES_KUBE_SERVICES:
        return (struct key){((const struct zones_service *)obj)->ns,
                            ((const struct zones_service *)obj)->name};
    case ZONES_KUBE_ENDPOINTSLICES:
        return (struct key){((const struct zones_slice *)obj)->ns,
                            ((const struct zones_slice *)obj)->name};
    case ZONES_KUBE_PODS:
        return (struct key){((const struct zones_pod *)obj)->ns,
                            ((const struct zones_pod *)obj)->name};
    default:
        return (struct key){"", ((const struct zones_namespace *)obj)->name};
    }
}

static struct key kept_key(const struct kept *kp)
{
    return object_key((enum zones_kube_kind)kp->kind, kept_obj(kp));
}

static uint64_t kept_hash(const void *entry)
{
    struct key k = kept_key(entry);
    return key_hash(k.ns, k.name);
}

static bool kept_matches(const void *entry, const void *key)
{
    struct key a = kept_key(entry);
    const struct key *b = key;
    return strcmp(a.name, b->name) == 0 && strcmp(a.ns, b->ns) == 0;
}

static struct kept *find_kept(const struct kind *kd, const char *ns, const char *name)
{
    struct key key = {ns, name};
    return zones_table_find(&kd->objects, key_hash(ns, name), kept_matches, &key);
}

static void free_kept(struct kept *kp)
{
    if (kp != NULL)
        free((void *)kept_obj(kp));
}

static uint64_t rv_hash(const char *rv)
{
    return zones_fnv1a(ZONES_FNV_OFFSET_BASIS, rv, strlen(rv));
}

/* The record in a cloned object's extra bytes (right after its struct). */
static struct kept *kept_init(void *after, enum zones_kube_kind kind, const char *rv)
{
    struct kept *kp = after;
    kp->rv = rv_hash(rv);
    kp->kind = (uint8_t)kind;
    return kp;
}

/* A Pod whose address says nothing of a client: on the node's network (its IP is the node's),
 * finished (its IP is free for another Pod), or going away. */
static bool pod_is_useless(const struct zones_dom_node *obj)
{
    const struct zones_dom_node *spec = zones_dom_lookup(obj, "spec").value;
    const struct zones_dom_node *meta = zones_dom_lookup(obj, "metadata").value;
    const char *phase = zones_json_string(obj, "status.phase");
    if (spec != NULL && spec->kind == ZONES_DOM_MAP &&
        zones_dom_scalar_is(zones_dom_lookup(spec, "hostNetwork").value, "true"))
        return true;
    if (meta != NULL && meta->kind == ZONES_DOM_MAP && zones_dom_has(meta, "deletionTimestamp"))
        return true;
    return phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
}

/* obj as the decoder wants it: an item of a list has no kind or apiVersion (the list says
 * them), so with_kind starts with head's four nodes, then obj's own (obj is not changed). */
static void add_kind(const struct kind *kd, const struct zones_dom_node *obj,
                     struct zones_dom_node head[4], struct zones_dom_node *with_kind)
{
    *with_kind = *obj;
    if (zones_dom_has(obj, "kind"))
        return;
    const char *text[4] = {"kind", kd->spec->kind, "apiVersion", kd->spec->api_version};
    for (int i = 0; i < 4; i++) {
        head[i] = (struct zones_dom_node){.kind = ZONES_DOM_SCALAR, .text = (char *)text[i]};
        head[i].len = strlen(text[i]);
        head[i].next = i < 3 ? &head[i + 1] : obj->first;
    }
    with_kind->first = &head[0];
    with_kind->n = obj->n + 4;
}

/* Decodes obj into objs, which may hold others already: true when it added one object of the
 * kind, *index its place in that kind's array. A broken object is logged, not served. */
static bool decode(const struct kind *kd, const struct zones_dom_node *obj,
                   struct zones_objects *objs, size_t *index)
{
    if (obj->kind != ZONES_DOM_MAP || zones_json_string(obj, "metadata.resourceVersion") == NULL)
        return false;
    if (kd->id == ZONES_KUBE_PODS && pod_is_useless(obj))
        return false;
    struct zones_dom_node head[4];
    struct zones_dom_node with_kind;
    add_kind(kd, obj, head, &with_kind);
    size_t counts[ZONES_KUBE_KINDS] = {objs->n_namespaces, objs->n_services, objs->n_slices,
                                       objs->n_pods};
    size_t diags = objs->n_diags;
    struct zones_report report = {.objs = objs, .file = API_SOURCE_FILE};
    zones_decode_document(NULL, &report, &with_kind);
    if (objs->n_diags > diags) {
        const char *ns = zones_json_string(obj, "metadata.namespace");
        const char *name = zones_json_string(obj, "metadata.name");
        char object[2 * 256 + 2];
        char quoted[4 * sizeof(object)];
        char message[1024];
        snprintf(object, sizeof(object), "%s%s%s", ns ? ns : "", ns ? "/" : "", name ? name : "?");
        log_warn("kubernetes", "kind=%s object=\"%s\" error=\"%s\" action=\"not served\"",
                 kd->spec->name, log_quote(object, quoted, sizeof(quoted)),
                 log_quote(objs->diags[diags].message, message, sizeof(message)));
        return false;
    }
    size_t now[ZONES_KUBE_KINDS] = {objs->n_namespaces, objs->n_services, objs->n_slices,
                                    objs->n_pods};
    *index = counts[kd->id];
    /* A Pod without an address tells nothing; a slice without a Service is skipped. */
    return now[kd->id] == counts[kd->id] + 1 &&
           (kd->id != ZONES_KUBE_PODS || objs->pods[*index].n_ips > 0);
}

/* The decoded object at index, kept: one allocation of its own. */
static struct kept *clone_kept(const struct kind *kd, const struct zones_objects *objs,
                               size_t index, const char *rv)
{
    size_t extra = sizeof(struct kept);
    switch (kd->id) {
    case ZONES_KUBE_SERVICES:
        return kept_init(zones_objects_clone_service(&objs->services[index], extra) + 1, kd->id,
                         rv);
    case ZONES_KUBE_ENDPOINTSLICES:
        return kept_init(zones_objects_clone_slice(&objs->slices[index], extra) + 1, kd->id, rv);
    case ZONES_KUBE_PODS:
        return kept_init(zones_objects_clone_pod(&objs->pods[index], extra) + 1, kd->id, rv);
    default:
        return kept_init(zones_objects_clone_namespace(&objs->namespaces[index], extra) + 1, kd->id,
                         rv);
    }
}

/* One object of a watch event as svcdns keeps it, or NULL when it is not served. */
static struct kept *keep(const struct kind *kd, const struct zones_dom_node *obj)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    size_t index = 0;
    struct kept *kp = NULL;
    if (decode(kd, obj, &objs, &index))
        kp = clone_kept(kd, &objs, index, zones_json_string(obj, "metadata.resourceVersion"));
    zones_objects_free(&objs);
    return kp;
}

/* ---- the batch ---- */

static void queue(struct zones_kube *k, enum zones_kube_kind kind, struct kept *old,
                  struct kept *now)
{
    if (old == NULL && now == NULL)
        return;
    if (k->n_changes == k->cap_changes) {
        k->cap_changes = k->cap_changes ? k->cap_changes * 2 : 256;
        k->changes = zones_xrealloc(k->changes, k->cap_changes * sizeof(k->changes[0]));
    }
    if (k->n_changes == 0)
        k->batch_ms = now_ms();
    k->changes[k->n_changes++] = (struct change){kind, old, now};
}

/* Puts old's place in the kind's objects to now (either may be NULL) and queues the change. */
static void replace(struct kind *kd, struct kept *old, struct kept *now)
{
    if (old != NULL && now != NULL)
        zones_table_put(&kd->objects, kept_hash(now), old, now);
    else if (old != NULL)
        zones_table_remove(&kd->objects, kept_hash(old), old);
    else if (now != NULL)
        zones_table_put(&kd->objects, kept_hash(now), NULL, now);
    atomic_store(&kd->n_objects, kd->objects.used);
    queue(kd->k, kd->id, old, now);
}

static const void *obj_of(const struct kept *kp)
{
    return kp != NULL ? kept_obj(kp) : NULL;
}

static void put(struct zones_model *m, const struct change *c)
{
    const uint32_t api = ZONES_MODEL_API_SOURCE;
    switch (c->kind) {
    case ZONES_KUBE_NAMESPACES:
        zones_model_put_namespace(m, api, obj_of(c->old), obj_of(c->now));
        break;
    case ZONES_KUBE_SERVICES:
        zones_model_put_service(m, api, obj_of(c->old), obj_of(c->now));
        break;
    case ZONES_KUBE_ENDPOINTSLICES:
        zones_model_put_slice(m, api, obj_of(c->old), obj_of(c->now));
        break;
    default:
        zones_model_put_pod(m, api, obj_of(c->old), obj_of(c->now));
        break;
    }
}

/* What the model found while merging this batch (the API and a manifest defining one Service).
 * Called under the lock, so the manifest objects a message points into are still there. */
static void log_diags(struct zones_model *m)
{
    struct zones_objects *d = zones_model_diags(m);
    for (size_t i = 0; i < d->n_warnings + d->n_diags; i++) {
        const struct zones_diag *w =
            i < d->n_warnings ? &d->warnings[i] : &d->diags[i - d->n_warnings];
        char file[512];
        char message[1024];
        log_quote(w->where.file != NULL ? w->where.file : "", file, sizeof(file));
        log_quote(w->message, message, sizeof(message));
        if (w->where.line > 0)
            log_warn("zones", "at=\"%s:%u:%u\" msg=\"%s\"", file, w->where.line, w->where.col,
                     message);
        else
            log_warn("zones", "msg=\"%s\"", message);
    }
    zones_objects_free(d);
}

static bool all_synced(const struct zones_kube *k)
{
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        if (k->kinds[i].enabled && !atomic_load(&k->kinds[i].synced))
            return false;
    }
    return true;
}

static void log_synced(struct zones_kube *k)
{
    const struct kind *kd = k->kinds;
    log_info("kubernetes",
             "msg=\"synced: every kind listed, serving\" namespaces=%zu services=%zu "
             "endpointslices=%zu pods=%zu ms=%llu",
             atomic_load(&kd[ZONES_KUBE_NAMESPACES].n_objects),
             atomic_load(&kd[ZONES_KUBE_SERVICES].n_objects),
             atomic_load(&kd[ZONES_KUBE_ENDPOINTSLICES].n_objects),
             atomic_load(&kd[ZONES_KUBE_PODS].n_objects),
             (unsigned long long)(now_ms() - k->started_ms));
}

/* Applies the batch to the model and commits it, under the model's lock; then frees what the
 * batch replaced. The SOA serial is the time of the change, as CoreDNS's. */
static void flush(struct zones_kube *k)
{
    bool newly_synced = !atomic_load(&k->synced) && all_synced(k);
    if (k->n_changes == 0 && !newly_synced)
        return;
    struct zones_store *store = zones_model_store(k->model);
    uv_mutex_lock(k->lock);
    /* What a reload left there points into manifest objects it may have freed since: only
     * what this batch finds is reported. */
    zones_objects_free(zones_model_diags(k->model));
    for (size_t i = 0; i < k->n_changes; i++)
        put(k->model, &k->changes[i]);
    struct zones_store_summary sum;
    zones_store_summarize(store, &sum);
    uint32_t now = (uint32_t)time(NULL);
    zones_model_commit(k->model, now > sum.serial ? now : sum.serial);
    log_diags(k->model);
    if (newly_synced) {
        zones_store_set_complete(store, true);
        atomic_store(&k->synced, true);
    }
    uv_mutex_unlock(k->lock);
    for (size_t i = 0; i < k->n_changes; i++)
        free_kept(k->changes[i].old);
    k->n_changes = 0;
    if (k->cap_changes > 4096) { /* a list's batch: not kept for the events that follow */
        free(k->changes);
        k->changes = NULL;
        k->cap_changes = 0;
    }
    if (newly_synced)
        log_synced(k);
}

/* ---- failures ---- */

#define NO_CODE (-1)

/* Counted by status; past ZONES_KUBE_MAX_CODES different ones, new ones are not counted. */
static void count_error(struct kind *kd, int code)
{
    for (int i = 0; i < ZONES_KUBE_MAX_CODES; i++) {
        int c = atomic_load(&kd->codes[i]);
        if (c == NO_CODE)
            atomic_store(&kd->codes[i], code);
        if (c == NO_CODE || c == code) {
            dns_counter_inc(&kd->code_counts[i]);
            return;
        }
    }
}

/* What to do about a status, for the log. */
static const char *remedy(const struct kind *kd, int status, char *out, size_t cap)
{
    const struct zones_kubeconfig *conn = kd->k->cfg.conn;
    if (status == 401)
        snprintf(out, cap,
                 "the API server does not accept the credentials of %s (context %s): renew the "
                 "token or client certificate",
                 conn->source, conn->context);
    else if (status == 403)
        snprintf(
            out, cap,
            "give svcdns's user or service account a ClusterRole with the rule apiGroups: "
            "['%s'], resources: ['%s'], verbs: ['list', 'watch'] (deploy/kubernetes/rbac.yaml)",
            kd->spec->group, kd->spec->name);
    else if (status == 404 && kd->id == ZONES_KUBE_ENDPOINTSLICES)
        snprintf(out, cap,
                 "the API server has no discovery.k8s.io/v1 EndpointSlices: Kubernetes "
                 "1.21 or later is needed");
    else if (status == 0)
        snprintf(out, cap, "check the server address, the network and the certificate authority");
    else
        snprintf(out, cap, "retrying with backoff");
    return out;
}

/* The message of a Status body, or NULL. */
static const char *status_message(struct buf *body, char *out, size_t cap)
{
    struct zones_json *doc = NULL;
    char err[128];
    const char *msg = NULL;
    if (body->len > 0 && zones_json_parse(&doc, body->data, body->len, err, sizeof(err)) == 0) {
        msg = zones_json_string(zones_json_root(doc), "message");
        if (msg != NULL)
            snprintf(out, cap, "%s", msg);
        msg = msg != NULL ? out : NULL;
    }
    zones_json_free(doc);
    return msg;
}

/* The next request of the kind waits 800 ms, doubling with each failure in a row up to 30 s,
 * jittered to [half, all] of that (client-go's reflector backs off alike), or Retry-After. */
static void back_off(struct kind *kd, unsigned retry_after)
{
    unsigned shift = kd->failures < 6 ? kd->failures : 6;
    uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << shift;
    delay = delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay;
    delay = delay / 2 + next_random(kd->k) % (delay / 2 + 1); /* jitter: [delay/2, delay] */
    if ((uint64_t)retry_after * 1000 > delay)
        delay = (uint64_t)retry_after * 1000 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                              : (uint64_t)retry_after * 1000;
    kd->failures++;
    kd->next_ms = now_ms() + delay;
}

/* A request failed: count it, log it (as an error the first time this status comes), and try
 * again after a jittered exponential backoff. */
static void failed(struct kind *kd, int status, const char *error, unsigned retry_after)
{
    struct zones_kube *k = kd->k;
    char text[512];
    char hint[512];
    count_error(kd, status);
    const char *what = log_quote(error != NULL ? error : "?", text, sizeof(text));
    bool first = kd->reported != status;
    kd->reported = status;
    if (first || k->once)
        log_error("kubernetes", "kind=%s request=%s status=%d error=\"%s\" remedy=\"%s\"",
                  kd->spec->name, kd->req == REQ_WATCH ? "watch" : "list", status, what,
                  remedy(kd, status, hint, sizeof(hint)));
    else
        log_debug("kubernetes", "kind=%s status=%d error=\"%s\" note=\"again\"", kd->spec->name,
                  status, what);
    if (k->once)
        k->failed = true;
    back_off(kd, retry_after);
}
static void succeeded(struct kind *kd)
{
    kd->failures = 0;
    if (kd->reported != -1)
        log_info("kubernetes", "kind=%s msg=\"the API server answers again\"", kd->spec->name);
    kd->reported = -1;
}

/* ---- lists ---- */

static void drop_list(struct kind *kd)
{
    zones_objects_free(&kd->listing);
    free(kd->list_items); /* a list of 100,000 Services would keep 1.6 MB here */
    kd->list_items = NULL;
    kd->n_list_items = kd->cap_list_items = 0;
    free(kd->cont);
    kd->cont = NULL;
}

/* The object at index in the list under way. */
static const void *listed_object(const struct kind *kd, size_t index)
{
    const struct zones_objects *o = &kd->listing;
    switch (kd->id) {
    case ZONES_KUBE_SERVICES:
        return &o->services[index];
    case ZONES_KUBE_ENDPOINTSLICES:
        return &o->slices[index];
    case ZONES_KUBE_PODS:
        return &o->pods[index];
    default:
        return &o->namespaces[index];
    }
}

/* The list is complete: it becomes the kind's objects. */
static void list_complete(struct kind *kd, const char *rv)
{
    uint32_t gen = ++kd->list_gen;
    const struct zones_objects *o = &kd->listing;
    snprintf(kd->rv, sizeof(kd->rv), "%s", rv); /* rv lives in the listing, freed below */
    for (size_t i = 0; i < kd->n_list_items; i++) {
        const struct listed *item = &kd->list_items[i];
        size_t at = item->index;
        struct key key = object_key(kd->id, listed_object(kd, at));
        struct kept *old = find_kept(kd, key.ns, key.name);
        if (old != NULL && old->list != gen && old->rv == rv_hash(item->rv)) {
            old->list = gen; /* unchanged: the model keeps what it has */
            continue;
        }
        /* Copied now, when the pages' JSON is long gone: the kept objects fill the space it
         * left instead of being strewn among its blocks, which would keep most of the heap's
         * pages in use (18 of 34 MB free but held, at 10k Services, when copied page by page). */
        struct kept *now = clone_kept(kd, o, at, item->rv);
        now->list = gen;
        replace(kd, old, now);
    }
    drop_list(kd);
    /* What the list did not return is gone (deleted while we were away). */
    struct kept **gone = zones_xcalloc(kd->objects.used + 1, sizeof(struct kept *));
    size_t n_gone = 0;
    struct zones_table_slots *slots = atomic_load(&kd->objects.slots);
    for (size_t i = 0; i <= slots->mask; i++) {
        struct kept *kp = atomic_load(&slots->slot[i]);
        if (kp != NULL && kp != ZONES_TABLE_TOMB && kp->list != gen)
            gone[n_gone++] = kp;
    }
    for (size_t i = 0; i < n_gone; i++)
        replace(kd, gone[i], NULL);
    free(gone);
    kd->listed = true;
    dns_counter_inc(&kd->lists);
    atomic_store(&kd->last_sync, (int64_t)time(NULL));
    atomic_store(&kd->synced, true);
    log_debug("kubernetes", "kind=%s msg=listed objects=%zu removed=%zu rv=%s", kd->spec->name,
              kd->objects.used, n_gone, kd->rv);
    flush(kd->k); /* a list is served whole and at once */
}

/* One page: its items decoded into the list under way. Returns false when the body is no
 * list. */
static bool list_page(struct kind *kd)
{
    struct zones_json *doc = NULL;
    char err[256];
    if (zones_json_parse(&doc, kd->body.data, kd->body.len, err, sizeof(err)) < 0) {
        failed(kd, 200, err, 0);
        return false;
    }
    const struct zones_dom_node *root = zones_json_root(doc);
    const char *rv = zones_json_string(root, "metadata.resourceVersion");
    const struct zones_dom_node *items =
        root->kind == ZONES_DOM_MAP ? zones_dom_lookup(root, "items").value : NULL;
    if (rv == NULL ||
        (items != NULL && items->kind != ZONES_DOM_SEQ && !zones_dom_is_null(items))) {
        failed(kd, 200, "the answer to a list is not a list (no metadata.resourceVersion or items)",
               0);
        zones_json_free(doc);
        return false;
    }
    size_t n_items = items != NULL && items->kind == ZONES_DOM_SEQ ? items->n : 0;
    if (kd->n_list_items + n_items > kd->cap_list_items) {
        while (kd->n_list_items + n_items > kd->cap_list_items)
            kd->cap_list_items = kd->cap_list_items ? kd->cap_list_items * 2 : 512;
        kd->list_items =
            zones_xrealloc(kd->list_items, kd->cap_list_items * sizeof(kd->list_items[0]));
    }
    for (const struct zones_dom_node *i = n_items > 0 ? items->first : NULL; i != NULL;
         i = i->next) {
        struct listed *item = &kd->list_items[kd->n_list_items];
        if (!decode(kd, i, &kd->listing, &item->index))
            continue;
        const char *item_rv = zones_json_string(i, "metadata.resourceVersion");
        item->rv = zones_objects_strndup(&kd->listing, item_rv, strlen(item_rv));
        kd->n_list_items++;
    }
    const char *cont = zones_json_string(root, "metadata.continue");
    free(kd->cont);
    kd->cont = cont != NULL && cont[0] != '\0' ? strdup(cont) : NULL;
    char *list_rv = zones_objects_strndup(&kd->listing, rv, strlen(rv));
    zones_json_free(doc);
    if (kd->cont == NULL)
        list_complete(kd, list_rv);
    return true;
}

/* ---- watches ---- */

static void set_rv(struct kind *kd, const struct zones_dom_node *obj)
{
    const char *rv = zones_json_string(obj, "metadata.resourceVersion");
    if (rv != NULL && rv[0] != '\0')
        snprintf(kd->rv, sizeof(kd->rv), "%s", rv);
    atomic_store(&kd->last_sync, (int64_t)time(NULL));
}

/* The status code of an ERROR event's Status object. */
static int status_code(const struct zones_dom_node *status)
{
    const struct zones_dom_node *code =
        status->kind == ZONES_DOM_MAP ? zones_dom_lookup(status, "code").value : NULL;
    if (code == NULL || code->kind != ZONES_DOM_SCALAR || !code->plain)
        return 0;
    long value = strtol(code->text, NULL, 10);
    return value > 0 && value < 1000 ? (int)value : 0;
}

static void object_changed(struct kind *kd, const struct zones_dom_node *obj, bool deleted)
{
    const char *name = zones_json_string(obj, "metadata.name");
    const char *ns = zones_json_string(obj, "metadata.namespace");
    if (name == NULL)
        return;
    if (kd->id == ZONES_KUBE_NAMESPACES || ns == NULL)
        ns = "";
    struct kept *old = find_kept(kd, ns, name);
    struct kept *now = deleted ? NULL : keep(kd, obj);
    replace(kd, old, now);
    dns_counter_inc(&kd->events);
}

/* An ERROR event: a Status. 410 Gone: the history is compacted, list again. */
static void watch_error(struct kind *kd, const struct zones_dom_node *status)
{
    int code = status_code(status);
    char msg[512];
    const char *text = zones_json_string(status, "message");
    if (code == 410) {
        log_info("kubernetes", "kind=%s msg=\"watch history expired: listing again\" detail=\"%s\"",
                 kd->spec->name, log_quote(text != NULL ? text : "", msg, sizeof(msg)));
        kd->relist = true;
        return;
    }
    kd->watch_error = code != 0 ? code : 500;
    snprintf(kd->watch_message, sizeof(kd->watch_message), "%s",
             text != NULL ? text : "an ERROR event ended the watch");
}

/* One line of a watch stream. Returns false to end the stream. */
static bool watch_event(struct kind *kd, const char *line, size_t len)
{
    struct zones_json *doc = NULL;
    char err[256];
    if (zones_json_parse(&doc, line, len, err, sizeof(err)) < 0) {
        log_warn("kubernetes", "kind=%s error=\"watch event: %s\" action=\"watching again\"",
                 kd->spec->name, err);
        return false;
    }
    const struct zones_dom_node *root = zones_json_root(doc);
    const char *type = zones_json_string(root, "type");
    const struct zones_dom_node *obj =
        root->kind == ZONES_DOM_MAP ? zones_dom_lookup(root, "object").value : NULL;
    bool go_on = true;
    kd->req_events++;
    if (type == NULL || obj == NULL || obj->kind != ZONES_DOM_MAP) {
        log_warn("kubernetes", "kind=%s error=\"a watch event without type or object\"",
                 kd->spec->name);
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
               strcmp(type, "DELETED") == 0) {
        object_changed(kd, obj, type[0] == 'D');
        set_rv(kd, obj);
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(kd, obj);
    } else if (strcmp(type, "ERROR") == 0) {
        watch_error(kd, obj);
        go_on = false;
    }
    zones_json_free(doc);
    return go_on;
}

/* ---- requests ---- */

static bool on_data(void *ctx, long status, const char *data, size_t len)
{
    struct kind *kd = ctx;
    if (kd->body.len + len > MAX_BODY) {
        log_error("kubernetes", "kind=%s error=\"a response over %u MiB\"", kd->spec->name,
                  MAX_BODY >> 20);
        return false;
    }
    buf_append(&kd->body, data, len);
    if (kd->req != REQ_WATCH || status != 200)
        return true;
    if (!kd->answered) {
        kd->answered = true;
        succeeded(kd);
    }
    /* Events as they come, one JSON document per line. */
    size_t used = 0;
    for (char *nl; (nl = memchr(kd->body.data + used, '\n', kd->body.len - used)) != NULL;) {
        size_t line = (size_t)(nl - (kd->body.data + used));
        if (line > 0 && !watch_event(kd, kd->body.data + used, line))
            return false;
        used += line + 1;
    }
    memmove(kd->body.data, kd->body.data + used, kd->body.len - used);
    kd->body.len -= used;
    return true;
}

static void on_done(void *ctx, const struct zones_kubehttp_result *res);

static void start_request(struct kind *kd)
{
    struct zones_kube *k = kd->k;
    char query[2048];
    unsigned timeout = LIST_TIMEOUT_S;
    if (!kd->listed) {
        if (kd->cont == NULL && kd->list_starts++ > 0)
            dns_counter_inc(&kd->relists);
        char *cont = kd->cont != NULL ? zones_kubehttp_escape(kd->cont) : NULL;
        snprintf(query, sizeof(query), "%s?limit=%u%s%s", kd->spec->path, k->cfg.page_size,
                 cont != NULL ? "&continue=" : "", cont != NULL ? cont : "");
        free(cont);
        kd->req = REQ_LIST;
    } else {
        unsigned t = k->cfg.watch_timeout_s;
        if (t == 0)
            t = 300 + (unsigned)(next_random(k) % 300);
        char *rv = zones_kubehttp_escape(kd->rv);
        snprintf(query, sizeof(query),
                 "%s?watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u",
                 kd->spec->path, rv, t);
        free(rv);
        timeout = t + WATCH_SLACK_S;
        if (dns_counter_get(&kd->watches) > 0)
            dns_counter_inc(&kd->restarts);
        dns_counter_inc(&kd->watches);
        kd->req = REQ_WATCH;
        kd->started_ms = now_ms();
        kd->req_events = 0;
    }
    kd->relist = false;
    kd->answered = false;
    kd->watch_error = 0;
    buf_reset(&kd->body);
    if (zones_kubehttp_get(k->http, query, timeout, on_data, on_done, kd) == NULL) {
        kd->req = REQ_NONE;
        failed(kd, 0, "libcurl could not start the request", 0);
    }
}

static void list_done(struct kind *kd, const struct zones_kubehttp_result *res)
{
    char msg[512];
    if (res->complete && res->status == 200) {
        if (list_page(kd))
            succeeded(kd);
        else
            drop_list(kd);
        return;
    }
    if (res->status == 410 && kd->cont != NULL) {
        /* The continue token expired (etcd compacted it): start the list again. */
        log_info("kubernetes", "kind=%s msg=\"list continue expired: listing again\"",
                 kd->spec->name);
        drop_list(kd);
        count_error(kd, 410);
        return;
    }
    drop_list(kd);
    const char *why = res->status != 0 ? status_message(&kd->body, msg, sizeof(msg)) : res->error;
    if (res->status == 401)
        zones_kubehttp_token_rejected(kd->k->http);
    failed(kd, (int)res->status, why != NULL ? why : res->error, res->retry_after);
}

static void watch_done(struct kind *kd, const struct zones_kubehttp_result *res)
{
    char msg[512];
    uint64_t ran = now_ms() - kd->started_ms;
    if (kd->relist || res->status == 410) {
        kd->listed = false; /* the history is gone: list again, at once */
        count_error(kd, 410);
        return;
    }
    if (kd->watch_error != 0) {
        failed(kd, kd->watch_error, kd->watch_message, 0);
        return;
    }
    if (res->status == 200 && (kd->req_events > 0 || ran >= SHORT_WATCH_MS)) {
        /* timeoutSeconds, a cut stream, a restarting server: resume from the last rv. */
        log_debug("kubernetes", "kind=%s msg=\"watch ended\" ran_ms=%llu events=%u error=\"%s\"",
                  kd->spec->name, (unsigned long long)ran, kd->req_events,
                  res->complete ? "" : res->error);
        succeeded(kd);
        return;
    }
    if (res->status == 200) {
        /* Ended at once with nothing: not an error, but not worth a tight loop either. */
        log_debug("kubernetes", "kind=%s msg=\"the watch ended at once\"", kd->spec->name);
        back_off(kd, 0);
        return;
    }
    const char *why = res->status != 0 ? status_message(&kd->body, msg, sizeof(msg)) : res->error;
    if (res->status == 401)
        zones_kubehttp_token_rejected(kd->k->http);
    failed(kd, (int)res->status, why != NULL ? why : res->error, res->retry_after);
}

static void on_done(void *ctx, const struct zones_kubehttp_result *res)
{
    struct kind *kd = ctx;
    enum request req = kd->req;
    if (req == REQ_LIST)
        list_done(kd, res);
    else
        watch_done(kd, res);
    kd->req = REQ_NONE;
    buf_reset(&kd->body);
    if (req == REQ_LIST && kd->listed) {
        /* The list's pages and their JSON trees (many small blocks) are free now, in the
         * middle of the heap: hand those pages back, as a manifest reload does. */
        free(kd->body.data);
        kd->body = (struct buf){NULL, 0, 0};
        malloc_trim(0);
    }
}

/* ---- the loop ---- */

/* Whether a kind is in the middle of a list (a page in flight, or more pages to come). */
static bool listing(const struct zones_kube *k)
{
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        if (k->kinds[i].req == REQ_LIST || k->kinds[i].cont != NULL)
            return true;
    }
    return false;
}

/* Starts what is due and returns how long the loop may sleep. Lists go one kind at a time:
 * a page's JSON tree is many small blocks, and the objects kept from one list would
 * otherwise be strewn among another's, keeping heap pages in use after both are freed. */
static int start_due(struct zones_kube *k)
{
    uint64_t now = now_ms();
    uint64_t wait = 1000;
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        struct kind *kd = &k->kinds[i];
        if (!kd->enabled || kd->req != REQ_NONE || (k->once && (kd->listed || k->failed)))
            continue;
        if (!kd->listed && kd->cont == NULL && listing(k))
            continue; /* started when the other list is done */
        if (kd->next_ms <= now) {
            start_request(kd);
            wait = 0;
        } else if (kd->next_ms - now < wait) {
            wait = kd->next_ms - now;
        }
    }
    if (k->n_changes > 0 && wait > IDLE_FLUSH_MS)
        wait = IDLE_FLUSH_MS;
    return (int)wait;
}

static void step(struct zones_kube *k)
{
    int wait = start_due(k);
    bool busy = zones_kubehttp_run(k->http, wait);
    if (k->n_changes > 0 && (!busy || now_ms() - k->batch_ms >= k->cfg.batch_ms))
        flush(k);
}

static void run(void *arg)
{
    struct zones_kube *k = arg;
    while (!atomic_load(&k->stopping))
        step(k); /* a batch left at the end is dropped: svcdns is stopping */
}

int zones_kube_start(struct zones_kube *k)
{
    k->started_ms = now_ms();
    int rc = uv_thread_create(&k->thread, run, k);
    k->running = rc == 0;
    return rc;
}

void zones_kube_stop(struct zones_kube *k)
{
    if (k == NULL || !k->running)
        return;
    atomic_store(&k->stopping, true);
    zones_kubehttp_wakeup(k->http);
    uv_thread_join(&k->thread);
    k->running = false;
}

int zones_kube_list_once(struct zones_kube *k, unsigned timeout_s)
{
    k->once = true;
    k->started_ms = now_ms();
    uint64_t deadline = k->started_ms + (uint64_t)timeout_s * 1000;
    while (!k->failed && !all_synced(k) && now_ms() < deadline)
        step(k);
    flush(k);
    if (!k->failed && !all_synced(k)) {
        log_error("kubernetes", "error=\"the API server did not finish the lists in %u s\"",
                  timeout_s);
        return -1;
    }
    return k->failed ? -1 : 0;
}

/* ---- lifetime and statistics ---- */

int zones_kube_new(struct zones_kube **out, const struct zones_kube_config *cfg,
                   struct zones_model *model, uv_mutex_t *lock)
{
    *out = NULL;
    struct zones_kube *k = zones_xcalloc(1, sizeof(*k));
    k->cfg = *cfg;
    k->model = model;
    k->lock = lock;
    char err[512];
    if (zones_kubehttp_new(&k->http, cfg->conn, cfg->user_agent, err, sizeof(err)) < 0) {
        log_error("kubernetes", "error=\"%s\"", err);
        free(k);
        return -1;
    }
    k->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)k;
    if (k->rng == 0)
        k->rng = 1;
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        struct kind *kd = &k->kinds[i];
        kd->k = k;
        kd->id = (enum zones_kube_kind)i;
        kd->spec = &specs[i];
        kd->enabled = i != ZONES_KUBE_PODS || cfg->pods;
        kd->reported = -1;
        for (int c = 0; c < ZONES_KUBE_MAX_CODES; c++)
            atomic_store(&kd->codes[c], NO_CODE);
        zones_table_init(&kd->objects, kept_hash, NULL);
    }
    *out = k;
    return 0;
}

static void free_entry(void *ctx, void *entry)
{
    (void)ctx;
    free_kept(entry);
}

void zones_kube_free(struct zones_kube *k)
{
    if (k == NULL)
        return;
    zones_kube_stop(k);
    zones_kubehttp_free(k->http);
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        struct kind *kd = &k->kinds[i];
        drop_list(kd);
        free(kd->list_items);
        free(kd->body.data);
        zones_table_each(&kd->objects, free_entry, NULL);
        zones_table_deinit(&kd->objects);
    }
    /* A batch never applied: its new objects are in the tables above (or replaced by a later
     * change of the batch, whose old object they are), its old ones nowhere else. */
    for (size_t i = 0; i < k->n_changes; i++)
        free_kept(k->changes[i].old);
    free(k->changes);
    free(k);
}

void zones_kube_stats(const struct zones_kube *k, struct zones_kube_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->synced = atomic_load(&((struct zones_kube *)k)->synced);
    for (int i = 0; i < ZONES_KUBE_KINDS; i++) {
        struct kind *kd = (struct kind *)&k->kinds[i];
        struct zones_kube_kind_stats *s = &out->kinds[i];
        s->name = kd->spec->name;
        s->watched = kd->enabled;
        s->synced = atomic_load(&kd->synced);
        s->objects = atomic_load(&kd->n_objects);
        s->last_sync = atomic_load(&kd->last_sync);
        s->lists = dns_counter_get(&kd->lists);
        s->relists = dns_counter_get(&kd->relists);
        s->watches = dns_counter_get(&kd->watches);
        s->restarts = dns_counter_get(&kd->restarts);
        s->events = dns_counter_get(&kd->events);
        for (int c = 0; c < ZONES_KUBE_MAX_CODES; c++) {
            int code = atomic_load(&kd->codes[c]);
            if (code < 0)
                continue;
            s->errors[s->n_errors].code = code;
            s->errors[s->n_errors++].count = dns_counter_get(&kd->code_counts[c]);
        }
    }
}
