/* zones/yaml_fast.c - the block style manifests are written in, read without libyaml.
 *
 * libyaml makes a token, then an event, then our node, with a malloc and a free for each: at
 * 100,000 Services that was most of a start. Nearly every manifest uses a small part of YAML:
 * block mappings and lists, scalars on one line (plain, 'single' or "double" quoted), {} and
 * [], comments, and the literal block scalars kubectl writes. This reads that part in one pass over
 * the lines, straight into the tree, and gives each node the line and column libyaml's event would
 * have. At the first thing outside it (anchors, aliases, tags, flow collections with content,
 * folded and multi-line scalars, tabs, CR, bytes outside printable ASCII, a line that would be an
 * error) it gives up, and zones/yaml.c hands the piece to libyaml as before, so errors read exactly
 * as they did. tests/fuzz/fuzz_yaml.c holds the two to the same trees.
 *
 * The grammar, by what a line holds at indentation n:
 *   mapping   key lines "key: value", "key:" (its value on the lines after: deeper, or a
 *             list at the same n), all at n
 *   list      "- value" or "- key: value" (a mapping at the column of key) lines, all at n
 *   value     plain | 'single' | "double" | {} | []   (then spaces and a comment at most)
 *             | "|" or "|-" and lines deeper than the key   (a mapping's value only) */
#include "zones/yaml_fast.h"

#include <stdbool.h>
#include <string.h>

#include "zones/manifest.h"

#define MAX_KEY 1000 /* libyaml takes keys of up to 1024 characters on one line */

struct reader {
    const char *end;
    const char *line;    /* the current content line (not blank, not only a comment) */
    const char *content; /* its first byte that is not a space */
    const char *eol;     /* its '\n', or the end */
    unsigned line_no;    /* of line, 0-based in the piece */
    unsigned indent;     /* content - line */
    bool at_end;         /* no content line is left */
    bool bad;            /* a line outside the subset */
    struct zones_arena *arena;
    unsigned line_base;
    uint64_t n_nodes, max_nodes;
};

/* The end of the line at p: its LF, or the end of the piece. */
static const char *line_end(const char *p, const char *end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    return lf != NULL ? lf : end;
}

static bool blank_or_end(const char *p, const char *eol)
{
    return p == eol || *p == ' ';
}

/* Moves to the first content line at or after from, which starts the line line_no. */
static bool seek(struct reader *r, const char *from, unsigned line_no)
{
    r->line_no = line_no;
    while (from < r->end) {
        const char *eol = line_end(from, r->end);
        const char *c = from;
        while (c < eol && *c == ' ')
            c++;
        if (c < eol && *c != '#') {
            /* At column 0: "..." ends a document, "---" starts one, '%' is a directive. */
            bool marker = eol - c >= 3 && (memcmp(c, "...", 3) == 0 || memcmp(c, "---", 3) == 0) &&
                          blank_or_end(c + 3, eol);
            if (c == from && (marker || *c == '%'))
                return !(r->bad = true);
            r->line = from;
            r->content = c;
            r->eol = eol;
            r->indent = (unsigned)(c - from);
            return true;
        }
        from = eol < r->end ? eol + 1 : r->end;
        r->line_no++;
    }
    r->at_end = true;
    return true;
}

/* Past the current line, to the next content line. */
static bool advance(struct reader *r)
{
    return seek(r, r->eol < r->end ? r->eol + 1 : r->end, r->line_no + 1);
}

/* ---- nodes ---- */

/* A node, and room for extra bytes after it (a scalar's text): one allocation. */
static struct zones_dom_node *node_new(struct reader *r, enum zones_dom_kind kind, unsigned line_no,
                                       unsigned col0, size_t extra)
{
    if (++r->n_nodes > r->max_nodes)
        return NULL;
    struct zones_dom_node *node = zones_arena_alloc(r->arena, sizeof(*node) + extra);
    memset(node, 0, sizeof(*node));
    node->kind = kind;
    node->weight = 1;
    node->line = r->line_base + line_no + 1;
    node->col = col0 + 1;
    return node;
}

static struct zones_dom_node *scalar_new(struct reader *r, unsigned line_no, unsigned col0,
                                         size_t len, bool plain)
{
    struct zones_dom_node *node = node_new(r, ZONES_DOM_SCALAR, line_no, col0, len + 1);
    if (node == NULL)
        return NULL;
    node->text = (char *)(node + 1);
    node->text[len] = '\0';
    node->len = len;
    node->plain = plain;
    return node;
}

/* A scalar at p on the current line. */
static struct zones_dom_node *scalar_at(struct reader *r, const char *p, const char *text,
                                        size_t len, bool plain)
{
    struct zones_dom_node *node = scalar_new(r, r->line_no, (unsigned)(p - r->line), len, plain);
    if (node != NULL)
        memcpy(node->text, text, len);
    return node;
}

static void add(struct zones_dom_node *parent, struct zones_dom_node *child)
{
    if (parent->last != NULL)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
    parent->weight += child->weight;
}

/* ---- scalars ---- */

/* Whether a plain scalar may start at p (YAML's indicators may not start one; '-' may when a
 * character follows it, as in -1). */
static bool plain_start(const char *p, const char *eol)
{
    static const bool indicator[128] = {
        ['?'] = true, [':'] = true, [','] = true, ['['] = true,  [']'] = true,
        ['{'] = true, ['}'] = true, ['#'] = true, ['&'] = true,  ['*'] = true,
        ['!'] = true, ['|'] = true, ['>'] = true, ['\''] = true, ['"'] = true,
        ['%'] = true, ['@'] = true, ['`'] = true, [' '] = true,
    };
    if (p == eol)
        return false;
    if (*p == '-')
        return p + 1 < eol && p[1] != ' ';
    return !indicator[(unsigned char)*p & 0x7f]; /* lines hold ASCII only (line_end) */
}

/* "- " or a lone "-": a list entry. */
static bool is_entry(const char *p, const char *eol)
{
    return p < eol && *p == '-' && blank_or_end(p + 1, eol);
}

/* A plain key at p: the byte after its ':' (a space or the line's end), and where its text
 * ends in *text_end; NULL when p starts no key. */
static const char *key_at(const struct reader *r, const char *p, const char **text_end)
{
    if (!plain_start(p, r->eol) || *p == '-')
        return NULL;
    for (const char *q = p; q < r->eol && q - p <= MAX_KEY; q++) {
        if (*q == ':' && blank_or_end(q + 1, r->eol)) {
            const char *e = q;
            while (e > p && e[-1] == ' ')
                e--;
            *text_end = e;
            return q + 1;
        }
        if (*q == '#' && q[-1] == ' ')
            return NULL;
    }
    return NULL;
}

/* After a value (or an indicator): nothing but spaces, and a comment after one of them. */
static bool rest_is_empty(const char *p, const char *eol)
{
    const char *q = p;
    while (q < eol && *q == ' ')
        q++;
    return q == eol || (*q == '#' && q > p);
}

static struct zones_dom_node *double_quoted(struct reader *r, const char *p)
{
    size_t len = 0;
    const char *q = p + 1;
    for (; q < r->eol && *q != '"'; q++, len++) {
        if (*q == '\\' && (++q == r->eol || strchr("\\\"/nt", *q) == NULL))
            return NULL; /* other escapes, and line breaks inside, are libyaml's */
    }
    if (q == r->eol || !rest_is_empty(q + 1, r->eol))
        return NULL;
    struct zones_dom_node *node = scalar_new(r, r->line_no, (unsigned)(p - r->line), len, false);
    if (node == NULL)
        return NULL;
    char *out = node->text;
    for (const char *s = p + 1; s < q; s++) {
        if (*s != '\\') {
            *out++ = *s;
            continue;
        }
        s++;
        *out++ = (char)(*s == 'n' ? '\n' : *s == 't' ? '\t' : *s);
    }
    return node;
}

static struct zones_dom_node *single_quoted(struct reader *r, const char *p)
{
    size_t len = 0;
    const char *q = p + 1;
    for (; q < r->eol; q++, len++) {
        if (*q == '\'') {
            if (q + 1 == r->eol || q[1] != '\'')
                break;
            q++; /* '' is one quote */
        }
    }
    if (q == r->eol || !rest_is_empty(q + 1, r->eol))
        return NULL;
    struct zones_dom_node *node = scalar_new(r, r->line_no, (unsigned)(p - r->line), len, false);
    if (node == NULL)
        return NULL;
    char *out = node->text;
    for (const char *s = p + 1; s < q; s++) {
        *out++ = *s;
        s += *s == '\'';
    }
    return node;
}

/* {} or []: an empty flow collection. */
static struct zones_dom_node *empty_collection(struct reader *r, const char *p)
{
    char close = *p == '{' ? '}' : ']';
    if (p + 1 == r->eol || p[1] != close || !rest_is_empty(p + 2, r->eol))
        return NULL;
    return node_new(r, *p == '{' ? ZONES_DOM_MAP : ZONES_DOM_SEQ, r->line_no,
                    (unsigned)(p - r->line), 0);
}

/* A literal block scalar, "|" or "|-" as the value of a key at column n, with its lines below:
 * the part of them kubectl writes (last-applied-configuration), with no blank line in it and
 * a line break after the last. Leaves r at the line after it. */
static struct zones_dom_node *literal(struct reader *r, const char *p, unsigned n)
{
    bool strip = p + 1 < r->eol && p[1] == '-';
    if (!rest_is_empty(p + 1 + strip, r->eol) || r->eol == r->end)
        return NULL;
    const char *first = r->eol + 1;
    unsigned indent = 0;
    size_t len = 0;
    unsigned lines = 0;
    const char *q = first;
    while (q < r->end) {
        const char *eol = line_end(q, r->end);
        const char *c = q;
        while (c < eol && *c == ' ')
            c++;
        unsigned in = (unsigned)(c - q);
        if (c == eol || (lines == 0 && in <= n))
            return NULL; /* a blank line, or none deeper than the key: libyaml's */
        if (lines == 0)
            indent = in;
        else if (in < indent)
            break;
        if (eol == r->end)
            return NULL;
        len += (size_t)(eol - q) - indent + 1;
        lines++;
        q = eol + 1;
    }
    if (lines == 0)
        return NULL;
    struct zones_dom_node *node =
        scalar_new(r, r->line_no, (unsigned)(p - r->line), len - strip, false);
    if (node == NULL)
        return NULL;
    char *out = node->text;
    for (const char *line = first; line < q;) {
        const char *eol = memchr(line, '\n', (size_t)(q - line));
        memcpy(out, line + indent, (size_t)(eol - line) - indent);
        out += (eol - line) - indent;
        *out++ = '\n';
        line = eol + 1;
    }
    node->text[node->len] = '\0'; /* "|-": the last line break goes */
    return seek(r, q, r->line_no + 1 + lines) ? node : NULL;
}

/* The value that starts at p and ends the current line. */
static struct zones_dom_node *line_value(struct reader *r, const char *p)
{
    if (*p == '"')
        return double_quoted(r, p);
    if (*p == '\'')
        return single_quoted(r, p);
    if (*p == '{' || *p == '[')
        return empty_collection(r, p);
    if (!plain_start(p, r->eol))
        return NULL;
    const char *e = p;
    for (; e < r->eol; e++) {
        if (*e == ':' && blank_or_end(e + 1, r->eol))
            return NULL; /* "a: b: c" is an error */
        if (*e == '#' && e[-1] == ' ')
            break;
    }
    while (e[-1] == ' ')
        e--;
    return scalar_at(r, p, p, (size_t)(e - p), true);
}

/* ---- collections ---- */

static struct zones_dom_node *block_node(struct reader *r, unsigned depth);
static struct zones_dom_node *block_list(struct reader *r, unsigned depth, bool indentless);

/* The value of a key at column n whose ':' ends just before after; leaves r at the line after
 * the value, which is no deeper than n. */
/* NOLINTNEXTLINE(misc-no-recursion): nesting stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *mapping_value(struct reader *r, const char *after, unsigned n,
                                            unsigned depth)
{
    const char *v = after;
    while (v < r->eol && *v == ' ')
        v++;
    struct zones_dom_node *value;
    if (v < r->eol && *v == '|') {
        value = literal(r, v, n);
    } else if (v < r->eol && *v != '#') {
        value = line_value(r, v);
        if (value != NULL && !advance(r))
            return NULL;
    } else {
        /* "key:" alone: a null where libyaml puts it (just past the ':'), or the block on the
         * lines after: deeper, or a list at the key's own column. */
        unsigned null_line = r->line_no;
        unsigned null_col = (unsigned)(after - r->line);
        if (!advance(r))
            return NULL;
        if (!r->at_end && r->indent > n)
            return block_node(r, depth + 1);
        if (!r->at_end && r->indent == n && is_entry(r->content, r->eol))
            return block_list(r, depth + 1, true);
        return scalar_new(r, null_line, null_col, 0, true);
    }
    /* a deeper line after a value on the key's line: a multi-line scalar, or an error */
    return value == NULL || (!r->at_end && r->indent > n) ? NULL : value;
}

/* A mapping whose first key starts at key on the current line; the others start lines at its
 * column. Returns at the first line that is less indented. */
/* NOLINTNEXTLINE(misc-no-recursion): nesting stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *block_mapping(struct reader *r, const char *key, unsigned depth)
{
    unsigned n = (unsigned)(key - r->line);
    if (depth + 1 >= ZONES_MANIFEST_MAX_DEPTH) /* room for a {} in it too */
        return NULL;
    struct zones_dom_node *map = node_new(r, ZONES_DOM_MAP, r->line_no, n, 0);
    if (map == NULL)
        return NULL;
    for (;;) {
        const char *text_end = NULL;
        const char *after = key_at(r, key, &text_end);
        if (after == NULL)
            return NULL;
        struct zones_dom_node *k = scalar_at(r, key, key, (size_t)(text_end - key), true);
        struct zones_dom_node *value = k != NULL ? mapping_value(r, after, n, depth) : NULL;
        if (value == NULL)
            return NULL;
        add(map, k);
        add(map, value);
        if (r->at_end || r->indent < n)
            return map;
        if (r->indent > n)
            return NULL;
        key = r->content;
    }
}

/* An item of a list at column m, which starts at p after its "- "; leaves r at the line after
 * it. */
/* NOLINTNEXTLINE(misc-no-recursion): nesting stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *list_item(struct reader *r, const char *p, unsigned m, unsigned depth)
{
    const char *text_end = NULL;
    if (key_at(r, p, &text_end) != NULL)
        return block_mapping(r, p, depth + 1);
    struct zones_dom_node *item = line_value(r, p);
    if (item == NULL || !advance(r) || (!r->at_end && r->indent > m))
        return NULL;
    return item;
}

/* A list whose first "-" starts the current line's content. indentless: the value of a key
 * at the same column, which a line there that is no entry ends. */
/* NOLINTNEXTLINE(misc-no-recursion): nesting stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *block_list(struct reader *r, unsigned depth, bool indentless)
{
    unsigned m = r->indent;
    if (depth + 1 >= ZONES_MANIFEST_MAX_DEPTH)
        return NULL;
    struct zones_dom_node *list = node_new(r, ZONES_DOM_SEQ, r->line_no, m, 0);
    if (list == NULL)
        return NULL;
    for (;;) {
        const char *p = r->content + 1;
        while (p < r->eol && *p == ' ')
            p++;
        if (p == r->eol || *p == '#' || is_entry(p, r->eol))
            return NULL; /* an item on the lines below, or a list in a list: libyaml's */
        struct zones_dom_node *item = list_item(r, p, m, depth);
        if (item == NULL)
            return NULL;
        add(list, item);
        if (r->at_end || r->indent < m)
            return list;
        if (r->indent > m)
            return NULL;
        if (!is_entry(r->content, r->eol))
            return indentless ? list : NULL;
    }
}

/* The block that starts at the current line. */
/* NOLINTNEXTLINE(misc-no-recursion): nesting stops at ZONES_MANIFEST_MAX_DEPTH levels. */
static struct zones_dom_node *block_node(struct reader *r, unsigned depth)
{
    const char *text_end = NULL;
    if (is_entry(r->content, r->eol))
        return block_list(r, depth, false);
    if (key_at(r, r->content, &text_end) != NULL)
        return block_mapping(r, r->content, depth);
    return NULL; /* a scalar on lines of its own */
}

enum zones_yaml_fast zones_yaml_fast_piece(struct zones_arena *arena, const char *buf, size_t len,
                                           unsigned line_base, uint64_t max_nodes,
                                           struct zones_yaml_fast_out *out)
{
    struct reader r = {
        .end = buf + len,
        .arena = arena,
        .line_base = line_base,
        .max_nodes = max_nodes,
    };
    const char *from = buf;
    unsigned line_no = 0;
    if (len >= 3 && memcmp(buf, "---", 3) == 0) { /* its own line: "--- value" is libyaml's */
        const char *eol = line_end(buf, r.end);
        if (!rest_is_empty(buf + 3, eol))
            return ZONES_YAML_FAST_UNSUPPORTED;
        from = eol < r.end ? eol + 1 : r.end;
        line_no = 1;
    }
    if (!seek(&r, from, line_no))
        return ZONES_YAML_FAST_UNSUPPORTED;
    if (r.at_end)
        return ZONES_YAML_FAST_EMPTY;
    out->root = block_node(&r, 0);
    if (out->root == NULL || r.bad || !r.at_end)
        return ZONES_YAML_FAST_UNSUPPORTED;
    out->n_nodes = r.n_nodes;
    return ZONES_YAML_FAST_DOCUMENT;
}
