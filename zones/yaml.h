/* zones/yaml.h - a file's YAML or JSON text into one tree per document (zones/dom.h).
 *
 * The block style manifests are written in is read directly (zones/yaml_fast.h), anything
 * else by libyaml, with the same trees; this module bounds what a document may cost
 * (zones/manifest.h's limits against YAML bombs) and turns syntax errors into FILE:LINE:COL
 * messages with what to do. A document with a syntax error costs only itself: the rest of the file
 * still loads. */
#ifndef ZONES_YAML_H
#define ZONES_YAML_H

#include <stddef.h>

#include "zones/dom.h"

/* Called with the root of each complete document that is not null; the tree lives until the
 * call returns. */
typedef void (*zones_yaml_document_fn)(void *ctx, struct zones_report *report,
                                       const struct zones_dom_node *root);

/* Parses buf (a whole file's text, without a byte order mark) document by document. Problems
 * go to report; parsing stops early when report->stop is set. */
void zones_yaml_parse(struct zones_report *report, const char *buf, size_t len,
                      zones_yaml_document_fn on_document, void *ctx);

/* Who read each piece: the fast path where it could and libyaml the rest (what
 * zones_yaml_parse() does), or libyaml alone. Tests and tests/fuzz/fuzz_yaml.c compare the
 * two, and check which one a piece took. */
enum zones_yaml_mode { ZONES_YAML_FAST_FIRST, ZONES_YAML_LIBYAML };
struct zones_yaml_stats {
    size_t fast, libyaml; /* pieces each read */
};
struct zones_yaml_stats zones_yaml_parse_mode(struct zones_report *report, const char *buf,
                                              size_t len, zones_yaml_document_fn on_document,
                                              void *ctx, enum zones_yaml_mode mode);

#endif
