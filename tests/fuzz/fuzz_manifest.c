/* tests/fuzz/fuzz_manifest.c - manifest bytes (YAML or JSON) through the loader, and what
 * loads through the model into a store (merging, ClusterIP assignment, views). Must never
 * crash, leak, or run away in time or memory, whatever the bytes.
 *
 *   CC=clang cmake -B build-fuzz -DFUZZ=ON && cmake --build build-fuzz --target fuzz_manifest
 *   build-fuzz/tests/fuzz_manifest -max_total_time=60 tests/fuzz/corpus/manifest */
#include <stddef.h>
#include <stdint.h>

#include "dns/log.h"
#include "zones/manifest.h"
#include "zones/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct zones_cidr cidrs[2];
    static int ready;
    if (!ready) {
        log_set_level(LOG_LEVEL_ERROR);
        if (zones_cidr_parse("10.96.0.0/12", &cidrs[0]) != 0 ||
            zones_cidr_parse("fd00::/108", &cidrs[1]) != 0)
            __builtin_trap();
        ready = 1;
    }
    struct zones_objects objs;
    zones_objects_init(&objs);
    zones_manifest_load_buffer(&objs, "fuzz.yaml", (const char *)data, size);
    /* Every diag has a file and a message, and every kept name is one. */
    for (size_t i = 0; i < objs.n_diags; i++) {
        if (objs.diags[i].where.file == NULL || objs.diags[i].message == NULL)
            __builtin_trap();
    }
    for (size_t i = 0; i < objs.n_services; i++) {
        if (objs.services[i].name == NULL || objs.services[i].ns == NULL)
            __builtin_trap();
    }
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    struct zones_store *store = NULL;
    if (zones_model_build(&store, &objs, &cfg, cidrs, 2, NULL) != 0)
        __builtin_trap();
    zones_store_free(store);
    zones_objects_free(&objs);
    return 0;
}
