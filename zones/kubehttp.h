/* zones/kubehttp.h - GET requests to the Kubernetes API server, many at once: libcurl's multi
 * interface with a zones_kubeconfig's TLS settings and credentials.
 *
 * One thread drives it (zones_kubehttp_run); only zones_kubehttp_wakeup may be called from
 * another. Responses are handed over as they arrive, so a watch stream's events come one by
 * one. A bearer token from a file (a service account's, which kubelet rotates) is read again
 * whenever the file changes, and at once after a 401. TLS is verified against the cluster's
 * CA only, unless the kubeconfig says insecure-skip-tls-verify. */
#ifndef ZONES_KUBEHTTP_H
#define ZONES_KUBEHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "zones/kubeconfig.h"

struct zones_kubehttp;
struct zones_kubehttp_request;

struct zones_kubehttp_result {
    long status;          /* HTTP status; 0 when no answer came */
    bool complete;        /* the whole response came */
    const char *error;    /* when not complete: what went wrong (connection, TLS, timeout) */
    unsigned retry_after; /* seconds, from a Retry-After header; 0 when none */
};

/* Body bytes as they come, with the response's status; false aborts the request. */
typedef bool (*zones_kubehttp_data_fn)(void *ctx, long status, const char *data, size_t len);
/* The end of a request, whatever it was; the request is gone when this returns. */
typedef void (*zones_kubehttp_done_fn)(void *ctx, const struct zones_kubehttp_result *result);

/* Keeps conn until zones_kubehttp_free(). Returns 0, or -1 with why in err (libcurl.so.4
 * cannot be opened, say). */
int zones_kubehttp_new(struct zones_kubehttp **out, const struct zones_kubeconfig *conn,
                       const char *user_agent, char *err, size_t err_cap);
/* Drops the requests in flight without calling them back. NULL is a no-op. */
void zones_kubehttp_free(struct zones_kubehttp *h);

/* GET path_query ("/api/v1/services?limit=500"), given timeout_s seconds in all. The
 * callbacks get ctx. NULL when libcurl cannot start it (then nothing is called back). */
struct zones_kubehttp_request *zones_kubehttp_get(struct zones_kubehttp *h, const char *path_query,
                                                  unsigned timeout_s, zones_kubehttp_data_fn data,
                                                  zones_kubehttp_done_fn done, void *ctx);

/* Waits at most timeout_ms for sockets or a wakeup, then moves every request on and runs
 * the callbacks. Returns whether there was activity (false: the wait timed out). */
bool zones_kubehttp_run(struct zones_kubehttp *h, int timeout_ms);
/* Any thread: ends the wait of zones_kubehttp_run(). */
void zones_kubehttp_wakeup(struct zones_kubehttp *h);

/* The token is read again before the next request (a 401 may mean it rotated). */
void zones_kubehttp_token_rejected(struct zones_kubehttp *h);

/* s escaped for a URL's query; free with free(). Only once a client was made (libcurl is
 * opened by the first zones_kubehttp_new()). */
char *zones_kubehttp_escape(const char *s);

#endif
