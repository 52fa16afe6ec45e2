/* tests/fuzz/fuzz_api_object.c - an API server's JSON (a watch event's object, or a list) through
 * what the Kubernetes source does with it: json-c into a document tree (zones/json.c), the
 * decoder, and each object copied into one allocation of its own (zones_objects_clone_*).
 * Must never crash or leak, whatever the bytes; a copy must say what the original says.
 *
 *   CC=clang cmake -B build-fuzz -DFUZZ=ON && cmake --build build-fuzz --target fuzz_api_object
 *   build-fuzz/tests/fuzz_api_object -max_total_time=60 tests/fuzz/corpus/api_object */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/log.h"
#include "zones/decode.h"
#include "zones/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
        __builtin_trap();
}

static void copy_each(const struct zones_objects *objs)
{
    for (size_t i = 0; i < objs->n_services; i++) {
        struct zones_service *c = zones_objects_clone_service(&objs->services[i], 16);
        same(c->name, objs->services[i].name);
        same(c->external_name, objs->services[i].external_name);
        if (c->n_ips != objs->services[i].n_ips || c->n_ports != objs->services[i].n_ports)
            __builtin_trap();
        free(c);
    }
    for (size_t i = 0; i < objs->n_slices; i++) {
        struct zones_slice *c = zones_objects_clone_slice(&objs->slices[i], 16);
        same(c->service, objs->slices[i].service);
        for (size_t e = 0; e < c->n_endpoints; e++) {
            if (!c->endpoints[e].ready || c->endpoints[e].n_ips == 0)
                __builtin_trap();
        }
        free(c);
    }
    for (size_t i = 0; i < objs->n_pods; i++) {
        struct zones_pod *c = zones_objects_clone_pod(&objs->pods[i], 16);
        same(c->ns, objs->pods[i].ns);
        free(c);
    }
    for (size_t i = 0; i < objs->n_namespaces; i++) {
        struct zones_namespace *c = zones_objects_clone_namespace(&objs->namespaces[i], 16);
        same(c->name, objs->namespaces[i].name);
        free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_set_level(LOG_LEVEL_ERROR);
    struct zones_json *doc = NULL;
    char err[256];
    if (zones_json_parse(&doc, (const char *)data, size, err, sizeof(err)) < 0) {
        if (err[0] == '\0')
            __builtin_trap(); /* every refusal says why */
        return 0;
    }
    const struct zones_dom_node *root = zones_json_root(doc);
    (void)zones_json_string(root, "metadata.resourceVersion");
    (void)zones_json_string(root, "object.metadata.name");
    const struct zones_dom_node *object =
        root->kind == ZONES_DOM_MAP ? zones_dom_lookup(root, "object").value : NULL;
    struct zones_objects objs;
    zones_objects_init(&objs);
    struct zones_report report = {.objs = &objs, .file = "kubernetes"};
    zones_decode_document(NULL, &report, object != NULL ? object : root);
    copy_each(&objs);
    zones_objects_free(&objs);
    zones_json_free(doc);
    return 0;
}
