/* zones/json.c - json-c's tree turned into a zones_dom tree.
 *
 * The conversion is a walk of json-c's objects: maps keep their keys in order, strings are
 * referenced where json-c keeps them, and numbers, booleans and null become plain scalars
 * spelled as in the text, which is how zones/dom.c reads unquoted YAML. json-c's depth limit
 * is the loader's (ZONES_MANIFEST_MAX_DEPTH), so the walk is bounded. */
#include "zones/json.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zones/manifest.h"

struct zones_json {
    struct json_object *root;
    struct zones_arena arena;
    const struct zones_dom_node *tree;
};

static struct zones_dom_node *new_node(struct zones_json *doc, enum zones_dom_kind kind)
{
    struct zones_dom_node *node = zones_arena_alloc(&doc->arena, sizeof(*node));
    memset(node, 0, sizeof(*node));
    node->kind = kind;
    node->weight = 1;
    return node;
}

static struct zones_dom_node *scalar(struct zones_json *doc, const char *text, size_t len,
                                     bool plain)
{
    struct zones_dom_node *node = new_node(doc, ZONES_DOM_SCALAR);
    node->text = (char *)text; /* read only: the tree is handed out as const */
    node->len = len;
    node->plain = plain;
    return node;
}

static void append(struct zones_dom_node *parent, struct zones_dom_node *child)
{
    if (parent->last != NULL)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
    parent->weight += child->weight;
}

/* NOLINTNEXTLINE(misc-no-recursion): json-c stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *convert(struct zones_json *doc, struct json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_object: {
        struct zones_dom_node *map = new_node(doc, ZONES_DOM_MAP);
        json_object_object_foreach(obj, key, value)
        {
            append(map, scalar(doc, key, strlen(key), false));
            append(map, convert(doc, value));
        }
        return map;
    }
    case json_type_array: {
        struct zones_dom_node *seq = new_node(doc, ZONES_DOM_SEQ);
        size_t n = json_object_array_length(obj);
        for (size_t i = 0; i < n; i++)
            append(seq, convert(doc, json_object_array_get_idx(obj, i)));
        return seq;
    }
    case json_type_string:
        return scalar(doc, json_object_get_string(obj), (size_t)json_object_get_string_len(obj),
                      false);
    case json_type_null:
        return scalar(doc, "null", 4, true);
    default: { /* a number or a boolean, as its JSON text */
        const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
        return scalar(doc, text, strlen(text), true);
    }
    }
}

int zones_json_parse(struct zones_json **out, const char *text, size_t len, char *err,
                     size_t err_cap)
{
    *out = NULL;
    struct json_tokener *tok = json_tokener_new_ex(ZONES_MANIFEST_MAX_DEPTH);
    if (tok == NULL)
        abort(); /* zones/objects.h: out of memory while loading aborts */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *root = NULL;
    enum json_tokener_error rc = json_tokener_success;
    if (len > (size_t)INT32_MAX - 1) {
        snprintf(err, err_cap, "a JSON text of %zu bytes is too large", len);
        json_tokener_free(tok);
        return -1;
    }
    root = json_tokener_parse_ex(tok, text, (int)len);
    rc = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    if (rc == json_tokener_continue)
        snprintf(err, err_cap, "the JSON text ends early, after %zu bytes", len);
    else if (rc != json_tokener_success)
        snprintf(err, err_cap, "invalid JSON at byte %zu: %s", used, json_tokener_error_desc(rc));
    json_tokener_free(tok);
    if (rc == json_tokener_success) {
        while (used < len && (text[used] == ' ' || text[used] == '\n' || text[used] == '\r' ||
                              text[used] == '\t'))
            used++;
        if (used < len) {
            snprintf(err, err_cap, "more than one JSON value: something follows at byte %zu", used);
            rc = json_tokener_error_parse_unexpected;
        }
    }
    if (rc != json_tokener_success) {
        json_object_put(root);
        return -1;
    }
    struct zones_json *doc = zones_xcalloc(1, sizeof(*doc));
    doc->root = root;
    doc->tree = convert(doc, root);
    *out = doc;
    return 0;
}

const struct zones_dom_node *zones_json_root(const struct zones_json *doc)
{
    return doc->tree;
}

void zones_json_free(struct zones_json *doc)
{
    if (doc == NULL)
        return;
    zones_arena_free(&doc->arena);
    json_object_put(doc->root);
    free(doc);
}

const char *zones_json_string(const struct zones_dom_node *node, const char *path)
{
    char key[128];
    for (const char *p = path; node != NULL && *p != '\0';) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key) || node->kind != ZONES_DOM_MAP)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        node = zones_dom_lookup(node, key).value;
        p += n + (p[n] == '.');
    }
    if (node == NULL || node->kind != ZONES_DOM_SCALAR || node->plain)
        return NULL;
    return node->text;
}
