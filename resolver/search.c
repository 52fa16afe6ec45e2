/* resolver/search.c - short names and the ndots:5 walk, answered on the server.
 *
 * Invariant: a rewrite happens only toward a name that exists (or, for the walk's last step,
 * toward the name the client would have asked last), so a client never sees an answer it
 * could not have reached through its own search list, and never a cluster answer for a
 * two-label name the upstream has. A walk that ends in NXDOMAIN or SERVFAIL is answered as
 * the plain authoritative NXDOMAIN for the asked name, and the client walks on by itself. */
#include "resolver/search.h"

#include <stdio.h>
#include <string.h>

void resolver_search_config_default(struct resolver_search_config *cfg)
{
    cfg->cluster_domain = "local";
    cfg->ttl = 5;
    cfg->namespace_name = "default";
    cfg->expand = true;
    cfg->autopath = true;
    cfg->upstream = false;
}

int resolver_search_init(struct resolver_search *search, const struct resolver_search_config *cfg,
                         const struct dns_names *names)
{
    char text[DNS_MAX_NAME * 4];
    memset(search, 0, sizeof(*search));
    search->cfg = *cfg;
    search->names = *names;
    snprintf(text, sizeof(text), "svc.%s", cfg->cluster_domain);
    if (dns_name_from_text(&search->zone, cfg->cluster_domain) < 0 ||
        dns_name_from_text(&search->svc_zone, text) < 0)
        return -1;
    struct dns_name ns;
    if (dns_name_from_text(&ns, cfg->namespace_name) < 0 || dns_name_labels(&ns) != 1)
        return -1;
    memcpy(search->default_ns, ns.wire, (size_t)ns.wire[0] + 1);
    return 0;
}

/* Sends the query on to target, with "asked CNAME target" in front of the final answer. */
static int follow(const struct resolver_search *search, struct dns_request *req,
                  const struct dns_name *target)
{
    uint8_t rr[12 + DNS_MAX_NAME];
    dns_wire_put_u16(rr, DNS_QUESTION_PTR);
    dns_wire_put_u16(rr + 2, DNS_TYPE_CNAME);
    dns_wire_put_u16(rr + 4, DNS_CLASS_IN);
    dns_wire_put_u32(rr + 6, search->cfg.ttl);
    dns_wire_put_u16(rr + 10, target->len);
    memcpy(rr + 12, target->wire, target->len);
    return dns_request_follow(req, target, rr, 12 + (size_t)target->len, 1);
}

/* out = prefix + label (one wire label, may be NULL) + suffix. */
static int join(struct dns_name *out, const struct dns_name *prefix, const uint8_t *label,
                const struct dns_name *suffix)
{
    struct dns_name tail = *suffix;
    if (label) {
        struct dns_name l = {.len = (uint8_t)(label[0] + 2)};
        memcpy(l.wire, label, (size_t)label[0] + 1);
        l.wire[label[0] + 1] = 0;
        if (dns_name_concat(&tail, &l, suffix) < 0)
            return -1;
    }
    return dns_name_concat(out, prefix, &tail);
}

static bool client_ns(const struct resolver_search *search, const struct dns_request *req,
                      uint8_t ns[DNS_MAX_LABEL + 1])
{
    return search->names.client_namespace(search->names.self, &req->peer, ns);
}

static enum dns_name_state lookup(const struct resolver_search *search, const struct dns_name *name)
{
    return search->names.lookup(search->names.self, name);
}

/* "echo" or "echo.ns" as asked: <q>.<ns>.svc.Z, <q>.svc.Z, <q>.Z, the first with records
 * (the client's namespace, or the configured one). */
static bool short_name_target(const struct resolver_search *search, const struct dns_request *req,
                              struct dns_name *target)
{
    const struct dns_name *q = &req->q.qname;
    uint8_t ns[DNS_MAX_LABEL + 1];
    struct dns_name candidates[3];
    if (join(&candidates[0], q, client_ns(search, req, ns) ? ns : search->default_ns,
             &search->svc_zone) < 0 ||
        join(&candidates[1], q, NULL, &search->svc_zone) < 0 ||
        join(&candidates[2], q, NULL, &search->zone) < 0)
        return false;
    for (int i = 0; i < 3; i++) {
        if (lookup(search, &candidates[i]) == DNS_NAME_RECORDS) {
            *target = candidates[i];
            return true;
        }
    }
    return false;
}

/* The fallback of a two-label name asked upstream first: the upstream does not have it, so
 * the cluster's name it stands for answers, as a CNAME to it and its records. */
static bool answer_short_name(void *self, struct dns_request *req)
{
    struct resolver_search *search = self;
    struct dns_name target;
    if (!short_name_target(search, req, &target) || follow(search, req, &target) < 0)
        return false;
    req->ans_len =
        search->names.answer(search->names.self, &req->q, req->pkt, req->ans, req->ans_cap);
    if (req->ans_len < DNS_HEADER_SIZE)
        dns_chain_reply_error(req, DNS_RCODE_SERVFAIL, -1);
    return true;
}

/* A short name as it arrived. One label ("echo") is the cluster's at once: no public name has
 * one. Two labels ("echo.ns") may be a public name too ("google.com" with a Namespace com and a
 * Service google), and a public name must not be shadowed: with an upstream, the name is asked
 * there first and the cluster answers only when the upstream does not have it (NXDOMAIN,
 * SERVFAIL, REFUSED, no reply); without one, at once. */
static enum dns_verdict expand_short(struct resolver_search *search, struct dns_request *req)
{
    struct dns_name target;
    if (!short_name_target(search, req, &target))
        return DNS_NEXT;
    if (search->cfg.upstream && dns_name_labels(&req->q.qname) == 2) {
        dns_request_fallback(req, answer_short_name, search, &search->stats.expanded);
        return DNS_NEXT;
    }
    if (follow(search, req, &target) == 0)
        dns_counter_inc(&search->stats.expanded);
    return DNS_NEXT;
}

/* The fallback of a walk that went upstream: the walk found nothing, and the client gets the
 * authoritative NXDOMAIN of the name it asked, as without autopath. */
static bool answer_asked_name(void *self, struct dns_request *req)
{
    struct resolver_search *search = self;
    size_t n = search->names.answer(search->names.self, &req->q, req->pkt, req->ans, req->ans_cap);
    if (n < DNS_HEADER_SIZE)
        return false;
    req->ans_len = n;
    return true;
}

/* X.<ns>.svc.Z from a client in ns: the first of X.svc.Z, X.Z and X that exists. */
static enum dns_verdict autopath(struct resolver_search *search, struct dns_request *req,
                                 const uint8_t *ns)
{
    const struct dns_name *q = &req->q.qname;
    struct dns_name first; /* <ns>.svc.Z */
    struct dns_name root = {.len = 1};
    if (join(&first, &root, ns, &search->svc_zone) < 0 || q->len <= first.len ||
        !dns_name_is_subdomain(q, &first))
        return DNS_NEXT;
    if (lookup(search, q) != DNS_NAME_ABSENT)
        return DNS_NEXT; /* a cluster name: the plain answer is the walk's answer */
    struct dns_name x = {.len = (uint8_t)(q->len - first.len + 1)};
    memcpy(x.wire, q->wire, x.len - 1U);
    x.wire[x.len - 1] = 0;
    struct dns_name candidates[2];
    if (join(&candidates[0], &x, NULL, &search->svc_zone) < 0 ||
        join(&candidates[1], &x, NULL, &search->zone) < 0)
        return DNS_NEXT;
    for (int i = 0; i < 2; i++) {
        /* A name that exists ends the client's walk even without records (NODATA). */
        if (lookup(search, &candidates[i]) != DNS_NAME_ABSENT) {
            if (follow(search, req, &candidates[i]) == 0)
                dns_counter_inc(&search->stats.autopath);
            return DNS_NEXT;
        }
    }
    /* The walk's last step asks X itself: upstream, or in the cluster zone when X is a full
     * cluster name written without its trailing dot (echo.default.svc.local). */
    bool x_in_zone = dns_name_is_subdomain(&x, &search->zone);
    if (x_in_zone && lookup(search, &x) == DNS_NAME_ABSENT)
        return DNS_NEXT;
    if (!x_in_zone && !search->cfg.upstream)
        return DNS_NEXT; /* nothing outside can exist: the plain NXDOMAIN is the answer */
    if (x_in_zone) {
        if (follow(search, req, &x) == 0)
            dns_counter_inc(&search->stats.autopath);
        return DNS_NEXT;
    }
    /* X goes upstream, which may not have it (or may fail, or we may be past
     * --max-concurrent). Then the walk found nothing, and the client must get what it would
     * have got without the walk: the authoritative NXDOMAIN of the asked name, so that it
     * walks on by itself (anything else stops musl's walk), made at the chain's end instead
     * of anything but NOERROR. */
    if (follow(search, req, &x) < 0)
        return DNS_NEXT;
    dns_request_fallback(req, answer_asked_name, search, &search->stats.autopath_nxdomain);
    dns_counter_inc(&search->stats.autopath);
    return DNS_NEXT;
}

enum dns_verdict resolver_search_serve(void *self, struct dns_request *req)
{
    struct resolver_search *search = self;
    if (req->q.qclass != DNS_CLASS_IN || req->alias.active)
        return DNS_NEXT;
    /* The client's namespace is looked up only when a rule needs it. */
    if (!dns_name_is_subdomain(&req->q.qname, &search->zone)) {
        unsigned labels = dns_name_labels(&req->q.qname);
        if (!search->cfg.expand || labels == 0 || labels > 2)
            return DNS_NEXT;
        return expand_short(search, req);
    }
    /* Autopath needs to know where the client's walk started: only a Pod's address tells. */
    uint8_t ns[DNS_MAX_LABEL + 1];
    if (!search->cfg.autopath || !client_ns(search, req, ns))
        return DNS_NEXT;
    return autopath(search, req, ns);
}

int resolver_search_resolv_conf(const char *cluster_domain, const char *ns, const char *nameserver,
                                char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# resolv.conf for a pod in namespace %s, resolving through svcdns\n"
                     "search %s.svc.%s svc.%s %s\n"
                     "nameserver %s\n"
                     "options ndots:5\n",
                     ns, ns, cluster_domain, cluster_domain, cluster_domain, nameserver);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
