/* zones/objects.h - the Kubernetes objects svcdns serves from, independent of their source.
 *
 * A source (a manifest file, the Kubernetes API) decodes objects into a zones_objects; the
 * model (zones/model.h) merges every source's and decides what the store serves. Strings and
 * arrays are owned by the zones_objects, in blocks freed together. Names are stored
 * lower-cased. Every object remembers where it came from, for error messages. */
#ifndef ZONES_OBJECTS_H
#define ZONES_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zones_where {
    const char *file; /* interned in zones_objects.files; "-" for stdin */
    unsigned line;    /* 1-based */
    unsigned col;     /* 1-based */
};

struct zones_ip {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
};

struct zones_label {
    char *key;
    char *value;
};

struct zones_port {
    char *name;     /* lower-cased; NULL when unnamed */
    char *protocol; /* "tcp", "udp" or "sctp"; default "tcp" */
    uint16_t port;  /* Service: spec.ports[].port; EndpointSlice/Endpoints: the endpoint port */
};

enum zones_service_kind {
    ZONES_SVC_CLUSTER_IP, /* ClusterIP, NodePort, LoadBalancer */
    ZONES_SVC_HEADLESS,   /* clusterIP: None */
    ZONES_SVC_EXTERNAL_NAME,
};

struct zones_service {
    char *name;
    char *ns;
    enum zones_service_kind kind;
    struct zones_ip *ips; /* spec.clusterIPs (or clusterIP); n_ips 0: the model assigns one */
    size_t n_ips;
    char *external_name; /* ExternalName only, lower-cased, no trailing dot */
    struct zones_port *ports;
    size_t n_ports;
    struct zones_label *selector; /* spec.selector */
    size_t n_selector;
    struct zones_where where;
    struct zones_where ips_where; /* spec.clusterIPs or spec.clusterIP; where when absent */
};

struct zones_endpoint {
    struct zones_ip *ips; /* EndpointSlice: addresses; Endpoints: the one ip */
    size_t n_ips;
    char *hostname; /* lower-cased; NULL when absent */
    bool ready;     /* conditions.ready; absent counts as ready. Endpoints: addresses vs
                       notReadyAddresses */
};

/* A discovery.k8s.io/v1 EndpointSlice, or one subset of a v1 Endpoints object. */
struct zones_slice {
    char *name;
    char *ns;
    char *service; /* label kubernetes.io/service-name, or the Endpoints object's name */
    struct zones_endpoint *endpoints;
    size_t n_endpoints;
    struct zones_port *ports;
    size_t n_ports;
    struct zones_where where;
};

struct zones_pod {
    char *name;
    char *ns;
    struct zones_ip *ips; /* status.podIPs, or status.podIP */
    size_t n_ips;
    char *hostname;             /* spec.hostname, lower-cased; NULL when absent */
    char *subdomain;            /* spec.subdomain, lower-cased; NULL when absent */
    struct zones_label *labels; /* metadata.labels */
    size_t n_labels;
    bool ready; /* status.conditions type Ready; absent counts as ready */
    struct zones_where where;
};

struct zones_namespace {
    char *name;
    struct zones_where where;
};

/* A service CIDR, as given to --service-cidr. */
struct zones_cidr {
    struct zones_ip base;
    uint8_t prefix;
};

/* A networking.k8s.io/v1 ServiceCIDR: ranges the API server allocates ClusterIPs from (one
 * per family), which the model adds to --service-cidr's. */
struct zones_service_cidr {
    char *name;
    struct zones_cidr *cidrs;
    size_t n_cidrs;
    struct zones_where where;
};

struct zones_diag {
    struct zones_where where;
    char *message; /* what is wrong and what to do, one line, no trailing period needed */
};

/* Memory carved from blocks and freed together, for what lives exactly as long as its owner:
 * the objects' strings and arrays, the loader's DOM of one document. 8-byte aligned, not
 * zeroed; a request over a quarter of a block gets a block of its own. Zeroed: all-empty. */
struct zones_arena_block;
struct zones_arena {
    struct zones_arena_block *head;
};
void *zones_arena_alloc(struct zones_arena *arena, size_t size);
void zones_arena_free(struct zones_arena *arena);

/* Memory for loading and building. zones/ has one out-of-memory policy: what a load or a
 * build cannot allocate aborts the process, as NSD's region allocator and Redis's zmalloc do.
 * What a manifest can make us allocate is bounded (zones/manifest.h), a worker never
 * allocates per query, and a process that cannot get memory for its data is better restarted
 * by its supervisor than left serving half of it. */
void *zones_xrealloc(void *ptr, size_t size);
void *zones_xcalloc(size_t n, size_t size);

/* One DNS label in wire form ("\5_http") from prefix ("" or "_") and text; false when empty
 * or longer than 63. label has room for 64 bytes. */
bool zones_label_from_text(const char *prefix, const char *text, uint8_t *label);

/* FNV-1a over data, continuing from hash (start from ZONES_FNV_OFFSET_BASIS): stable across
 * runs and machines, for ClusterIPs, tables and the manifests' signature. */
#define ZONES_FNV_OFFSET_BASIS 0xcbf29ce484222325U
uint64_t zones_fnv1a(uint64_t hash, const void *data, size_t len);

struct zones_objects {
    struct zones_service *services;
    size_t n_services;
    struct zones_slice *slices;
    size_t n_slices;
    struct zones_pod *pods;
    size_t n_pods;
    struct zones_namespace *namespaces;
    size_t n_namespaces;
    struct zones_service_cidr *service_cidrs;
    size_t n_service_cidrs;
    size_t n_skipped; /* objects of other kinds (ReplicaSet, Deployment, ...) */
    size_t n_invalid; /* objects left out for an error in them (each error is in diags) */
    size_t n_unread;  /* documents or files that could not be read at all: bad YAML, a limit,
                         an I/O error. A source with any keeps its last good objects. */
    size_t n_files;
    char **files;             /* interned file names, for zones_where.file */
    int64_t newest_mtime;     /* of the files read, in Unix seconds; 0 if none */
    struct zones_diag *diags; /* every error found, in order */
    size_t n_diags;
    struct zones_diag *warnings; /* what was loaded anyway, but deserves a look */
    size_t n_warnings;
    struct zones_arena blocks; /* every string and array the objects point to */
};

void zones_objects_init(struct zones_objects *objs);
void zones_objects_free(struct zones_objects *objs);

/* Records an error (or a warning) at where; message is formatted like printf. */
void zones_objects_error(struct zones_objects *objs, const struct zones_where *where,
                         const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void zones_objects_warn(struct zones_objects *objs, const struct zones_where *where,
                        const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* For sources (zones/decode.c). add_* appends a zeroed object and returns it; the pointer
 * is valid until the next add of that kind. intern_file returns a copy of name owned by objs,
 * for zones_where.file. A decoder that finds an object broken drops what it added since a
 * checkpoint; diags are kept. Allocation failure aborts (see zones_xrealloc). */
struct zones_service *zones_objects_add_service(struct zones_objects *objs);
struct zones_slice *zones_objects_add_slice(struct zones_objects *objs);
struct zones_pod *zones_objects_add_pod(struct zones_objects *objs);
struct zones_namespace *zones_objects_add_namespace(struct zones_objects *objs);
struct zones_service_cidr *zones_objects_add_service_cidr(struct zones_objects *objs);
const char *zones_objects_intern_file(struct zones_objects *objs, const char *name);
/* Memory for what the objects point to: zeroed, 8-byte aligned, freed with objs and never on
 * its own (a rolled-back or replaced object leaves its bytes until then). 100k Services make
 * a million strings and arrays; one malloc each cost twice the memory and much of the time. */
void *zones_objects_alloc(struct zones_objects *objs, size_t size);
char *zones_objects_strndup(struct zones_objects *objs, const char *s, size_t len);

struct zones_objects_mark {
    size_t n_services, n_slices, n_pods, n_namespaces, n_service_cidrs, n_skipped;
};
struct zones_objects_mark zones_objects_checkpoint(const struct zones_objects *objs);
void zones_objects_rollback(struct zones_objects *objs, const struct zones_objects_mark *mark);

/* "10.96.0.0/12" or "fd00::/108"; host bits are cleared, as net.ParseCIDR does. 0 or -1. */
int zones_cidr_parse(const char *text, struct zones_cidr *out);
bool zones_cidr_contains(const struct zones_cidr *cidr, const struct zones_ip *ip);
int zones_ip_parse(const char *text, struct zones_ip *out); /* 0 or -1 */
/* Formats like inet_ntop; returns out. cap >= 46. */
char *zones_ip_format(const struct zones_ip *ip, char *out, size_t cap);

/* Objects one by one, for a source that keeps each object as long as it lives (the Kubernetes
 * API), not a whole file's worth together: a copy of obj in one allocation of its own, free it
 * with free(). The copy keeps what answers need and nothing more: a Service without its
 * selector (its endpoints come from EndpointSlices, never from Pods), an EndpointSlice with
 * its ready endpoints only, a Pod with its name, namespace, addresses and readiness. where
 * points where the original's did (its file name must outlive the copy). extra zeroed bytes
 * follow the struct, at (void *)(copy + 1), for the source's own use. */
struct zones_service *zones_objects_clone_service(const struct zones_service *svc, size_t extra);
struct zones_slice *zones_objects_clone_slice(const struct zones_slice *slice, size_t extra);
struct zones_pod *zones_objects_clone_pod(const struct zones_pod *pod, size_t extra);
struct zones_namespace *zones_objects_clone_namespace(const struct zones_namespace *ns,
                                                      size_t extra);

#endif
