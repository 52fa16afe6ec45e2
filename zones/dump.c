/* zones/dump.c - --dump: every record as a zone file, read back from the answers themselves.
 *
 * Each name the store holds is asked for ANY through zones_answer_query(), and the records of
 * the reply that the name owns are printed through ldns: the dump shows exactly what is
 * served. Lines are sorted and each printed once. ldns allocates: this is not the query path. */
#include <stdbool.h> /* before ldns, which would make bool a signed char */
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "zones/answer.h"
#include "zones/store_layout.h"

struct lines {
    char **items;
    size_t n, cap;
};

static void add_line(struct lines *l, char *line)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->items = zones_xrealloc(l->items, l->cap * sizeof(l->items[0]));
    }
    l->items[l->n++] = line;
}

/* Asks the store for ANY at name and keeps the records name owns. */
static void dump_name(const struct zones_store *s, const struct dns_name *name, struct lines *l)
{
    static uint8_t query[DNS_HEADER_SIZE + DNS_MAX_NAME + 4];
    static uint8_t reply[DNS_MAX_MSG];
    memset(query, 0, DNS_HEADER_SIZE);
    dns_wire_put_u16(query + 4, 1);
    memcpy(query + DNS_HEADER_SIZE, name->wire, name->len);
    dns_wire_put_u16(query + DNS_HEADER_SIZE + name->len, DNS_TYPE_ANY);
    dns_wire_put_u16(query + DNS_HEADER_SIZE + name->len + 2, DNS_CLASS_IN);
    struct dns_query q;
    if (dns_wire_parse_query(&q, query, DNS_HEADER_SIZE + name->len + 4U) != DNS_PARSE_OK)
        return;
    /* The full ANY answer, as over TCP: a UDP client gets one RRset (zones/answer.c). */
    struct zones_answer_config cfg = {.any_in_full = true};
    size_t len = 0;
    if (zones_answer_query(s, &cfg, &q, query, reply, sizeof(reply), &len, NULL) !=
            ZONES_ANSWER_DONE ||
        len == 0)
        return;
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, reply, len) != LDNS_STATUS_OK)
        return;
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    ldns_rdf *owner = ldns_dname_new_frm_data(name->len, name->wire);
    for (size_t i = 0; owner != NULL && i < ldns_rr_list_rr_count(an); i++) {
        ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_dname_compare(ldns_rr_owner(rr), owner) == 0)
            add_line(l, ldns_rr2str(rr));
    }
    ldns_rdf_deep_free(owner);
    ldns_pkt_free(pkt);
}

static void reverse_name(const struct zones_ip *ip, struct dns_name *out)
{
    static const char hex[] = "0123456789abcdef";
    char text[128];
    size_t n = 0;
    for (int i = ip->family == 4 ? 3 : 15; i >= 0; i--) {
        uint8_t v = ip->addr[i];
        if (ip->family == 4)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%u.", v);
        else
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%c.%c.", hex[v & 0xf], hex[v >> 4]);
    }
    snprintf(text + n, sizeof(text) - n, "%s", ip->family == 4 ? "in-addr.arpa" : "ip6.arpa");
    dns_name_from_text(out, text);
}

struct walk {
    const struct zones_store *s;
    struct lines *lines;
};

/* [first] [second] + the Service's key + svc.<zone>; false when too long to be a name. */
static bool name_with(const struct zones_store *s, const struct zones_view *v, const uint8_t *first,
                      const uint8_t *second, struct dns_name *out)
{
    size_t n = 0;
    const uint8_t *parts[2] = {first, second};
    size_t total = (size_t)v->key_len + s->svc_zone.len;
    for (int i = 0; i < 2; i++)
        total += parts[i] ? (size_t)parts[i][0] + 1 : 0;
    if (total > DNS_MAX_NAME)
        return false;
    for (int i = 0; i < 2; i++) {
        if (parts[i] != NULL) {
            memcpy(out->wire + n, parts[i], (size_t)parts[i][0] + 1);
            n += (size_t)parts[i][0] + 1;
        }
    }
    memcpy(out->wire + n, v->bytes, v->key_len);
    n += v->key_len;
    memcpy(out->wire + n, s->svc_zone.wire, s->svc_zone.len);
    out->len = (uint8_t)(n + s->svc_zone.len);
    return true;
}

static void dump_view(void *ctx, void *entry)
{
    struct walk *w = ctx;
    const struct zones_view *v = entry;
    struct dns_name name;
    if (name_with(w->s, v, NULL, NULL, &name))
        dump_name(w->s, &name, w->lines);
    for (size_t e = 0; e < v->n_endpoints; e++) {
        if (name_with(w->s, v, v->bytes + v->endpoints[e].label, NULL, &name))
            dump_name(w->s, &name, w->lines);
    }
    for (size_t p = 0; p < v->n_ports; p++) {
        if (name_with(w->s, v, v->bytes + v->ports[p].name, v->bytes + v->ports[p].proto, &name))
            dump_name(w->s, &name, w->lines);
    }
    for (size_t a = 0; a < v->n_addrs; a++) {
        reverse_name(&v->addrs[a].ip, &name);
        dump_name(w->s, &name, w->lines);
    }
}

static void dump_pod(void *ctx, void *entry)
{
    struct walk *w = ctx;
    const struct zones_pod_addr *p = entry;
    char text[2 * (DNS_MAX_NAME * 4 + 2)];
    char ip[64];
    zones_ip_format(&p->ip, ip, sizeof(ip));
    for (char *c = ip; *c; c++) {
        if (*c == '.' || *c == ':')
            *c = '-';
    }
    snprintf(text, sizeof(text), "%s.%.*s.pod.%s", ip, p->ns->label[0],
             (const char *)p->ns->label + 1, w->s->zone_text);
    struct dns_name name;
    if (dns_name_from_text(&name, text) == 0)
        dump_name(w->s, &name, w->lines);
}

static int compare_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int zones_store_dump(const struct zones_store *s, FILE *out)
{
    struct lines lines = {0};
    struct walk w = {s, &lines};
    struct dns_name name;
    dump_name(s, &s->zone, &lines);
    struct dns_name version = {13, "\13dns-version"};
    dns_name_concat(&name, &version, &s->zone);
    dump_name(s, &name, &lines);
    zones_table_each(&s->services, dump_view, &w);
    if (s->cfg.pods == ZONES_PODS_VERIFIED)
        zones_table_each(&s->pods, dump_pod, &w);
    if (lines.n > 0)
        qsort(lines.items, lines.n, sizeof(lines.items[0]), compare_lines);
    for (size_t i = 0; i < lines.n; i++) {
        if (i == 0 || strcmp(lines.items[i - 1], lines.items[i]) != 0)
            fputs(lines.items[i], out);
    }
    for (size_t i = 0; i < lines.n; i++)
        free(lines.items[i]);
    free(lines.items);
    return ferror(out) ? -1 : 0;
}
