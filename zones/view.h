/* zones/view.h - what answers need of one Service, in one immutable allocation.
 *
 * A view holds the Service's names and data: its addresses (ClusterIPs, or the ready
 * endpoints of a headless Service), its endpoints by name, its named ports, an ExternalName's
 * target, and the A and AAAA answers of its own name already in wire form (the hot path is a
 * copy). Everything else (SRV, PTR, endpoint names) is written per query from these arrays. A
 * change to the Service or to its endpoints builds a new view and retires the old one, so the
 * work per change grows with the size of that Service, not of the cluster. */
#ifndef ZONES_VIEW_H
#define ZONES_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/wire.h"
#include "zones/objects.h"

#define ZONES_VIEW_NAME 0xffffu /* an address of the Service's own name */
#define ZONES_VIEW_MAX 0xfffeu  /* addresses, endpoints or ports one view keeps */

struct zones_view;

/* One address with a PTR: a ClusterIP (endpoint ZONES_VIEW_NAME) or a ready endpoint's. */
struct zones_view_addr {
    const struct zones_view *view;
    struct zones_ip ip;
    uint16_t endpoint; /* index into endpoints, or ZONES_VIEW_NAME */
    uint16_t ports;    /* the port group of its SRV records */
};

/* A name under the Service: a hostname, or an address written with dashes. */
struct zones_view_endpoint {
    uint32_t label;        /* offset in bytes of the wire label, "\4db-0" */
    uint16_t first, count; /* its addresses in addrs: A sorted, then AAAA */
};

/* A named port. ClusterIP Services have one group (the Service's ports, target the Service);
 * a headless Service one per distinct port list of its EndpointSlices. */
struct zones_view_port {
    uint32_t name;  /* offset of "\5_http" */
    uint32_t proto; /* offset of "\4_tcp" */
    uint16_t port;
    uint16_t group;
};

struct zones_view {
    uint64_t hash;        /* of the key, as zones_view_hash() computes it */
    uint8_t kind;         /* enum zones_service_kind */
    uint8_t key_len;      /* bytes[0, key_len): "\4echo\7default", the name's first labels */
    uint8_t target_len;   /* an ExternalName's target in wire form, lower-cased; 0: none */
    uint16_t n_addrs;     /* addrs[] */
    uint16_t n_endpoints; /* endpoints[] */
    uint16_t n_ports;     /* ports[] */
    uint16_t n_a, n_aaaa; /* records in the rendered answers of the name itself */
    uint32_t a_off, aaaa_off, target_off; /* in bytes */
    uint16_t a_len, aaaa_len;
    const struct zones_view_addr *addrs;         /* sorted by endpoint, then address */
    const struct zones_view_endpoint *endpoints; /* sorted by label */
    const struct zones_view_port *ports;         /* by group, then as declared */
    const uint8_t *bytes;
};

/* What a view is built from; the model gathers it. */
struct zones_view_input {
    const struct zones_service *svc;
    const struct zones_ip *ips; /* the ClusterIPs it answers: stated or assigned */
    size_t n_ips;
    const struct zones_slice *const *slices; /* its EndpointSlices (and Endpoints subsets) */
    size_t n_slices;
    const struct zones_pod *const *pods; /* without slices: the Pods its selector picks */
    size_t n_pods;
    uint32_t ttl;
};

/* One malloc (abort on failure, as zones/ does); free with free(). NULL when the Service has
 * no name the DNS can serve (a label that does not fit). */
struct zones_view *zones_view_build(const struct zones_view_input *in);

/* The hash of a view key: the wire labels "<name><namespace>". */
uint64_t zones_view_hash(const uint8_t *key, size_t len);

/* Whether the view's name has any record: a Service without one (a headless Service with no
 * ready endpoint) does not exist in the DNS. */
bool zones_view_exists(const struct zones_view *v);

#endif
