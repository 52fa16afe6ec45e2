/* zones/kubeconfig.h - where the Kubernetes API server is and how to log in to it: the
 * current context of a kubeconfig file (YAML or JSON), or a pod's service account.
 *
 * Everything is checked here, at startup, so that a missing or unusable context is one clear
 * error before svcdns serves: the context, cluster and user it names, the server URL, base64
 * data, and that every file it names can be read. Credentials that need a helper program
 * (exec, auth-provider) are refused with what to use instead. */
#ifndef ZONES_KUBECONFIG_H
#define ZONES_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* A pod's service account, as kubelet mounts it. */
#define ZONES_KUBECONFIG_SERVICEACCOUNT "/var/run/secrets/kubernetes.io/serviceaccount"

struct zones_kubeconfig {
    char *source;          /* the kubeconfig file, or "in-cluster", for messages */
    char *context;         /* the context used ("in-cluster" there) */
    char *server;          /* "https://10.0.0.1:6443", without a trailing slash */
    char *tls_server_name; /* the name to expect in the server's certificate, or NULL */
    bool insecure;         /* insecure-skip-tls-verify: the certificate is not checked */
    char *ca_file;         /* certificate-authority (paths are absolute or as given) */
    char *ca_pem;          /* certificate-authority-data, decoded */
    size_t ca_pem_len;
    char *cert_file, *key_file; /* client-certificate, client-key */
    char *cert_pem, *key_pem;   /* client-certificate-data, client-key-data, decoded */
    size_t cert_pem_len, key_pem_len;
    char *token;      /* token */
    char *token_file; /* tokenFile, or the service account's token: read again when it changes */
};

/* Reads path's current context into kc. Returns 0, or -1 with the error in err (naming the
 * file, and the line and column where there is one). */
int zones_kubeconfig_load(struct zones_kubeconfig *kc, const char *path, char *err, size_t err_cap);
/* The service account in dir (token, ca.crt) and the API server at host:port, as
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT give them (NULL when unset). Returns 0,
 * or -1 with the error in err. */
int zones_kubeconfig_in_cluster(struct zones_kubeconfig *kc, const char *host, const char *port,
                                const char *dir, char *err, size_t err_cap);
void zones_kubeconfig_free(struct zones_kubeconfig *kc);

/* Decodes standard base64 (whitespace ignored) into a new NUL-terminated buffer; NULL when
 * text is not base64. */
char *zones_kubeconfig_base64(const char *text, size_t len, size_t *out_len);

#endif
