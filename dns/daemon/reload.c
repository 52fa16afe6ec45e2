/* dns/daemon/reload.c - keeps the served data current: manifests in, the store changed.
 *
 * The manifests are read at start on the calling thread and on every trigger afterwards on
 * libuv's thread pool, so /health, /metrics and queries are answered meanwhile. A read lists
 * the files and parses only those that changed (zones/files.h), on every CPU; the model
 * (zones/model.h) then applies them to the store one Service at a time, under the model's
 * writer lock, and retires what it replaces to the epoch (dns/epoch.h).
 *
 * Availability first: an object with an error is left out, a file that does not parse keeps
 * its last good objects, and everything else is served; each error is printed as
 * FILE:LINE:COL and counted. With --strict a start with any error fails, and a reload with
 * any error changes nothing. Triggers: a change in a watched directory (inotify, 200 ms
 * debounce), SIGHUP, and every --reload-interval a listing of the manifests (for
 * subdirectories and network file systems, which send no events). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "dns/daemon/daemon.h"
#include "dns/log.h"
#include "dns/notify.h"

/* FILE:LINE:COL: error: message, as compilers print them, so editors jump to the place; with
 * --log-format json, one log line each, so that stderr stays JSON throughout. */
static void print_diag(const struct zones_diag *diag, const char *severity)
{
    const char *file = diag->where.file ? diag->where.file : "svcdns";
    if (log_current_format() == LOG_FORMAT_JSON) {
        char qfile[1024];
        char qmessage[2048];
        log_write(strcmp(severity, "error") == 0 ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "manifest",
                  "file=\"%s\" line=%u col=%u severity=%s message=\"%s\"",
                  log_quote(file, qfile, sizeof(qfile)), diag->where.line, diag->where.col,
                  severity, log_quote(diag->message, qmessage, sizeof(qmessage)));
    } else if (diag->where.line) {
        fprintf(stderr, "%s:%u:%u: %s: %s\n", file, diag->where.line, diag->where.col, severity,
                diag->message);
    } else {
        fprintf(stderr, "%s: %s: %s\n", file, severity, diag->message);
    }
}

/* Warnings, then errors. */
static void print_diags(const struct zones_objects *objs)
{
    for (size_t i = 0; i < objs->n_warnings; i++)
        print_diag(&objs->warnings[i], "warning");
    for (size_t i = 0; i < objs->n_diags; i++)
        print_diag(&objs->diags[i], "error");
}

static void print_summary(FILE *out, const struct zones_files_totals *t,
                          const struct zones_store *store, const char *domain, size_t errors)
{
    struct zones_store_summary sum;
    zones_store_summarize(store, &sum);
    fprintf(out,
            "manifests %s: %zu files; %zu services (%zu ClusterIP, %zu headless, %zu "
            "ExternalName), %zu endpoint slices, %zu endpoints, %zu pods, %zu namespaces; "
            "%zu objects of other kinds skipped; %zu records under %s\n",
            errors ? "loaded with errors" : "ok", t->files,
            sum.cluster_ip + sum.headless + sum.external_name, sum.cluster_ip, sum.headless,
            sum.external_name, t->slices, sum.endpoints, t->pods, t->namespaces, t->skipped,
            sum.records, domain);
    if (errors)
        fprintf(out,
                "%zu error%s (above): %zu object%s with errors left out, everything else "
                "served; fix them, or use --strict to refuse to start with any\n",
                errors, errors == 1 ? "" : "s", t->invalid, t->invalid == 1 ? "" : "s");
}

/* The SOA serial: the newest manifest's modification time, so the same files give the same
 * zone; and (last, after a reload) never going back, even when the newest file was deleted
 * or had its time set back, since secondaries and caches compare serials. */
static uint32_t next_serial(int64_t newest_mtime, uint32_t last)
{
    uint32_t serial = newest_mtime > 0 ? (uint32_t)newest_mtime : 1;
    return last != 0 && serial <= last ? last + 1 : serial;
}

/* Applies what was read and commits, under the model's writer lock. Returns the errors the
 * model found (a Service defined twice in one file, no address left); they are printed. */
static size_t apply(struct daemon *d, struct zones_files_read *read)
{
    pthread_mutex_lock(&d->model_lock);
    zones_files_apply(d->files, read, d->model);
    struct zones_files_totals t;
    zones_files_totals(d->files, &t);
    struct zones_store_summary before;
    zones_store_summarize(d->store, &before);
    zones_model_commit(d->model, next_serial(t.newest_mtime, before.serial));
    zones_files_release(d->files);
    struct zones_objects *diags = zones_model_diags(d->model);
    print_diags(diags);
    size_t errors = diags->n_diags;
    zones_objects_free(diags); /* printed: start afresh */
    pthread_mutex_unlock(&d->model_lock);
    return errors;
}

/* Counts what a read found, for /metrics. */
static void account(struct daemon *d, size_t new_errors, size_t model_errors)
{
    struct zones_files_totals t;
    zones_files_totals(d->files, &t);
    atomic_fetch_add(&d->reload.errors_total, new_errors + model_errors);
    atomic_store(&d->reload.errors, t.errors + model_errors);
    atomic_store(&d->reload.invalid, t.invalid);
}

/* This binary, for --manifest-cache: its version and what stat says of the executable, so
 * that any rebuild (which may read manifests differently) misses the entries of the last. */
static const char *build_identity(char *out, size_t cap)
{
    struct stat st;
    uint64_t h = ZONES_FNV_OFFSET_BASIS;
    if (stat("/proc/self/exe", &st) == 0) {
        int64_t facts[] = {(int64_t)st.st_ino, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                           (int64_t)st.st_mtim.tv_nsec};
        h = zones_fnv1a(h, facts, sizeof(facts));
    }
    snprintf(out, cap, "svcdns %s %016llx", SVCDNS_VERSION, (unsigned long long)h);
    return out;
}

/* --manifest-cache's directory, made when missing; NULL (with a warning) when it cannot be
 * used: a start without the cache is only slower. */
static const char *manifest_cache(const struct daemon_options *o)
{
    const char *dir = o->manifest_cache;
    if (dir == NULL)
        return NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_warn("manifests", "manifest_cache=%s error=\"%s\" action=\"parsing every file\"", dir,
                 strerror(errno));
        return NULL;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        log_warn("manifests",
                 "manifest_cache=%s error=\"%s\" action=\"parsing every file\" "
                 "hint=\"give svcdns a directory it can write\"",
                 dir, strerror(errno));
        return NULL;
    }
    return dir;
}

int daemon_reload_load(struct daemon *d, FILE *summary)
{
    char build[96];
    zones_files_new(&d->files, (const char *const *)d->opt.manifests.items, d->opt.manifests.n,
                    manifest_cache(&d->opt), build_identity(build, sizeof(build)));
    struct zones_files_read read;
    uint64_t start = uv_hrtime();
    zones_files_read(d->files, uv_available_parallelism(), &read);
    print_diags(&read.diags);
    size_t read_errors = read.errors;
    size_t listed = read.listed;
    size_t cached = read.cached;
    double read_ms = (double)(uv_hrtime() - start) / 1e6;
    if (d->opt.strict && read_errors > 0) {
        zones_files_drop(d->files, &read);
        return (int)read_errors;
    }
    if (zones_model_new(&d->model, &d->store_cfg, NULL, d->cidrs, d->n_cidrs) < 0) {
        zones_files_drop(d->files, &read);
        daemon_fail("--cluster-domain: \"%s\" is not a domain name", d->store_cfg.cluster_domain);
        return -1;
    }
    d->store = zones_model_store(d->model);
    start = uv_hrtime();
    size_t model_errors = apply(d, &read);
    account(d, read_errors, model_errors);
    struct zones_files_totals t;
    zones_files_totals(d->files, &t);
    size_t errors = t.errors + model_errors;
    log_info("manifests", "files=%zu parsed=%zu cached=%zu read_ms=%.1f apply_ms=%.1f", listed,
             listed - cached, cached, read_ms, (double)(uv_hrtime() - start) / 1e6);
    if (summary)
        print_summary(summary, &t, d->store, d->store_cfg.cluster_domain, errors);
    else if (errors)
        log_warn("manifests",
                 "errors=%zu objects_left_out=%zu action=\"serving everything "
                 "else\" hint=\"fix the FILE:LINE:COL errors above\"",
                 errors, t.invalid);
    /* The loader's blocks are free in the middle of the heap: hand the pages back. */
    malloc_trim(0);
    return (int)errors;
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

/* On libuv's thread pool, one at a time: d->files is this thread's while building is set. */
static void build_in_pool(uv_work_t *work)
{
    struct daemon *d = work->data;
    struct daemon_reload *r = &d->reload;
    uint64_t start = uv_hrtime();
    struct zones_files_read read;
    zones_files_read(d->files, uv_available_parallelism(), &read);
    r->build_ms = (double)(uv_hrtime() - start) / 1e6;
    r->unchanged = read.unchanged;
    r->files_read = read.read;
    r->build_rc = (int)read.errors;
    print_diags(&read.diags);
    if (read.unchanged || (d->opt.strict && read.errors > 0)) {
        zones_files_drop(d->files, &read);
        return;
    }
    size_t read_errors = read.errors;
    start = uv_hrtime();
    size_t model_errors = apply(d, &read);
    account(d, read_errors, model_errors);
    r->build_rc = (int)(read_errors + model_errors);
    malloc_trim(0);
    r->apply_ms = (double)(uv_hrtime() - start) / 1e6;
}

static void reload_now(struct daemon *d, const char *trigger);

static void on_built(uv_work_t *work, int status)
{
    struct daemon *d = work->data;
    struct daemon_reload *r = &d->reload;
    r->building = false;
    if (status >= 0 && r->unchanged) {
        if (strcmp(r->trigger, "poll") != 0)
            log_info("reload", "trigger=%s changed_files=0", r->trigger);
    } else if (status < 0 || r->build_rc != 0) {
        atomic_fetch_add(&r->failures, 1);
        log_error("reload",
                  "trigger=%s errors=%d files_read=%zu action=\"%s\" "
                  "hint=\"fix the FILE:LINE:COL errors above; the next change reloads\"",
                  r->trigger, status < 0 ? status : r->build_rc, r->files_read,
                  d->opt.strict ? "--strict: kept serving the last good data"
                                : "served the rest; a file that does not parse keeps its last "
                                  "good objects");
    } else {
        struct zones_store_summary sum;
        zones_store_summarize(d->store, &sum);
        atomic_fetch_add(&r->reloads, 1);
        log_info("reload",
                 "trigger=%s serial=%u records=%zu files_read=%zu read_ms=%.1f apply_ms=%.1f",
                 r->trigger, sum.serial, sum.records, r->files_read, r->build_ms, r->apply_ms);
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

/* The listing runs on the pool with the read: a tree of many files costs the loop nothing. */
static void on_poll(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    if (!d->reload.building)
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
