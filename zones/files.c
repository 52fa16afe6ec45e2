/* zones/files.c - manifest files as sources of the model, reread only when they change.
 *
 * Invariant: a file's objects are freed only after the commit that follows the apply that
 * dropped them (zones_files_release()), since until then the model still points into them. */
#include "zones/files.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "zones/cache.h"
#include "zones/manifest.h"

/* A file that has been applied. */
struct zones_files_state {
    char *path;
    uint64_t stamp;             /* of the version read last, good or not */
    int64_t mtime;              /* of that version */
    struct zones_objects *objs; /* its last good objects, what the model has; NULL: none */
    uint32_t source;            /* its source in the model */
    size_t errors;              /* found by its last read */
    bool stale;                 /* read, but that read was dropped: read it again */
    bool listed;                /* by the read in progress */
};

/* One file of a read, in load order. */
struct zones_files_entry {
    const struct zones_manifest_file *file;
    struct zones_files_state *state; /* as applied before; NULL for a new file */
    struct zones_objects *objs;      /* read this time; NULL: not read */
    bool from_cache;                 /* read back from --cache-dir instead of parsed */
};

struct zones_files {
    char **paths;
    size_t n_paths;
    char *cache_dir; /* NULL: no cache */
    char *build;     /* the binary's version: what a cache entry must have been written by */
    struct zones_files_state **states; /* in the load order last applied */
    size_t n_states;
    uint64_t signature; /* of the listing last read */
    bool have_signature;
    struct zones_manifest_list list; /* the listing of the read in progress */
    struct zones_objects **retired;  /* to free at the next release */
    size_t n_retired;
};

static char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    return memcpy(zones_xrealloc(NULL, len), s, len);
}

static void free_objects(struct zones_objects *objs)
{
    if (objs != NULL) {
        zones_objects_free(objs);
        free(objs);
    }
}

void zones_files_new(struct zones_files **out, const char *const *paths, size_t n_paths,
                     const char *cache_dir, const char *build)
{
    struct zones_files *f = zones_xcalloc(1, sizeof(*f));
    f->cache_dir = cache_dir ? xstrdup(cache_dir) : NULL;
    f->build = xstrdup(build ? build : "");
    f->paths = zones_xcalloc(n_paths + 1, sizeof(f->paths[0]));
    for (size_t i = 0; i < n_paths; i++)
        f->paths[i] = xstrdup(paths[i]);
    f->n_paths = n_paths;
    *out = f;
}

void zones_files_release(struct zones_files *files)
{
    for (size_t i = 0; i < files->n_retired; i++)
        free_objects(files->retired[i]);
    free(files->retired);
    files->retired = NULL;
    files->n_retired = 0;
}

static void retire(struct zones_files *files, struct zones_objects *objs)
{
    if (objs == NULL)
        return;
    files->retired =
        zones_xrealloc(files->retired, (files->n_retired + 1) * sizeof(struct zones_objects *));
    files->retired[files->n_retired++] = objs;
}

static void free_state(struct zones_files_state *state)
{
    free_objects(state->objs);
    free(state->path);
    free(state);
}

void zones_files_free(struct zones_files *files)
{
    if (files == NULL)
        return;
    zones_files_release(files);
    for (size_t i = 0; i < files->n_states; i++)
        free_state(files->states[i]);
    free(files->states);
    for (size_t i = 0; i < files->n_paths; i++)
        free(files->paths[i]);
    free(files->paths);
    free(files->cache_dir);
    free(files->build);
    zones_manifest_list_free(&files->list);
    free(files);
}

/* ---- reading ---- */

static int compare_states(const void *a, const void *b)
{
    const struct zones_files_state *x = *(const struct zones_files_state *const *)a;
    const struct zones_files_state *y = *(const struct zones_files_state *const *)b;
    return strcmp(x->path, y->path);
}

static int compare_path(const void *key, const void *elem)
{
    return strcmp(key, (*(const struct zones_files_state *const *)elem)->path);
}

static struct zones_files_state *find_state(struct zones_files_state **sorted, size_t n,
                                            const char *path)
{
    struct zones_files_state **hit =
        bsearch(path, sorted, n, sizeof(struct zones_files_state *), compare_path);
    return hit ? *hit : NULL;
}

/* The files to read, shared by the reading threads. */
struct job {
    const struct zones_files *files;
    struct zones_files_entry *entries;
    size_t *todo; /* indexes into entries */
    size_t n_todo;
    atomic_size_t next;
};

static void *read_some(void *arg)
{
    struct job *job = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&job->next, 1);
        if (k >= job->n_todo)
            return NULL;
        struct zones_files_entry *e = &job->entries[job->todo[k]];
        e->objs = zones_xcalloc(1, sizeof(*e->objs));
        zones_objects_init(e->objs);
        const char *dir = job->files->cache_dir;
        const char *path = e->file->path;
        if (dir == NULL || strcmp(path, "-") == 0) {
            zones_manifest_load_file(e->objs, path);
            continue;
        }
        e->from_cache = zones_cache_load(dir, job->files->build, path, e->file->stamp, e->objs);
        if (e->from_cache)
            continue;
        zones_manifest_load_file(e->objs, path);
        const struct zones_objects *o = e->objs;
        if (o->n_diags == 0 && o->n_warnings == 0 && o->n_unread == 0 && o->n_invalid == 0)
            zones_cache_store(dir, job->files->build, path, e->file->stamp, o);
    }
}

/* Reads the files of job on up to threads threads, this one among them. */
static void read_files(struct job *job, unsigned threads)
{
    pthread_t helpers[16];
    size_t n_helpers = 0;
    size_t want = threads > 1 ? threads - 1 : 0;
    if (want > job->n_todo / 2) /* a thread for less than two files is not worth it */
        want = job->n_todo / 2;
    while (n_helpers < want && n_helpers < sizeof(helpers) / sizeof(helpers[0]) &&
           pthread_create(&helpers[n_helpers], NULL, read_some, job) == 0)
        n_helpers++;
    read_some(job);
    for (size_t i = 0; i < n_helpers; i++)
        pthread_join(helpers[i], NULL);
}

static void copy_diags(struct zones_objects *to, const struct zones_objects *from)
{
    for (size_t i = 0; i < from->n_warnings; i++)
        zones_objects_warn(to, &from->warnings[i].where, "%s", from->warnings[i].message);
    for (size_t i = 0; i < from->n_diags; i++)
        zones_objects_error(to, &from->diags[i].where, "%s", from->diags[i].message);
}

void zones_files_read(struct zones_files *files, unsigned threads, struct zones_files_read *out)
{
    memset(out, 0, sizeof(*out));
    zones_objects_init(&out->diags);
    zones_manifest_list_free(&files->list);
    zones_manifest_list((const char *const *)files->paths, files->n_paths, &files->list);
    const struct zones_manifest_list *list = &files->list;
    out->signature = list->signature;
    out->listed = list->n;
    if (files->have_signature && list->signature == files->signature) {
        out->unchanged = true;
        return;
    }
    struct zones_files_state **sorted =
        zones_xcalloc(files->n_states + 1, sizeof(struct zones_files_state *));
    if (files->n_states > 0)
        memcpy(sorted, files->states, files->n_states * sizeof(struct zones_files_state *));
    qsort(sorted, files->n_states, sizeof(struct zones_files_state *), compare_states);

    struct job job = {.files = files,
                      .entries = zones_xcalloc(list->n + 1, sizeof(struct zones_files_entry)),
                      .todo = zones_xcalloc(list->n + 1, sizeof(size_t))};
    for (size_t i = 0; i < files->n_states; i++)
        files->states[i]->listed = false;
    for (size_t i = 0; i < list->n; i++) {
        struct zones_files_entry *e = &job.entries[i];
        e->file = &list->files[i];
        e->state = find_state(sorted, files->n_states, e->file->path);
        if (e->state != NULL)
            e->state->listed = true;
        bool stdin_again = e->state != NULL && strcmp(e->file->path, "-") == 0;
        if (e->state == NULL ||
            (!stdin_again && (e->state->stamp != e->file->stamp || e->state->stale)))
            job.todo[job.n_todo++] = i;
    }
    free(sorted);
    read_files(&job, threads);
    out->read = job.n_todo;
    for (size_t k = 0; k < job.n_todo; k++)
        out->cached += job.entries[job.todo[k]].from_cache;
    free(job.todo);
    for (size_t i = 0; i < files->n_states; i++) {
        struct zones_files_state *state = files->states[i];
        if (!state->listed) {
            out->gone =
                zones_xrealloc(out->gone, (out->n_gone + 1) * sizeof(struct zones_files_state *));
            out->gone[out->n_gone++] = state;
        }
    }

    copy_diags(&out->diags, &list->problems);
    out->errors = list->problems.n_diags;
    for (size_t i = 0; i < list->n; i++) {
        struct zones_files_entry *e = &job.entries[i];
        if (e->objs == NULL)
            continue;
        copy_diags(&out->diags, e->objs);
        out->errors += e->objs->n_diags;
        if (e->objs->n_unread > 0 && e->state != NULL && e->state->objs != NULL) {
            struct zones_where where = {.file = e->file->path};
            zones_objects_warn(&out->diags, &where,
                               "the file does not parse; its objects as last read are served "
                               "until it does");
            out->kept++;
        }
    }
    out->entries = job.entries;
}

/* ---- applying ---- */

static void free_read(struct zones_files_read *read)
{
    zones_objects_free(&read->diags);
    free(read->entries);
    free(read->gone);
    memset(read, 0, sizeof(*read));
}

void zones_files_apply(struct zones_files *files, struct zones_files_read *read,
                       struct zones_model *model)
{
    if (read->unchanged) {
        free_read(read);
        return;
    }
    const struct zones_manifest_list *list = &files->list;
    for (size_t i = 0; i < read->n_gone; i++) {
        struct zones_files_state *gone = read->gone[i];
        zones_model_remove_source(model, gone->source);
        retire(files, gone->objs);
        gone->objs = NULL;
        free_state(gone);
    }
    struct zones_files_state **states =
        zones_xcalloc(list->n + 1, sizeof(struct zones_files_state *));
    for (size_t i = 0; i < list->n; i++) {
        struct zones_files_entry *e = &read->entries[i];
        uint32_t rank = (uint32_t)i + 1; /* in load order: a later file wins */
        struct zones_files_state *state = e->state;
        if (state == NULL) {
            state = zones_xcalloc(1, sizeof(*state));
            state->path = xstrdup(e->file->path);
            state->source = zones_model_add_source(model, rank);
        }
        zones_model_set_rank(model, state->source, rank);
        if (e->objs != NULL) {
            state->stamp = e->file->stamp;
            state->mtime = e->file->mtime;
            state->errors = e->objs->n_diags;
            state->stale = false;
            if (e->objs->n_unread > 0 && state->objs != NULL) {
                retire(files, e->objs); /* it does not parse: the last good objects stay */
            } else {
                zones_model_set_source(model, state->source, e->objs);
                retire(files, state->objs);
                state->objs = e->objs;
            }
        }
        states[i] = state;
    }
    free(files->states);
    files->states = states;
    files->n_states = list->n;
    files->signature = read->signature;
    files->have_signature = true;
    free_read(read);
}

void zones_files_drop(struct zones_files *files, struct zones_files_read *read)
{
    for (size_t i = 0; !read->unchanged && i < files->list.n; i++) {
        struct zones_files_entry *e = &read->entries[i];
        free_objects(e->objs);
        if (e->objs != NULL && e->state != NULL)
            e->state->stale = true;
    }
    /* Not read again until something changes; then what this read found is read again. */
    files->signature = read->signature;
    files->have_signature = true;
    free_read(read);
}

void zones_files_totals(const struct zones_files *files, struct zones_files_totals *out)
{
    memset(out, 0, sizeof(*out));
    out->files = files->n_states;
    out->errors = files->list.problems.n_diags;
    for (size_t i = 0; i < files->n_states; i++) {
        const struct zones_files_state *state = files->states[i];
        out->errors += state->errors;
        if (state->mtime > out->newest_mtime)
            out->newest_mtime = state->mtime;
        const struct zones_objects *objs = state->objs;
        if (objs == NULL)
            continue;
        out->services += objs->n_services;
        out->slices += objs->n_slices;
        out->pods += objs->n_pods;
        out->namespaces += objs->n_namespaces;
        out->service_cidrs += objs->n_service_cidrs;
        out->skipped += objs->n_skipped;
        out->invalid += objs->n_invalid;
    }
}
