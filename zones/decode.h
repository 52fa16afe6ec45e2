/* zones/decode.h - Kubernetes objects out of a document tree (zones/dom.h), into
 * report->objs: the one decoder of Services, EndpointSlices, Endpoints, Pods, Namespaces and
 * ServiceCIDRs, whichever way a document arrived. Other kinds are counted in n_skipped. */
#ifndef ZONES_DECODE_H
#define ZONES_DECODE_H

#include "zones/dom.h"

/* Reads root (an object, or a List of them) into report->objs. An object with an error adds
 * nothing and is counted in n_invalid; the others load. ctx is unused: the signature is
 * zones_yaml_document_fn's. */
void zones_decode_document(void *ctx, struct zones_report *report,
                           const struct zones_dom_node *root);

#endif
