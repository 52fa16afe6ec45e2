/* zones/kubeconfig.c - a kubeconfig's current context, or a pod's service account, checked.
 *
 * The file goes through the manifest loader's YAML reader (zones/yaml.c), so a kubeconfig in
 * YAML or JSON is read the same way and its errors carry FILE:LINE:COL. What is read follows
 * client-go's clientcmd: current-context names a context, which names a cluster and a user;
 * relative file names are relative to the kubeconfig's directory. */
#include "zones/kubeconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zones/manifest.h"
#include "zones/yaml.h"

#define MAX_FILE_BYTES (16u << 20)

static char *copy(const char *s, size_t len)
{
    char *p = zones_xrealloc(NULL, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *copy_str(const char *s)
{
    return copy(s, strlen(s));
}

/* ---- base64 ---- */

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

char *zones_kubeconfig_base64(const char *text, size_t len, size_t *out_len)
{
    char *out = zones_xrealloc(NULL, len / 4 * 3 + 4);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    unsigned digits = 0;
    unsigned padding = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            padding++;
            continue;
        }
        int v = base64_value(c);
        if (v < 0 || padding > 0)
            goto fail; /* a stray character, or data after the padding */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        digits++;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* Whole groups of four, padding included; a lone digit in the last group says nothing. */
    if (digits == 0 || (digits + padding) % 4 != 0 || digits % 4 == 1 || padding > 2)
        goto fail;
    out[n] = '\0';
    *out_len = n;
    return out;
fail:
    free(out);
    return NULL;
}

/* ---- reading the file ---- */

struct loader {
    struct zones_kubeconfig *kc;
    const char *path;
    char dir[4096]; /* of the kubeconfig, for relative file names */
    bool seen;
};

/* The entry of a list (contexts, clusters, users) whose name is name: its inner mapping
 * (context, cluster, user). NULL after reporting why not. */
static const struct zones_dom_node *named_entry(struct zones_report *r,
                                                const struct zones_dom_node *root, const char *list,
                                                const char *inner, const char *name,
                                                const struct zones_dom_node *by)
{
    const struct zones_dom_node *items = zones_dom_get(r, root, "", list, ZONES_DOM_SEQ);
    size_t index = 0;
    for (const struct zones_dom_node *i = items ? items->first : NULL; i != NULL;
         i = i->next, index++) {
        const struct zones_dom_node *item = zones_dom_deref(i);
        if (item->kind != ZONES_DOM_MAP ||
            !zones_dom_scalar_is(zones_dom_lookup(item, "name").value, name))
            continue;
        char path[ZONES_DOM_FIELD_CAP];
        zones_dom_item(path, list, index);
        const struct zones_dom_node *value = zones_dom_get(r, item, path, inner, ZONES_DOM_MAP);
        if (value == NULL && !zones_dom_has(item, inner))
            zones_report_error_at(r, item, "%s (name %s) has no %s", path, name, inner);
        return value;
    }
    zones_report_error_at(r, by,
                          "\"%s\" names no entry of %s; list them with kubectl config "
                          "get-%s",
                          name, list, list);
    return NULL;
}

/* A string field, copied; NULL when absent (or reported as wrong). */
static char *get_string(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                        const char *key)
{
    const struct zones_dom_node *v = zones_dom_get_scalar(r, map, path, key);
    return v != NULL && v->len > 0 ? copy(v->text, v->len) : NULL;
}

/* A file name, relative to the kubeconfig's directory, that must be readable. */
static char *get_file(struct loader *ld, struct zones_report *r, const struct zones_dom_node *map,
                      const char *path, const char *key)
{
    const struct zones_dom_node *v = zones_dom_get_scalar(r, map, path, key);
    if (v == NULL || v->len == 0)
        return NULL;
    char *file;
    if (v->text[0] == '/') {
        file = copy(v->text, v->len);
    } else {
        size_t dl = strlen(ld->dir);
        file = zones_xrealloc(NULL, dl + 1 + v->len + 1);
        memcpy(file, ld->dir, dl);
        file[dl] = '/';
        memcpy(file + dl + 1, v->text, v->len + 1);
    }
    if (access(file, R_OK) != 0) {
        char field[ZONES_DOM_FIELD_CAP];
        zones_report_error_at(r, v, "%s: cannot read %s: %s", zones_dom_join(field, path, key),
                              file, strerror(errno));
        free(file);
        return NULL;
    }
    return file;
}

/* A -data field: base64 of a PEM file. */
static char *get_data(struct zones_report *r, const struct zones_dom_node *map, const char *path,
                      const char *key, size_t *len)
{
    const struct zones_dom_node *v = zones_dom_get_scalar(r, map, path, key);
    if (v == NULL || v->len == 0)
        return NULL;
    char *data = zones_kubeconfig_base64(v->text, v->len, len);
    if (data == NULL) {
        char field[ZONES_DOM_FIELD_CAP];
        zones_report_error_at(r, v,
                              "%s is not base64; write the PEM file's base64 (base64 -w0 "
                              "FILE), or use the field without -data with a file name",
                              zones_dom_join(field, path, key));
    }
    return data;
}

static void read_cluster(struct loader *ld, struct zones_report *r,
                         const struct zones_dom_node *cluster)
{
    struct zones_kubeconfig *kc = ld->kc;
    const char *path = "cluster";
    const struct zones_dom_node *server = zones_dom_get_scalar(r, cluster, path, "server");
    if (server == NULL) {
        if (!zones_dom_has(cluster, "server"))
            zones_report_error_at(r, cluster,
                                  "cluster.server is missing; give the API server's "
                                  "URL, e.g. https://10.0.0.1:6443");
    } else if (strncmp(server->text, "https://", 8) != 0 &&
               strncmp(server->text, "http://", 7) != 0) {
        char shown[ZONES_DOM_SHOW_CAP];
        zones_report_error_at(r, server,
                              "cluster.server %s is not an https:// (or http://) URL; write "
                              "it like https://10.0.0.1:6443",
                              zones_dom_show(server, shown, sizeof(shown)));
    } else {
        size_t len = server->len;
        while (len > 0 && server->text[len - 1] == '/')
            len--;
        kc->server = copy(server->text, len);
    }
    kc->insecure = zones_dom_get_bool(r, cluster, path, "insecure-skip-tls-verify", false);
    kc->ca_file = get_file(ld, r, cluster, path, "certificate-authority");
    kc->ca_pem = get_data(r, cluster, path, "certificate-authority-data", &kc->ca_pem_len);
    kc->tls_server_name = get_string(r, cluster, path, "tls-server-name");
    if (kc->insecure && (kc->ca_file != NULL || kc->ca_pem != NULL))
        zones_report_error_at(r, cluster,
                              "cluster has insecure-skip-tls-verify with a certificate "
                              "authority; use one of them (kubectl refuses this too)");
    if (zones_dom_has(cluster, "proxy-url"))
        zones_report_error_at(r, zones_dom_lookup(cluster, "proxy-url").value,
                              "cluster.proxy-url is not supported; reach the API server "
                              "directly, or through the https_proxy environment variable");
}

static void read_user(struct loader *ld, struct zones_report *r, const struct zones_dom_node *user)
{
    struct zones_kubeconfig *kc = ld->kc;
    const char *path = "user";
    static const char *const refused[][2] = {
        {"exec", "credential plugins (exec) are not supported; give the user a token, tokenFile "
                 "or client certificate"},
        {"auth-provider", "auth-provider is not supported; give the user a token, tokenFile or "
                          "client certificate"},
        {"username", "basic authentication (username, password) is not supported, nor by "
                     "Kubernetes since 1.19; give the user a token or client certificate"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (zones_dom_has(user, refused[i][0]))
            zones_report_error_at(r, zones_dom_lookup(user, refused[i][0]).value, "user.%s",
                                  refused[i][1]);
    }
    kc->token = get_string(r, user, path, "token");
    kc->token_file = get_file(ld, r, user, path, "tokenFile");
    kc->cert_file = get_file(ld, r, user, path, "client-certificate");
    kc->cert_pem = get_data(r, user, path, "client-certificate-data", &kc->cert_pem_len);
    kc->key_file = get_file(ld, r, user, path, "client-key");
    kc->key_pem = get_data(r, user, path, "client-key-data", &kc->key_pem_len);
    bool cert = kc->cert_file != NULL || kc->cert_pem != NULL;
    bool key = kc->key_file != NULL || kc->key_pem != NULL;
    if (cert != key)
        zones_report_error_at(r, user, "user has a client %s without its %s; give both",
                              cert ? "certificate" : "key", cert ? "key" : "certificate");
}

static void read_config(void *ctx, struct zones_report *r, const struct zones_dom_node *root)
{
    struct loader *ld = ctx;
    if (ld->seen) {
        zones_report_error_at(r, root, "a second document; a kubeconfig is one document");
        return;
    }
    ld->seen = true;
    if (root->kind != ZONES_DOM_MAP) {
        zones_dom_fail_type(r, root, "the kubeconfig", ZONES_DOM_MAP);
        return;
    }
    const struct zones_dom_node *current = zones_dom_get_scalar(r, root, "", "current-context");
    if (current == NULL || current->len == 0) {
        zones_report_error_at(r, root,
                              "current-context is not set; choose a context with "
                              "kubectl config use-context NAME");
        return;
    }
    ld->kc->context = copy(current->text, current->len);
    const struct zones_dom_node *context =
        named_entry(r, root, "contexts", "context", current->text, current);
    if (context == NULL)
        return;
    const struct zones_dom_node *cluster_name =
        zones_dom_get_scalar(r, context, "context", "cluster");
    if (cluster_name == NULL) {
        zones_report_error_at(r, context, "context \"%s\" names no cluster; add cluster: NAME",
                              current->text);
        return;
    }
    const struct zones_dom_node *cluster =
        named_entry(r, root, "clusters", "cluster", cluster_name->text, cluster_name);
    if (cluster != NULL)
        read_cluster(ld, r, cluster);
    const struct zones_dom_node *user_name = zones_dom_get_scalar(r, context, "context", "user");
    if (user_name == NULL)
        return; /* no credentials: the server may allow anonymous reads */
    const struct zones_dom_node *user =
        named_entry(r, root, "users", "user", user_name->text, user_name);
    if (user != NULL)
        read_user(ld, r, user);
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    return -1;
}

static char *read_file(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = zones_xrealloc(NULL, MAX_FILE_BYTES + 1);
    *len = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || *len > MAX_FILE_BYTES) {
        fail(err, cap, "%s: %s", path, bad ? "read error" : "larger than 16 MiB");
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

int zones_kubeconfig_load(struct zones_kubeconfig *kc, const char *path, char *err, size_t err_cap)
{
    memset(kc, 0, sizeof(*kc));
    size_t len = 0;
    char *text = read_file(path, &len, err, err_cap);
    if (text == NULL)
        return -1;
    struct loader ld = {.kc = kc, .path = path};
    snprintf(ld.dir, sizeof(ld.dir), "%s", path);
    char *slash = strrchr(ld.dir, '/');
    if (slash != NULL)
        *(slash == ld.dir ? slash + 1 : slash) = '\0';
    else
        snprintf(ld.dir, sizeof(ld.dir), ".");
    struct zones_objects objs;
    zones_objects_init(&objs);
    struct zones_report report = {.objs = &objs, .file = path};
    zones_yaml_parse(&report, text, len, read_config, &ld);
    free(text);
    kc->source = copy_str(path);
    int rc = 0;
    if (objs.n_diags > 0) {
        const struct zones_diag *d = &objs.diags[0];
        if (d->where.line > 0)
            fail(err, err_cap, "%s:%u:%u: %s", path, d->where.line, d->where.col, d->message);
        else
            fail(err, err_cap, "%s: %s", path, d->message);
        rc = -1;
    } else if (!ld.seen) {
        rc = fail(err, err_cap, "%s: the file is empty; it should be a kubeconfig", path);
    } else if (kc->server == NULL) {
        rc = fail(err, err_cap, "%s: the context \"%s\" has no cluster server", path, kc->context);
    }
    zones_objects_free(&objs);
    if (rc < 0)
        zones_kubeconfig_free(kc);
    return rc;
}

int zones_kubeconfig_in_cluster(struct zones_kubeconfig *kc, const char *host, const char *port,
                                const char *dir, char *err, size_t err_cap)
{
    memset(kc, 0, sizeof(*kc));
    if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
        return fail(err, err_cap,
                    "--kubernetes: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
                    "set, so this is not a pod; outside a cluster use --kubeconfig FILE");
    char url[512];
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof(url), "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    char token[4096];
    char ca[4096];
    snprintf(token, sizeof(token), "%s/token", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    for (const char *file = token; file != NULL; file = file == token ? ca : NULL) {
        if (access(file, R_OK) != 0)
            return fail(err, err_cap,
                        "--kubernetes: cannot read %s: %s; the pod needs its service account "
                        "token mounted (automountServiceAccountToken)",
                        file, strerror(errno));
    }
    kc->source = copy_str("in-cluster");
    kc->context = copy_str("in-cluster");
    kc->server = copy_str(url);
    kc->token_file = copy_str(token);
    kc->ca_file = copy_str(ca);
    return 0;
}

void zones_kubeconfig_free(struct zones_kubeconfig *kc)
{
    char *fields[] = {kc->source,   kc->context, kc->server,    kc->tls_server_name,
                      kc->ca_file,  kc->ca_pem,  kc->cert_file, kc->key_file,
                      kc->cert_pem, kc->key_pem, kc->token,     kc->token_file};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        free(fields[i]);
    memset(kc, 0, sizeof(*kc));
}
