/* tests/fuzz/fuzz_yaml.c - the fast path against libyaml: for any bytes, reading a file with
 * the fast path first (zones/yaml_fast.c, what svcdns does) must give the same trees, node for
 * node with their positions, and the same errors, as libyaml alone. The seeds are manifests
 * in the block style, so that mutations stay near the edge of what the fast path reads.
 *
 *   CC=clang cmake -B build-fuzz -DFUZZ=ON && cmake --build build-fuzz --target fuzz_yaml
 *   build-fuzz/tests/fuzz_yaml -max_total_time=60 tests/fuzz/corpus/yaml */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/log.h"
#include "tests/zones/yaml_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        log_set_level(LOG_LEVEL_ERROR);
        ready = 1;
    }
    if (size > 1 << 16)
        return 0;
    char *fast = yaml_tree_parse((const char *)data, size, ZONES_YAML_FAST_FIRST, NULL);
    char *slow = yaml_tree_parse((const char *)data, size, ZONES_YAML_LIBYAML, NULL);
    if (strcmp(fast, slow) != 0) {
        fprintf(stderr, "fast path:\n%s\nlibyaml:\n%s\n", fast, slow);
        __builtin_trap();
    }
    free(fast);
    free(slow);
    return 0;
}
