/* zones/objects.c - the object container, and IP and CIDR helpers.
 *
 * Owns every string and array the objects point to, in blocks freed together: a rollback or
 * a replaced object leaves its bytes until the whole container goes. */
#include "zones/objects.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/log.h"

#define FNV_PRIME 0x100000001b3U

/* The out-of-memory policy of zones/: loading and building abort (see objects.h). */
void *zones_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL) {
        log_error("zones", "msg=\"out of memory\" bytes=%zu", size);
        abort();
    }
    return p;
}

void *zones_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) {
        log_error("zones", "msg=\"out of memory\" bytes=%zu", n * size);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    return memcpy(zones_xrealloc(NULL, len), s, len);
}

/* Appends one zeroed element. The capacity is implied by n (the next power of two, at least
 * 4), so the public structs need no capacity fields and a rollback that lowers n stays valid. */
static void *append(void *array, size_t *n, size_t size)
{
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0))
        array = zones_xrealloc(array, (*n == 0 ? 4 : *n * 2) * size);
    char *slot = (char *)array + *n * size;
    memset(slot, 0, size);
    (*n)++;
    return array;
}

void zones_objects_init(struct zones_objects *objs)
{
    memset(objs, 0, sizeof(*objs));
}

/* Small enough that a file's last, part-used block wastes little (a source per file, 100
 * files), large enough that malloc's overhead per block does not count. */
#define ARENA_BLOCK ((size_t)16 * 1024)

struct zones_arena_block {
    struct zones_arena_block *next;
    size_t used;
    size_t cap;
    uint64_t data[]; /* what lives here holds pointers, sizes and uint64_t: 8-byte alignment */
};

void *zones_arena_alloc(struct zones_arena *arena, size_t size)
{
    size_t align = _Alignof(uint64_t) > _Alignof(void *) ? _Alignof(uint64_t) : _Alignof(void *);
    size = (size + align - 1) / align * align;
    struct zones_arena_block *block = arena->head;
    if (block == NULL || block->cap - block->used < size) {
        bool dedicated = size > ARENA_BLOCK / 4;
        size_t cap = dedicated ? size : ARENA_BLOCK;
        block = zones_xrealloc(NULL, sizeof(*block) + cap);
        block->used = 0;
        block->cap = cap;
        /* A block of its own goes second, so the head's free space is not abandoned. */
        if (dedicated && arena->head != NULL) {
            block->next = arena->head->next;
            arena->head->next = block;
        } else {
            block->next = arena->head;
            arena->head = block;
        }
    }
    void *p = (char *)block->data + block->used;
    block->used += size;
    return p;
}

void zones_arena_free(struct zones_arena *arena)
{
    while (arena->head != NULL) {
        struct zones_arena_block *next = arena->head->next;
        free(arena->head);
        arena->head = next;
    }
}

void *zones_objects_alloc(struct zones_objects *objs, size_t size)
{
    return memset(zones_arena_alloc(&objs->blocks, size), 0, size);
}

char *zones_objects_strndup(struct zones_objects *objs, const char *s, size_t len)
{
    char *p = zones_objects_alloc(objs, len + 1);
    memcpy(p, s, len);
    return p;
}

void zones_objects_rollback(struct zones_objects *objs, const struct zones_objects_mark *mark)
{
    objs->n_services = mark->n_services;
    objs->n_slices = mark->n_slices;
    objs->n_pods = mark->n_pods;
    objs->n_namespaces = mark->n_namespaces;
    objs->n_service_cidrs = mark->n_service_cidrs;
    objs->n_skipped = mark->n_skipped;
}

struct zones_objects_mark zones_objects_checkpoint(const struct zones_objects *objs)
{
    struct zones_objects_mark mark = {
        .n_services = objs->n_services,
        .n_slices = objs->n_slices,
        .n_pods = objs->n_pods,
        .n_namespaces = objs->n_namespaces,
        .n_service_cidrs = objs->n_service_cidrs,
        .n_skipped = objs->n_skipped,
    };
    return mark;
}

void zones_objects_free(struct zones_objects *objs)
{
    zones_arena_free(&objs->blocks);
    free(objs->services);
    free(objs->slices);
    free(objs->pods);
    free(objs->namespaces);
    free(objs->service_cidrs);
    for (size_t i = 0; i < objs->n_files; i++)
        free(objs->files[i]);
    free(objs->files);
    for (size_t i = 0; i < objs->n_diags; i++)
        free(objs->diags[i].message);
    free(objs->diags);
    for (size_t i = 0; i < objs->n_warnings; i++)
        free(objs->warnings[i].message);
    free(objs->warnings);
    zones_objects_init(objs);
}

struct zones_service *zones_objects_add_service(struct zones_objects *objs)
{
    objs->services = append(objs->services, &objs->n_services, sizeof(objs->services[0]));
    return &objs->services[objs->n_services - 1];
}

struct zones_slice *zones_objects_add_slice(struct zones_objects *objs)
{
    objs->slices = append(objs->slices, &objs->n_slices, sizeof(objs->slices[0]));
    return &objs->slices[objs->n_slices - 1];
}

struct zones_pod *zones_objects_add_pod(struct zones_objects *objs)
{
    objs->pods = append(objs->pods, &objs->n_pods, sizeof(objs->pods[0]));
    return &objs->pods[objs->n_pods - 1];
}

struct zones_namespace *zones_objects_add_namespace(struct zones_objects *objs)
{
    objs->namespaces = append(objs->namespaces, &objs->n_namespaces, sizeof(objs->namespaces[0]));
    return &objs->namespaces[objs->n_namespaces - 1];
}

struct zones_service_cidr *zones_objects_add_service_cidr(struct zones_objects *objs)
{
    objs->service_cidrs =
        append(objs->service_cidrs, &objs->n_service_cidrs, sizeof(objs->service_cidrs[0]));
    return &objs->service_cidrs[objs->n_service_cidrs - 1];
}

/* Only the latest file is compared: a loader interns each file once, and a directory of many
 * files must not cost a quadratic search. A repeated name merely costs a second copy. */
const char *zones_objects_intern_file(struct zones_objects *objs, const char *name)
{
    if (objs->n_files > 0 && strcmp(objs->files[objs->n_files - 1], name) == 0)
        return objs->files[objs->n_files - 1];
    objs->files = append(objs->files, &objs->n_files, sizeof(objs->files[0]));
    objs->files[objs->n_files - 1] = xstrdup(name);
    return objs->files[objs->n_files - 1];
}

/* A diag must not point at a caller's buffer, so a file name that is not already one of ours
 * is interned here. */
static const char *own_file(struct zones_objects *objs, const char *file)
{
    if (file == NULL)
        return NULL;
    for (size_t i = objs->n_files; i > 0; i--) {
        if (objs->files[i - 1] == file)
            return file;
    }
    return zones_objects_intern_file(objs, file);
}

static void add_diag(struct zones_objects *objs, struct zones_diag **list, size_t *n,
                     const struct zones_where *where, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static void add_diag(struct zones_objects *objs, struct zones_diag **list, size_t *n,
                     const struct zones_where *where, const char *fmt, va_list ap)
{
    /* The NOLINTs: clang-analyzer 14 reports va_list as uninitialized when it inlines a
     * variadic function into its caller; it is started by the caller. */
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(NULL, 0, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    if (len < 0)
        len = 0;
    char *message = zones_xrealloc(NULL, (size_t)len + 1);
    vsnprintf(message, (size_t)len + 1, fmt,
              again); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(again);

    *list = append(*list, n, sizeof((*list)[0]));
    struct zones_diag *diag = &(*list)[*n - 1];
    diag->where = *where;
    diag->where.file = own_file(objs, where->file);
    diag->message = message;
}

void zones_objects_error(struct zones_objects *objs, const struct zones_where *where,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_diag(objs, &objs->diags, &objs->n_diags, where, fmt, ap);
    va_end(ap);
}

void zones_objects_warn(struct zones_objects *objs, const struct zones_where *where,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_diag(objs, &objs->warnings, &objs->n_warnings, where, fmt, ap);
    va_end(ap);
}

int zones_ip_parse(const char *text, struct zones_ip *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = 6;
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return -1;
}

char *zones_ip_format(const struct zones_ip *ip, char *out, size_t cap)
{
    int af = ip->family == 4 ? AF_INET : AF_INET6;
    if (cap == 0)
        return out;
    if ((ip->family != 4 && ip->family != 6) ||
        inet_ntop(af, ip->addr, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "?");
    return out;
}

static unsigned family_bits(uint8_t family)
{
    return family == 4 ? 32 : 128;
}

int zones_cidr_parse(const char *text, struct zones_cidr *out)
{
    const char *slash = strchr(text, '/');
    char addr[INET6_ADDRSTRLEN];
    if (slash == NULL || (size_t)(slash - text) >= sizeof(addr))
        return -1;
    memcpy(addr, text, (size_t)(slash - text));
    addr[slash - text] = '\0';
    struct zones_cidr cidr;
    if (zones_ip_parse(addr, &cidr.base) != 0)
        return -1;
    const char *p = slash + 1;
    unsigned prefix = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
        prefix = prefix * 10 + (unsigned)(*p - '0');
    if (digits == 0 || *p != '\0' || prefix > family_bits(cidr.base.family))
        return -1;
    cidr.prefix = (uint8_t)prefix;
    for (unsigned bit = prefix; bit < family_bits(cidr.base.family); bit++)
        cidr.base.addr[bit / 8] &= (uint8_t) ~(0x80U >> (bit % 8));
    *out = cidr;
    return 0;
}

bool zones_cidr_contains(const struct zones_cidr *cidr, const struct zones_ip *ip)
{
    if (cidr->base.family != ip->family)
        return false;
    unsigned full = cidr->prefix / 8;
    if (memcmp(cidr->base.addr, ip->addr, full) != 0)
        return false;
    unsigned rest = cidr->prefix % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffU << (8 - rest));
    return (cidr->base.addr[full] & mask) == (ip->addr[full] & mask);
}

/* ---- ClusterIP validation and assignment ---- */

bool zones_label_from_text(const char *prefix, const char *text, uint8_t *label)
{
    size_t p = strlen(prefix);
    size_t n = strlen(text);
    if (n == 0 || p + n > 63)
        return false;
    label[0] = (uint8_t)(p + n);
    for (size_t i = 0; i < p; i++)
        label[1 + i] = (uint8_t)prefix[i];
    for (size_t i = 0; i < n; i++)
        label[1 + p + i] = (uint8_t)text[i];
    return true;
}

uint64_t zones_fnv1a(uint64_t hash, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        hash ^= p[i];
        hash *= FNV_PRIME;
    }
    return hash;
}

/* ---- copies of one object ---- */

/* Lays an object out in one block: run once with base NULL to measure (every take returns
 * NULL and nothing is written), then again over a block of that size. */
struct pack {
    char *base;
    size_t at;
};

static void *take(struct pack *p, size_t size, size_t align)
{
    p->at = (p->at + align - 1) / align * align;
    void *at = p->base != NULL && size > 0 ? p->base + p->at : NULL;
    p->at += size;
    return at;
}

#define ALIGNED(p, n, type) ((type *)take(p, (n) * sizeof(type), _Alignof(type)))

static void *take_copy(struct pack *p, const void *src, size_t size, size_t align)
{
    void *dst = take(p, size, align);
    return dst != NULL ? memcpy(dst, src, size) : NULL;
}

static char *pack_str(struct pack *p, const char *s)
{
    return s != NULL ? take_copy(p, s, strlen(s) + 1, 1) : NULL;
}

/* The three protocols a port can have, shared instead of copied. */
static const char *protocol_literal(const char *protocol)
{
    static const char *const known[] = {"tcp", "udp", "sctp"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (protocol != NULL && strcmp(protocol, known[i]) == 0)
            return known[i];
    }
    return known[0];
}

static struct zones_port *pack_ports(struct pack *p, const struct zones_port *src, size_t n)
{
    struct zones_port *dst = ALIGNED(p, n, struct zones_port);
    for (size_t i = 0; i < n; i++) {
        char *name = pack_str(p, src[i].name);
        if (dst != NULL)
            dst[i] =
                (struct zones_port){name, (char *)protocol_literal(src[i].protocol), src[i].port};
    }
    return dst;
}

static struct zones_ip *pack_ips(struct pack *p, const struct zones_ip *src, size_t n)
{
    return take_copy(p, src, n * sizeof(src[0]), _Alignof(struct zones_ip));
}

static struct zones_service *pack_service(struct pack *p, const struct zones_service *s,
                                          size_t extra)
{
    struct zones_service *d = take(p, sizeof(*d) + extra, _Alignof(struct zones_service));
    struct zones_ip *ips = pack_ips(p, s->ips, s->n_ips);
    struct zones_port *ports = pack_ports(p, s->ports, s->n_ports);
    char *name = pack_str(p, s->name);
    char *ns = pack_str(p, s->ns);
    char *external_name = pack_str(p, s->external_name);
    if (d != NULL)
        *d = (struct zones_service){.name = name,
                                    .ns = ns,
                                    .kind = s->kind,
                                    .ips = ips,
                                    .n_ips = s->n_ips,
                                    .external_name = external_name,
                                    .ports = ports,
                                    .n_ports = s->n_ports,
                                    .where = s->where,
                                    .ips_where = s->ips_where};
    return d;
}

static bool endpoint_is_kept(const struct zones_endpoint *e)
{
    return e->ready && e->n_ips > 0;
}

static struct zones_slice *pack_slice(struct pack *p, const struct zones_slice *s, size_t extra)
{
    struct zones_slice *d = take(p, sizeof(*d) + extra, _Alignof(struct zones_slice));
    size_t n = 0;
    for (size_t i = 0; i < s->n_endpoints; i++)
        n += endpoint_is_kept(&s->endpoints[i]);
    struct zones_endpoint *eps = ALIGNED(p, n, struct zones_endpoint);
    size_t k = 0;
    for (size_t i = 0; i < s->n_endpoints; i++) {
        const struct zones_endpoint *e = &s->endpoints[i];
        if (!endpoint_is_kept(e))
            continue;
        struct zones_ip *ips = pack_ips(p, e->ips, e->n_ips);
        char *hostname = pack_str(p, e->hostname);
        if (eps != NULL)
            eps[k] = (struct zones_endpoint){ips, e->n_ips, hostname, true};
        k++;
    }
    struct zones_port *ports = pack_ports(p, s->ports, s->n_ports);
    char *name = pack_str(p, s->name);
    char *ns = pack_str(p, s->ns);
    char *service = pack_str(p, s->service);
    if (d != NULL)
        *d = (struct zones_slice){.name = name,
                                  .ns = ns,
                                  .service = service,
                                  .endpoints = eps,
                                  .n_endpoints = n,
                                  .ports = ports,
                                  .n_ports = s->n_ports,
                                  .where = s->where};
    return d;
}

static struct zones_pod *pack_pod(struct pack *p, const struct zones_pod *s, size_t extra)
{
    struct zones_pod *d = take(p, sizeof(*d) + extra, _Alignof(struct zones_pod));
    struct zones_ip *ips = pack_ips(p, s->ips, s->n_ips);
    char *name = pack_str(p, s->name);
    char *ns = pack_str(p, s->ns);
    if (d != NULL)
        *d = (struct zones_pod){.name = name,
                                .ns = ns,
                                .ips = ips,
                                .n_ips = s->n_ips,
                                .ready = s->ready,
                                .where = s->where};
    return d;
}

static struct zones_namespace *pack_namespace(struct pack *p, const struct zones_namespace *s,
                                              size_t extra)
{
    struct zones_namespace *d = take(p, sizeof(*d) + extra, _Alignof(struct zones_namespace));
    char *name = pack_str(p, s->name);
    if (d != NULL)
        *d = (struct zones_namespace){.name = name, .where = s->where};
    return d;
}

/* After a measuring pass: a zeroed block of that size (the extra bytes start clear). */
static struct pack filling(const struct pack *measured)
{
    return (struct pack){zones_xcalloc(1, measured->at), 0};
}

struct zones_service *zones_objects_clone_service(const struct zones_service *svc, size_t extra)
{
    struct pack p = {NULL, 0};
    pack_service(&p, svc, extra);
    p = filling(&p);
    pack_service(&p, svc, extra);
    return (struct zones_service *)(void *)p.base; /* the struct comes first */
}

struct zones_slice *zones_objects_clone_slice(const struct zones_slice *slice, size_t extra)
{
    struct pack p = {NULL, 0};
    pack_slice(&p, slice, extra);
    p = filling(&p);
    pack_slice(&p, slice, extra);
    return (struct zones_slice *)(void *)p.base; /* the struct comes first */
}

struct zones_pod *zones_objects_clone_pod(const struct zones_pod *pod, size_t extra)
{
    struct pack p = {NULL, 0};
    pack_pod(&p, pod, extra);
    p = filling(&p);
    pack_pod(&p, pod, extra);
    return (struct zones_pod *)(void *)p.base; /* the struct comes first */
}

struct zones_namespace *zones_objects_clone_namespace(const struct zones_namespace *ns,
                                                      size_t extra)
{
    struct pack p = {NULL, 0};
    pack_namespace(&p, ns, extra);
    p = filling(&p);
    pack_namespace(&p, ns, extra);
    return (struct zones_namespace *)(void *)p.base; /* the struct comes first */
}
