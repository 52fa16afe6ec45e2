/* zones/manifest.c - manifest files, directories and stdin into zones_objects.
 *
 * A file is read whole (within ZONES_MANIFEST_MAX_BYTES) and handed to zones/yaml.c, whose
 * documents zones/decode.c reads into objects. Directories are walked recursively in sorted
 * order, the way kubectl apply -f reads them, following symlinks (kubelet's ConfigMap volumes
 * need that) without going round a symlink loop. The same walk, without reading, gives the
 * stat signature the --reload-interval poll compares. */
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

#define MAX_DIR_DEPTH 32

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

static void load_file(struct zones_objects *objs, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail_file(objs, path, "cannot open %s: %s; check the path and its permissions", path,
                  strerror(errno));
        return;
    }
    load_fd(objs, path, fd);
    close(fd);
}

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

/* The directories being walked, to stop at a symlink back to one of them. */
struct dir_chain {
    dev_t dev;
    ino_t ino;
    const struct dir_chain *up;
};

/* One walk over the manifests: loading them into objs, or (objs NULL) only folding what
 * stat says of each into a signature that changes when any of them does. */
struct walker {
    struct zones_objects *objs;
    uint64_t signature;
};

static void mix_file(struct walker *w, const char *path, const struct stat *st, int err)
{
    w->signature = zones_fnv1a(w->signature, path, strlen(path) + 1);
    w->signature = zones_fnv1a(w->signature, &err, sizeof(err));
    if (st != NULL) {
        int64_t facts[] = {(int64_t)st->st_dev,          (int64_t)st->st_ino,
                           (int64_t)st->st_size,         (int64_t)st->st_mtim.tv_sec,
                           (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
                           (int64_t)st->st_ctim.tv_nsec};
        w->signature = zones_fnv1a(w->signature, facts, sizeof(facts));
    }
}

static void walk_dir(struct walker *w, const char *dir, const struct stat *st,
                     const struct dir_chain *up, unsigned depth);

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_entry(struct walker *w, const char *dir, const char *name,
                       const struct dir_chain *chain, unsigned depth)
{
    size_t dir_len = strlen(dir);
    bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
    size_t size = dir_len + strlen(name) + 2;
    char *path = zones_xrealloc(NULL, size);
    snprintf(path, size, "%s%s%s", dir, slash ? "" : "/", name);
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        if (is_manifest_name(name) && w->objs)
            fail_file(w->objs, path, "cannot open %s: %s; check the path and its permissions", path,
                      strerror(err));
        else if (is_manifest_name(name))
            mix_file(w, path, NULL, err);
    } else if (S_ISDIR(st.st_mode)) {
        walk_dir(w, path, &st, chain, depth + 1);
    } else if (is_manifest_name(name)) {
        if (w->objs)
            load_file(w->objs, path);
        else
            mix_file(w, path, &st, 0);
    }
    free(path);
}

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_dir(struct walker *w, const char *dir, const struct stat *st,
                     const struct dir_chain *up, unsigned depth)
{
    for (const struct dir_chain *c = up; c != NULL; c = c->up) {
        if (c->dev == st->st_dev && c->ino == st->st_ino)
            return; /* a symlink loop: this directory is already being read */
    }
    if (depth > MAX_DIR_DEPTH) {
        if (w->objs)
            fail_file(w->objs, dir, "directories nested more than %d deep; %s is not read",
                      MAX_DIR_DEPTH, dir);
        return;
    }
    struct dir_chain here = {.dev = st->st_dev, .ino = st->st_ino, .up = up};
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, is_visible, compare_entries);
    if (n < 0) {
        if (w->objs)
            fail_file(w->objs, dir, "cannot read the directory %s: %s; check its permissions", dir,
                      strerror(errno));
        else
            mix_file(w, dir, NULL, errno);
        return;
    }
    for (int i = 0; i < n; i++) {
        walk_entry(w, dir, entries[i]->d_name, &here, depth);
        free(entries[i]);
    }
    free(entries);
}

uint64_t zones_manifest_signature(uint64_t signature, const char *path)
{
    struct walker w = {.objs = NULL, .signature = signature};
    struct stat st;
    if (strcmp(path, "-") == 0)
        w.signature = zones_fnv1a(w.signature, path, 2);
    else if (stat(path, &st) != 0)
        mix_file(&w, path, NULL, errno);
    else if (S_ISDIR(st.st_mode))
        walk_dir(&w, path, &st, NULL, 0);
    else
        mix_file(&w, path, &st, 0);
    return w.signature;
}

size_t zones_manifest_load_path(struct zones_objects *objs, const char *path)
{
    size_t before = objs->n_diags;
    struct stat st;
    if (strcmp(path, "-") == 0)
        load_fd(objs, "-", STDIN_FILENO);
    else if (stat(path, &st) != 0)
        fail_file(objs, path, "cannot open %s: %s; check the path", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        walk_dir(&(struct walker){.objs = objs}, path, &st, NULL, 0);
    else
        load_file(objs, path);
    return objs->n_diags - before;
}
