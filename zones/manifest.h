/* zones/manifest.h - Kubernetes manifests (YAML or JSON) into zones_objects.
 *
 * Reads what kubectl users write and what `kubectl get -o yaml` prints: multi-document YAML,
 * `kind: List` and every `*List`, JSON. Service, EndpointSlice, Endpoints, Pod and Namespace
 * are kept; other kinds are counted in n_skipped. Every problem becomes a zones_diag with
 * FILE:LINE:COL; a broken document is skipped whole and the rest of the file still loads. */
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

/* Loads a file, or every *.yaml, *.yml and *.json below a directory (recursively, in sorted
 * order, following symlinks as kubelet's ConfigMap volumes need, skipping dot-entries such as
 * ..data's targets only when reached through their dot-name). "-" reads stdin.
 * Returns the number of errors added to objs->diags (0: all loaded). */
size_t zones_manifest_load_path(struct zones_objects *objs, const char *path);

/* Folds into signature what stat says of every file zones_manifest_load_path(path) would
 * read (name, inode, size, modification and change times) and of what cannot be read: it
 * changes when any manifest does. Start from ZONES_MANIFEST_SIGNATURE_SEED. */
#define ZONES_MANIFEST_SIGNATURE_SEED ZONES_FNV_OFFSET_BASIS
uint64_t zones_manifest_signature(uint64_t signature, const char *path);

/* Loads one buffer; name is what errors call it. Returns the number of errors added. */
size_t zones_manifest_load_buffer(struct zones_objects *objs, const char *name, const char *buf,
                                  size_t len);

#endif
