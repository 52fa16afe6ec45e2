/* tests/fuzz/fuzz_wire_query.c - arbitrary bytes as a query, through the whole answer path.
 *
 * The bytes go through dns_chain_handle() with the handlers svcdns runs (CHAOS, search path,
 * the cluster zone), as a UDP and as a TCP query. Every reply must fit its buffer and the UDP
 * limit, and parse with ldns: the differential check that our writer makes valid messages. */
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns/chain.h"
#include "dns/chaos.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/manifest.h"
#include "zones/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char manifests[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod}\n"
    "spec: {clusterIPs: [10.96.0.20], ports: [{name: http, port: 80}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: prod}\n"
    "spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: db-x, namespace: prod, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv4\nports: [{name: pg, port: 5433}]\n"
    "endpoints: [{addresses: [10.244.2.1], hostname: db-0}, {addresses: [10.244.2.2]}]\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: example.com}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: prod}\n"
    "spec: {type: ExternalName, externalName: web.prod.svc.local}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
    "status: {podIP: 127.0.0.1}\n";

static struct zones_objects objs;
static struct zones_store *store;
static struct zones_answer zones;
static struct resolver_search search;
static struct dns_chaos chaos;
static struct dns_chain chain;
static uint8_t pkt[DNS_MAX_MSG], ans[DNS_MAX_MSG];
static int sent;

static enum resolver_search_existence exists(void *ctx, const struct dns_name *name)
{
    (void)ctx;
    const struct zones_node *node = zones_store_find(store, name);
    return !node             ? RESOLVER_SEARCH_ABSENT
           : node->n_entries ? RESOLVER_SEARCH_RECORDS
                             : RESOLVER_SEARCH_EMPTY;
}

static bool client_ns(void *ctx, const struct sockaddr_storage *peer, uint8_t *label)
{
    (void)ctx;
    (void)peer;
    memcpy(label, "\4prod", 5);
    return true;
}

static void answer(void *ctx, struct dns_request *req)
{
    (void)ctx;
    zones_answer_query(store, &zones.cfg, &req->q, req->pkt, req->ans, req->ans_cap, &req->ans_len,
                       NULL);
}

static void on_send(struct dns_request *req)
{
    sent++;
    if (req->ans_len == 0)
        return;
    if (req->ans_len > req->ans_cap || (req->proto == DNS_PROTO_UDP && req->ans_len > DNS_MAX_UDP))
        abort();
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, req->ans, req->ans_len) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_free(p);
}

static void init(void)
{
    zones_objects_init(&objs);
    zones_manifest_load_buffer(&objs, "fuzz.yaml", manifests, sizeof(manifests) - 1);
    struct zones_cidr cidr;
    zones_cidr_parse("10.96.0.0/12", &cidr);
    zones_objects_assign_ips(&objs, &cidr, 1);
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    if (objs.n_diags || zones_store_build(&store, &objs, &cfg) < 0)
        abort();
    zones.store = store;
    zones.cfg.chase_outside = true; /* nothing follows: the chase ends in REFUSED, spliced */
    struct resolver_search_config scfg;
    resolver_search_config_default(&scfg);
    scfg.upstream = true;
    resolver_search_init(&search, &scfg, exists, client_ns, answer, NULL);
    dns_chaos_init(&chaos, "fuzz");
    dns_chain_init(&chain);
    dns_chain_add(&chain, &(struct dns_handler){"chaos", dns_chaos_serve, NULL, &chaos});
    dns_chain_add(&chain, &(struct dns_handler){"search", resolver_search_serve,
                                                resolver_search_on_answer, &search});
    dns_chain_add(&chain, &(struct dns_handler){"kubernetes", zones_answer_serve, NULL, &zones});
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store)
        init();
    if (size > DNS_MAX_MSG)
        return 0;
    for (int proto = 0; proto < 2; proto++) {
        static struct dns_request req;
        memset(&req, 0, sizeof(req));
        memcpy(pkt, data, size);
        req.pkt = pkt;
        req.pkt_len = size;
        req.ans = ans;
        req.ans_cap = sizeof(ans);
        req.proto = proto ? DNS_PROTO_TCP : DNS_PROTO_UDP;
        req.peer.ss_family = AF_INET;
        req.send = on_send;
        sent = 0;
        dns_chain_handle(&chain, &req);
        if (sent != 1) /* exactly one send per request, always */
            abort();
    }
    return 0;
}
