/* zones/cache.c - each manifest file's objects on disk, read back instead of parsed.
 *
 * An entry: "SVCDNS-OBJECTS\n", a format number, the build, the path, the stamp, then the
 * objects, every number little-endian and every string a u32 length (NONE for NULL) and its
 * bytes. Reading is a bounds-checked cursor: an entry cut short, too long, or naming another
 * path, stamp or build is a miss, never a crash or half a file's objects. */
#include "zones/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "SVCDNS-OBJECTS\n"
#define FORMAT 1u
#define NONE UINT32_MAX
#define MAX_ENTRY ((size_t)256 << 20) /* larger than any file's objects can be */

/* ---- writing ---- */

struct out {
    uint8_t *buf;
    size_t len, cap;
};

static void put(struct out *o, const void *data, size_t n)
{
    if (o->len + n > o->cap) {
        while (o->len + n > o->cap)
            o->cap = o->cap ? o->cap * 2 : 4096;
        o->buf = zones_xrealloc(o->buf, o->cap);
    }
    memcpy(o->buf + o->len, data, n);
    o->len += n;
}

static void put_u8(struct out *o, uint8_t v)
{
    put(o, &v, 1);
}

static void put_u32(struct out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}

static void put_u64(struct out *o, uint64_t v)
{
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}

static void put_str(struct out *o, const char *s)
{
    if (s == NULL) {
        put_u32(o, NONE);
        return;
    }
    size_t n = strlen(s);
    put_u32(o, (uint32_t)n);
    put(o, s, n);
}

static void put_ips(struct out *o, const struct zones_ip *ips, size_t n)
{
    put_u32(o, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put_u8(o, ips[i].family);
        put(o, ips[i].addr, sizeof(ips[i].addr));
    }
}

static void put_ports(struct out *o, const struct zones_port *ports, size_t n)
{
    put_u32(o, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put_str(o, ports[i].name);
        put_str(o, ports[i].protocol);
        put_u32(o, ports[i].port);
    }
}

static void put_labels(struct out *o, const struct zones_label *labels, size_t n)
{
    put_u32(o, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put_str(o, labels[i].key);
        put_str(o, labels[i].value);
    }
}

static void put_where(struct out *o, const struct zones_where *w)
{
    put_u32(o, w->line);
    put_u32(o, w->col);
}

uint8_t *zones_cache_encode(const char *build, const char *path, uint64_t stamp,
                            const struct zones_objects *objs, size_t *len)
{
    struct out o = {0};
    put(&o, MAGIC, sizeof(MAGIC) - 1);
    put_u32(&o, FORMAT);
    put_str(&o, build);
    put_str(&o, path);
    put_u64(&o, stamp);
    put_u64(&o, (uint64_t)objs->newest_mtime);
    put_u64(&o, objs->n_skipped);
    put_u32(&o, (uint32_t)objs->n_services);
    for (size_t i = 0; i < objs->n_services; i++) {
        const struct zones_service *s = &objs->services[i];
        put_str(&o, s->name);
        put_str(&o, s->ns);
        put_u8(&o, (uint8_t)s->kind);
        put_ips(&o, s->ips, s->n_ips);
        put_str(&o, s->external_name);
        put_ports(&o, s->ports, s->n_ports);
        put_labels(&o, s->selector, s->n_selector);
        put_where(&o, &s->where);
        put_where(&o, &s->ips_where);
    }
    put_u32(&o, (uint32_t)objs->n_slices);
    for (size_t i = 0; i < objs->n_slices; i++) {
        const struct zones_slice *s = &objs->slices[i];
        put_str(&o, s->name);
        put_str(&o, s->ns);
        put_str(&o, s->service);
        put_u32(&o, (uint32_t)s->n_endpoints);
        for (size_t k = 0; k < s->n_endpoints; k++) {
            put_ips(&o, s->endpoints[k].ips, s->endpoints[k].n_ips);
            put_str(&o, s->endpoints[k].hostname);
            put_u8(&o, s->endpoints[k].ready);
        }
        put_ports(&o, s->ports, s->n_ports);
        put_where(&o, &s->where);
    }
    put_u32(&o, (uint32_t)objs->n_pods);
    for (size_t i = 0; i < objs->n_pods; i++) {
        const struct zones_pod *p = &objs->pods[i];
        put_str(&o, p->name);
        put_str(&o, p->ns);
        put_ips(&o, p->ips, p->n_ips);
        put_str(&o, p->hostname);
        put_str(&o, p->subdomain);
        put_labels(&o, p->labels, p->n_labels);
        put_u8(&o, p->ready);
        put_where(&o, &p->where);
    }
    put_u32(&o, (uint32_t)objs->n_namespaces);
    for (size_t i = 0; i < objs->n_namespaces; i++) {
        put_str(&o, objs->namespaces[i].name);
        put_where(&o, &objs->namespaces[i].where);
    }
    put_u32(&o, (uint32_t)objs->n_service_cidrs);
    for (size_t i = 0; i < objs->n_service_cidrs; i++) {
        const struct zones_service_cidr *c = &objs->service_cidrs[i];
        put_str(&o, c->name);
        put_u32(&o, (uint32_t)c->n_cidrs);
        for (size_t k = 0; k < c->n_cidrs; k++) {
            put_ips(&o, &c->cidrs[k].base, 1);
            put_u8(&o, c->cidrs[k].prefix);
        }
        put_where(&o, &c->where);
    }
    put(&o, MAGIC, sizeof(MAGIC) - 1); /* the end: an entry cut short is noticed */
    *len = o.len;
    return o.buf;
}

/* ---- reading ---- */

struct in {
    const uint8_t *p, *end;
    bool bad;
    struct zones_objects *objs;
};

static const uint8_t *take(struct in *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *at = c->p;
    c->p += n;
    return at;
}

static uint8_t get_u8(struct in *c)
{
    const uint8_t *b = take(c, 1);
    return b ? b[0] : 0;
}

static uint32_t get_u32(struct in *c)
{
    const uint8_t *b = take(c, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
             : 0;
}

static bool get_bool(struct in *c)
{
    uint8_t v = get_u8(c);
    c->bad = c->bad || v > 1; /* one way to write each entry */
    return v == 1;
}

static uint64_t get_u64(struct in *c)
{
    uint64_t lo = get_u32(c);
    return lo | (uint64_t)get_u32(c) << 32;
}

static char *get_str(struct in *c)
{
    uint32_t n = get_u32(c);
    if (n == NONE || c->bad)
        return NULL;
    const uint8_t *b = take(c, n);
    if (b == NULL || memchr(b, '\0', n) != NULL) {
        c->bad = true;
        return NULL;
    }
    return zones_objects_strndup(c->objs, (const char *)b, n);
}

/* A count of items of at least min_size bytes each: no more than what is left can hold. */
static size_t get_count(struct in *c, size_t min_size)
{
    uint32_t n = get_u32(c);
    if ((size_t)(c->end - c->p) / min_size < n) {
        c->bad = true;
        return 0;
    }
    return n;
}

static void *get_array(struct in *c, size_t n, size_t size)
{
    return n > 0 && !c->bad ? zones_objects_alloc(c->objs, n * size) : NULL;
}

static size_t get_ips(struct in *c, struct zones_ip **out)
{
    size_t n = get_count(c, 17);
    struct zones_ip *ips = get_array(c, n, sizeof(*ips));
    for (size_t i = 0; i < n && !c->bad; i++) {
        ips[i].family = get_u8(c);
        const uint8_t *addr = take(c, sizeof(ips[i].addr));
        if (addr == NULL || (ips[i].family != 4 && ips[i].family != 6)) {
            c->bad = true;
            break;
        }
        memcpy(ips[i].addr, addr, sizeof(ips[i].addr));
    }
    *out = ips;
    return n;
}

static size_t get_ports(struct in *c, struct zones_port **out)
{
    size_t n = get_count(c, 12);
    struct zones_port *ports = get_array(c, n, sizeof(*ports));
    for (size_t i = 0; i < n && !c->bad; i++) {
        ports[i].name = get_str(c);
        ports[i].protocol = get_str(c);
        uint32_t port = get_u32(c);
        c->bad = c->bad || port > UINT16_MAX || ports[i].protocol == NULL;
        ports[i].port = (uint16_t)port;
    }
    *out = ports;
    return n;
}

static size_t get_labels(struct in *c, struct zones_label **out)
{
    size_t n = get_count(c, 8);
    struct zones_label *labels = get_array(c, n, sizeof(*labels));
    for (size_t i = 0; i < n && !c->bad; i++) {
        labels[i].key = get_str(c);
        labels[i].value = get_str(c);
        c->bad = c->bad || labels[i].key == NULL || labels[i].value == NULL;
    }
    *out = labels;
    return n;
}

static struct zones_where get_where(struct in *c, const char *file)
{
    struct zones_where w = {.file = file};
    w.line = get_u32(c);
    w.col = get_u32(c);
    return w;
}

static bool same_str(struct in *c, const char *want)
{
    uint32_t n = get_u32(c);
    const uint8_t *b = n == NONE ? NULL : take(c, n);
    return b != NULL && n == strlen(want) && memcmp(b, want, n) == 0;
}

static void get_services(struct in *c, const char *file)
{
    for (size_t i = 0, n = get_count(c, 30); i < n && !c->bad; i++) {
        struct zones_service *s = zones_objects_add_service(c->objs);
        s->name = get_str(c);
        s->ns = get_str(c);
        s->kind = (enum zones_service_kind)get_u8(c);
        s->n_ips = get_ips(c, &s->ips);
        s->external_name = get_str(c);
        s->n_ports = get_ports(c, &s->ports);
        s->n_selector = get_labels(c, &s->selector);
        s->where = get_where(c, file);
        s->ips_where = get_where(c, file);
        c->bad = c->bad || s->name == NULL || s->ns == NULL || s->kind > ZONES_SVC_EXTERNAL_NAME;
    }
}

static void get_slices(struct in *c, const char *file)
{
    for (size_t i = 0, n = get_count(c, 32); i < n && !c->bad; i++) {
        struct zones_slice *s = zones_objects_add_slice(c->objs);
        s->name = get_str(c);
        s->ns = get_str(c);
        s->service = get_str(c);
        s->n_endpoints = get_count(c, 9);
        s->endpoints = get_array(c, s->n_endpoints, sizeof(s->endpoints[0]));
        for (size_t k = 0; k < s->n_endpoints && !c->bad; k++) {
            s->endpoints[k].n_ips = get_ips(c, &s->endpoints[k].ips);
            s->endpoints[k].hostname = get_str(c);
            s->endpoints[k].ready = get_bool(c);
        }
        s->n_ports = get_ports(c, &s->ports);
        s->where = get_where(c, file);
        c->bad = c->bad || s->ns == NULL || s->service == NULL;
    }
}

static void get_pods(struct in *c, const char *file)
{
    for (size_t i = 0, n = get_count(c, 29); i < n && !c->bad; i++) {
        struct zones_pod *p = zones_objects_add_pod(c->objs);
        p->name = get_str(c);
        p->ns = get_str(c);
        p->n_ips = get_ips(c, &p->ips);
        p->hostname = get_str(c);
        p->subdomain = get_str(c);
        p->n_labels = get_labels(c, &p->labels);
        p->ready = get_bool(c);
        p->where = get_where(c, file);
        c->bad = c->bad || p->name == NULL || p->ns == NULL;
    }
}

static void get_service_cidrs(struct in *c, const char *file)
{
    for (size_t i = 0, n = get_count(c, 16); i < n && !c->bad; i++) {
        struct zones_service_cidr *sc = zones_objects_add_service_cidr(c->objs);
        sc->name = get_str(c);
        sc->n_cidrs = get_count(c, 18);
        sc->cidrs = get_array(c, sc->n_cidrs, sizeof(sc->cidrs[0]));
        for (size_t k = 0; k < sc->n_cidrs && !c->bad; k++) {
            struct zones_ip *base = NULL;
            bool one = get_ips(c, &base) == 1;
            uint8_t prefix = get_u8(c);
            if (!one || c->bad || prefix > (base->family == 4 ? 32 : 128)) {
                c->bad = true;
                break;
            }
            sc->cidrs[k] = (struct zones_cidr){.base = *base, .prefix = prefix};
        }
        sc->where = get_where(c, file);
    }
}

static void get_objects(struct in *c, const char *file)
{
    c->objs->newest_mtime = (int64_t)get_u64(c);
    c->objs->n_skipped = get_u64(c);
    get_services(c, file);
    get_slices(c, file);
    get_pods(c, file);
    for (size_t i = 0, n = get_count(c, 12); i < n && !c->bad; i++) {
        struct zones_namespace *ns = zones_objects_add_namespace(c->objs);
        ns->name = get_str(c);
        ns->where = get_where(c, file);
        c->bad = c->bad || ns->name == NULL;
    }
    get_service_cidrs(c, file);
}

bool zones_cache_decode(const uint8_t *buf, size_t len, const char *build, const char *path,
                        uint64_t stamp, struct zones_objects *objs)
{
    struct in c = {.p = buf, .end = buf + len, .objs = objs};
    const uint8_t *magic = take(&c, sizeof(MAGIC) - 1);
    if (magic == NULL || memcmp(magic, MAGIC, sizeof(MAGIC) - 1) != 0 || get_u32(&c) != FORMAT ||
        !same_str(&c, build) || !same_str(&c, path) || get_u64(&c) != stamp || c.bad)
        return false;
    get_objects(&c, zones_objects_intern_file(objs, path));
    magic = take(&c, sizeof(MAGIC) - 1);
    if (c.bad || magic == NULL || memcmp(magic, MAGIC, sizeof(MAGIC) - 1) != 0 || c.p != c.end) {
        zones_objects_free(objs); /* all or nothing */
        return false;
    }
    return true;
}

/* ---- files ---- */

static void entry_path(char *out, size_t cap, const char *dir, const char *path)
{
    uint64_t h = zones_fnv1a(ZONES_FNV_OFFSET_BASIS, path, strlen(path));
    snprintf(out, cap, "%s/%016llx.objects", dir, (unsigned long long)h);
}

bool zones_cache_load(const char *dir, const char *build, const char *path, uint64_t stamp,
                      struct zones_objects *objs)
{
    char name[4096];
    entry_path(name, sizeof(name), dir, path);
    int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    struct stat st;
    uint8_t *buf = NULL;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
              (size_t)st.st_size <= MAX_ENTRY;
    if (ok) {
        buf = zones_xrealloc(NULL, (size_t)st.st_size);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        ok = got == (size_t)st.st_size && zones_cache_decode(buf, got, build, path, stamp, objs);
    }
    free(buf);
    close(fd);
    return ok;
}

int zones_cache_store(const char *dir, const char *build, const char *path, uint64_t stamp,
                      const struct zones_objects *objs)
{
    char name[4096];
    char tmp[4200];
    entry_path(name, sizeof(name), dir, path);
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", name, (long)getpid());
    size_t len = 0;
    uint8_t *buf = zones_cache_encode(build, path, stamp, objs, &len);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    for (size_t done = 0; rc == 0 && done < len;) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else
            done += (size_t)n;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, name) != 0)
        rc = -errno;
    if (rc != 0 && fd >= 0)
        unlink(tmp);
    free(buf);
    return rc;
}
