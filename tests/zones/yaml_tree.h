/* tests/zones/yaml_tree.h - a document tree as text, every field of every node, so that two
 * parses can be compared with strcmp (tests/zones/test_yaml.c, tests/fuzz/fuzz_yaml.c). */
#ifndef TESTS_ZONES_YAML_TREE_H
#define TESTS_ZONES_YAML_TREE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zones/dom.h"
#include "zones/yaml.h"

struct yaml_tree_text {
    char *buf;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
yaml_tree_printf(struct yaml_tree_text *t, const char *fmt, ...)
{
    if (t->buf == NULL) {
        t->cap = 256;
        if ((t->buf = malloc(t->cap)) == NULL)
            abort();
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n) * 2 + 64;
        t->buf = realloc(t->buf, t->cap);
        if (t->buf == NULL)
            abort();
    }
}

/* "S3:5 w1 p 'text'" for a scalar (bytes outside printable ASCII as \xNN), "M1:1 w7 n2 {"
 * ... "}" for a mapping, "Q" for a list, "A" for an alias. */
static void yaml_tree_node(struct yaml_tree_text *t, const struct zones_dom_node *node)
{
    static const char kinds[] = {[ZONES_DOM_SCALAR] = 'S',
                                 [ZONES_DOM_MAP] = 'M',
                                 [ZONES_DOM_SEQ] = 'Q',
                                 [ZONES_DOM_ALIAS] = 'A'};
    yaml_tree_printf(t, "%c%u:%u w%llu%s", kinds[node->kind], node->line, node->col,
                     (unsigned long long)node->weight, node->open ? " open" : "");
    if (node->kind == ZONES_DOM_ALIAS) {
        yaml_tree_printf(t, " ->%u:%u\n", node->target->line, node->target->col);
        return;
    }
    if (node->kind == ZONES_DOM_SCALAR) {
        yaml_tree_printf(t, " %s '", node->plain ? "p" : "q");
        for (size_t i = 0; i < node->len; i++) {
            unsigned char c = (unsigned char)node->text[i];
            if (c >= 0x20 && c < 0x7f && c != '\\')
                yaml_tree_printf(t, "%c", c);
            else
                yaml_tree_printf(t, "\\x%02x", c);
        }
        yaml_tree_printf(t, "'\n");
        return;
    }
    yaml_tree_printf(t, " n%zu {\n", node->n);
    for (const struct zones_dom_node *c = node->first; c != NULL; c = c->next)
        yaml_tree_node(t, c);
    yaml_tree_printf(t, "}\n");
}

static void yaml_tree_on_document(void *ctx, struct zones_report *report,
                                  const struct zones_dom_node *root)
{
    (void)report;
    yaml_tree_printf(ctx, "---\n");
    yaml_tree_node(ctx, root);
}

/* Parses buf in mode: every document's tree, then every problem reported, as text (free it).
 * stats, when not NULL, says who read the pieces. */
static char *yaml_tree_parse(const char *buf, size_t len, enum zones_yaml_mode mode,
                             struct zones_yaml_stats *stats)
{
    struct yaml_tree_text t = {0};
    struct zones_objects objs;
    zones_objects_init(&objs);
    struct zones_report report = {.objs = &objs, .file = zones_objects_intern_file(&objs, "t")};
    struct zones_yaml_stats got =
        zones_yaml_parse_mode(&report, buf, len, yaml_tree_on_document, &t, mode);
    if (stats != NULL)
        *stats = got;
    yaml_tree_printf(&t, "unread %zu stop %d\n", objs.n_unread, report.stop);
    for (size_t i = 0; i < objs.n_diags; i++)
        yaml_tree_printf(&t, "error %u:%u %s\n", objs.diags[i].where.line, objs.diags[i].where.col,
                         objs.diags[i].message);
    zones_objects_free(&objs);
    return t.buf;
}

#endif
