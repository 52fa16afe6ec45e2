/* zones/files.h - manifest files as sources of the model, reread only when they change.
 *
 * Each file is a source of its own (zones/model.h), ranked by its place in the load order,
 * so a later file's definition wins. A reload lists the manifests (zones/manifest.h), reads
 * the files that are new or whose stat changed, in parallel, and then applies them: a file
 * that reads cleanly, or with errors in some objects, replaces its objects (the broken ones
 * are left out); a file that does not parse (bad YAML, a limit, an I/O error) keeps its last
 * good objects, if it had any. Files that are gone take their objects with them.
 *
 * Reading and applying are two steps so that the slow part runs anywhere and only the second
 * needs the model's writer: zones_files_read() touches no model, zones_files_apply() and
 * zones_files_release() must run where the model is written. */
#ifndef ZONES_FILES_H
#define ZONES_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/model.h"
#include "zones/objects.h"

struct zones_files;

/* What one read found, to apply or to drop. */
struct zones_files_read {
    bool unchanged;             /* no file changed since the last read: nothing to apply */
    size_t listed;              /* files in the load order */
    size_t read;                /* of them, read this time */
    size_t cached;              /* of those, read back from --manifest-cache instead of parsed */
    size_t kept;                /* read but not parsed: they keep their last good objects */
    size_t errors;              /* errors found by this read (each is in diags) */
    struct zones_objects diags; /* this read's errors and warnings, in load order */
    struct zones_files_entry *entries; /* zones/files.c's */
    struct zones_files_state **gone;   /* zones/files.c's */
    size_t n_gone;
    uint64_t signature;
};

/* What the files that are applied hold, together. */
struct zones_files_totals {
    size_t files, services, slices, pods, namespaces, service_cidrs, skipped, invalid;
    size_t errors;        /* in the last read of each file, and of the paths themselves */
    int64_t newest_mtime; /* of the files, in Unix seconds; 0 if none */
};

/* For paths (copied): files, directories, "-" for stdin (read once: a reload keeps what it
 * gave). cache_dir (NULL: none) keeps each clean file's objects for the next start
 * (zones/cache.h), written by build (the binary's version). */
void zones_files_new(struct zones_files **out, const char *const *paths, size_t n_paths,
                     const char *cache_dir, const char *build);
/* Frees every file's objects: the model must be gone, or every source removed and committed. */
void zones_files_free(struct zones_files *files);

/* Lists the manifests and reads what changed, on up to threads threads. Any thread; one read
 * at a time, and none while a read is being applied. */
void zones_files_read(struct zones_files *files, unsigned threads, struct zones_files_read *out);
/* Puts what was read into the model (not committed); frees the read. */
void zones_files_apply(struct zones_files *files, struct zones_files_read *read,
                       struct zones_model *model);
/* Forgets what was read, changing nothing (--strict refused it); frees the read. The files it
 * read are read again by the next read that finds anything changed. */
void zones_files_drop(struct zones_files *files, struct zones_files_read *read);
/* After the commit that followed zones_files_apply(): frees the objects the model dropped. */
void zones_files_release(struct zones_files *files);

void zones_files_totals(const struct zones_files *files, struct zones_files_totals *out);

#endif
