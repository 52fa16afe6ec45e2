/* zones/yaml.h - a file's YAML or JSON text into one tree per document (zones/dom.h).
 *
 * libyaml does the parsing; this module bounds what a document may cost (zones/manifest.h's
 * limits against YAML bombs) and turns syntax errors into FILE:LINE:COL messages with what to
 * do. A document with a syntax error costs only itself: the rest of the file still loads. */
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

#endif
