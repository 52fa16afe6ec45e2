/* zones/manifest.c - manifest files, directories and stdin into zones_objects.
 *
 * A file is read whole (within ZONES_MANIFEST_MAX_BYTES) and handed to zones/yaml.c, whose
 * documents zones/decode.c reads into objects. Directories are walked recursively in sorted
 * order, the way kubectl apply -f reads them, following symlinks (kubelet's ConfigMap volumes
 * need that) but reading each real directory and file once. The walk only stats; a reload
 * compares what it found with what it read before and reads only the files that changed. */
#include "zones/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zones/decode.h"
#include "zones/yaml.h"

#define MAX_DIR_DEPTH ZONES_MANIFEST_MAX_DIR_DEPTH

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

size_t zones_manifest_load_buffer(struct zones_objects *objs, const char *name, const char *buf,
                                  size_t len)
{
    size_t before = objs->n_diags;
    struct zones_report report = {.objs = objs, .file = zones_objects_intern_file(objs, name)};
    if (len > ZONES_MANIFEST_MAX_BYTES) {
        zones_report_error(&report, 0, 0,
                           "the file has %zu bytes, more than the limit of %u; split it into "
                           "smaller files",
                           len, ZONES_MANIFEST_MAX_BYTES);
        objs->n_unread++;
        return objs->n_diags - before;
    }
    /* A UTF-8 byte order mark is allowed; skipping it here keeps the columns of line 1. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    zones_yaml_parse(&report, buf, len, zones_decode_document, NULL);
    return objs->n_diags - before;
}

/* ---- files, directories and stdin ---- */

static void __attribute__((format(printf, 3, 4)))
fail_file(struct zones_objects *objs, const char *path, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    struct zones_where where = {.file = zones_objects_intern_file(objs, path), .line = 0};
    zones_objects_error(objs, &where, "%s", message);
    objs->n_unread++;
}

/* Reads all of fd, up to one byte past the limit so an oversized stream is noticed. */
static int read_all(int fd, char **out, size_t *len)
{
    size_t cap = (size_t)64 * 1024;
    size_t used = 0;
    char *buf = zones_xrealloc(NULL, cap);
    for (;;) {
        if (used == cap) {
            if (cap > ZONES_MANIFEST_MAX_BYTES)
                break; /* one byte over the limit is enough to refuse the stream */
            cap =
                cap * 2 > ZONES_MANIFEST_MAX_BYTES ? (size_t)ZONES_MANIFEST_MAX_BYTES + 1 : cap * 2;
            char *bigger = realloc(buf, cap);
            if (bigger == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = bigger;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            free(buf);
            return err;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    *out = buf;
    *len = used;
    return 0;
}

static void load_fd(struct zones_objects *objs, const char *name, int fd)
{
    struct stat st;
    bool have_stat = fstat(fd, &st) == 0;
    if (have_stat && (int64_t)st.st_mtime > objs->newest_mtime)
        objs->newest_mtime = (int64_t)st.st_mtime; /* the SOA serial, as CoreDNS's is */
    if (have_stat && S_ISREG(st.st_mode) &&
        (unsigned long long)st.st_size > ZONES_MANIFEST_MAX_BYTES) {
        fail_file(objs, name,
                  "the file has %lld bytes, more than the limit of %u; split it "
                  "into smaller files",
                  (long long)st.st_size, ZONES_MANIFEST_MAX_BYTES);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    int err = read_all(fd, &buf, &len);
    if (err != 0) {
        fail_file(objs, name, "cannot read %s: %s; check that it is a readable file", name,
                  strerror(-err));
        return;
    }
    zones_manifest_load_buffer(objs, name, buf, len);
    free(buf);
}

size_t zones_manifest_load_file(struct zones_objects *objs, const char *path)
{
    size_t before = objs->n_diags;
    if (strcmp(path, "-") == 0) {
        load_fd(objs, "-", STDIN_FILENO);
        return objs->n_diags - before;
    }
    /* Without blocking: a FIFO that took the place of a file must not hang a reload. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        fail_file(objs, path, "cannot open %s: %s; check the path and its permissions", path,
                  strerror(errno));
        return objs->n_diags - before;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
        fail_file(objs, path,
                  "%s is not a regular file; give a file or a directory (or - for "
                  "stdin)",
                  path);
    else
        load_fd(objs, path, fd);
    close(fd);
    return objs->n_diags - before;
}

/* ---- the walk ---- */

static bool is_manifest_name(const char *name)
{
    size_t len = strlen(name);
    return ends_with(name, len, ".yaml") || ends_with(name, len, ".yml") ||
           ends_with(name, len, ".json");
}

/* kubelet's ConfigMap volumes keep the real files under ..data and ..<timestamp>; the
 * visible names are symlinks through ..data. Skipping every dot-name reads each file once. */
static int is_visible(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

static int compare_entries(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* The real files and directories seen, by (device, inode): each is read once, however many
 * symlinks lead to it, so neither a loop nor a diamond of links multiplies the walk. */
struct seen {
    struct seen_id {
        dev_t dev;
        ino_t ino;
    } * slots; /* ino 0 with dev 0: empty */
    size_t mask, n;
};

static bool seen_add(struct seen *set, const struct stat *st)
{
    if ((set->n + 1) * 2 > set->mask + 1) {
        struct seen bigger = {.mask = set->mask ? set->mask * 2 + 1 : 63, .n = 0};
        bigger.slots = zones_xcalloc(bigger.mask + 1, sizeof(bigger.slots[0]));
        for (size_t i = 0; set->slots && i <= set->mask; i++) {
            struct seen_id id = set->slots[i];
            if (id.dev == 0 && id.ino == 0)
                continue;
            size_t k = (size_t)(id.ino * 31 + id.dev) & bigger.mask;
            while (bigger.slots[k].dev != 0 || bigger.slots[k].ino != 0)
                k = (k + 1) & bigger.mask;
            bigger.slots[k] = id;
            bigger.n++;
        }
        free(set->slots);
        *set = bigger;
    }
    size_t k = (size_t)(st->st_ino * 31 + st->st_dev) & set->mask;
    for (;; k = (k + 1) & set->mask) {
        struct seen_id *id = &set->slots[k];
        if (id->dev == 0 && id->ino == 0) {
            *id = (struct seen_id){st->st_dev, st->st_ino};
            set->n++;
            return true;
        }
        if (id->dev == st->st_dev && id->ino == st->st_ino)
            return false;
    }
}

struct walk {
    struct zones_manifest_list *list;
    struct seen seen;
};

static void mix(struct zones_manifest_list *list, const char *path, const void *facts, size_t len)
{
    list->signature = zones_fnv1a(list->signature, path, strlen(path) + 1);
    list->signature = zones_fnv1a(list->signature, facts, len);
}

static void add_file(struct walk *w, const char *path, const struct stat *st)
{
    struct zones_manifest_list *list = w->list;
    if (!seen_add(&w->seen, st))
        return; /* the same file, reached again through a symlink */
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 16;
        list->files = zones_xrealloc(list->files, list->cap * sizeof(list->files[0]));
    }
    int64_t facts[] = {(int64_t)st->st_dev,          (int64_t)st->st_ino,
                       (int64_t)st->st_size,         (int64_t)st->st_mtim.tv_sec,
                       (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
                       (int64_t)st->st_ctim.tv_nsec};
    size_t len = strlen(path) + 1;
    struct zones_manifest_file *f = &list->files[list->n++];
    f->path = memcpy(zones_xrealloc(NULL, len), path, len);
    f->stamp = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, facts, sizeof(facts));
    f->mtime = (int64_t)st->st_mtim.tv_sec;
    mix(list, path, facts, sizeof(facts));
}

/* What cannot be read is an error, in the signature too, so that its repair is noticed. */
static void __attribute__((format(printf, 4, 5)))
fail_walk(struct walk *w, const char *path, int err, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    struct zones_where where = {.file = zones_objects_intern_file(&w->list->problems, path)};
    zones_objects_error(&w->list->problems, &where, "%s", message);
    mix(w->list, path, &err, sizeof(err));
}

static void walk_dir(struct walk *w, const char *dir, const struct stat *st, unsigned depth);

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_entry(struct walk *w, const char *dir, const char *name, unsigned depth)
{
    size_t dir_len = strlen(dir);
    bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
    size_t size = dir_len + strlen(name) + 2;
    char *path = zones_xrealloc(NULL, size);
    snprintf(path, size, "%s%s%s", dir, slash ? "" : "/", name);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (is_manifest_name(name))
            fail_walk(w, path, errno, "cannot open %s: %s; check the path and its permissions",
                      path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        walk_dir(w, path, &st, depth + 1);
    } else if (is_manifest_name(name) && S_ISREG(st.st_mode)) {
        add_file(w, path, &st);
    } else if (is_manifest_name(name) && seen_add(&w->seen, &st)) {
        struct zones_where where = {.file = zones_objects_intern_file(&w->list->problems, path)};
        zones_objects_warn(&w->list->problems, &where,
                           "%s is not a regular file (a FIFO, a socket or a device) and is not "
                           "read; move it out of the manifest directory",
                           path);
    }
    free(path);
}

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_dir(struct walk *w, const char *dir, const struct stat *st, unsigned depth)
{
    if (!seen_add(&w->seen, st))
        return; /* read already, by another way or as an ancestor (a symlink loop) */
    if (depth > MAX_DIR_DEPTH) {
        fail_walk(w, dir, ELOOP, "directories nested more than %d deep; %s is not read",
                  MAX_DIR_DEPTH, dir);
        return;
    }
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, is_visible, compare_entries);
    if (n < 0) {
        fail_walk(w, dir, errno, "cannot read the directory %s: %s; check its permissions", dir,
                  strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        walk_entry(w, dir, entries[i]->d_name, depth);
        free(entries[i]);
    }
    free(entries);
}

void zones_manifest_list(const char *const *paths, size_t n_paths, struct zones_manifest_list *out)
{
    memset(out, 0, sizeof(*out));
    zones_objects_init(&out->problems);
    out->signature = ZONES_FNV_OFFSET_BASIS;
    struct walk w = {.list = out};
    for (size_t i = 0; i < n_paths; i++) {
        const char *path = paths[i];
        struct stat st;
        if (strcmp(path, "-") == 0) {
            struct stat none = {0};
            none.st_ino = (ino_t)-1; /* stdin is read once, whatever stat says of it */
            add_file(&w, path, &none);
        } else if (stat(path, &st) != 0) {
            fail_walk(&w, path, errno, "cannot open %s: %s; check the path", path, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            walk_dir(&w, path, &st, 0);
        } else if (S_ISREG(st.st_mode)) {
            add_file(&w, path, &st);
        } else {
            fail_walk(&w, path, EINVAL,
                      "%s is not a regular file; give a file or a directory (or - for stdin)",
                      path);
        }
    }
    free(w.seen.slots);
}

void zones_manifest_list_free(struct zones_manifest_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->files[i].path);
    free(list->files);
    zones_objects_free(&list->problems);
    memset(list, 0, sizeof(*list));
}

size_t zones_manifest_load_path(struct zones_objects *objs, const char *path)
{
    size_t before = objs->n_diags;
    struct zones_manifest_list list;
    zones_manifest_list(&path, 1, &list);
    for (size_t i = 0; i < list.problems.n_diags; i++)
        fail_file(objs, list.problems.diags[i].where.file, "%s", list.problems.diags[i].message);
    for (size_t i = 0; i < list.problems.n_warnings; i++)
        zones_objects_warn(objs, &list.problems.warnings[i].where, "%s",
                           list.problems.warnings[i].message);
    for (size_t i = 0; i < list.n; i++)
        zones_manifest_load_file(objs, list.files[i].path);
    zones_manifest_list_free(&list);
    return objs->n_diags - before;
}
