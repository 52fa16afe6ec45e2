/* tests/fuzz/fuzz_wire_query.c - arbitrary bytes as a query, through the whole answer path.
 *
 * The bytes go through dns_chain_handle() with the handlers svcdns runs (CHAOS, search path,
 * the cluster zone), as a UDP and as a TCP query. Every reply must fit its buffer and the UDP
 * limit, and parse with ldns: the differential check that our writer makes valid messages. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns/chain.h"
#include "dns/chaos.h"
#include "resolver/search.h"
#include "zones/answer.h"
#include "zones/manifest.h"
#include "zones/model.h"
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

/* Every client is a Pod in prod, so autopath runs too. */
static bool client_namespace(const void *self, const struct sockaddr_storage *client,
                             uint8_t *label)
{
    (void)self;
    (void)client;
    memcpy(label, "\4prod", 5);
    return true;
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
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    if (objs.n_diags || zones_model_build(&store, &objs, &cfg, &cidr, 1, NULL) < 0)
        abort();
    zones.store = store;
    zones.cfg.chase_outside = true; /* nothing follows: the chase ends in REFUSED, spliced */
    struct resolver_search_config scfg;
    resolver_search_config_default(&scfg);
    scfg.upstream = true;
    struct dns_names names = zones_answer_names(&zones);
    names.client_namespace = client_namespace;
    resolver_search_init(&search, &scfg, &names);
    dns_chaos_init(&chaos, "fuzz");
    dns_chain_init(&chain);
    dns_chain_set(&chain, DNS_STAGE_CHAOS, &(struct dns_stage_handler){dns_chaos_serve, &chaos});
    dns_chain_set(&chain, DNS_STAGE_SEARCH,
                  &(struct dns_stage_handler){resolver_search_serve, &search});
    dns_chain_set(&chain, DNS_STAGE_ZONES, &(struct dns_stage_handler){zones_answer_serve, &zones});
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
