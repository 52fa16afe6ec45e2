/* dns/addr.h - socket addresses: parse, format, compare. The one place every module turns
 * "127.0.0.1:53" or "[fd00::10]:53" into a sockaddr and back (Knot's contrib/sockaddr.h).
 *
 * Addresses are numeric only (no host names: a DNS server must not need DNS to start), IPv4 or
 * IPv6 with an optional %zone, in a struct sockaddr_storage whose unused bytes are zero. */
#ifndef DNS_ADDR_H
#define DNS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_ADDR_TEXT_MAX 64 /* "[ffff:...:ffff%zone]:65535" and a terminator */

/* Parses "127.0.0.1:53", "[::1]:53", "127.0.0.1" or "::1" (then default_port); a bare IPv6
 * address has no port. The port must be 1-65535: a default_port of 0 makes a port required.
 * Returns 0, or -1 when text is not such an address (out is then undefined). */
int dns_addr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *out);
/* "ADDR:PORT" or "[ADDR]:PORT"; "unknown" for another family. Always terminated. */
void dns_addr_format(const struct sockaddr_storage *ss, char *out, size_t cap);
/* The address alone, as inet_ntop writes it; "" for another family. */
void dns_addr_format_host(const struct sockaddr_storage *ss, char *out, size_t cap);

socklen_t dns_addr_len(const struct sockaddr_storage *ss);
uint16_t dns_addr_port(const struct sockaddr_storage *ss);
/* 0.0.0.0 or :: : a wildcard listen address. */
bool dns_addr_is_any(const struct sockaddr_storage *ss);
/* Same family and address; ports may differ. */
bool dns_addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* Same family, address and port. */
bool dns_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* Loopback, or an address of one of this host's interfaces. */
bool dns_addr_is_local(const struct sockaddr_storage *ss);
/* The address bytes (4 or 16) and their count; 0 for another family. */
size_t dns_addr_bytes(const struct sockaddr_storage *ss, const uint8_t **bytes);

#endif
