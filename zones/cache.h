/* zones/cache.h - each manifest file's objects kept on disk in binary, so that a start reads
 * them back instead of parsing YAML when the file has not changed (the idea of NSD's nsd.db,
 * per file).
 *
 * --cache-dir DIR holds one entry per manifest file, named by a hash of its path: the path,
 * the file's stat stamp (zones/manifest.h) and its objects. An entry counts only for the same
 * path, the same stamp and the same svcdns build; anything else, or an entry that does not
 * read back whole, is a miss and the file is parsed. Only files without errors or warnings
 * are kept, so every message is printed again at each start. */
#ifndef ZONES_CACHE_H
#define ZONES_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/objects.h"

/* Fills objs (initialized, empty) with path's objects as of stamp; false on a miss, with objs
 * left empty. build names the binary (its version); an entry of another build is a miss. */
bool zones_cache_load(const char *dir, const char *build, const char *path, uint64_t stamp,
                      struct zones_objects *objs);

/* Writes path's objects (read at stamp, without a diag or warning) to dir, atomically (a
 * temporary file renamed over the entry). Best effort: 0, or -errno when it could not. */
int zones_cache_store(const char *dir, const char *build, const char *path, uint64_t stamp,
                      const struct zones_objects *objs);

/* The same, from and to memory (the fuzzer, tests). */
bool zones_cache_decode(const uint8_t *buf, size_t len, const char *build, const char *path,
                        uint64_t stamp, struct zones_objects *objs);
/* Returns a malloc'd buffer of *len bytes. */
uint8_t *zones_cache_encode(const char *build, const char *path, uint64_t stamp,
                            const struct zones_objects *objs, size_t *len);

#endif
