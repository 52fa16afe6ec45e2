/* dns/daemon/kubernetes.c - the Kubernetes API as a source of the served data: the options
 * mapped into zones/kube.h's config, the credentials checked at startup, one list for --check
 * and --dump, and the reflector's thread started and stopped around serving.
 *
 * The reflector changes the model from its own thread, under the model lock that reload.c
 * takes too; the model's store is incomplete (cluster names get SERVFAIL) until every kind has
 * been listed once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "dns/daemon/daemon.h"
#include "dns/log.h"

#define LIST_ONCE_TIMEOUT_S 60

int daemon_kubernetes_configure(struct daemon *d)
{
    const struct daemon_options *o = &d->opt;
    char err[1024];
    if (o->kubernetes && o->kubeconfig)
        return daemon_fail("--kubernetes and --kubeconfig: give one of them (--kubernetes is "
                           "for a pod in the cluster, --kubeconfig for anywhere else)");
    if (o->kubeconfig && zones_kubeconfig_load(&d->kubeconfig, o->kubeconfig, err, sizeof(err)) < 0)
        return daemon_fail("--kubeconfig: %s", err);
    if (o->kubernetes &&
        zones_kubeconfig_in_cluster(&d->kubeconfig, getenv("KUBERNETES_SERVICE_HOST"),
                                    getenv("KUBERNETES_SERVICE_PORT"),
                                    ZONES_KUBECONFIG_SERVICEACCOUNT, err, sizeof(err)) < 0)
        return daemon_fail("%s", err);
    if (d->kubeconfig.insecure)
        log_warn("kubernetes",
                 "server=%s msg=\"insecure-skip-tls-verify: the API server's certificate is not "
                 "checked, so anyone in the path can feed svcdns its records\"",
                 d->kubeconfig.server);
    return 0;
}

static void print_summary(const struct daemon *d, FILE *out)
{
    struct zones_kube_stats st;
    struct zones_store_summary sum;
    zones_kube_stats(d->kube, &st);
    zones_store_summarize(d->store, &sum);
    const struct zones_kube_kind_stats *k = st.kinds;
    fprintf(out,
            "kubernetes ok: %s (context %s); %llu namespaces, %llu services, %llu endpoint "
            "slices",
            d->kubeconfig.server, d->kubeconfig.context,
            (unsigned long long)k[ZONES_KUBE_NAMESPACES].objects,
            (unsigned long long)k[ZONES_KUBE_SERVICES].objects,
            (unsigned long long)k[ZONES_KUBE_ENDPOINTSLICES].objects);
    if (k[ZONES_KUBE_PODS].watched)
        fprintf(out, ", %llu pods", (unsigned long long)k[ZONES_KUBE_PODS].objects);
    fprintf(out, " listed; %zu records under %s\n", sum.records, d->store_cfg.cluster_domain);
}

int daemon_kubernetes_init(struct daemon *d, FILE *summary)
{
    if (d->kubeconfig.server == NULL)
        return 0;
    struct zones_kube_config cfg;
    zones_kube_config_default(&cfg);
    cfg.conn = &d->kubeconfig;
    /* Pods only tell a client's namespace (autopath) and back verified pod records. */
    cfg.pods = d->store_cfg.pods == ZONES_PODS_VERIFIED || d->search_cfg.autopath;
    cfg.user_agent = "svcdns/" SVCDNS_VERSION;
    if (zones_kube_new(&d->kube, &cfg, d->model, &d->model_lock) < 0)
        return -1;
    /* A connection the server closed must not kill svcdns with SIGPIPE (--check, --dump). */
    signal(SIGPIPE, SIG_IGN);
    zones_store_set_complete(d->store, false);
    if (!d->opt.check && !d->opt.dump)
        return 0;
    if (zones_kube_list_once(d->kube, LIST_ONCE_TIMEOUT_S) < 0)
        return daemon_fail("--%s: could not list the API server %s",
                           d->opt.kubernetes ? "kubernetes" : "kubeconfig", d->kubeconfig.server);
    if (summary != NULL)
        print_summary(d, summary);
    return 0;
}

int daemon_kubernetes_start(struct daemon *d)
{
    if (d->kube == NULL)
        return 0;
    int rc = zones_kube_start(d->kube);
    if (rc < 0)
        return daemon_fail("cannot start the Kubernetes API thread: %s", uv_strerror(rc));
    log_info("kubernetes",
             "server=%s context=%s msg=\"listing; cluster names get SERVFAIL until "
             "every kind is listed\"",
             d->kubeconfig.server, d->kubeconfig.context);
    return 0;
}

void daemon_kubernetes_stop(struct daemon *d)
{
    zones_kube_stop(d->kube);
}

void daemon_kubernetes_free(struct daemon *d)
{
    zones_kube_free(d->kube);
    d->kube = NULL;
    zones_kubeconfig_free(&d->kubeconfig);
}
