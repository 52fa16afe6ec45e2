/* tests/fuzz/fuzz_cache.c - bytes as a --manifest-cache entry: read back whole or refused,
 * never a crash, a leak or half a file's objects.
 *
 *   CC=clang cmake -B build-fuzz -DFUZZ=ON && cmake --build build-fuzz --target fuzz_cache
 *   build-fuzz/tests/fuzz_cache -max_total_time=60 tests/fuzz/corpus/cache */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zones/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    if (zones_cache_decode(data, size, "fuzz", "f.yaml", 42, &objs)) {
        /* What reads back encodes to the very same bytes. */
        size_t len = 0;
        uint8_t *again = zones_cache_encode("fuzz", "f.yaml", 42, &objs, &len);
        if (len != size || memcmp(again, data, size) != 0)
            __builtin_trap();
        free(again);
    } else if (objs.n_services + objs.n_slices + objs.n_pods + objs.n_namespaces +
                   objs.n_service_cidrs !=
               0) {
        __builtin_trap();
    }
    zones_objects_free(&objs);
    return 0;
}
