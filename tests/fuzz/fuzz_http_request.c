/* tests/fuzz/fuzz_http_request.c - arbitrary bytes through the HTTP request parser.
 *
 * Besides memory safety, it checks what the server relies on: a complete request has a
 * NUL-terminated method and a path of at most DNS_HTTP_MAX_PATH bytes, and its header_end lies
 * within the input; and the verdict is consistent as bytes arrive, since the server parses
 * again after every read. A prefix that is complete gives the same request as the whole, a
 * prefix that is malformed stays malformed, and a whole that needs more had prefixes that
 * needed more. */
#include <stdlib.h>
#include <string.h>

#include "dns/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_complete(const struct dns_http_request *req, size_t len)
{
    if (req->header_end == 0 || req->header_end > len)
        abort();
    if (memchr(req->method, '\0', sizeof(req->method)) == NULL || req->method[0] == '\0')
        abort();
    if (memchr(req->path, '\0', sizeof(req->path)) == NULL)
        abort();
    if (strlen(req->path) > DNS_HTTP_MAX_PATH || (req->path[0] != '/' && req->path[0] != '*'))
        abort();
    if (strpbrk(req->path, "?# \r\n") != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > DNS_HTTP_MAX_REQUEST)
        return 0; /* the server never parses more */
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    struct dns_http_request whole;
    struct dns_http_request part;
    int r = dns_http_parse_request(buf, size, &whole);
    if (r < -1 || r > 1)
        abort();
    if (r == 1) {
        check_complete(&whole, size);
        /* The complete request itself, without whatever followed it, parses the same. */
        if (dns_http_parse_request(buf, whole.header_end, &part) != 1 ||
            memcmp(&part, &whole, sizeof(part)) != 0)
            abort();
    }
    size_t cut = size / 2;
    int p = dns_http_parse_request(buf, cut, &part);
    if (p == 1 && (r != 1 || memcmp(&part, &whole, sizeof(part)) != 0))
        abort();
    if (p == -1 && r != -1)
        abort();
    if (r == 0 && p != 0)
        abort();
    free(buf);
    return 0;
}
