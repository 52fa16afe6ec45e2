/* dns/daemon/reload.c - keeps the served data current: manifests in, the store changed.
 *
 * The manifests are read at start on the calling thread and on every trigger afterwards on
 * libuv's thread pool, so /health, /metrics and queries are answered meanwhile; the model
 * (zones/model.h) then applies what they say to the store on the control loop, one Service at
 * a time, and retires what it replaces to the epoch (dns/epoch.h). A read that finds errors
 * changes nothing: the last good data keeps serving. Triggers: a
 * change in a watched directory (inotify, 200 ms debounce), SIGHUP, and every
 * --reload-interval a stat signature of every manifest compared with the last build's (for
 * subdirectories and network file systems, which send no events). */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "dns/daemon/daemon.h"
#include "dns/log.h"
#include "dns/notify.h"
#include "zones/manifest.h"

/* FILE:LINE:COL: error: message, as compilers print them, so editors jump to the place. */
static void print_diags(const struct zones_diag *diags, size_t n, const char *severity)
{
    for (size_t i = 0; i < n; i++) {
        const struct zones_diag *diag = &diags[i];
        if (diag->where.line)
            fprintf(stderr, "%s:%u:%u: %s: %s\n", diag->where.file, diag->where.line,
                    diag->where.col, severity, diag->message);
        else
            fprintf(stderr, "%s: %s: %s\n", diag->where.file ? diag->where.file : "svcdns",
                    severity, diag->message);
    }
}

/* What the loader read, kept for the summary once the objects are gone. */
struct load_counts {
    size_t files, services, slices, pods, namespaces, skipped;
};

static void print_summary(FILE *out, const struct load_counts *n, const struct zones_store *store,
                          const char *domain)
{
    struct zones_store_summary sum;
    zones_store_summarize(store, &sum);
    fprintf(out,
            "manifests ok: %zu files; %zu services (%zu ClusterIP, %zu headless, %zu "
            "ExternalName), %zu endpoint slices, %zu endpoints, %zu pods, %zu namespaces; "
            "%zu objects of other kinds skipped; %zu records under %s\n",
            n->files, n->services, sum.cluster_ip, sum.headless, sum.external_name, n->slices,
            sum.endpoints, n->pods, n->namespaces, n->skipped, sum.records, domain);
}

static uint64_t manifests_signature(const struct daemon_options *o)
{
    uint64_t signature = ZONES_MANIFEST_SIGNATURE_SEED;
    for (size_t i = 0; i < o->manifests.n; i++)
        signature = zones_manifest_signature(signature, o->manifests.items[i]);
    return signature;
}

/* Reads every manifest into a new objects set, checked whole (addresses, duplicates). Returns
 * 0 with *out set, or the number of errors (they are printed; nothing is kept). */
static int read_manifests(struct daemon *d, struct zones_objects **out)
{
    struct zones_objects *objs = zones_xcalloc(1, sizeof(*objs));
    zones_objects_init(objs);
    /* Taken before reading, so a change while reading shows at the next poll. */
    d->reload.signature = manifests_signature(&d->opt);
    for (size_t i = 0; i < d->opt.manifests.n; i++)
        zones_manifest_load_path(objs, d->opt.manifests.items[i]);
    zones_objects_assign_ips(objs, d->cidrs, d->n_cidrs);
    print_diags(objs->warnings, objs->n_warnings, "warning");
    print_diags(objs->diags, objs->n_diags, "error");
    int errors = (int)objs->n_diags;
    if (errors > 0) {
        zones_objects_free(objs);
        free(objs);
        return errors;
    }
    *out = objs;
    return 0;
}

static void free_objects(struct zones_objects *objs)
{
    if (objs != NULL) {
        zones_objects_free(objs);
        free(objs);
    }
}

/* The SOA serial: the newest manifest's modification time, so the same files give the same
 * zone; and (last, after a reload) never going back, even when the newest file was deleted
 * or had its time set back, since secondaries and caches compare serials. */
static uint32_t next_serial(const struct zones_objects *objs, uint32_t last)
{
    uint32_t serial = objs->newest_mtime > 0 ? (uint32_t)objs->newest_mtime : 1;
    return last != 0 && serial <= last ? last + 1 : serial;
}

/* Makes objs the served objects: into the model, committed, the old ones freed. */
static void serve_objects(struct daemon *d, struct zones_objects *objs, uint32_t last_serial)
{
    uv_mutex_lock(&d->model_lock); /* the Kubernetes API source writes the model too */
    zones_model_set_source(d->model, 0, objs);
    zones_model_commit(d->model, next_serial(objs, last_serial));
    uv_mutex_unlock(&d->model_lock);
    free_objects(d->objs);
    d->objs = objs;
}

int daemon_reload_load(struct daemon *d, FILE *summary)
{
    struct zones_objects *objs = NULL;
    int errors = read_manifests(d, &objs);
    if (errors != 0)
        return errors;
    if (zones_model_new(&d->model, &d->store_cfg, NULL, d->cidrs, d->n_cidrs) < 0) {
        free_objects(objs);
        return daemon_fail("--cluster-domain: \"%s\" is not a domain name",
                           d->store_cfg.cluster_domain);
    }
    d->store = zones_model_store(d->model);
    struct load_counts counts = {objs->n_files, objs->n_services,   objs->n_slices,
                                 objs->n_pods,  objs->n_namespaces, objs->n_skipped};
    serve_objects(d, objs, 0);
    if (summary)
        print_summary(summary, &counts, d->store, d->store_cfg.cluster_domain);
    /* The loader's blocks are free in the middle of the heap: hand the pages back. */
    malloc_trim(0);
    return 0;
}

void daemon_reload_notify_ready(struct daemon *d)
{
    struct zones_store_summary sum;
    zones_store_summarize(d->store, &sum);
    char state[160];
    snprintf(state, sizeof(state), "READY=1\nSTATUS=serving %zu records under %s", sum.records,
             d->store_cfg.cluster_domain);
    dns_notify(state);
}

/* On libuv's thread pool, one at a time: the model is this thread's while building is set
 * (the store's workers read on meanwhile; what it replaces goes to the epoch). */
static void build_in_pool(uv_work_t *work)
{
    struct daemon *d = work->data;
    struct daemon_reload *r = &d->reload;
    uint64_t start = uv_hrtime();
    struct zones_objects *objs = NULL;
    r->build_rc = read_manifests(d, &objs);
    r->build_ms = (double)(uv_hrtime() - start) / 1e6;
    if (r->build_rc != 0)
        return;
    start = uv_hrtime();
    struct zones_store_summary sum;
    zones_store_summarize(d->store, &sum);
    serve_objects(d, objs, sum.serial);
    malloc_trim(0);
    r->apply_ms = (double)(uv_hrtime() - start) / 1e6;
}

static void reload_now(struct daemon *d, const char *trigger);

static void on_built(uv_work_t *work, int status)
{
    struct daemon *d = work->data;
    struct daemon_reload *r = &d->reload;
    r->building = false;
    if (status < 0 || r->build_rc != 0) {
        atomic_fetch_add(&r->failures, 1);
        log_error("reload",
                  "trigger=%s errors=%d action=\"kept serving the last good data\" "
                  "hint=\"fix the FILE:LINE:COL errors above; the next change reloads\"",
                  r->trigger, status < 0 ? status : r->build_rc);
    } else {
        struct zones_store_summary sum;
        zones_store_summarize(d->store, &sum);
        atomic_fetch_add(&r->reloads, 1);
        log_info("reload", "trigger=%s serial=%u records=%zu read_ms=%.1f apply_ms=%.1f",
                 r->trigger, sum.serial, sum.records, r->build_ms, r->apply_ms);
    }
    daemon_reload_notify_ready(d);
    const char *next = r->next_trigger;
    r->next_trigger = NULL;
    if (next)
        reload_now(d, next);
}

static void reload_now(struct daemon *d, const char *trigger)
{
    struct daemon_reload *r = &d->reload;
    if (r->stopping)
        return;
    if (r->building) {
        r->next_trigger = trigger; /* what changed during this build is read by the next */
        return;
    }
    r->trigger = trigger;
    r->work.data = d;
    int rc = uv_queue_work(dns_server_loop(d->server), &r->work, build_in_pool, on_built);
    if (rc < 0) {
        log_error("reload", "trigger=%s error=\"%s\"", trigger, uv_strerror(rc));
        return;
    }
    r->building = true;
    char state[64];
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)(uv_hrtime() / 1000));
    dns_notify(state);
}

static void on_sighup(uv_signal_t *handle, int signum)
{
    (void)signum;
    struct daemon *d = handle->data;
    uv_timer_stop(&d->reload.debounce);
    reload_now(d, "sighup");
}

static void on_debounce(uv_timer_t *timer)
{
    reload_now(timer->data, "change");
}

static void on_poll(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    if (!d->reload.building && manifests_signature(&d->opt) != d->reload.signature)
        reload_now(d, "poll");
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    struct daemon *d = handle->data;
    if (status < 0) {
        log_warn("reload", "error=\"%s\" hint=\"send SIGHUP to reload\"", uv_strerror(status));
        return;
    }
    uv_timer_start(&d->reload.debounce, on_debounce, 200, 0);
}

/* Watches the directory of path (a file: the directory it is in, so an editor's or kubelet's
 * atomic replace is seen). */
static void watch_manifest_dir(struct daemon *d, const char *path)
{
    struct daemon_reload *r = &d->reload;
    char dir[4096];
    uv_fs_t req;
    bool is_dir =
        uv_fs_stat(NULL, &req, path, NULL) == 0 && (req.statbuf.st_mode & S_IFMT) == S_IFDIR;
    uv_fs_req_cleanup(&req);
    snprintf(dir, sizeof(dir), "%s", path);
    if (!is_dir) {
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[slash == dir ? 1 : 0] = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
    }
    uv_fs_event_t *w = &r->watches[r->n_watches];
    uv_fs_event_init(dns_server_loop(d->server), w);
    w->data = d;
    r->n_watches++;
    int rc = uv_fs_event_start(w, on_fs_event, dir, 0);
    if (rc < 0)
        log_warn("reload", "path=%s error=\"%s\" hint=\"changes need a SIGHUP\"", dir,
                 uv_strerror(rc));
}

int daemon_reload_start(struct daemon *d)
{
    struct daemon_reload *r = &d->reload;
    uv_loop_t *loop = dns_server_loop(d->server);
    uv_timer_init(loop, &r->debounce);
    uv_timer_init(loop, &r->poll);
    uv_signal_init(loop, &r->sighup);
    r->debounce.data = r->poll.data = r->sighup.data = d;
    r->enabled = true;
    for (size_t i = 0; i < d->opt.manifests.n; i++) {
        if (strcmp(d->opt.manifests.items[i], "-") == 0) {
            log_warn("reload", "manifests=- note=\"stdin cannot be read again: reloading is "
                               "off\"");
            return 0;
        }
    }
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    if (r->interval_s > 0)
        uv_timer_start(&r->poll, on_poll, (uint64_t)r->interval_s * 1000,
                       (uint64_t)r->interval_s * 1000);
    for (size_t i = 0; i < d->opt.manifests.n; i++)
        watch_manifest_dir(d, d->opt.manifests.items[i]);
    return 0;
}

void daemon_reload_stop(struct daemon *d)
{
    struct daemon_reload *r = &d->reload;
    if (!r->enabled)
        return;
    r->stopping = true;
    while (r->building) /* a build cannot be cut short: let it finish, then drop it */
        uv_run(dns_server_loop(d->server), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&r->sighup, NULL);
    uv_close((uv_handle_t *)&r->debounce, NULL);
    uv_close((uv_handle_t *)&r->poll, NULL);
    for (size_t i = 0; i < r->n_watches; i++)
        uv_close((uv_handle_t *)&r->watches[i], NULL);
    unsigned long reloads = atomic_load(&r->reloads);
    unsigned long failures = atomic_load(&r->failures);
    if (reloads || failures)
        log_info("reload", "reloads=%lu failures=%lu", reloads, failures);
}
