/* zones/yaml.c - YAML (and JSON, which is YAML) into document trees, with limits.
 *
 * The buffer is cut into pieces at every line that starts with "---" (where libyaml would
 * start a new document anyway). A piece written in the plain block style of manifests is read
 * by zones/yaml_fast.c straight into its tree; any other gets a fresh libyaml parser, so a
 * syntax error costs only its own document. libyaml's events build a tree per document in an arena:
 * aliases point at their anchored node instead of copying it, and every node knows how many
 * nodes it stands for once aliases are expanded, which is how the limits in zones/manifest.h
 * stop a "billion laughs" before it costs memory or time. A syntax error is reported with its
 * position and what to do about libyaml's most common complaints. */
#include "zones/yaml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "dns/log.h"
#include "zones/manifest.h"
#include "zones/yaml_fast.h"

struct anchor {
    const char *name;
    struct zones_dom_node *node;
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

static void anchors_put(struct anchors *table, const char *name, struct zones_dom_node *node)
{
    if (2 * (table->n + 1) > table->cap) {
        struct anchors bigger = {.cap = table->cap == 0 ? 16 : table->cap * 2, .n = 0};
        bigger.slots = zones_xcalloc(bigger.cap, sizeof(bigger.slots[0]));
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

static struct zones_dom_node *anchors_get(const struct anchors *table, const char *name)
{
    if (table->cap == 0)
        return NULL;
    return anchors_slot(table, name)->node;
}

/* One file being parsed. */
struct parser {
    struct zones_report *report;
    uint64_t n_nodes;         /* nodes in this file so far, aliases expanded */
    uint64_t n_aliases;       /* alias uses in this file so far */
    unsigned line_base;       /* lines before the piece being parsed */
    struct zones_arena arena; /* the document being built */
    struct anchors anchors;
    struct zones_dom_node *stack[ZONES_MANIFEST_MAX_DEPTH];
    size_t depth;
    struct zones_dom_node *root;
    zones_yaml_document_fn on_document;
    void *ctx;
    enum zones_yaml_mode mode;
    struct zones_yaml_stats stats;
};

static void document_reset(struct parser *ld)
{
    zones_arena_free(&ld->arena);
    free(ld->anchors.slots);
    memset(&ld->anchors, 0, sizeof(ld->anchors));
    ld->depth = 0;
    ld->root = NULL;
}

/* ---- events into the DOM ---- */

enum step { STEP_MORE, STEP_DOCUMENT_END, STEP_STREAM_END, STEP_ERROR };

static struct zones_dom_node *new_node(struct parser *ld, enum zones_dom_kind kind,
                                       const yaml_mark_t *mark)
{
    struct zones_dom_node *node = zones_arena_alloc(&ld->arena, sizeof(*node));
    memset(node, 0, sizeof(*node));
    node->kind = kind;
    node->line = ld->line_base + (unsigned)mark->line + 1;
    node->col = (unsigned)mark->column + 1;
    node->weight = 1;
    return node;
}

/* Counts weight nodes against the file's limit; false when the limit is hit. */
static bool count_nodes(struct parser *ld, const struct zones_dom_node *at, uint64_t weight)
{
    ld->n_nodes += weight;
    if (ld->n_nodes <= ZONES_MANIFEST_MAX_NODES)
        return true;
    if (ld->n_aliases > 0)
        zones_report_error_at(
            ld->report, at,
            "more than %d nodes once aliases are expanded (a YAML bomb?); the rest "
            "of the file is not loaded: split it into smaller files or use fewer aliases",
            ZONES_MANIFEST_MAX_NODES);
    else
        zones_report_error_at(
            ld->report, at,
            "more than %d nodes in this file; the rest of it is not loaded: split "
            "it into smaller files",
            ZONES_MANIFEST_MAX_NODES);
    ld->report->stop = true;
    return false;
}

/* Links a node under the innermost open collection, or makes it the document's root. A
 * finished node's weight is added to its parent; collections add theirs when they close. */
static void attach(struct parser *ld, struct zones_dom_node *node)
{
    if (ld->depth == 0) {
        ld->root = node;
        return;
    }
    struct zones_dom_node *parent = ld->stack[ld->depth - 1];
    if (parent->last != NULL)
        parent->last->next = node;
    else
        parent->first = node;
    parent->last = node;
    parent->n++;
    if (!node->open)
        parent->weight += node->weight;
}

static void set_anchor(struct parser *ld, const yaml_char_t *anchor, struct zones_dom_node *node)
{
    if (anchor == NULL)
        return;
    size_t len = strlen((const char *)anchor);
    char *name = zones_arena_alloc(&ld->arena, len + 1);
    memcpy(name, anchor, len + 1);
    anchors_put(&ld->anchors, name, node);
}

static enum step add_scalar(struct parser *ld, const yaml_event_t *ev)
{
    struct zones_dom_node *node = new_node(ld, ZONES_DOM_SCALAR, &ev->start_mark);
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

static enum step add_alias(struct parser *ld, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct zones_dom_node *node = new_node(ld, ZONES_DOM_ALIAS, &ev->start_mark);
    node->target = anchors_get(&ld->anchors, name);
    if (node->target == NULL) {
        zones_report_error_at(ld->report, node,
                              "alias *%s has no anchor &%s before it in this document; define the "
                              "anchor first",
                              name, name);
        return STEP_ERROR;
    }
    if (node->target->open) {
        zones_report_error_at(ld->report, node,
                              "alias *%s is inside the node it refers to; an alias cannot refer to "
                              "its own parent",
                              name);
        return STEP_ERROR;
    }
    if (++ld->n_aliases > ZONES_MANIFEST_MAX_ALIASES) {
        zones_report_error_at(ld->report, node,
                              "more than %d aliases in this file (a YAML bomb?); the rest of the "
                              "file is not loaded: write the values out or split the file",
                              ZONES_MANIFEST_MAX_ALIASES);
        ld->report->stop = true;
        return STEP_ERROR;
    }
    node->weight = node->target->weight;
    if (!count_nodes(ld, node, node->weight))
        return STEP_ERROR;
    attach(ld, node);
    return STEP_MORE;
}

static enum step open_collection(struct parser *ld, enum zones_dom_kind kind,
                                 const yaml_event_t *ev, const yaml_char_t *anchor)
{
    struct zones_dom_node *node = new_node(ld, kind, &ev->start_mark);
    if (ld->depth == ZONES_MANIFEST_MAX_DEPTH) {
        zones_report_error_at(ld->report, node,
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

static enum step close_collection(struct parser *ld)
{
    struct zones_dom_node *node = ld->stack[--ld->depth];
    node->open = false;
    if (ld->depth > 0)
        ld->stack[ld->depth - 1]->weight += node->weight;
    return STEP_MORE;
}

static enum step on_event(struct parser *ld, const yaml_event_t *ev)
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
        return open_collection(ld, ZONES_DOM_SEQ, ev, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return open_collection(ld, ZONES_DOM_MAP, ev, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(ld);
    default:
        return STEP_MORE;
    }
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

static void report_syntax(struct parser *ld, const yaml_parser_t *parser, const char *buf,
                          size_t len)
{
    const char *problem = parser->problem != NULL ? parser->problem : "unknown error";
    const char *context = parser->context != NULL ? parser->context : "";
    const yaml_mark_t *mark = &parser->problem_mark;
    unsigned line;
    unsigned col;
    if (parser->error == YAML_MEMORY_ERROR) { /* the policy of zones_xrealloc() */
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
        zones_report_error(ld->report, ld->line_base + line, col, "invalid YAML: %s%s%s (%s)",
                           problem, context[0] != '\0' ? " " : "", context, hint);
    else
        zones_report_error(ld->report, ld->line_base + line, col,
                           "invalid YAML: %s %s that starts at %u:%u (%s)", problem, context,
                           ld->line_base + (unsigned)cm->line + 1, (unsigned)cm->column + 1, hint);
}

/* ---- pieces and files ---- */

/* The fast path: false when the piece is for libyaml. */
static bool parse_piece_fast(struct parser *ld, const char *buf, size_t len, unsigned line_base)
{
    uint64_t room = ZONES_MANIFEST_MAX_NODES - ld->n_nodes; /* n_nodes passes it only to stop */
    struct zones_yaml_fast_out out;
    document_reset(ld);
    enum zones_yaml_fast got = zones_yaml_fast_piece(&ld->arena, buf, len, line_base, room, &out);
    if (got == ZONES_YAML_FAST_UNSUPPORTED) {
        document_reset(ld);
        return false;
    }
    ld->stats.fast++;
    if (got == ZONES_YAML_FAST_DOCUMENT) {
        ld->n_nodes += out.n_nodes;
        ld->on_document(ld->ctx, ld->report, out.root);
    }
    document_reset(ld);
    return true;
}

/* Parses one piece of the file (normally one document): on the fast path when it can be
 * (which needs it to hold printable ASCII and LF only), else with its own libyaml parser. */
static void parse_piece(struct parser *ld, const char *buf, size_t len, unsigned line_base,
                        bool ascii)
{
    if (ld->mode == ZONES_YAML_FAST_FIRST && ascii && parse_piece_fast(ld, buf, len, line_base))
        return;
    ld->stats.libyaml++;
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
            ld->report->objs->n_unread++;
            break;
        }
        enum step step = on_event(ld, &ev);
        yaml_event_delete(&ev);
        if (step == STEP_ERROR || ld->report->stop)
            ld->report->objs->n_unread++; /* a limit, or an alias that goes nowhere */
        if (step == STEP_DOCUMENT_END) {
            const struct zones_dom_node *root = zones_dom_deref(ld->root);
            if (!zones_dom_is_null(root))
                ld->on_document(ld->ctx, ld->report, root);
            document_reset(ld);
        }
        if (step == STEP_ERROR || step == STEP_STREAM_END || ld->report->stop)
            break;
    }
    document_reset(ld);
    yaml_parser_delete(&parser);
}

/* Whether [p, end) holds printable ASCII only: ' ' to '~', eight bytes at a time (Hacker's
 * Delight's "a byte less than n" and "a byte greater than n" on a word). */
static bool printable(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101U;
    for (uint64_t x; end - p >= 8; p += 8) {
        memcpy(&x, p, 8);
        if (((x - ones * 0x20) & ~x & ones * 0x80) || ((x + ones * (127 - 0x7e)) | x) & ones * 0x80)
            return false;
    }
    for (; p < end; p++) {
        if ((unsigned char)(*p - 0x20) >= 0x5f)
            return false;
    }
    return true;
}

/* The start of the line after the one at p, or end. *ascii is cleared when the line holds a
 * byte other than printable ASCII (a line break other than LF counts). */
static const char *next_line(const char *p, const char *end, bool *ascii)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (*ascii && printable(p, lf != NULL ? lf : end))
        return lf != NULL ? lf + 1 : end;
    *ascii = false; /* then CR, NEL, LS and PS break lines too, as libyaml has it */
    for (; p < end; p++) {
        size_t br = line_break(p, end);
        if (br > 0)
            return p + br;
    }
    return end;
}

static bool is_document_start(const char *p, const char *end)
{
    return end - p >= 3 && memcmp(p, "---", 3) == 0 &&
           (end - p == 3 || p[3] == ' ' || p[3] == '\t' || p[3] == '\r' || p[3] == '\n');
}

/* Cuts the buffer before every line that starts a document ("---" at column 0, which libyaml
 * treats as a document start wherever it appears) and before the %directives that precede
 * it, and parses each piece on its own. */
static void parse_pieces(struct parser *ld, const char *buf, size_t len)
{
    const char *end = buf + len;
    const char *piece = buf;
    unsigned piece_line = 0;
    const char *directives = NULL; /* the first of the %-lines just before this one */
    unsigned directives_line = 0;
    unsigned line = 0;
    bool ascii = true; /* the piece so far holds printable ASCII and LF only */
    for (const char *p = buf; p < end && !ld->report->stop; line++) {
        if (*p == '%' && directives == NULL) {
            directives = p;
            directives_line = line;
        } else if (*p != '%' && is_document_start(p, end)) {
            const char *cut = directives != NULL ? directives : p;
            unsigned cut_line = directives != NULL ? directives_line : line;
            if (cut > piece)
                parse_piece(ld, piece, (size_t)(cut - piece), piece_line, ascii);
            piece = cut;
            piece_line = cut_line;
            ascii = directives == NULL; /* a piece with directives is libyaml's anyway */
        }
        if (*p != '%')
            directives = NULL;
        p = next_line(p, end, &ascii);
    }
    if (!ld->report->stop && piece < end)
        parse_piece(ld, piece, (size_t)(end - piece), piece_line, ascii);
}

struct zones_yaml_stats zones_yaml_parse_mode(struct zones_report *report, const char *buf,
                                              size_t len, zones_yaml_document_fn on_document,
                                              void *ctx, enum zones_yaml_mode mode)
{
    struct parser ld;
    memset(&ld, 0, sizeof(ld));
    ld.report = report;
    ld.on_document = on_document;
    ld.ctx = ctx;
    ld.mode = mode;
    parse_pieces(&ld, buf, len);
    document_reset(&ld);
    return ld.stats;
}

void zones_yaml_parse(struct zones_report *report, const char *buf, size_t len,
                      zones_yaml_document_fn on_document, void *ctx)
{
    zones_yaml_parse_mode(report, buf, len, on_document, ctx, ZONES_YAML_FAST_FIRST);
}
