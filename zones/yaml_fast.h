/* zones/yaml_fast.h - the block style manifests are written in, read without libyaml.
 *
 * zones/yaml.c's fast path: one piece of a file (as it cuts them) into a document tree, with
 * the positions libyaml gives, or the answer that the piece uses something this reader leaves
 * to libyaml. Nothing is reported from here: a piece with an error is always one of those. */
#ifndef ZONES_YAML_FAST_H
#define ZONES_YAML_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "zones/dom.h"

enum zones_yaml_fast {
    ZONES_YAML_FAST_DOCUMENT,    /* out->root is the document's tree */
    ZONES_YAML_FAST_EMPTY,       /* no document: blank lines, comments, a lone "---" */
    ZONES_YAML_FAST_UNSUPPORTED, /* for libyaml; what the arena holds is garbage */
};

struct zones_yaml_fast_out {
    struct zones_dom_node *root;
    uint64_t n_nodes; /* nodes made: the weight of the root */
};

/* buf: one piece, which starts with its "---" line if it has one and has no other, and holds
 * printable ASCII and LF only (zones/yaml.c sends any other to libyaml: tabs, CR, UTF-8, control
 * bytes, which this reader leaves alone, so it need not check them again); line_base:
 * the file's lines before it. Nodes and strings come from arena. A piece that would make more
 * than max_nodes nodes, or nest deeper than ZONES_MANIFEST_MAX_DEPTH, is left to libyaml too
 * (which reports the limit). */
enum zones_yaml_fast zones_yaml_fast_piece(struct zones_arena *arena, const char *buf, size_t len,
                                           unsigned line_base, uint64_t max_nodes,
                                           struct zones_yaml_fast_out *out);

#endif
