/* zones/manifest.c - Kubernetes manifests (YAML or JSON) into zones_objects.
 *
 * Three stages. The buffer is cut into documents at every line that starts with "---" (where
 * libyaml would start a new document anyway), and each piece gets a fresh libyaml parser, so
 * a syntax error costs only its own document. libyaml's events build a small DOM per document
 * in an arena: aliases point at their anchored node instead of copying it, and every node
 * knows how many nodes it stands for once aliases are expanded, which is how the limits in
 * manifest.h stop a "billion laughs" before it costs memory or time. Finally the objects are
 * read from the DOM; a document that produced any error is rolled back whole.
 *
 * Kubernetes' own validation is the yardstick: what the API server rejects is an error here,
 * with the position of the offending node and what to write instead. */
#include "zones/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "dns/log.h"

#define SHOW_CAP 200 /* a value quoted in a message */
#define FIELD_CAP 96 /* a field path in a message, e.g. "endpoints[3].addresses[0]" */
#define MAX_DIR_DEPTH 32
#define MAX_LIST_DEPTH 8

/* ---- allocation: failure aborts (see objects.h) ---- */

static void *xmalloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        log_error("zones", "msg=\"out of memory\" bytes=%zu", size);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    if (p == NULL) {
        log_error("zones", "msg=\"out of memory\" bytes=%zu", n * size);
        abort();
    }
    return p;
}

/* ---- the DOM ---- */

enum node_kind { NODE_SCALAR, NODE_MAP, NODE_SEQ, NODE_ALIAS };

/* A file may hold millions of these, so the kinds share their payload. */
struct node {
    struct node *next; /* the next sibling */
    uint64_t weight;   /* the nodes it stands for once aliases are expanded */
    union {
        struct {        /* NODE_SCALAR */
            char *text; /* NUL-terminated; may also hold a NUL (len tells) */
            size_t len;
        };
        struct {                       /* NODE_MAP, NODE_SEQ */
            struct node *first, *last; /* key, value, key, value... or the items */
            size_t n;
        };
        struct node *target; /* NODE_ALIAS: the anchored node */
    };
    unsigned line; /* 1-based, in the whole file */
    unsigned col;  /* 1-based */
    enum node_kind kind;
    bool plain; /* an unquoted scalar: may mean null, a number or a boolean */
    bool open;  /* a mapping or sequence whose end is still to come */
};

struct anchor {
    const char *name;
    struct node *node;
};

/* Anchors of one document: open addressing, grown at half load; a redefinition wins. */
struct anchors {
    struct anchor *slots;
    size_t cap;
    size_t n;
};

static struct anchor *anchors_slot(const struct anchors *table, const char *name)
{
    size_t i = (size_t)zones_fnv1a(ZONES_FNV_OFFSET_BASIS, name, strlen(name)) & (table->cap - 1);
    while (table->slots[i].name != NULL && strcmp(table->slots[i].name, name) != 0)
        i = (i + 1) & (table->cap - 1);
    return &table->slots[i];
}

static void anchors_put(struct anchors *table, const char *name, struct node *node)
{
    if (2 * (table->n + 1) > table->cap) {
        struct anchors bigger = {.cap = table->cap == 0 ? 16 : table->cap * 2, .n = 0};
        bigger.slots = xcalloc(bigger.cap, sizeof(bigger.slots[0]));
        for (size_t i = 0; i < table->cap; i++) {
            if (table->slots[i].name != NULL)
                *anchors_slot(&bigger, table->slots[i].name) = table->slots[i];
        }
        bigger.n = table->n;
        free(table->slots);
        *table = bigger;
    }
    struct anchor *slot = anchors_slot(table, name);
    if (slot->name == NULL)
        table->n++;
    slot->name = name;
    slot->node = node;
}

static struct node *anchors_get(const struct anchors *table, const char *name)
{
    if (table->cap == 0)
        return NULL;
    return anchors_slot(table, name)->node;
}

/* ---- the loader ---- */

struct loader {
    struct zones_objects *objs;
    const char *file;         /* interned */
    size_t n_errors;          /* errors reported for this file */
    uint64_t n_nodes;         /* nodes in this file so far, aliases expanded */
    uint64_t n_aliases;       /* alias uses in this file so far */
    bool stop;                /* a limit was hit: load nothing more from this file */
    unsigned lists;           /* Lists inside Lists being read, bounded against recursion */
    unsigned line_base;       /* lines before the piece being parsed */
    struct zones_arena arena; /* the document being built */
    struct anchors anchors;
    struct node *stack[ZONES_MANIFEST_MAX_DEPTH];
    size_t depth;
    struct node *root;
};

static void __attribute__((format(printf, 4, 0)))
vfail(struct loader *ld, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    if (ld->n_errors >= ZONES_MANIFEST_MAX_ERRORS)
        return;
    char message[1024];
    /* clang-analyzer 14 misreads ap when it inlines a variadic caller: a false positive. */
    vsnprintf(message, sizeof(message), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    struct zones_where where = {.file = ld->file, .line = line, .col = col};
    zones_objects_error(ld->objs, &where, "%s", message);
    if (++ld->n_errors == ZONES_MANIFEST_MAX_ERRORS) {
        zones_objects_error(ld->objs, &where,
                            "too many errors (%d) in this file; the rest of it is not loaded: "
                            "fix the errors above first",
                            ZONES_MANIFEST_MAX_ERRORS);
        ld->stop = true;
    }
}

static void __attribute__((format(printf, 4, 5)))
fail(struct loader *ld, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ld, line, col, fmt, ap);
    va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
fail_at(struct loader *ld, const struct node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ld, at->line, at->col, fmt, ap);
    va_end(ap);
}

static struct zones_where where_of(const struct loader *ld, const struct node *node)
{
    struct zones_where where = {.file = ld->file, .line = node->line, .col = node->col};
    return where;
}

static void document_reset(struct loader *ld)
{
    zones_arena_free(&ld->arena);
    free(ld->anchors.slots);
    memset(&ld->anchors, 0, sizeof(ld->anchors));
    ld->depth = 0;
    ld->root = NULL;
}

/* ---- events into the DOM ---- */

enum step { STEP_MORE, STEP_DOCUMENT_END, STEP_STREAM_END, STEP_ERROR };

static struct node *new_node(struct loader *ld, enum node_kind kind, const yaml_mark_t *mark)
{
    struct node *node = zones_arena_alloc(&ld->arena, sizeof(*node));
    memset(node, 0, sizeof(*node));
    node->kind = kind;
    node->line = ld->line_base + (unsigned)mark->line + 1;
    node->col = (unsigned)mark->column + 1;
    node->weight = 1;
    return node;
}

/* Counts weight nodes against the file's limit; false when the limit is hit. */
static bool count_nodes(struct loader *ld, const struct node *at, uint64_t weight)
{
    ld->n_nodes += weight;
    if (ld->n_nodes <= ZONES_MANIFEST_MAX_NODES)
        return true;
    if (ld->n_aliases > 0)
        fail_at(ld, at,
                "more than %d nodes once aliases are expanded (a YAML bomb?); the rest "
                "of the file is not loaded: split it into smaller files or use fewer aliases",
                ZONES_MANIFEST_MAX_NODES);
    else
        fail_at(ld, at,
                "more than %d nodes in this file; the rest of it is not loaded: split "
                "it into smaller files",
                ZONES_MANIFEST_MAX_NODES);
    ld->stop = true;
    return false;
}

/* Links a node under the innermost open collection, or makes it the document's root. A
 * finished node's weight is added to its parent; collections add theirs when they close. */
static void attach(struct loader *ld, struct node *node)
{
    if (ld->depth == 0) {
        ld->root = node;
        return;
    }
    struct node *parent = ld->stack[ld->depth - 1];
    if (parent->last != NULL)
        parent->last->next = node;
    else
        parent->first = node;
    parent->last = node;
    parent->n++;
    if (!node->open)
        parent->weight += node->weight;
}

static void set_anchor(struct loader *ld, const yaml_char_t *anchor, struct node *node)
{
    if (anchor == NULL)
        return;
    size_t len = strlen((const char *)anchor);
    char *name = zones_arena_alloc(&ld->arena, len + 1);
    memcpy(name, anchor, len + 1);
    anchors_put(&ld->anchors, name, node);
}

static enum step add_scalar(struct loader *ld, const yaml_event_t *ev)
{
    struct node *node = new_node(ld, NODE_SCALAR, &ev->start_mark);
    if (!count_nodes(ld, node, 1))
        return STEP_ERROR;
    node->len = ev->data.scalar.length;
    node->text = zones_arena_alloc(&ld->arena, node->len + 1);
    memcpy(node->text, ev->data.scalar.value, node->len);
    node->text[node->len] = '\0';
    node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    set_anchor(ld, ev->data.scalar.anchor, node);
    attach(ld, node);
    return STEP_MORE;
}

static enum step add_alias(struct loader *ld, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct node *node = new_node(ld, NODE_ALIAS, &ev->start_mark);
    node->target = anchors_get(&ld->anchors, name);
    if (node->target == NULL) {
        fail_at(ld, node,
                "alias *%s has no anchor &%s before it in this document; define the "
                "anchor first",
                name, name);
        return STEP_ERROR;
    }
    if (node->target->open) {
        fail_at(ld, node,
                "alias *%s is inside the node it refers to; an alias cannot refer to "
                "its own parent",
                name);
        return STEP_ERROR;
    }
    if (++ld->n_aliases > ZONES_MANIFEST_MAX_ALIASES) {
        fail_at(ld, node,
                "more than %d aliases in this file (a YAML bomb?); the rest of the "
                "file is not loaded: write the values out or split the file",
                ZONES_MANIFEST_MAX_ALIASES);
        ld->stop = true;
        return STEP_ERROR;
    }
    node->weight = node->target->weight;
    if (!count_nodes(ld, node, node->weight))
        return STEP_ERROR;
    attach(ld, node);
    return STEP_MORE;
}

static enum step open_collection(struct loader *ld, enum node_kind kind, const yaml_event_t *ev,
                                 const yaml_char_t *anchor)
{
    struct node *node = new_node(ld, kind, &ev->start_mark);
    if (ld->depth == ZONES_MANIFEST_MAX_DEPTH) {
        fail_at(ld, node,
                "nesting deeper than %d mappings and lists; Kubernetes objects need "
                "far fewer (look for unclosed brackets)",
                ZONES_MANIFEST_MAX_DEPTH);
        return STEP_ERROR;
    }
    if (!count_nodes(ld, node, 1))
        return STEP_ERROR;
    node->open = true;
    set_anchor(ld, anchor, node);
    attach(ld, node);
    ld->stack[ld->depth++] = node;
    return STEP_MORE;
}

static enum step close_collection(struct loader *ld)
{
    struct node *node = ld->stack[--ld->depth];
    node->open = false;
    if (ld->depth > 0)
        ld->stack[ld->depth - 1]->weight += node->weight;
    return STEP_MORE;
}

static enum step on_event(struct loader *ld, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        document_reset(ld);
        return STEP_MORE;
    case YAML_DOCUMENT_END_EVENT:
        return STEP_DOCUMENT_END;
    case YAML_STREAM_END_EVENT:
        return STEP_STREAM_END;
    case YAML_SCALAR_EVENT:
        return add_scalar(ld, ev);
    case YAML_ALIAS_EVENT:
        return add_alias(ld, ev);
    case YAML_SEQUENCE_START_EVENT:
        return open_collection(ld, NODE_SEQ, ev, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return open_collection(ld, NODE_MAP, ev, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(ld);
    default:
        return STEP_MORE;
    }
}

/* ---- reading the DOM ---- */

static const struct node *deref(const struct node *node)
{
    return node != NULL && node->kind == NODE_ALIAS ? node->target : node;
}

static bool is_null(const struct node *node)
{
    if (node == NULL)
        return true;
    if (node->kind != NODE_SCALAR || !node->plain)
        return false;
    return node->len == 0 || strcmp(node->text, "~") == 0 || strcmp(node->text, "null") == 0 ||
           strcmp(node->text, "Null") == 0 || strcmp(node->text, "NULL") == 0;
}

static const char *kind_name(const struct node *node)
{
    switch (node->kind) {
    case NODE_MAP:
        return "a mapping";
    case NODE_SEQ:
        return "a list";
    default:
        return "a string";
    }
}

/* A value for a message: quoted, non-printable bytes escaped, cut after 64 characters. */
static const char *show(const struct node *node, char *out, size_t cap)
{
    if (node->kind != NODE_SCALAR) {
        snprintf(out, cap, "%s", kind_name(node));
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < node->len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)node->text[i];
        if (i == 64) {
            o += (size_t)snprintf(out + o, cap - o, "...");
            break;
        }
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* A path cut to FIELD_CAP ends in "..."; the position in the diag still points the way. */
static const char *mark_cut(char *out, int n)
{
    if (n < 0 || n >= FIELD_CAP)
        memcpy(out + FIELD_CAP - 4, "...", 4);
    return out;
}

/* "spec" + "ports" -> "spec.ports"; "" + "kind" -> "kind". */
static const char *join(char *out, const char *path, const char *key)
{
    return mark_cut(out, snprintf(out, FIELD_CAP, "%s%s%s", path, path[0] != '\0' ? "." : "", key));
}

static const char *item(char *out, const char *path, size_t index)
{
    return mark_cut(out, snprintf(out, FIELD_CAP, "%s[%zu]", path, index));
}

struct pair {
    const struct node *key;   /* NULL when absent */
    const struct node *value; /* aliases resolved */
    const struct node *again; /* the key's second appearance, if any */
};

static struct pair lookup(const struct node *map, const char *key)
{
    struct pair pair = {NULL, NULL, NULL};
    size_t key_len = strlen(key);
    for (const struct node *k = map->first; k != NULL && k->next != NULL; k = k->next->next) {
        const struct node *name = deref(k);
        if (name->kind != NODE_SCALAR || name->len != key_len || strcmp(name->text, key) != 0)
            continue;
        if (pair.key != NULL) {
            pair.again = name;
            break;
        }
        pair.key = name;
        pair.value = deref(k->next);
    }
    return pair;
}

/* Whether key is there with a value that is not null; reports nothing. */
static bool has(const struct node *map, const char *key)
{
    return !is_null(lookup(map, key).value);
}

/* The value of key in map (aliases resolved), or NULL when absent or null. The API server
 * rejects a key given twice, so a second one is an error here too. Call it once per key. */
static const struct node *find(struct loader *ld, const struct node *map, const char *path,
                               const char *key)
{
    struct pair pair = lookup(map, key);
    if (pair.again != NULL) {
        char field[FIELD_CAP];
        fail_at(ld, pair.again, "%s is given twice (first on line %u); keep one",
                join(field, path, key), pair.key->line);
    }
    return is_null(pair.value) ? NULL : pair.value;
}

static void fail_type(struct loader *ld, const struct node *at, const char *field,
                      enum node_kind want)
{
    static const char *const hints[] = {
        [NODE_SCALAR] = "write a single value",
        [NODE_MAP] = "write its fields indented below it as key: value",
        [NODE_SEQ] = "write each item on its own line starting with '- '",
    };
    struct node wanted = {.kind = want};
    fail_at(ld, at, "%s must be %s, not %s; %s", field, kind_name(&wanted), kind_name(at),
            hints[want]);
}

/* A child of the wanted kind, or NULL when absent or (after an error) of another kind. */
static const struct node *get(struct loader *ld, const struct node *map, const char *path,
                              const char *key, enum node_kind want)
{
    const struct node *value = find(ld, map, path, key);
    char field[FIELD_CAP];
    if (value == NULL || value->kind == want)
        return value;
    fail_type(ld, value, join(field, path, key), want);
    return NULL;
}

/* A scalar child without NUL bytes, which C strings would silently cut. */
static const struct node *get_scalar(struct loader *ld, const struct node *map, const char *path,
                                     const char *key)
{
    const struct node *value = get(ld, map, path, key, NODE_SCALAR);
    if (value != NULL && memchr(value->text, '\0', value->len) != NULL) {
        char field[FIELD_CAP];
        fail_at(ld, value, "%s contains a NUL character; remove the \\0", join(field, path, key));
        return NULL;
    }
    return value;
}

static bool scalar_is(const struct node *node, const char *text)
{
    return node != NULL && node->kind == NODE_SCALAR && strcmp(node->text, text) == 0;
}

/* YAML 1.1 booleans, as sigs.k8s.io/yaml reads them. */
static bool get_bool(struct loader *ld, const struct node *map, const char *path, const char *key,
                     bool absent)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                     "NO",    "off",   "Off",   "OFF"};
    const struct node *value = get_scalar(ld, map, path, key);
    if (value == NULL)
        return absent;
    for (size_t i = 0; value->plain && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(value->text, yes[i]) == 0)
            return true;
        if (strcmp(value->text, no[i]) == 0)
            return false;
    }
    char field[FIELD_CAP];
    char shown[SHOW_CAP];
    fail_at(ld, value, "%s %s is not a boolean; write true or false, without quotes",
            join(field, path, key), show(value, shown, sizeof(shown)));
    return absent;
}

/* A port number; false when absent or wrong (and then reported). */
static bool get_port(struct loader *ld, const struct node *map, const char *path, bool required,
                     uint16_t *out)
{
    char field[FIELD_CAP];
    char shown[SHOW_CAP];
    const struct node *value = get_scalar(ld, map, path, "port");
    join(field, path, "port");
    if (value == NULL) {
        if (required && !has(map, "port"))
            fail_at(ld, map, "%s is missing; give the port number, from 1 to 65535", field);
        return false;
    }
    if (!value->plain) {
        fail_at(ld, value, "%s %s is a string; write the port number without quotes", field,
                show(value, shown, sizeof(shown)));
        return false;
    }
    unsigned long port = 0;
    size_t i = 0;
    for (; i < value->len && value->text[i] >= '0' && value->text[i] <= '9' && port <= 65535; i++)
        port = port * 10 + (unsigned long)(value->text[i] - '0');
    if (i == 0 || i != value->len || port < 1 || port > 65535) {
        fail_at(ld, value, "%s %s is not a port number; use a number from 1 to 65535", field,
                show(value, shown, sizeof(shown)));
        return false;
    }
    *out = (uint16_t)port;
    return true;
}

/* ---- names ---- */

enum name_rule {
    DNS1123_LABEL,     /* namespaces, hostnames, subdomains, port names */
    DNS1035_LABEL,     /* Service names: a DNS-1123 label that starts with a letter */
    DNS1123_SUBDOMAIN, /* Pod, EndpointSlice and Endpoints names, ExternalName targets */
};

static bool is_label(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static bool is_subdomain(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (const char *end = s + len; s <= end;) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *stop = dot != NULL ? dot : end;
        if (!is_label(s, (size_t)(stop - s)))
            return false;
        s = stop + 1;
    }
    return true;
}

static bool name_fits(const struct node *name, enum name_rule rule)
{
    switch (rule) {
    case DNS1035_LABEL:
        return is_label(name->text, name->len) && name->text[0] >= 'a' && name->text[0] <= 'z';
    case DNS1123_SUBDOMAIN:
        return is_subdomain(name->text, name->len);
    default:
        return is_label(name->text, name->len);
    }
}

static bool check_name(struct loader *ld, const struct node *name, const char *field,
                       enum name_rule rule)
{
    static const char *const rules[] = {
        [DNS1123_LABEL] = "is not a DNS label; use lower-case letters, digits and '-', at most "
                          "63 characters, starting and ending with a letter or digit",
        [DNS1035_LABEL] = "is not a DNS label; use lower-case letters, digits and '-', at most "
                          "63 characters, starting with a letter and ending with a letter or "
                          "digit",
        [DNS1123_SUBDOMAIN] = "is not a DNS name; use lower-case letters, digits, '-' and '.', "
                              "at most 253 characters, each dot-separated part starting and "
                              "ending with a letter or digit",
    };
    if (name_fits(name, rule))
        return true;
    char shown[SHOW_CAP];
    fail_at(ld, name, "%s %s %s", field, show(name, shown, sizeof(shown)), rules[rule]);
    return false;
}

/* A checked name as an owned string, or NULL when absent or wrong. */
static char *get_name(struct loader *ld, const struct node *map, const char *path, const char *key,
                      enum name_rule rule)
{
    char field[FIELD_CAP];
    const struct node *name = get_scalar(ld, map, path, key);
    if (name == NULL || !check_name(ld, name, join(field, path, key), rule))
        return NULL;
    return zones_objects_strndup(ld->objs, name->text, name->len);
}

/* ---- shared object parts ---- */

static bool parse_ip(struct loader *ld, const struct node *node, const char *field,
                     const char *hint, struct zones_ip *out)
{
    if (node->kind != NODE_SCALAR) {
        fail_type(ld, node, field, NODE_SCALAR);
        return false;
    }
    if (memchr(node->text, '\0', node->len) == NULL && zones_ip_parse(node->text, out) == 0)
        return true;
    char shown[SHOW_CAP];
    fail_at(ld, node, "%s %s is not an IP address; write an IPv4 or IPv6 address%s", field,
            show(node, shown, sizeof(shown)), hint);
    return false;
}

struct meta {
    const struct node *node;   /* metadata */
    const struct node *name;   /* NULL when missing or not a string */
    const struct node *labels; /* NULL when absent */
    char *ns;                  /* owned; "default" when absent */
    struct zones_where where;  /* the name, else metadata, else the object */
};

static void read_meta(struct loader *ld, const struct node *obj, const char *kind,
                      enum name_rule rule, struct meta *meta)
{
    memset(meta, 0, sizeof(*meta));
    meta->where = where_of(ld, obj);
    meta->node = get(ld, obj, "", "metadata", NODE_MAP);
    if (meta->node == NULL) {
        if (!has(obj, "metadata"))
            fail_at(ld, obj, "metadata is missing; every %s needs metadata with a name", kind);
        return;
    }
    meta->where = where_of(ld, meta->node);
    meta->name = get_scalar(ld, meta->node, "metadata", "name");
    if (meta->name != NULL) {
        meta->where = where_of(ld, meta->name);
        if (!check_name(ld, meta->name, "metadata.name", rule))
            meta->name = NULL;
    } else if (!has(meta->node, "name")) {
        fail_at(ld, meta->node, "metadata.name is missing; every %s needs a name", kind);
    }
    if (has(meta->node, "namespace"))
        meta->ns = get_name(ld, meta->node, "metadata", "namespace", DNS1123_LABEL);
    else
        meta->ns = zones_objects_strndup(ld->objs, "default", 7);
    meta->labels = get(ld, meta->node, "metadata", "labels", NODE_MAP);
}

static char *meta_name(struct loader *ld, const struct meta *meta)
{
    return meta->name != NULL ? zones_objects_strndup(ld->objs, meta->name->text, meta->name->len)
                              : NULL;
}

/* A mapping of strings (labels, a selector). Values that are not strings are reported. */
static size_t read_labels(struct loader *ld, const struct node *map, const char *path,
                          struct zones_label **out)
{
    *out = NULL;
    if (map == NULL || map->n < 2)
        return 0;
    struct zones_label *labels = zones_objects_alloc(ld->objs, map->n / 2 * sizeof(labels[0]));
    size_t n = 0;
    for (const struct node *k = map->first; k != NULL && k->next != NULL; k = k->next->next) {
        const struct node *key = deref(k);
        const struct node *value = deref(k->next);
        char field[FIELD_CAP];
        if (key->kind != NODE_SCALAR || memchr(key->text, '\0', key->len) != NULL) {
            fail_at(ld, key, "%s has a key that is not a string; write key: value", path);
            continue;
        }
        join(field, path, key->text);
        if (value->kind != NODE_SCALAR || memchr(value->text, '\0', value->len) != NULL) {
            fail_type(ld, value, field, NODE_SCALAR);
            continue;
        }
        labels[n].key = zones_objects_strndup(ld->objs, key->text, key->len);
        labels[n].value = is_null(value) ? zones_objects_strndup(ld->objs, "", 0)
                                         : zones_objects_strndup(ld->objs, value->text, value->len);
        n++;
    }
    *out = labels;
    return n;
}

static char *read_protocol(struct loader *ld, const struct node *port, const char *path)
{
    char field[FIELD_CAP];
    char shown[SHOW_CAP];
    const struct node *value = get_scalar(ld, port, path, "protocol");
    if (value == NULL || scalar_is(value, "TCP"))
        return zones_objects_strndup(ld->objs, "tcp", 3);
    if (scalar_is(value, "UDP"))
        return zones_objects_strndup(ld->objs, "udp", 3);
    if (scalar_is(value, "SCTP"))
        return zones_objects_strndup(ld->objs, "sctp", 4);
    fail_at(ld, value, "%s %s is not TCP, UDP or SCTP; write one of those, in upper case",
            join(field, path, "protocol"), show(value, shown, sizeof(shown)));
    return NULL;
}

struct port_name {
    const struct node *node;
    size_t index;
};

static int compare_port_names(const void *a, const void *b)
{
    const struct port_name *x = a;
    const struct port_name *y = b;
    int c = strcmp(x->node->text, y->node->text);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* As the API server: with several ports each needs a name, and names are unique. Sorting
 * keeps this fast for a fuzzer's Service with a hundred thousand ports. */
static void check_port_names(struct loader *ld, const struct node *list, const char *path)
{
    struct port_name *names = xcalloc(list->n, sizeof(names[0]));
    size_t n = 0;
    size_t index = 0;
    char field[FIELD_CAP];
    for (const struct node *p = list->first; p != NULL; p = p->next, index++) {
        const struct node *port = deref(p);
        const struct node *name = port->kind == NODE_MAP ? lookup(port, "name").value : NULL;
        if (!is_null(name) && name->kind == NODE_SCALAR)
            names[n++] = (struct port_name){.node = name, .index = index};
        else if (is_null(name) && port->kind == NODE_MAP && list->n > 1)
            fail_at(ld, port, "%s has no name; when a Service has several ports, name each one",
                    item(field, path, index));
    }
    qsort(names, n, sizeof(names[0]), compare_port_names);
    for (size_t i = 1; i < n; i++) {
        char shown[SHOW_CAP];
        if (strcmp(names[i - 1].node->text, names[i].node->text) == 0)
            fail_at(ld, names[i].node,
                    "%s.name %s is used by an earlier port too; give each "
                    "port its own name",
                    item(field, path, names[i].index), show(names[i].node, shown, sizeof(shown)));
    }
    free(names);
}

/* ports[] of a Service, an EndpointSlice or an Endpoints subset. An EndpointSlice port with
 * no number means "all ports" and gives no SRV record, so it is left out. */
static size_t read_ports(struct loader *ld, const struct node *list, const char *path,
                         bool port_required, struct zones_port **out)
{
    char field[FIELD_CAP];
    *out = NULL;
    if (list == NULL || list->n == 0)
        return 0;
    struct zones_port *ports = zones_objects_alloc(ld->objs, list->n * sizeof(ports[0]));
    size_t n = 0;
    size_t index = 0;
    for (const struct node *p = list->first; p != NULL; p = p->next, index++) {
        const struct node *port = deref(p);
        item(field, path, index);
        if (port->kind != NODE_MAP) {
            fail_type(ld, port, field, NODE_MAP);
            continue;
        }
        struct zones_port *dst = &ports[n];
        dst->name = get_name(ld, port, field, "name", DNS1123_LABEL);
        dst->protocol = read_protocol(ld, port, field);
        if (get_port(ld, port, field, port_required, &dst->port) && dst->protocol != NULL) {
            n++;
            continue;
        }
        memset(dst, 0, sizeof(*dst)); /* the slot is reused; its strings stay in the arena */
    }
    *out = ports;
    return n;
}

/* ---- Service ---- */

static enum zones_service_kind read_service_type(struct loader *ld, const struct node *spec)
{
    const struct node *type = get_scalar(ld, spec, "spec", "type");
    if (type == NULL || scalar_is(type, "ClusterIP") || scalar_is(type, "NodePort") ||
        scalar_is(type, "LoadBalancer"))
        return ZONES_SVC_CLUSTER_IP;
    if (scalar_is(type, "ExternalName"))
        return ZONES_SVC_EXTERNAL_NAME;
    char shown[SHOW_CAP];
    fail_at(ld, type,
            "spec.type %s is not ClusterIP, NodePort, LoadBalancer or ExternalName; "
            "use one of those",
            show(type, shown, sizeof(shown)));
    return ZONES_SVC_CLUSTER_IP;
}

static char *read_external_name(struct loader *ld, const struct node *spec)
{
    const struct node *value = get_scalar(ld, spec, "spec", "externalName");
    if (value == NULL) {
        if (!has(spec, "externalName"))
            fail_at(ld, spec,
                    "spec.externalName is missing; an ExternalName Service needs the "
                    "host name it stands for, e.g. externalName: example.com");
        return NULL;
    }
    size_t len = value->len;
    if (len > 1 && value->text[len - 1] == '.')
        len--;
    char *name = zones_objects_strndup(ld->objs, value->text, len);
    for (size_t i = 0; i < len; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    }
    struct zones_ip ip;
    char shown[SHOW_CAP];
    if (zones_ip_parse(name, &ip) == 0)
        fail_at(ld, value,
                "spec.externalName %s is an IP address; ExternalName needs a host "
                "name (for an IP, use a Service without selector and an EndpointSlice)",
                show(value, shown, sizeof(shown)));
    else if (!is_subdomain(name, len))
        fail_at(ld, value,
                "spec.externalName %s is not a DNS name; use letters, digits, '-' "
                "and '.', at most 253 characters, each dot-separated part at most 63",
                show(value, shown, sizeof(shown)));
    else
        return name;
    return NULL;
}

#define HEADLESS_HINT ", or None for a headless Service"

/* spec.clusterIPs: None alone, or at most one address of each family. */
static void read_cluster_ip_list(struct loader *ld, const struct node *list,
                                 struct zones_service *svc)
{
    char field[FIELD_CAP];
    size_t index = 0;
    if (list->n == 1 && scalar_is(deref(list->first), "None")) {
        svc->kind = ZONES_SVC_HEADLESS;
        return;
    }
    if (list->n > 2) {
        fail_at(ld, list,
                "spec.clusterIPs has %zu entries; list at most one IPv4 and one IPv6 "
                "address",
                list->n);
        return;
    }
    svc->ips = zones_objects_alloc(ld->objs, list->n * sizeof(svc->ips[0]));
    for (const struct node *p = list->first; p != NULL; p = p->next, index++) {
        const struct node *entry = deref(p);
        item(field, "spec.clusterIPs", index);
        if (scalar_is(entry, "None")) {
            fail_at(ld, entry, "%s is None beside an address; None must be the only entry", field);
            continue;
        }
        if (!parse_ip(ld, entry, field, HEADLESS_HINT, &svc->ips[svc->n_ips]))
            continue;
        if (svc->n_ips == 1 && svc->ips[0].family == svc->ips[1].family) {
            fail_at(ld, entry,
                    "%s is a second IPv%u address; list at most one IPv4 and one "
                    "IPv6 address",
                    field, svc->ips[1].family);
            continue;
        }
        svc->n_ips++;
    }
}

/* Equal text ("None"), or the same address written differently ("fd00::a", "FD00:0::A"). */
static bool same_address(const struct node *a, const struct node *b)
{
    struct zones_ip x;
    struct zones_ip y;
    if (strcmp(a->text, b->text) == 0)
        return true;
    return zones_ip_parse(a->text, &x) == 0 && zones_ip_parse(b->text, &y) == 0 &&
           memcmp(&x, &y, sizeof(x)) == 0;
}

/* spec.clusterIPs wins over spec.clusterIP, which must then agree with its first entry, as
 * the API server demands. "None" is headless; "" or absent asks for an assigned address. */
static void read_cluster_ips(struct loader *ld, const struct node *spec, struct zones_service *svc)
{
    const struct node *list = get(ld, spec, "spec", "clusterIPs", NODE_SEQ);
    const struct node *one = get_scalar(ld, spec, "spec", "clusterIP");
    char shown[SHOW_CAP];
    if (list != NULL && list->n > 0) {
        svc->ips_where = where_of(ld, list);
        read_cluster_ip_list(ld, list, svc);
        const struct node *first = deref(list->first);
        if (one != NULL && one->len > 0 && first->kind == NODE_SCALAR && !same_address(one, first))
            fail_at(ld, one,
                    "spec.clusterIP %s differs from spec.clusterIPs[0]; make them "
                    "equal or leave spec.clusterIP out",
                    show(one, shown, sizeof(shown)));
        return;
    }
    if (one == NULL || one->len == 0)
        return;
    svc->ips_where = where_of(ld, one);
    if (scalar_is(one, "None")) {
        svc->kind = ZONES_SVC_HEADLESS;
        return;
    }
    struct zones_ip ip;
    if (!parse_ip(ld, one, "spec.clusterIP", HEADLESS_HINT, &ip))
        return;
    svc->ips = zones_objects_alloc(ld->objs, sizeof(svc->ips[0]));
    svc->ips[0] = ip;
    svc->n_ips = 1;
}

static void read_service(struct loader *ld, const struct node *obj)
{
    struct meta meta;
    read_meta(ld, obj, "Service", DNS1035_LABEL, &meta);
    struct zones_service *svc = zones_objects_add_service(ld->objs);
    svc->name = meta_name(ld, &meta);
    svc->ns = meta.ns;
    svc->where = meta.where;
    svc->ips_where = meta.where;
    const struct node *spec = get(ld, obj, "", "spec", NODE_MAP);
    if (spec == NULL)
        return;
    svc->kind = read_service_type(ld, spec);
    if (svc->kind == ZONES_SVC_EXTERNAL_NAME)
        svc->external_name = read_external_name(ld, spec);
    else
        read_cluster_ips(ld, spec, svc);
    const struct node *ports = get(ld, spec, "spec", "ports", NODE_SEQ);
    if (ports != NULL)
        check_port_names(ld, ports, "spec.ports");
    svc->n_ports = read_ports(ld, ports, "spec.ports", true, &svc->ports);
    const struct node *selector = get(ld, spec, "spec", "selector", NODE_MAP);
    svc->n_selector = read_labels(ld, selector, "spec.selector", &svc->selector);
}

/* ---- EndpointSlice and Endpoints ---- */

static void read_slice_endpoint(struct loader *ld, const struct node *ep, const char *path,
                                struct zones_endpoint *out)
{
    char field[FIELD_CAP];
    char at[FIELD_CAP];
    const struct node *addresses = get(ld, ep, path, "addresses", NODE_SEQ);
    join(field, path, "addresses");
    if (addresses != NULL && addresses->n > 0) {
        out->ips = zones_objects_alloc(ld->objs, addresses->n * sizeof(out->ips[0]));
        size_t index = 0;
        for (const struct node *a = addresses->first; a != NULL; a = a->next, index++) {
            if (parse_ip(ld, deref(a), item(at, field, index), "", &out->ips[out->n_ips]))
                out->n_ips++;
        }
    }
    out->hostname = get_name(ld, ep, path, "hostname", DNS1123_LABEL);
    out->ready = true;
    const struct node *conditions = get(ld, ep, path, "conditions", NODE_MAP);
    if (conditions != NULL)
        out->ready = get_bool(ld, conditions, join(field, path, "conditions"), "ready", true);
}

/* The label that ties a slice to its Service, or NULL (the slice is then skipped). */
static const struct node *slice_service(struct loader *ld, const struct meta *meta)
{
    if (meta->labels == NULL)
        return NULL;
    return get_scalar(ld, meta->labels, "metadata.labels", "kubernetes.io/service-name");
}

static void read_endpointslice(struct loader *ld, const struct node *obj)
{
    struct meta meta;
    char field[FIELD_CAP];
    read_meta(ld, obj, "EndpointSlice", DNS1123_SUBDOMAIN, &meta);
    const struct node *service = slice_service(ld, &meta);
    const struct node *type = get_scalar(ld, obj, "", "addressType");
    if (type != NULL && !scalar_is(type, "IPv4") && !scalar_is(type, "IPv6") &&
        !scalar_is(type, "FQDN")) {
        char shown[SHOW_CAP];
        fail_at(ld, type, "addressType %s is not IPv4, IPv6 or FQDN; use one of those",
                show(type, shown, sizeof(shown)));
    }
    /* FQDN slices are deprecated and name no addresses; a slice with no Service is not ours. */
    if (service == NULL || scalar_is(type, "FQDN")) {
        ld->objs->n_skipped++;
        return;
    }
    struct zones_slice *slice = zones_objects_add_slice(ld->objs);
    slice->name = meta_name(ld, &meta);
    slice->ns = meta.ns;
    slice->service = zones_objects_strndup(ld->objs, service->text, service->len);
    slice->where = meta.where;
    const struct node *endpoints = get(ld, obj, "", "endpoints", NODE_SEQ);
    if (endpoints != NULL && endpoints->n > 0) {
        slice->endpoints =
            zones_objects_alloc(ld->objs, endpoints->n * sizeof(slice->endpoints[0]));
        size_t index = 0;
        for (const struct node *e = endpoints->first; e != NULL; e = e->next, index++) {
            const struct node *ep = deref(e);
            item(field, "endpoints", index);
            if (ep->kind != NODE_MAP)
                fail_type(ld, ep, field, NODE_MAP);
            else
                read_slice_endpoint(ld, ep, field, &slice->endpoints[slice->n_endpoints++]);
        }
    }
    const struct node *ports = get(ld, obj, "", "ports", NODE_SEQ);
    slice->n_ports = read_ports(ld, ports, "ports", false, &slice->ports);
}

/* addresses[] or notReadyAddresses[] of an Endpoints subset: {ip, hostname}. */
static void read_endpoint_addresses(struct loader *ld, const struct node *subset, const char *path,
                                    const char *key, bool ready, struct zones_slice *slice)
{
    char list_path[FIELD_CAP];
    char field[FIELD_CAP];
    const struct node *list = get(ld, subset, path, key, NODE_SEQ);
    join(list_path, path, key);
    size_t index = 0;
    for (const struct node *a = list != NULL ? list->first : NULL; a != NULL;
         a = a->next, index++) {
        const struct node *address = deref(a);
        item(field, list_path, index);
        if (address->kind != NODE_MAP) {
            fail_type(ld, address, field, NODE_MAP);
            continue;
        }
        struct zones_endpoint *ep = &slice->endpoints[slice->n_endpoints];
        const struct node *ip = get_scalar(ld, address, field, "ip");
        struct zones_ip parsed;
        char ip_field[FIELD_CAP];
        if (ip == NULL) {
            if (!has(address, "ip"))
                fail_at(ld, address, "%s.ip is missing; give the endpoint's address", field);
            continue;
        }
        if (!parse_ip(ld, ip, join(ip_field, field, "ip"), "", &parsed))
            continue;
        ep->ips = zones_objects_alloc(ld->objs, sizeof(ep->ips[0]));
        ep->ips[0] = parsed;
        ep->n_ips = 1;
        ep->hostname = get_name(ld, address, field, "hostname", DNS1123_LABEL);
        ep->ready = ready;
        slice->n_endpoints++;
    }
}

static size_t count_items(const struct node *map, const char *key)
{
    const struct node *list = lookup(map, key).value;
    return list != NULL && list->kind == NODE_SEQ ? list->n : 0;
}

/* A v1 Endpoints object becomes one zones_slice per subset. */
static void read_endpoints(struct loader *ld, const struct node *obj)
{
    struct meta meta;
    char path[FIELD_CAP];
    read_meta(ld, obj, "Endpoints", DNS1123_SUBDOMAIN, &meta);
    const struct node *subsets = get(ld, obj, "", "subsets", NODE_SEQ);
    size_t index = 0;
    for (const struct node *s = subsets != NULL ? subsets->first : NULL; s != NULL;
         s = s->next, index++) {
        const struct node *subset = deref(s);
        item(path, "subsets", index);
        if (subset->kind != NODE_MAP) {
            fail_type(ld, subset, path, NODE_MAP);
            continue;
        }
        struct zones_slice *slice = zones_objects_add_slice(ld->objs);
        slice->name = meta_name(ld, &meta);
        slice->ns = meta.ns; /* in the arena: every subset's slice may share it */
        slice->service = meta_name(ld, &meta);
        slice->where = meta.where;
        size_t n = count_items(subset, "addresses") + count_items(subset, "notReadyAddresses");
        slice->endpoints =
            n > 0 ? zones_objects_alloc(ld->objs, n * sizeof(slice->endpoints[0])) : NULL;
        read_endpoint_addresses(ld, subset, path, "addresses", true, slice);
        read_endpoint_addresses(ld, subset, path, "notReadyAddresses", false, slice);
        char ports_path[FIELD_CAP];
        const struct node *ports = get(ld, subset, path, "ports", NODE_SEQ);
        slice->n_ports =
            read_ports(ld, ports, join(ports_path, path, "ports"), true, &slice->ports);
    }
}

/* ---- Pod and Namespace ---- */

static void read_pod_ips(struct loader *ld, const struct node *status, struct zones_pod *pod)
{
    char field[FIELD_CAP];
    char ip_field[FIELD_CAP];
    const struct node *list = get(ld, status, "status", "podIPs", NODE_SEQ);
    if (list != NULL && list->n > 0) {
        pod->ips = zones_objects_alloc(ld->objs, list->n * sizeof(pod->ips[0]));
        size_t index = 0;
        for (const struct node *p = list->first; p != NULL; p = p->next, index++) {
            const struct node *entry = deref(p);
            item(field, "status.podIPs", index);
            if (entry->kind != NODE_MAP) {
                fail_type(ld, entry, field, NODE_MAP);
                continue;
            }
            const struct node *ip = get_scalar(ld, entry, field, "ip");
            if (ip != NULL &&
                parse_ip(ld, ip, join(ip_field, field, "ip"), "", &pod->ips[pod->n_ips]))
                pod->n_ips++;
        }
        return;
    }
    const struct node *ip = get_scalar(ld, status, "status", "podIP");
    if (ip == NULL || ip->len == 0)
        return;
    pod->ips = zones_objects_alloc(ld->objs, sizeof(pod->ips[0]));
    if (parse_ip(ld, ip, "status.podIP", "", &pod->ips[0]))
        pod->n_ips = 1;
}

/* Ready unless a Ready condition says otherwise: a Pod without conditions is served. */
static bool read_pod_ready(struct loader *ld, const struct node *status)
{
    const struct node *conditions = get(ld, status, "status", "conditions", NODE_SEQ);
    for (const struct node *c = conditions != NULL ? conditions->first : NULL; c != NULL;
         c = c->next) {
        const struct node *condition = deref(c);
        if (condition->kind != NODE_MAP)
            continue;
        if (scalar_is(get_scalar(ld, condition, "status.conditions", "type"), "Ready"))
            return scalar_is(get_scalar(ld, condition, "status.conditions", "status"), "True");
    }
    return true;
}

static void read_pod(struct loader *ld, const struct node *obj)
{
    struct meta meta;
    read_meta(ld, obj, "Pod", DNS1123_SUBDOMAIN, &meta);
    struct zones_pod *pod = zones_objects_add_pod(ld->objs);
    pod->name = meta_name(ld, &meta);
    pod->ns = meta.ns;
    pod->where = meta.where;
    pod->n_labels = read_labels(ld, meta.labels, "metadata.labels", &pod->labels);
    const struct node *spec = get(ld, obj, "", "spec", NODE_MAP);
    if (spec != NULL) {
        pod->hostname = get_name(ld, spec, "spec", "hostname", DNS1123_LABEL);
        pod->subdomain = get_name(ld, spec, "spec", "subdomain", DNS1123_LABEL);
    }
    pod->ready = true;
    const struct node *status = get(ld, obj, "", "status", NODE_MAP);
    if (status != NULL) {
        read_pod_ips(ld, status, pod);
        pod->ready = read_pod_ready(ld, status);
    }
}

static void read_namespace(struct loader *ld, const struct node *obj)
{
    struct meta meta;
    read_meta(ld, obj, "Namespace", DNS1123_LABEL, &meta); /* its meta.ns means nothing */
    struct zones_namespace *ns = zones_objects_add_namespace(ld->objs);
    ns->name = meta_name(ld, &meta);
    ns->where = meta.where;
}

/* ---- objects and documents ---- */

static void read_object(struct loader *ld, const struct node *obj);

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* kind: List and every *List (ServiceList, PodList, ...) as kubectl prints them. */
/* NOLINTNEXTLINE(misc-no-recursion): Lists nest at most MAX_LIST_DEPTH deep. */
static void read_list(struct loader *ld, const struct node *obj)
{
    /* Aliases could nest Lists as deep as the alias limit allows; kubectl never nests them. */
    if (ld->lists == MAX_LIST_DEPTH) {
        fail_at(ld, obj, "Lists nested more than %d deep; put the objects in one List",
                MAX_LIST_DEPTH);
        return;
    }
    const struct node *items = get(ld, obj, "", "items", NODE_SEQ);
    ld->lists++;
    for (const struct node *i = items != NULL ? items->first : NULL; i != NULL && !ld->stop;
         i = i->next) {
        if (!is_null(deref(i)))
            read_object(ld, deref(i));
    }
    ld->lists--;
}

/* NOLINTNEXTLINE(misc-no-recursion): Lists nest at most MAX_LIST_DEPTH deep. */
static void read_object(struct loader *ld, const struct node *obj)
{
    static const struct {
        const char *kind;
        void (*read)(struct loader *ld, const struct node *obj);
    } readers[] = {
        {"Service", read_service},     {"EndpointSlice", read_endpointslice},
        {"Endpoints", read_endpoints}, {"Pod", read_pod},
        {"Namespace", read_namespace},
    };
    if (obj->kind != NODE_MAP) {
        fail_at(ld, obj,
                "expected an object (a mapping with apiVersion, kind and metadata), "
                "found %s",
                kind_name(obj));
        return;
    }
    const struct node *kind = get_scalar(ld, obj, "", "kind");
    if (kind == NULL) {
        if (!has(obj, "kind"))
            fail_at(ld, obj,
                    "kind is missing; every object needs apiVersion and kind, e.g. "
                    "kind: Service");
        return;
    }
    if (ends_with(kind->text, kind->len, "List")) {
        read_list(ld, obj);
        return;
    }
    for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
        if (!scalar_is(kind, readers[i].kind))
            continue;
        if (!has(obj, "apiVersion"))
            fail_at(ld, obj, "apiVersion is missing; write it, e.g. apiVersion: %s",
                    i == 1 ? "discovery.k8s.io/v1" : "v1");
        readers[i].read(ld, obj);
        return;
    }
    ld->objs->n_skipped++;
}

/* Reads the finished document; one that produced an error is taken back whole. */
static void finish_document(struct loader *ld)
{
    const struct node *root = deref(ld->root);
    if (!is_null(root)) {
        size_t errors = ld->n_errors;
        struct zones_objects_mark mark = zones_objects_checkpoint(ld->objs);
        read_object(ld, root);
        if (ld->n_errors != errors || ld->stop)
            zones_objects_rollback(ld->objs, &mark);
    }
    document_reset(ld);
}

/* ---- syntax errors ---- */

/* Bytes of the line break at p (libyaml's: LF, CR, CR LF, NEL, LS, PS), or 0. */
static size_t line_break(const char *p, const char *end)
{
    if (*p == '\n')
        return 1;
    if (*p == '\r')
        return end - p > 1 && p[1] == '\n' ? 2 : 1;
    if (end - p > 1 && (unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0x85)
        return 2;
    if (end - p > 2 && (unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x80 &&
        ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
        return 3;
    return 0;
}

/* The 1-based line and column (in characters) of a byte offset in a piece of the file. */
static void offset_position(const char *buf, size_t len, size_t offset, unsigned *line,
                            unsigned *col)
{
    const char *end = buf + (offset < len ? offset : len);
    *line = 1;
    *col = 1;
    for (const char *p = buf; p < end;) {
        size_t br = line_break(p, buf + len);
        if (br > 0) {
            (*line)++;
            *col = 1;
            p += br;
            continue;
        }
        if (((unsigned char)*p & 0xc0) != 0x80)
            (*col)++;
        p++;
    }
    if (*col > 1 && end < buf + len && ((unsigned char)*end & 0xc0) == 0x80)
        (*col)--; /* inside a character: point at its start */
}

/* The byte at a 0-based libyaml mark, or 0 past the end. */
static char byte_at(const char *buf, size_t len, size_t line, size_t col)
{
    const char *p = buf;
    const char *end = buf + len;
    while (line > 0 && p < end) {
        size_t br = line_break(p, end);
        p += br > 0 ? br : 1;
        line -= br > 0;
    }
    for (; col > 0 && p < end; col--) {
        p++;
        while (p < end && ((unsigned char)*p & 0xc0) == 0x80)
            p++;
    }
    if (p >= end)
        return 0;
    return *p;
}

/* What to do about libyaml's most common complaints. */
static const char *syntax_hint(const char *problem, char at)
{
    static const struct {
        const char *problem;
        const char *hint;
    } hints[] = {
        {"did not find expected key", "check the indentation of this line and the ones above"},
        {"mapping values are not allowed", "quote a value that contains ': ', or fix the "
                                           "indentation"},
        {"tab", "indent with spaces; YAML does not allow tabs there"},
        {"document indicator", "a line starting with '---' or '...' ends the document; close "
                               "the quote before it or indent the line"},
        {"expected ',' or ']'", "close the list with ']' and separate its items with ','"},
        {"expected ',' or '}'", "close the mapping with '}' and separate its entries with ','"},
        {"end of stream", "close the quote or bracket that is still open"},
        {"octet", "save the file as UTF-8"},
        {"control characters", "remove the control character (a NUL byte, or a UTF-16 file: "
                               "save it as UTF-8)"},
        {"<document start>", "start each document with a line '---'"},
        {"expected '-' indicator", "check the indentation of the list items"},
        {"node content", "write a value here, or quote it"},
        {"escape", "in double quotes write a backslash as \\\\, or use single quotes"},
        {"alias", "give the alias a name, e.g. *base"},
        {"anchor", "give the anchor a name, e.g. &base"},
    };
    if (at == '\t')
        return "indent with spaces; YAML does not allow tabs there";
    if (strstr(problem, "cannot start any token") != NULL)
        return "quote the value: it starts with a character YAML reserves";
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        if (strstr(problem, hints[i].problem) != NULL)
            return hints[i].hint;
    }
    return "fix the YAML syntax here";
}

static void report_syntax(struct loader *ld, const yaml_parser_t *parser, const char *buf,
                          size_t len)
{
    const char *problem = parser->problem != NULL ? parser->problem : "unknown error";
    const char *context = parser->context != NULL ? parser->context : "";
    const yaml_mark_t *mark = &parser->problem_mark;
    unsigned line;
    unsigned col;
    if (parser->error == YAML_MEMORY_ERROR) {
        log_error("zones", "msg=\"out of memory in libyaml\"");
        abort();
    }
    /* The end of the file is no help: point at the quote or bracket left open instead. */
    if (parser->context != NULL && strstr(problem, "end of stream") != NULL)
        mark = &parser->context_mark;
    if (parser->error == YAML_READER_ERROR) {
        offset_position(buf, len, parser->problem_offset, &line, &col);
    } else {
        line = (unsigned)mark->line + 1;
        col = (unsigned)mark->column + 1;
    }
    char at = '\0';
    if (parser->error != YAML_READER_ERROR)
        at = byte_at(buf, len, mark->line, mark->column);
    const char *hint = syntax_hint(problem, at);
    const yaml_mark_t *cm = &parser->context_mark;
    if (parser->context == NULL || mark == cm ||
        (cm->line == mark->line && cm->column == mark->column))
        fail(ld, ld->line_base + line, col, "invalid YAML: %s%s%s (%s)", problem,
             context[0] != '\0' ? " " : "", context, hint);
    else
        fail(ld, ld->line_base + line, col, "invalid YAML: %s %s that starts at %u:%u (%s)",
             problem, context, ld->line_base + (unsigned)cm->line + 1, (unsigned)cm->column + 1,
             hint);
}

/* ---- pieces and files ---- */

/* Parses one piece of the file (normally one document) with its own libyaml parser. */
static void parse_piece(struct loader *ld, const char *buf, size_t len, unsigned line_base)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        log_error("zones", "msg=\"out of memory in libyaml\"");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    ld->line_base = line_base;
    document_reset(ld);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            report_syntax(ld, &parser, buf, len);
            break;
        }
        enum step step = on_event(ld, &ev);
        yaml_event_delete(&ev);
        if (step == STEP_DOCUMENT_END)
            finish_document(ld);
        if (step == STEP_ERROR || step == STEP_STREAM_END || ld->stop)
            break;
    }
    document_reset(ld);
    yaml_parser_delete(&parser);
}

static bool is_document_start(const char *p, const char *end)
{
    return end - p >= 3 && memcmp(p, "---", 3) == 0 &&
           (end - p == 3 || p[3] == ' ' || p[3] == '\t' || p[3] == '\r' || p[3] == '\n');
}

/* Cuts the buffer before every line that starts a document ("---" at column 0, which libyaml
 * treats as a document start wherever it appears) and before the %directives that precede
 * it, and parses each piece on its own. */
static void parse_pieces(struct loader *ld, const char *buf, size_t len)
{
    const char *end = buf + len;
    const char *piece = buf;
    unsigned piece_line = 0;
    const char *directives = NULL; /* the first of the %-lines just before this one */
    unsigned directives_line = 0;
    unsigned line = 0;
    for (const char *p = buf; p < end && !ld->stop; line++) {
        if (*p == '%' && directives == NULL) {
            directives = p;
            directives_line = line;
        } else if (*p != '%' && is_document_start(p, end)) {
            const char *cut = directives != NULL ? directives : p;
            unsigned cut_line = directives != NULL ? directives_line : line;
            if (cut > piece)
                parse_piece(ld, piece, (size_t)(cut - piece), piece_line);
            piece = cut;
            piece_line = cut_line;
        }
        if (*p != '%')
            directives = NULL;
        while (p < end && line_break(p, end) == 0)
            p++;
        if (p < end)
            p += line_break(p, end);
    }
    if (!ld->stop && piece < end)
        parse_piece(ld, piece, (size_t)(end - piece), piece_line);
}

size_t zones_manifest_load_buffer(struct zones_objects *objs, const char *name, const char *buf,
                                  size_t len)
{
    size_t before = objs->n_diags;
    struct loader ld;
    memset(&ld, 0, sizeof(ld));
    ld.objs = objs;
    ld.file = zones_objects_intern_file(objs, name);
    if (len > ZONES_MANIFEST_MAX_BYTES) {
        fail(&ld, 0, 0,
             "the file has %zu bytes, more than the limit of %u; split it into "
             "smaller files",
             len, ZONES_MANIFEST_MAX_BYTES);
        return objs->n_diags - before;
    }
    /* A UTF-8 byte order mark is allowed; skipping it here keeps the columns of line 1. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    parse_pieces(&ld, buf, len);
    document_reset(&ld);
    return objs->n_diags - before;
}

/* ---- files, directories and stdin ---- */

static void __attribute__((format(printf, 3, 4)))
fail_file(struct zones_objects *objs, const char *path, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    struct zones_where where = {.file = zones_objects_intern_file(objs, path), .line = 0};
    zones_objects_error(objs, &where, "%s", message);
}

/* Reads all of fd, up to one byte past the limit so an oversized stream is noticed. */
static int read_all(int fd, char **out, size_t *len)
{
    size_t cap = (size_t)64 * 1024;
    size_t used = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (used == cap) {
            if (cap > ZONES_MANIFEST_MAX_BYTES)
                break; /* one byte over the limit is enough to refuse the stream */
            cap =
                cap * 2 > ZONES_MANIFEST_MAX_BYTES ? (size_t)ZONES_MANIFEST_MAX_BYTES + 1 : cap * 2;
            char *bigger = realloc(buf, cap);
            if (bigger == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = bigger;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            free(buf);
            return err;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    *out = buf;
    *len = used;
    return 0;
}

static void load_fd(struct zones_objects *objs, const char *name, int fd)
{
    struct stat st;
    bool have_stat = fstat(fd, &st) == 0;
    if (have_stat && (int64_t)st.st_mtime > objs->newest_mtime)
        objs->newest_mtime = (int64_t)st.st_mtime; /* the SOA serial, as CoreDNS's is */
    if (have_stat && S_ISREG(st.st_mode) &&
        (unsigned long long)st.st_size > ZONES_MANIFEST_MAX_BYTES) {
        fail_file(objs, name,
                  "the file has %lld bytes, more than the limit of %u; split it "
                  "into smaller files",
                  (long long)st.st_size, ZONES_MANIFEST_MAX_BYTES);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    int err = read_all(fd, &buf, &len);
    if (err != 0) {
        fail_file(objs, name, "cannot read %s: %s; check that it is a readable file", name,
                  strerror(-err));
        return;
    }
    zones_manifest_load_buffer(objs, name, buf, len);
    free(buf);
}

static void load_file(struct zones_objects *objs, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail_file(objs, path, "cannot open %s: %s; check the path and its permissions", path,
                  strerror(errno));
        return;
    }
    load_fd(objs, path, fd);
    close(fd);
}

static bool is_manifest_name(const char *name)
{
    size_t len = strlen(name);
    return ends_with(name, len, ".yaml") || ends_with(name, len, ".yml") ||
           ends_with(name, len, ".json");
}

/* kubelet's ConfigMap volumes keep the real files under ..data and ..<timestamp>; the
 * visible names are symlinks through ..data. Skipping every dot-name reads each file once. */
static int is_visible(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

static int compare_entries(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* The directories being walked, to stop at a symlink back to one of them. */
struct dir_chain {
    dev_t dev;
    ino_t ino;
    const struct dir_chain *up;
};

/* One walk over the manifests: loading them into objs, or (objs NULL) only folding what
 * stat says of each into a signature that changes when any of them does. */
struct walker {
    struct zones_objects *objs;
    uint64_t signature;
};

static void mix_file(struct walker *w, const char *path, const struct stat *st, int err)
{
    w->signature = zones_fnv1a(w->signature, path, strlen(path) + 1);
    w->signature = zones_fnv1a(w->signature, &err, sizeof(err));
    if (st != NULL) {
        int64_t facts[] = {(int64_t)st->st_dev,          (int64_t)st->st_ino,
                           (int64_t)st->st_size,         (int64_t)st->st_mtim.tv_sec,
                           (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
                           (int64_t)st->st_ctim.tv_nsec};
        w->signature = zones_fnv1a(w->signature, facts, sizeof(facts));
    }
}

static void walk_dir(struct walker *w, const char *dir, const struct stat *st,
                     const struct dir_chain *up, unsigned depth);

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_entry(struct walker *w, const char *dir, const char *name,
                       const struct dir_chain *chain, unsigned depth)
{
    size_t dir_len = strlen(dir);
    bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
    size_t size = dir_len + strlen(name) + 2;
    char *path = xmalloc(size);
    snprintf(path, size, "%s%s%s", dir, slash ? "" : "/", name);
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        if (is_manifest_name(name) && w->objs)
            fail_file(w->objs, path, "cannot open %s: %s; check the path and its permissions", path,
                      strerror(err));
        else if (is_manifest_name(name))
            mix_file(w, path, NULL, err);
    } else if (S_ISDIR(st.st_mode)) {
        walk_dir(w, path, &st, chain, depth + 1);
    } else if (is_manifest_name(name)) {
        if (w->objs)
            load_file(w->objs, path);
        else
            mix_file(w, path, &st, 0);
    }
    free(path);
}

/* NOLINTNEXTLINE(misc-no-recursion): directories nest at most MAX_DIR_DEPTH deep. */
static void walk_dir(struct walker *w, const char *dir, const struct stat *st,
                     const struct dir_chain *up, unsigned depth)
{
    for (const struct dir_chain *c = up; c != NULL; c = c->up) {
        if (c->dev == st->st_dev && c->ino == st->st_ino)
            return; /* a symlink loop: this directory is already being read */
    }
    if (depth > MAX_DIR_DEPTH) {
        if (w->objs)
            fail_file(w->objs, dir, "directories nested more than %d deep; %s is not read",
                      MAX_DIR_DEPTH, dir);
        return;
    }
    struct dir_chain here = {.dev = st->st_dev, .ino = st->st_ino, .up = up};
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, is_visible, compare_entries);
    if (n < 0) {
        if (w->objs)
            fail_file(w->objs, dir, "cannot read the directory %s: %s; check its permissions", dir,
                      strerror(errno));
        else
            mix_file(w, dir, NULL, errno);
        return;
    }
    for (int i = 0; i < n; i++) {
        walk_entry(w, dir, entries[i]->d_name, &here, depth);
        free(entries[i]);
    }
    free(entries);
}

uint64_t zones_manifest_signature(uint64_t signature, const char *path)
{
    struct walker w = {.objs = NULL, .signature = signature};
    struct stat st;
    if (strcmp(path, "-") == 0)
        w.signature = zones_fnv1a(w.signature, path, 2);
    else if (stat(path, &st) != 0)
        mix_file(&w, path, NULL, errno);
    else if (S_ISDIR(st.st_mode))
        walk_dir(&w, path, &st, NULL, 0);
    else
        mix_file(&w, path, &st, 0);
    return w.signature;
}

size_t zones_manifest_load_path(struct zones_objects *objs, const char *path)
{
    size_t before = objs->n_diags;
    struct stat st;
    if (strcmp(path, "-") == 0)
        load_fd(objs, "-", STDIN_FILENO);
    else if (stat(path, &st) != 0)
        fail_file(objs, path, "cannot open %s: %s; check the path", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        walk_dir(&(struct walker){.objs = objs}, path, &st, NULL, 0);
    else
        load_file(objs, path);
    return objs->n_diags - before;
}
