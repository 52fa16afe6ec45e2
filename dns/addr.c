/* dns/addr.c - socket addresses: parse, format, compare.
 *
 * libuv does the numeric conversions (uv_ip4_addr is inet_pton's strict dotted quad;
 * uv_ip6_addr also reads a %zone into sin6_scope_id); this file owns the ADDR:PORT syntax
 * around them, so --listen, --upstream, --http and resolv.conf all accept the same text. */
#include "dns/addr.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

static const struct sockaddr_in *in4(const struct sockaddr_storage *ss)
{
    return (const struct sockaddr_in *)(const void *)ss;
}

static const struct sockaddr_in6 *in6(const struct sockaddr_storage *ss)
{
    return (const struct sockaddr_in6 *)(const void *)ss;
}

/* Digits only, 1-65535: no sign, no spaces, no trailing text. */
static int parse_port(const char *text, uint16_t *out)
{
    unsigned long v = 0;
    size_t n = 0;
    for (; text[n] >= '0' && text[n] <= '9'; n++) {
        if (n == 5)
            return -1;
        v = v * 10 + (unsigned long)(text[n] - '0');
    }
    if (n == 0 || text[n] != '\0' || v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int dns_addr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 32]; /* room for a %zone */
    const char *port = NULL;
    const char *start = text;
    size_t host_len;
    bool v6;
    if (text == NULL || out == NULL)
        return -1;
    const char *colon = strchr(text, ':');
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        start = text + 1;
        host_len = (size_t)(end - start);
        port = end[1] == ':' ? end + 2 : NULL;
        v6 = true;
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        host_len = (size_t)(colon - text); /* one colon: IPv4 and port */
        port = colon + 1;
        v6 = false;
    } else {
        host_len = strlen(text); /* a bare IPv6 address has two or more colons */
        v6 = colon != NULL;
    }
    if (host_len == 0 || host_len >= sizeof(host))
        return -1;
    memcpy(host, start, host_len);
    host[host_len] = '\0';
    uint16_t p = default_port;
    if (port != NULL && parse_port(port, &p) != 0)
        return -1;
    if (p == 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (v6)
        return uv_ip6_addr(host, p, (struct sockaddr_in6 *)(void *)out) == 0 ? 0 : -1;
    return uv_ip4_addr(host, p, (struct sockaddr_in *)(void *)out) == 0 ? 0 : -1;
}

void dns_addr_format_host(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (cap == 0)
        return;
    out[0] = '\0';
    if (ss->ss_family == AF_INET)
        uv_ip4_name(in4(ss), out, cap);
    else if (ss->ss_family == AF_INET6)
        uv_ip6_name(in6(ss), out, cap);
}

void dns_addr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (cap == 0)
        return;
    dns_addr_format_host(ss, host, sizeof(host));
    if (ss->ss_family == AF_INET)
        snprintf(out, cap, "%s:%u", host, dns_addr_port(ss));
    else if (ss->ss_family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", host, dns_addr_port(ss));
    else
        snprintf(out, cap, "unknown");
}

socklen_t dns_addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

uint16_t dns_addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(in6(ss)->sin6_port);
    if (ss->ss_family == AF_INET)
        return ntohs(in4(ss)->sin_port);
    return 0;
}

size_t dns_addr_bytes(const struct sockaddr_storage *ss, const uint8_t **bytes)
{
    if (ss->ss_family == AF_INET6) {
        *bytes = (const uint8_t *)&in6(ss)->sin6_addr;
        return 16;
    }
    if (ss->ss_family == AF_INET) {
        *bytes = (const uint8_t *)&in4(ss)->sin_addr;
        return 4;
    }
    *bytes = NULL;
    return 0;
}

bool dns_addr_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&in6(ss)->sin6_addr);
    return ss->ss_family == AF_INET && in4(ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

bool dns_addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    const uint8_t *x;
    const uint8_t *y;
    size_t n = dns_addr_bytes(a, &x);
    return a->ss_family == b->ss_family && n > 0 && dns_addr_bytes(b, &y) == n &&
           memcmp(x, y, n) == 0;
}

bool dns_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return dns_addr_same_host(a, b) && dns_addr_port(a) == dns_addr_port(b);
}

bool dns_addr_is_local(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET && (ntohl(in4(ss)->sin_addr.s_addr) >> 24) == 127)
        return true;
    if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&in6(ss)->sin6_addr))
        return true;
    uv_interface_address_t *ifs = NULL;
    int count = 0;
    bool local = false;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return false;
    for (int i = 0; i < count && !local; i++) {
        struct sockaddr_storage s;
        memset(&s, 0, sizeof(s));
        memcpy(&s, &ifs[i].address,
               ifs[i].address.address4.sin_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                              : sizeof(struct sockaddr_in));
        local = dns_addr_same_host(&s, ss);
    }
    uv_free_interface_addresses(ifs, count);
    return local;
}
