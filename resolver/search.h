/* resolver/search.h - the search path, on the server side.
 *
 * Two things a pod's resolver would otherwise do the slow way. A short name that arrives as
 * it is ("echo", "echo.ns": dig, nslookup, a sidecar with no search list) is expanded with
 * the client's search list. A query for the first search candidate of a name that is not in
 * the cluster ("example.com.<ns>.svc.<zone>") is answered with the final result of the
 * whole ndots:5 walk (CoreDNS autopath). Both answer with a CNAME from the asked name to the
 * name that exists, then its records. The zone data is reached only through the dns_names
 * interface (dns/names.h); this module never includes zones/. */
#ifndef RESOLVER_SEARCH_H
#define RESOLVER_SEARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/chain.h"
#include "dns/counter.h"
#include "dns/names.h"
#include "dns/wire.h"

struct resolver_search_config {
    const char *cluster_domain; /* "local" */
    uint32_t ttl;               /* of the CNAME records it makes */
    const char *namespace_name; /* for clients no Pod matches; default "default" */
    bool expand;                /* short names (--no-search-expand turns it off) */
    bool autopath;              /* the walk cut short (--no-autopath turns it off) */
    bool upstream;              /* a forwarder follows: names outside may resolve there */
};

void resolver_search_config_default(struct resolver_search_config *cfg);

/* Bumped by the worker that owns the stage; read from any thread (dns/counter.h). */
struct resolver_search_stats {
    struct dns_counter expanded;          /* short names answered through the search list */
    struct dns_counter autopath;          /* walks answered at the first candidate */
    struct dns_counter autopath_nxdomain; /* walks that ended in NXDOMAIN */
};

/* One worker's search stage. */
struct resolver_search {
    struct resolver_search_config cfg;
    struct dns_name zone;
    struct dns_name svc_zone; /* svc.<zone> */
    uint8_t default_ns[DNS_MAX_LABEL + 1];
    struct dns_names names;
    struct resolver_search_stats stats;
};

/* Keeps names (its self must outlive the stage). Returns 0 or -1 (a bad domain or
 * namespace). */
int resolver_search_init(struct resolver_search *search, const struct resolver_search_config *cfg,
                         const struct dns_names *names);

/* The stage: never answers itself; makes the request follow the name that will. */
enum dns_verdict resolver_search_serve(void *self, struct dns_request *req);

/* Writes the resolv.conf a pod in namespace ns should use with svcdns at nameserver. */
int resolver_search_resolv_conf(const char *cluster_domain, const char *ns, const char *nameserver,
                                char *out, size_t cap);

#endif
