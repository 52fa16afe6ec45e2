/* zones/manifest.h - Kubernetes manifests (YAML or JSON) into zones_objects.
 *
 * Reads what kubectl users write and what `kubectl get -o yaml` prints: multi-document YAML,
 * `kind: List` and every `*List`, JSON. Service, EndpointSlice, Endpoints, Pod and Namespace
 * and ServiceCIDR are kept; other kinds are counted in n_skipped. Every problem becomes a
 * zones_diag with FILE:LINE:COL; a broken object or document is left out and the rest of the
 * file still loads. */
#ifndef ZONES_MANIFEST_H
#define ZONES_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "zones/objects.h"

/* Limits that stop YAML bombs and runaway files. */
#define ZONES_MANIFEST_MAX_BYTES (64u << 20) /* one file */
#define ZONES_MANIFEST_MAX_DEPTH 64          /* nesting of mappings and sequences */
#define ZONES_MANIFEST_MAX_NODES                                                                   \
    16000000 /* nodes in one file, aliases expanded: ~160k full kubectl objects */
#define ZONES_MANIFEST_MAX_ALIASES 10000 /* alias uses in one file */
#define ZONES_MANIFEST_MAX_DIR_DEPTH 32  /* directories below a manifest path */

/* One manifest file, as the walk found it. */
struct zones_manifest_file {
    char *path;
    uint64_t stamp; /* of what stat says: device, inode, size, modification and change times */
    int64_t mtime;  /* in Unix seconds */
};

/* Every manifest some paths name, in load order. */
struct zones_manifest_list {
    struct zones_manifest_file *files;
    size_t n, cap;
    uint64_t signature;            /* of every path, stamp and problem: changes with any */
    struct zones_objects problems; /* paths that cannot be read (errors), files that are not
                                      regular files (warnings) */
};

/* Lists the files to load: a path that names a file, as it is; below a directory every
 * *.yaml, *.yml and *.json, recursively in sorted order, following symlinks (kubelet's
 * ConfigMap volumes need that) but visiting each real directory and file once, so that
 * neither a symlink loop nor a diamond of links multiplies the walk; dot-entries skipped
 * (..data's targets are reached through their visible names). Only regular files are listed;
 * "-" (stdin) is listed as it is. Stats only: nothing is opened. */
void zones_manifest_list(const char *const *paths, size_t n_paths, struct zones_manifest_list *out);
void zones_manifest_list_free(struct zones_manifest_list *list);

/* Loads one file ("-": stdin) into objs, opened without blocking and read only when it is a
 * regular file. Returns the number of errors added to objs->diags. */
size_t zones_manifest_load_file(struct zones_objects *objs, const char *path);

/* Lists path and loads every file into objs (--check of one tree, tests, fuzzers). Returns
 * the number of errors added to objs->diags (0: all loaded). */
size_t zones_manifest_load_path(struct zones_objects *objs, const char *path);

/* Loads one buffer; name is what errors call it. Returns the number of errors added. */
size_t zones_manifest_load_buffer(struct zones_objects *objs, const char *name, const char *buf,
                                  size_t len);

#endif
