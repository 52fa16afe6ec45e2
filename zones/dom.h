/* zones/dom.h - the tree of one YAML or JSON document, and checked, typed reads of it.
 *
 * zones/yaml.c builds a tree per document (from libyaml's events, with the limits that stop
 * YAML bombs); zones/decode.c reads Kubernetes objects out of it with the getters below, which
 * report a wrong type, a duplicate key or a bad value with the node's FILE:LINE:COL and what
 * to write instead. Nodes live in an arena freed with the document. */
#ifndef ZONES_DOM_H
#define ZONES_DOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/objects.h"

#define ZONES_DOM_SHOW_CAP 200    /* a value quoted in a message */
#define ZONES_DOM_FIELD_CAP 96    /* a field path in a message, e.g. "endpoints[3].addresses[0]" */
#define ZONES_DOM_MAX_ERRORS 1000 /* errors reported for one file before the rest is dropped */

enum zones_dom_kind { ZONES_DOM_SCALAR, ZONES_DOM_MAP, ZONES_DOM_SEQ, ZONES_DOM_ALIAS };

/* A file may hold millions of these, so the kinds share their payload. */
struct zones_dom_node {
    struct zones_dom_node *next; /* the next sibling */
    uint64_t weight;             /* the nodes it stands for once aliases are expanded */
    union {
        struct {        /* ZONES_DOM_SCALAR */
            char *text; /* NUL-terminated; may also hold a NUL (len tells) */
            size_t len;
        };
        struct {                                 /* ZONES_DOM_MAP, ZONES_DOM_SEQ */
            struct zones_dom_node *first, *last; /* key, value, key, value... or the items */
            size_t n;
        };
        struct zones_dom_node *target; /* ZONES_DOM_ALIAS: the anchored node */
    };
    unsigned line; /* 1-based, in the whole file */
    unsigned col;  /* 1-based */
    enum zones_dom_kind kind;
    bool plain; /* an unquoted scalar: may mean null, a number or a boolean */
    bool open;  /* a mapping or sequence whose end is still to come */
};

/* Where one file's problems go: diags in objs, at most ZONES_DOM_MAX_ERRORS of them. */
struct zones_report {
    struct zones_objects *objs;
    const char *file; /* interned in objs */
    size_t n_errors;
    bool stop; /* a limit was hit: load nothing more from this file */
};

void zones_report_error(struct zones_report *r, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void zones_report_error_at(struct zones_report *r, const struct zones_dom_node *at, const char *fmt,
                           ...) __attribute__((format(printf, 3, 4)));
struct zones_where zones_report_where(const struct zones_report *r,
                                      const struct zones_dom_node *node);

/* Reading. Aliases are resolved by every getter. */
const struct zones_dom_node *zones_dom_deref(const struct zones_dom_node *node);
/* Absent, or a plain null: ~, null, Null, NULL or nothing. */
bool zones_dom_is_null(const struct zones_dom_node *node);
/* "a mapping", "a list", "a string". */
const char *zones_dom_kind_name(enum zones_dom_kind kind);
/* A value for a message: quoted, non-printable bytes escaped, cut after 64 characters. */
const char *zones_dom_show(const struct zones_dom_node *node, char *out, size_t cap);
/* Field paths for messages: "spec" + "ports" -> "spec.ports"; "ports" + 3 -> "ports[3]". out
 * has ZONES_DOM_FIELD_CAP bytes; a path cut short ends in "...". */
const char *zones_dom_join(char *out, const char *path, const char *key);
const char *zones_dom_item(char *out, const char *path, size_t index);

struct zones_dom_pair {
    const struct zones_dom_node *key;   /* NULL when absent */
    const struct zones_dom_node *value; /* aliases resolved */
    const struct zones_dom_node *again; /* the key's second appearance, if any */
};
/* key in map, without reporting anything. */
struct zones_dom_pair zones_dom_lookup(const struct zones_dom_node *map, const char *key);
/* Whether key is there with a value that is not null; reports nothing. */
bool zones_dom_has(const struct zones_dom_node *map, const char *key);
bool zones_dom_scalar_is(const struct zones_dom_node *node, const char *text);

/* The value of key in map when it has the wanted kind; NULL when absent, null or (after
 * reporting it) of another kind. A key given twice is reported, as the API server rejects
 * it. path is the map's field path, for messages. Call once per key. */
const struct zones_dom_node *zones_dom_get(struct zones_report *r, const struct zones_dom_node *map,
                                           const char *path, const char *key,
                                           enum zones_dom_kind want);
/* A scalar without NUL bytes, which C strings would silently cut. */
const struct zones_dom_node *zones_dom_get_scalar(struct zones_report *r,
                                                  const struct zones_dom_node *map,
                                                  const char *path, const char *key);
/* A YAML 1.1 boolean, as sigs.k8s.io/yaml reads them; absent when missing or wrong. */
bool zones_dom_get_bool(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                        const char *key, bool absent);
/* A port number (the key "port"): false when absent or wrong (then reported, and a missing
 * one too when required). */
bool zones_dom_get_port(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                        bool required, uint16_t *out);
/* Reports that the node at field is not of the wanted kind, with how to write it. */
void zones_dom_fail_type(struct zones_report *r, const struct zones_dom_node *at, const char *field,
                         enum zones_dom_kind want);

#endif
