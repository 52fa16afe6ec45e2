/* zones/json.h - JSON text (the API server's lists and watch events) into a document tree
 * (zones/dom.h), so that zones/decode.c reads Services from the API exactly as from a file.
 *
 * json-c parses; the tree's scalars point into json-c's objects, which live as long as the
 * document. Nodes carry no position (line 0): an API object is named by its kind, namespace
 * and name instead. */
#ifndef ZONES_JSON_H
#define ZONES_JSON_H

#include <stddef.h>

#include "zones/dom.h"

struct zones_json;

/* Parses text (one JSON value, no more) into *out; its tree is zones_json_root(*out).
 * Returns 0, or -1 with what is wrong (json-c's message) in err. */
int zones_json_parse(struct zones_json **out, const char *text, size_t len, char *err,
                     size_t err_cap);
const struct zones_dom_node *zones_json_root(const struct zones_json *doc);
/* The tree and what it points into. NULL is a no-op. */
void zones_json_free(struct zones_json *doc);

/* The string at a dotted path of map keys below node ("metadata.resourceVersion"), or NULL
 * when a step is missing or not a mapping, or the value is not a string. */
const char *zones_json_string(const struct zones_dom_node *node, const char *path);

#endif
