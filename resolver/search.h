/* resolver/search.h - the search path, on the server side.
 *
 * Two things a pod's resolver would otherwise do the slow way. A short name that arrives as
 * it is ("echo", "echo.ns": dig, nslookup, a sidecar with no search list) is expanded with
 * the client's search list. A query for the first search candidate of a name that is not in
 * the cluster ("example.com.<ns>.svc.<zone>") is answered with the final result of the
 * whole ndots:5 walk (CoreDNS autopath). Both answer with a CNAME from the asked name to the
 * name that exists, then its records. The zone data is reached only through the callbacks
 * main.c hands over; this module never includes zones/. */
#ifndef RESOLVER_SEARCH_H
#define RESOLVER_SEARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/chain.h"
#include "dns/wire.h"

enum resolver_search_existence {
    RESOLVER_SEARCH_ABSENT,  /* NXDOMAIN */
    RESOLVER_SEARCH_EMPTY,   /* the name exists with no records (an empty non-terminal) */
    RESOLVER_SEARCH_RECORDS, /* records, or an alias */
};

/* How a lower-cased name stands in the cluster data. */
typedef enum resolver_search_existence (*resolver_search_exists_fn)(void *ctx,
                                                                    const struct dns_name *name);
/* The namespace of the Pod that has the client's address, as one wire label ("\7default"),
 * or false when no Pod has it. */
typedef bool (*resolver_search_client_ns_fn)(void *ctx, const struct sockaddr_storage *peer,
                                             uint8_t label[DNS_MAX_LABEL + 1]);

/* Answers req authoritatively for its question, as the zone handler would. */
typedef void (*resolver_search_answer_fn)(void *ctx, struct dns_request *req);

struct resolver_search_config {
    const char *cluster_domain; /* "local" */
    uint32_t ttl;               /* of the CNAME records it makes */
    const char *namespace_name; /* for clients no Pod matches; default "default" */
    bool expand;                /* short names (--no-search-expand turns it off) */
    bool autopath;              /* the walk cut short (--no-autopath turns it off) */
    bool upstream;              /* a forwarder follows: names outside may resolve there */
};

void resolver_search_config_default(struct resolver_search_config *cfg);

struct resolver_search_stats {
    uint64_t expanded;          /* short names answered through the search list */
    uint64_t autopath;          /* walks answered at the first candidate */
    uint64_t autopath_nxdomain; /* walks that ended in NXDOMAIN */
};

struct resolver_search {
    struct resolver_search_config cfg;
    struct dns_name zone;
    struct dns_name svc_zone; /* svc.<zone> */
    uint8_t default_ns[DNS_MAX_LABEL + 1];
    resolver_search_exists_fn exists;
    resolver_search_client_ns_fn client_ns;
    resolver_search_answer_fn answer;
    void *ctx;
    struct resolver_search_stats stats;
};

/* Keeps ctx until the search is no longer used. Returns 0 or -1 (a bad domain or namespace). */
int resolver_search_init(struct resolver_search *search, const struct resolver_search_config *cfg,
                         resolver_search_exists_fn exists, resolver_search_client_ns_fn client_ns,
                         resolver_search_answer_fn answer, void *ctx);

enum dns_verdict resolver_search_serve(void *self, struct dns_request *req);
void resolver_search_on_answer(void *self, struct dns_request *req);

/* Writes the resolv.conf a pod in namespace ns should use with svcdns at nameserver. */
int resolver_search_resolv_conf(const char *cluster_domain, const char *ns, const char *nameserver,
                                char *out, size_t cap);

#endif
