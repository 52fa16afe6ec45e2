/* zones/objects.c - the object container, IP and CIDR helpers, and ClusterIP assignment.
 *
 * Owns every string and array the objects point to, in blocks freed together. The invariant
 * that matters is in zones_objects_assign_ips(): an assigned address depends only on the
 * Service's namespace and name and on the addresses other Services state, never on load order
 * or on a random seed. */
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

#define ARENA_BLOCK ((size_t)64 * 1024)

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
    objs->n_skipped = mark->n_skipped;
}

struct zones_objects_mark zones_objects_checkpoint(const struct zones_objects *objs)
{
    struct zones_objects_mark mark = {
        .n_services = objs->n_services,
        .n_slices = objs->n_slices,
        .n_pods = objs->n_pods,
        .n_namespaces = objs->n_namespaces,
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

static bool ip_equal(const struct zones_ip *a, const struct zones_ip *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, 16) == 0;
}

/* An open-addressing set of addresses taken so far; sized once, never full. */
struct ip_set {
    struct zones_ip *slots; /* family 0: empty */
    size_t mask;
    size_t n;
};

static void ip_set_init(struct ip_set *set, size_t expected)
{
    size_t size = 16;
    while (size < expected * 2)
        size *= 2;
    set->slots = zones_xrealloc(NULL, size * sizeof(set->slots[0]));
    memset(set->slots, 0, size * sizeof(set->slots[0]));
    set->mask = size - 1;
    set->n = 0;
}

/* Returns true when ip was already in the set. */
static bool ip_set_add(struct ip_set *set, const struct zones_ip *ip)
{
    size_t i = (size_t)zones_fnv1a(ZONES_FNV_OFFSET_BASIS, ip, sizeof(*ip)) & set->mask;
    while (set->slots[i].family != 0) {
        if (ip_equal(&set->slots[i], ip))
            return true;
        i = (i + 1) & set->mask;
    }
    set->slots[i] = *ip;
    set->n++;
    return false;
}

static int compare_services(const void *a, const void *b)
{
    const struct zones_service *x = *(const struct zones_service *const *)a;
    const struct zones_service *y = *(const struct zones_service *const *)b;
    int c = strcmp(x->ns, y->ns);
    if (c == 0)
        c = strcmp(x->name, y->name);
    if (c == 0)
        c = x < y ? -1 : x > y; /* load order among duplicates: the first one stays first */
    return c;
}

static bool same_service(const struct zones_service *a, const struct zones_service *b)
{
    return strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0;
}

static const char *file_name(const struct zones_where *where)
{
    return where->file != NULL ? where->file : "?";
}

static bool same_file(const struct zones_where *a, const struct zones_where *b)
{
    return a->file == b->file || (a->file && b->file && strcmp(a->file, b->file) == 0);
}

/* A Service defined again in a later file replaces the earlier one, as a second kubectl
 * apply would update it: the tutorial's simple-service.yaml and simple-node-port-service.yaml
 * are one Service applied twice. In a single file, a second definition is a mistake. */
static void check_duplicates(struct zones_objects *objs, struct zones_service **sorted, size_t n,
                             bool *replaced)
{
    for (size_t i = 1; i < n; i++) {
        const struct zones_service *a = sorted[i - 1];
        const struct zones_service *b = sorted[i];
        if (!same_service(a, b))
            continue;
        if (same_file(&a->where, &b->where)) {
            zones_objects_error(objs, &b->where,
                                "Service %s/%s is defined twice in this file, first at %s:%u:%u; "
                                "keep one of them or rename this one",
                                a->ns, a->name, file_name(&a->where), a->where.line, a->where.col);
            continue;
        }
        zones_objects_warn(objs, &b->where,
                           "Service %s/%s replaces its definition at %s:%u:%u, as a second "
                           "kubectl apply would; remove one of them to silence this",
                           a->ns, a->name, file_name(&a->where), a->where.line, a->where.col);
        replaced[a - objs->services] = true;
    }
}

/* Drops the replaced definitions, keeping load order. */
/* Whether any was dropped. */
static bool drop_replaced(struct zones_objects *objs, const bool *replaced)
{
    size_t w = 0;
    for (size_t i = 0; i < objs->n_services; i++) {
        if (!replaced[i])
            objs->services[w++] = objs->services[i];
    }
    bool dropped = w < objs->n_services;
    objs->n_services = w;
    return dropped;
}

/* "10.96.0.0/12, fd00::/108" for messages; long lists are cut with "...". */
static void format_cidrs(const struct zones_cidr *cidrs, size_t n_cidrs, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n_cidrs; i++) {
        char ip[INET6_ADDRSTRLEN];
        zones_ip_format(&cidrs[i].base, ip, sizeof(ip));
        int w = snprintf(out + used, cap - used, "%s%s/%u", i > 0 ? ", " : "", ip, cidrs[i].prefix);
        if (w < 0 || (size_t)w >= cap - used) {
            snprintf(out + (used < cap - 4 ? used : cap - 4), 4, "...");
            return;
        }
        used += (size_t)w;
    }
}

static void check_in_cidrs(struct zones_objects *objs, const struct zones_service *svc,
                           const struct zones_cidr *cidrs, size_t n_cidrs)
{
    for (size_t i = 0; i < svc->n_ips; i++) {
        bool inside = false;
        for (size_t c = 0; c < n_cidrs && !inside; c++)
            inside = zones_cidr_contains(&cidrs[c], &svc->ips[i]);
        if (inside)
            continue;
        char ip[INET6_ADDRSTRLEN];
        char list[256];
        format_cidrs(cidrs, n_cidrs, list, sizeof(list));
        zones_objects_error(objs, &svc->ips_where,
                            "clusterIP %s of Service %s/%s is outside every --service-cidr (%s); "
                            "add a --service-cidr that covers it, or remove the clusterIP to "
                            "have one assigned",
                            zones_ip_format(&svc->ips[i], ip, sizeof(ip)), svc->ns, svc->name,
                            list);
    }
}

struct stated_ip {
    struct zones_ip ip;
    const struct zones_service *svc;
};

static int compare_stated(const void *a, const void *b)
{
    const struct stated_ip *x = a;
    const struct stated_ip *y = b;
    int c = memcmp(&x->ip, &y->ip, sizeof(x->ip));
    if (c == 0)
        c = x->svc < y->svc ? -1 : x->svc > y->svc;
    return c;
}

/* Reports addresses stated by two different Services, at the later one in load order. */
static void check_clashes(struct zones_objects *objs, struct stated_ip *stated, size_t n)
{
    qsort(stated, n, sizeof(stated[0]), compare_stated);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        if (!ip_equal(&stated[first].ip, &stated[i].ip)) {
            first = i;
            continue;
        }
        const struct zones_service *a = stated[first].svc;
        const struct zones_service *b = stated[i].svc;
        if (same_service(a, b))
            continue; /* a duplicate Service, already reported as such */
        char ip[INET6_ADDRSTRLEN];
        zones_objects_error(objs, &b->ips_where,
                            "clusterIP %s of Service %s/%s is also stated by Service %s/%s at "
                            "%s:%u; give each Service its own address, or remove one to have "
                            "it assigned",
                            zones_ip_format(&stated[i].ip, ip, sizeof(ip)), b->ns, b->name, a->ns,
                            a->name, file_name(&a->where), a->where.line);
    }
}

static bool needs_address(const struct zones_service *svc)
{
    return svc->kind == ZONES_SVC_CLUSTER_IP && svc->n_ips == 0;
}

/* The range assignment draws from: offsets [2, 2 + count) from the CIDR base. */
struct pool {
    const struct zones_cidr *cidr;
    uint64_t count;
};

static const struct zones_cidr *pick_cidr(const struct zones_cidr *cidrs, size_t n_cidrs)
{
    for (size_t i = 0; i < n_cidrs; i++) {
        if (cidrs[i].base.family == 4)
            return &cidrs[i];
    }
    for (size_t i = 0; i < n_cidrs; i++) {
        if (cidrs[i].base.family == 6)
            return &cidrs[i];
    }
    return NULL;
}

/* IPv4 loses the network address, the first host and the broadcast; IPv6 has no broadcast. */
static struct pool make_pool(const struct zones_cidr *cidr)
{
    struct pool pool = {.cidr = cidr, .count = 0};
    unsigned host_bits = family_bits(cidr->base.family) - cidr->prefix;
    unsigned reserved = cidr->base.family == 4 ? 3 : 2;
    if (host_bits >= 64)
        pool.count = UINT64_MAX - 1;
    else if ((UINT64_C(1) << host_bits) > reserved)
        pool.count = (UINT64_C(1) << host_bits) - reserved;
    return pool;
}

static struct zones_ip pool_address(const struct pool *pool, uint64_t offset)
{
    struct zones_ip ip = pool->cidr->base;
    unsigned last = ip.family == 4 ? 3 : 15;
    for (unsigned i = 0; i < 8 && i <= last; i++)
        ip.addr[last - i] |= (uint8_t)(offset >> (8 * i));
    return ip;
}

static void assign_one(struct zones_objects *objs, struct zones_service *svc,
                       const struct pool *pool, struct ip_set *taken)
{
    uint64_t hash = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, svc->ns, strlen(svc->ns));
    hash = zones_fnv1a(hash, "/", 1);
    hash = zones_fnv1a(hash, svc->name, strlen(svc->name));
    /* Among taken->n + 1 candidates at least one is free, so the probe is short even in a
     * huge IPv6 range; only a range smaller than that can be full. */
    uint64_t tries = pool->count < taken->n + 1 ? pool->count : taken->n + 1;
    uint64_t offset = pool->count > 0 ? hash % pool->count : 0;
    for (uint64_t t = 0; t < tries; t++, offset = offset + 1 == pool->count ? 0 : offset + 1) {
        struct zones_ip ip = pool_address(pool, 2 + offset);
        if (ip_set_add(taken, &ip))
            continue;
        svc->ips = zones_objects_alloc(objs, sizeof(svc->ips[0]));
        svc->ips[0] = ip;
        svc->n_ips = 1;
        svc->ips_assigned = true;
        return;
    }
    char base[INET6_ADDRSTRLEN];
    zones_objects_error(objs, &svc->where,
                        "no free address left in --service-cidr %s/%u for Service %s/%s; use a "
                        "larger --service-cidr",
                        zones_ip_format(&pool->cidr->base, base, sizeof(base)), pool->cidr->prefix,
                        svc->ns, svc->name);
}

void zones_objects_assign_ips(struct zones_objects *objs, const struct zones_cidr *cidrs,
                              size_t n_cidrs)
{
    size_t n = objs->n_services;
    if (n == 0)
        return;
    struct zones_service **sorted = zones_xrealloc(NULL, n * sizeof(struct zones_service *));
    size_t n_stated = 0;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &objs->services[i];
        n_stated += objs->services[i].n_ips;
    }
    qsort(sorted, n, sizeof(struct zones_service *), compare_services);
    bool *replaced = zones_xrealloc(NULL, n * sizeof(bool));
    memset(replaced, 0, n * sizeof(bool));
    check_duplicates(objs, sorted, n, replaced);
    if (drop_replaced(objs, replaced)) { /* the survivors moved: sort them again */
        n = objs->n_services;
        n_stated = 0;
        for (size_t i = 0; i < n; i++) {
            sorted[i] = &objs->services[i];
            n_stated += objs->services[i].n_ips;
        }
        qsort(sorted, n, sizeof(struct zones_service *), compare_services);
    }
    free(replaced);

    struct stated_ip *stated = zones_xrealloc(NULL, (n_stated + 1) * sizeof(stated[0]));
    struct ip_set taken;
    ip_set_init(&taken, n_stated + n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct zones_service *svc = &objs->services[i];
        if (n_cidrs > 0)
            check_in_cidrs(objs, svc, cidrs, n_cidrs);
        for (size_t j = 0; j < svc->n_ips; j++) {
            stated[k].ip = svc->ips[j];
            stated[k++].svc = svc;
            ip_set_add(&taken, &svc->ips[j]);
        }
    }
    check_clashes(objs, stated, k);
    free(stated);

    const struct zones_cidr *cidr = pick_cidr(cidrs, n_cidrs);
    if (cidr != NULL) {
        struct pool pool = make_pool(cidr);
        for (size_t i = 0; i < n; i++) {
            if (needs_address(sorted[i]))
                assign_one(objs, sorted[i], &pool, &taken);
        }
    }
    free(taken.slots);
    free(sorted);
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
                                    .ips_assigned = s->ips_assigned,
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
