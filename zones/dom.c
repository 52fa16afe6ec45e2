/* zones/dom.c - where a file's problems are reported, and the checked, typed reads the
 * decoder makes of a document's tree. */
#include "zones/dom.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void __attribute__((format(printf, 4, 0)))
vfail(struct zones_report *r, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    if (r->n_errors >= ZONES_DOM_MAX_ERRORS)
        return;
    char message[1024];
    /* clang-analyzer 14 misreads ap when it inlines a variadic caller: a false positive. */
    vsnprintf(message, sizeof(message), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    struct zones_where where = {.file = r->file, .line = line, .col = col};
    zones_objects_error(r->objs, &where, "%s", message);
    if (++r->n_errors == ZONES_DOM_MAX_ERRORS) {
        zones_objects_error(r->objs, &where,
                            "too many errors (%d) in this file; the rest of it is not loaded: "
                            "fix the errors above first",
                            ZONES_DOM_MAX_ERRORS);
        r->stop = true;
        r->objs->n_unread++;
    }
}

void zones_report_error(struct zones_report *r, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, line, col, fmt, ap);
    va_end(ap);
}

void zones_report_error_at(struct zones_report *r, const struct zones_dom_node *at, const char *fmt,
                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, at->line, at->col, fmt, ap);
    va_end(ap);
}

struct zones_where zones_report_where(const struct zones_report *r,
                                      const struct zones_dom_node *node)
{
    struct zones_where where = {.file = r->file, .line = node->line, .col = node->col};
    return where;
}

/* Reading. */

const struct zones_dom_node *zones_dom_deref(const struct zones_dom_node *node)
{
    return node != NULL && node->kind == ZONES_DOM_ALIAS ? node->target : node;
}

bool zones_dom_is_null(const struct zones_dom_node *node)
{
    if (node == NULL)
        return true;
    if (node->kind != ZONES_DOM_SCALAR || !node->plain)
        return false;
    switch (node->len) { /* every plain scalar read asks: by length first */
    case 0:
        return true;
    case 1:
        return node->text[0] == '~';
    case 4:
        return memcmp(node->text, "null", 4) == 0 || memcmp(node->text, "Null", 4) == 0 ||
               memcmp(node->text, "NULL", 4) == 0;
    default:
        return false;
    }
}

const char *zones_dom_kind_name(enum zones_dom_kind kind)
{
    switch (kind) {
    case ZONES_DOM_MAP:
        return "a mapping";
    case ZONES_DOM_SEQ:
        return "a list";
    default:
        return "a string";
    }
}

/* A value for a message: quoted, non-printable bytes escaped, cut after 64 characters. */
const char *zones_dom_show(const struct zones_dom_node *node, char *out, size_t cap)
{
    if (node->kind != ZONES_DOM_SCALAR) {
        snprintf(out, cap, "%s", zones_dom_kind_name(node->kind));
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

/* Field paths are built for every field read, error or not, so without printf. put() appends
 * s at o, as far as it fits; a path cut to ZONES_DOM_FIELD_CAP ends in "...", and the position
 * in the diag still points the way. */
static size_t put(char *out, size_t o, const char *s)
{
    size_t n = strlen(s);
    if (o < ZONES_DOM_FIELD_CAP - 1) {
        size_t room = ZONES_DOM_FIELD_CAP - 1 - o;
        memmove(out + o, s, n < room ? n : room);
    }
    return o + n;
}

static const char *finish(char *out, size_t len)
{
    if (len >= ZONES_DOM_FIELD_CAP)
        memcpy(out + ZONES_DOM_FIELD_CAP - 4, "...", 4);
    else
        out[len] = '\0';
    return out;
}

/* "spec" + "ports" -> "spec.ports"; "" + "kind" -> "kind". */
const char *zones_dom_join(char *out, const char *path, const char *key)
{
    size_t o = put(out, 0, path);
    if (path[0] != '\0')
        o = put(out, o, ".");
    return finish(out, put(out, o, key));
}

const char *zones_dom_item(char *out, const char *path, size_t index)
{
    char number[24];
    size_t i = sizeof(number);
    number[--i] = '\0';
    number[--i] = ']';
    do
        number[--i] = (char)('0' + index % 10);
    while ((index /= 10) != 0);
    number[--i] = '[';
    return finish(out, put(out, put(out, 0, path), number + i));
}

struct zones_dom_pair zones_dom_lookup(const struct zones_dom_node *map, const char *key)
{
    struct zones_dom_pair pair = {NULL, NULL, NULL};
    size_t key_len = strlen(key);
    for (const struct zones_dom_node *k = map->first; k != NULL && k->next != NULL;
         k = k->next->next) {
        const struct zones_dom_node *name = zones_dom_deref(k);
        if (name->kind != ZONES_DOM_SCALAR || name->len != key_len ||
            memcmp(name->text, key, key_len) != 0)
            continue;
        if (pair.key != NULL) {
            pair.again = name;
            break;
        }
        pair.key = name;
        pair.value = zones_dom_deref(k->next);
    }
    return pair;
}

/* Whether key is there with a value that is not null; reports nothing. */
bool zones_dom_has(const struct zones_dom_node *map, const char *key)
{
    return !zones_dom_is_null(zones_dom_lookup(map, key).value);
}

/* The value of key in map (aliases resolved), or NULL when absent or null. The API server
 * rejects a key given twice, so a second one is an error here too. Call it once per key. */
static const struct zones_dom_node *find(struct zones_report *r, const struct zones_dom_node *map,
                                         const char *path, const char *key)
{
    struct zones_dom_pair pair = zones_dom_lookup(map, key);
    if (pair.again != NULL) {
        char field[ZONES_DOM_FIELD_CAP];
        zones_report_error_at(r, pair.again, "%s is given twice (first on line %u); keep one",
                              zones_dom_join(field, path, key), pair.key->line);
    }
    return zones_dom_is_null(pair.value) ? NULL : pair.value;
}

void zones_dom_fail_type(struct zones_report *r, const struct zones_dom_node *at, const char *field,
                         enum zones_dom_kind want)
{
    static const char *const hints[] = {
        [ZONES_DOM_SCALAR] = "write a single value",
        [ZONES_DOM_MAP] = "write its fields indented below it as key: value",
        [ZONES_DOM_SEQ] = "write each item on its own line starting with '- '",
    };
    zones_report_error_at(r, at, "%s must be %s, not %s; %s", field, zones_dom_kind_name(want),
                          zones_dom_kind_name(at->kind), hints[want]);
}

/* A child of the wanted kind, or NULL when absent or (after an error) of another kind. */
const struct zones_dom_node *zones_dom_get(struct zones_report *r, const struct zones_dom_node *map,
                                           const char *path, const char *key,
                                           enum zones_dom_kind want)
{
    const struct zones_dom_node *value = find(r, map, path, key);
    char field[ZONES_DOM_FIELD_CAP];
    if (value == NULL || value->kind == want)
        return value;
    zones_dom_fail_type(r, value, zones_dom_join(field, path, key), want);
    return NULL;
}

/* A scalar child without NUL bytes, which C strings would silently cut. */
const struct zones_dom_node *zones_dom_get_scalar(struct zones_report *r,
                                                  const struct zones_dom_node *map,
                                                  const char *path, const char *key)
{
    const struct zones_dom_node *value = zones_dom_get(r, map, path, key, ZONES_DOM_SCALAR);
    if (value != NULL && memchr(value->text, '\0', value->len) != NULL) {
        char field[ZONES_DOM_FIELD_CAP];
        zones_report_error_at(r, value, "%s contains a NUL character; remove the \\0",
                              zones_dom_join(field, path, key));
        return NULL;
    }
    return value;
}

bool zones_dom_scalar_is(const struct zones_dom_node *node, const char *text)
{
    return node != NULL && node->kind == ZONES_DOM_SCALAR && strcmp(node->text, text) == 0;
}

/* YAML 1.1 booleans, as sigs.k8s.io/yaml reads them. */
bool zones_dom_get_bool(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                        const char *key, bool absent)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                     "NO",    "off",   "Off",   "OFF"};
    const struct zones_dom_node *value = zones_dom_get_scalar(r, map, path, key);
    if (value == NULL)
        return absent;
    for (size_t i = 0; value->plain && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(value->text, yes[i]) == 0)
            return true;
        if (strcmp(value->text, no[i]) == 0)
            return false;
    }
    char field[ZONES_DOM_FIELD_CAP];
    char shown[ZONES_DOM_SHOW_CAP];
    zones_report_error_at(r, value, "%s %s is not a boolean; write true or false, without quotes",
                          zones_dom_join(field, path, key),
                          zones_dom_show(value, shown, sizeof(shown)));
    return absent;
}

/* A port number; false when absent or wrong (and then reported). */
bool zones_dom_get_port(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                        bool required, uint16_t *out)
{
    char field[ZONES_DOM_FIELD_CAP];
    char shown[ZONES_DOM_SHOW_CAP];
    const struct zones_dom_node *value = zones_dom_get_scalar(r, map, path, "port");
    zones_dom_join(field, path, "port");
    if (value == NULL) {
        if (required && !zones_dom_has(map, "port"))
            zones_report_error_at(r, map, "%s is missing; give the port number, from 1 to 65535",
                                  field);
        return false;
    }
    if (!value->plain) {
        zones_report_error_at(r, value, "%s %s is a string; write the port number without quotes",
                              field, zones_dom_show(value, shown, sizeof(shown)));
        return false;
    }
    unsigned long port = 0;
    size_t i = 0;
    for (; i < value->len && value->text[i] >= '0' && value->text[i] <= '9' && port <= 65535; i++)
        port = port * 10 + (unsigned long)(value->text[i] - '0');
    if (i == 0 || i != value->len || port < 1 || port > 65535) {
        zones_report_error_at(r, value, "%s %s is not a port number; use a number from 1 to 65535",
                              field, zones_dom_show(value, shown, sizeof(shown)));
        return false;
    }
    *out = (uint16_t)port;
    return true;
}
