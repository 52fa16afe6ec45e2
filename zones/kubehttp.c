/* zones/kubehttp.c - the Kubernetes API's HTTPS client, over libcurl's multi interface.
 *
 * Each GET is one easy handle in the multi handle, which keeps the connections (and, where
 * the server offers HTTP/2, multiplexes the watches over one). Nothing here knows what a
 * list or a watch is: zones/kube.c does. Every request carries the credentials as they are
 * now: a token file is looked at (stat) before each request and read again when it changed.
 *
 * libcurl is opened when the first client is made, not linked: a server that only serves
 * manifests never maps it and the two dozen libraries it pulls in (TLS, Kerberos, LDAP, SSH:
 * 4 MiB of RSS). Its calls go through the table lc, typed from curl.h's own declarations. */
#include "zones/kubehttp.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dns/log.h"
#include "zones/objects.h"

#define LIBCURL "libcurl.so.4"

/* The calls made, one row per kind. */
/* clang-format off */
#define CURL_FUNCTIONS(X)                                                                          \
    X(global_init) X(global_cleanup)                                                               \
    X(easy_init) X(easy_setopt) X(easy_getinfo) X(easy_cleanup) X(easy_strerror) X(easy_escape)    \
    X(free) X(slist_append) X(slist_free_all)                                                      \
    X(multi_init) X(multi_add_handle) X(multi_remove_handle) X(multi_perform) X(multi_poll)        \
    X(multi_wakeup) X(multi_info_read) X(multi_cleanup)                                            \
    X(url) X(url_set) X(url_get) X(url_cleanup)
/* clang-format on */

static struct {
#define FIELD(name) __typeof__(curl_##name) *name; /* NOLINT(bugprone-macro-parentheses) */
    CURL_FUNCTIONS(FIELD)
#undef FIELD
} lc;

static char lc_error[256]; /* why libcurl could not be opened; "" when it was */
static pthread_once_t lc_once = PTHREAD_ONCE_INIT;

static void lc_open(void)
{
    void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(lc_error, sizeof(lc_error), "%s", dlerror());
        return;
    }
#define LOAD(name)                                                                                 \
    if ((*(void **)&lc.name = dlsym(lib, "curl_" #name)) == NULL) {                                \
        snprintf(lc_error, sizeof(lc_error), "%s has no curl_" #name, LIBCURL);                    \
        return;                                                                                    \
    }
    CURL_FUNCTIONS(LOAD)
#undef LOAD
}

#define CONNECT_TIMEOUT_S 10
#define MAX_TOKEN_BYTES ((size_t)64 * 1024)

struct zones_kubehttp_request {
    struct zones_kubehttp *h;
    CURL *easy;
    struct curl_slist *headers;
    zones_kubehttp_data_fn data;
    zones_kubehttp_done_fn done;
    void *ctx;
    struct zones_kubehttp_request *prev, *next; /* in flight */
    char error[CURL_ERROR_SIZE];
};

struct zones_kubehttp {
    const struct zones_kubeconfig *conn;
    CURLM *multi;
    char *base; /* the server URL, with tls-server-name as its host when there is one */
    struct curl_slist *connect_to;
    char *user_agent;
    char *token; /* the token as last read from the token file */
    struct stat token_stat;
    bool token_stale;
    bool token_warned;
    struct zones_kubehttp_request *requests;
};

static char *copy_str(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(zones_xrealloc(NULL, n), s, n);
}

/* ---- the token ---- */

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The token in path (one line; surrounding white space dropped), or NULL with why. */
static char *read_token(const char *path, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *why = strerror(errno);
        return NULL;
    }
    char *text = zones_xrealloc(NULL, MAX_TOKEN_BYTES + 1);
    size_t n = fread(text, 1, MAX_TOKEN_BYTES, f);
    fclose(f);
    while (n > 0 && strchr(" \t\r\n", text[n - 1]) != NULL)
        n--;
    text[n] = '\0';
    if (n == 0 || strpbrk(text, "\r\n") != NULL) {
        *why = "no token (one line) in the file";
        free(text);
        return NULL;
    }
    return text;
}

static void keep_last_token(struct zones_kubehttp *h, const char *why)
{
    if (!h->token_warned)
        log_warn("kubernetes", "token_file=%s error=\"%s\" action=\"kept the last token\"",
                 h->conn->token_file, why);
    h->token_warned = true;
}

/* Reads the token file again when it changed (kubelet rotates a projected token by swapping a
 * symlink, so the inode changes); a file that cannot be read keeps the last token. */
static void refresh_token(struct zones_kubehttp *h)
{
    const char *path = h->conn->token_file;
    struct stat st;
    if (path == NULL)
        return;
    if (stat(path, &st) != 0) {
        keep_last_token(h, strerror(errno));
        return;
    }
    if (h->token != NULL && !h->token_stale && same_file(&st, &h->token_stat))
        return;
    const char *why = NULL;
    char *token = read_token(path, &why);
    if (token == NULL) {
        keep_last_token(h, why);
        return;
    }
    if (h->token != NULL && strcmp(h->token, token) != 0)
        log_info("kubernetes", "token_file=%s msg=\"the token changed\"", path);
    free(h->token);
    h->token = token;
    h->token_stat = st;
    h->token_stale = false;
    h->token_warned = false;
}

void zones_kubehttp_token_rejected(struct zones_kubehttp *h)
{
    h->token_stale = true;
}

/* ---- requests ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct zones_kubehttp_request *req = arg;
    long status = 0;
    lc.easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    return req->data(req->ctx, status, data, size * n) ? size * n : 0;
}

static int set_tls(struct zones_kubehttp *h, CURL *e)
{
    const struct zones_kubeconfig *c = h->conn;
    int rc = CURLE_OK;
    if (c->insecure) {
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->ca_file != NULL || c->ca_pem != NULL) /* the cluster's CA, not the system's */
        rc |= (int)lc.easy_setopt(e, CURLOPT_CAPATH, NULL);
    if (c->ca_file != NULL)
        rc |= (int)lc.easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->ca_pem != NULL) {
        struct curl_blob blob = {c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY};
        rc |= (int)lc.easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (c->cert_file != NULL) {
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
    }
    if (c->cert_pem != NULL) {
        struct curl_blob cert = {c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY};
        struct curl_blob key = {c->key_pem, c->key_pem_len, CURL_BLOB_COPY};
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
        rc |= (int)lc.easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
    }
    if (h->connect_to != NULL)
        rc |= (int)lc.easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
    return rc;
}

static int set_options(struct zones_kubehttp *h, struct zones_kubehttp_request *req,
                       const char *url, unsigned timeout_s)
{
    CURL *e = req->easy;
    int rc = (int)lc.easy_setopt(e, CURLOPT_URL, url);
    rc |= (int)lc.easy_setopt(e, CURLOPT_PRIVATE, req);
    rc |= (int)lc.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    rc |= (int)lc.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    rc |= (int)lc.easy_setopt(e, CURLOPT_WRITEDATA, req);
    rc |= (int)lc.easy_setopt(e, CURLOPT_ERRORBUFFER, req->error);
    rc |= (int)lc.easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    rc |= (int)lc.easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
    rc |= (int)lc.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* gzip for large lists */
    rc |= (int)lc.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= (int)lc.easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    rc |= (int)lc.easy_setopt(e, CURLOPT_TIMEOUT, (long)timeout_s);
    /* A watch is silent for minutes: keepalives find a connection that died meanwhile. */
    rc |= (int)lc.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= (int)lc.easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    rc |= (int)lc.easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    return rc | set_tls(h, e);
}

struct zones_kubehttp_request *zones_kubehttp_get(struct zones_kubehttp *h, const char *path_query,
                                                  unsigned timeout_s, zones_kubehttp_data_fn data,
                                                  zones_kubehttp_done_fn done, void *ctx)
{
    refresh_token(h);
    const char *token = h->token != NULL ? h->token : h->conn->token;
    struct zones_kubehttp_request *req = zones_xcalloc(1, sizeof(*req));
    req->h = h;
    req->data = data;
    req->done = done;
    req->ctx = ctx;
    req->easy = lc.easy_init();
    size_t url_len = strlen(h->base) + strlen(path_query) + 1;
    char *url = zones_xrealloc(NULL, url_len);
    snprintf(url, url_len, "%s%s", h->base, path_query);
    req->headers = lc.slist_append(NULL, "Accept: application/json");
    if (token != NULL && req->headers != NULL) {
        size_t n = strlen(token) + 32;
        char *auth = zones_xrealloc(NULL, n);
        snprintf(auth, n, "Authorization: Bearer %s", token);
        struct curl_slist *more = lc.slist_append(req->headers, auth);
        free(auth);
        req->headers = more != NULL ? more : req->headers;
    }
    int rc = req->easy != NULL && req->headers != NULL ? set_options(h, req, url, timeout_s) : -1;
    free(url);
    if (rc != CURLE_OK || lc.multi_add_handle(h->multi, req->easy) != CURLM_OK) {
        log_error("kubernetes", "msg=\"libcurl could not start a request\" path=%s", path_query);
        lc.easy_cleanup(req->easy);
        lc.slist_free_all(req->headers);
        free(req);
        return NULL;
    }
    req->next = h->requests;
    if (h->requests != NULL)
        h->requests->prev = req;
    h->requests = req;
    return req;
}

static void drop(struct zones_kubehttp *h, struct zones_kubehttp_request *req)
{
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        h->requests = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    lc.multi_remove_handle(h->multi, req->easy);
    lc.easy_cleanup(req->easy);
    lc.slist_free_all(req->headers);
    req->easy = NULL;
}

static void finish(struct zones_kubehttp *h, struct zones_kubehttp_request *req, CURLcode result)
{
    struct zones_kubehttp_result res = {0};
    lc.easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl_off_t retry_after = 0;
    if (lc.easy_getinfo(req->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
        retry_after > 0)
        res.retry_after = retry_after > 3600 ? 3600 : (unsigned)retry_after;
    res.complete = result == CURLE_OK;
    if (!res.complete && req->error[0] == '\0')
        snprintf(req->error, sizeof(req->error), "%s", lc.easy_strerror(result));
    res.error = res.complete ? NULL : req->error;
    drop(h, req);
    req->done(req->ctx, &res);
    free(req);
}

bool zones_kubehttp_run(struct zones_kubehttp *h, int timeout_ms)
{
    int activity = 0;
    int running = 0;
    lc.multi_poll(h->multi, NULL, 0, timeout_ms, &activity);
    lc.multi_perform(h->multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = lc.multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct zones_kubehttp_request *req = NULL;
        lc.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        if (req != NULL)
            finish(h, req, msg->data.result);
    }
    return activity > 0;
}

void zones_kubehttp_wakeup(struct zones_kubehttp *h)
{
    lc.multi_wakeup(h->multi);
}

char *zones_kubehttp_escape(const char *s)
{
    char *escaped = lc.easy_escape(NULL, s, 0);
    if (escaped == NULL)
        abort(); /* zones/objects.h: out of memory aborts */
    char *out = copy_str(escaped);
    lc.free(escaped);
    return out;
}

/* ---- lifetime ---- */

/* With tls-server-name, requests name that host (for SNI and the certificate check) and
 * curl connects to the server's address instead. */
static int set_base(struct zones_kubehttp *h, char *err, size_t err_cap)
{
    const struct zones_kubeconfig *c = h->conn;
    if (c->tls_server_name == NULL) {
        h->base = copy_str(c->server);
        return 0;
    }
    CURLU *u = lc.url();
    char *host = NULL;
    char *port = NULL;
    char *url = NULL;
    int rc = -1;
    if (u != NULL && lc.url_set(u, CURLUPART_URL, c->server, 0) == CURLUE_OK &&
        lc.url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        lc.url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        lc.url_set(u, CURLUPART_HOST, c->tls_server_name, 0) == CURLUE_OK &&
        lc.url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
        size_t len = strlen(url);
        while (len > 0 && url[len - 1] == '/')
            url[--len] = '\0';
        char map[1024];
        snprintf(map, sizeof(map), "%s:%s:%s:%s", c->tls_server_name, port, host, port);
        h->connect_to = lc.slist_append(NULL, map);
        h->base = copy_str(url);
        rc = h->connect_to != NULL ? 0 : -1;
    }
    if (rc < 0)
        snprintf(err, err_cap, "%s: cannot use tls-server-name %s with server %s", c->source,
                 c->tls_server_name, c->server);
    lc.free(host);
    lc.free(port);
    lc.free(url);
    lc.url_cleanup(u);
    return rc;
}

int zones_kubehttp_new(struct zones_kubehttp **out, const struct zones_kubeconfig *conn,
                       const char *user_agent, char *err, size_t err_cap)
{
    *out = NULL;
    pthread_once(&lc_once, lc_open);
    if (lc_error[0] != '\0') {
        snprintf(err, err_cap,
                 "cannot open %s, which the Kubernetes API source needs (%s); install it "
                 "(Debian: apt-get install libcurl4)",
                 LIBCURL, lc_error);
        return -1;
    }
    if (lc.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, err_cap, "libcurl could not start");
        return -1;
    }
    struct zones_kubehttp *h = zones_xcalloc(1, sizeof(*h));
    h->conn = conn;
    h->user_agent = copy_str(user_agent);
    h->multi = lc.multi_init();
    if (h->multi == NULL || set_base(h, err, err_cap) < 0) {
        if (h->multi == NULL)
            snprintf(err, err_cap, "libcurl could not start");
        zones_kubehttp_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

void zones_kubehttp_free(struct zones_kubehttp *h)
{
    if (h == NULL)
        return;
    struct zones_kubehttp_request *next;
    for (struct zones_kubehttp_request *req = h->requests; req != NULL; req = next) {
        next = req->next;
        lc.multi_remove_handle(h->multi, req->easy);
        lc.easy_cleanup(req->easy);
        lc.slist_free_all(req->headers);
        free(req);
    }
    h->requests = NULL;
    lc.multi_cleanup(h->multi);
    lc.slist_free_all(h->connect_to);
    free(h->base);
    free(h->user_agent);
    free(h->token);
    free(h);
    lc.global_cleanup();
}
