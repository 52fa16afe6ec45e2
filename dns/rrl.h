/* dns/rrl.h - response rate limiting for UDP (--rrl), as Knot's and NSD's RRL do it.
 *
 * Each client prefix (/24 for IPv4, /56 for IPv6, as Knot counts them) may receive `rate` UDP
 * responses a second, with a burst of one second's worth after a quiet spell; past that a
 * response is dropped, except every `slip`-th one, which goes out empty with TC set so that
 * a real client behind a forged flood still gets through over TCP. TCP is never limited: its
 * handshake proves the source address. One table for all workers, allocated at start,
 * updated with compare-and-swap: no lock and no allocation per response. */
#ifndef DNS_RRL_H
#define DNS_RRL_H

#include <stdint.h>
#include <sys/socket.h>

#define DNS_RRL_RATE_MAX 1000000

struct dns_rrl_config {
    unsigned rate;    /* responses per second per prefix, 1 to DNS_RRL_RATE_MAX */
    unsigned slip;    /* every slip-th limited response is sent truncated; 0: all dropped */
    unsigned buckets; /* prefixes tracked at once, rounded up to a power of two */
};

/* slip 2 (as NSD and BIND: half of the limited responses truncated, half dropped), 65536
 * buckets (512 KiB); rate has no default. */
void dns_rrl_config_default(struct dns_rrl_config *cfg);

enum dns_rrl_action {
    DNS_RRL_PASS, /* send the response */
    DNS_RRL_DROP, /* send nothing */
    DNS_RRL_SLIP, /* send an empty reply with TC set instead */
};

struct dns_rrl_stats {
    uint64_t dropped, slipped;
};

struct dns_rrl;

/* Allocates the table; keeps a copy of cfg. 0, UV_EINVAL (rate out of range) or UV_ENOMEM. */
int dns_rrl_new(struct dns_rrl **out, const struct dns_rrl_config *cfg);
/* NULL is a no-op. */
void dns_rrl_free(struct dns_rrl *rrl);

/* Counts one UDP response to client at now_ns (uv_hrtime()) and says what to do with it.
 * Safe from any thread, concurrently. Clients other than IPv4 and IPv6 always pass. */
enum dns_rrl_action dns_rrl_check(struct dns_rrl *rrl, const struct sockaddr_storage *client,
                                  uint64_t now_ns);

/* Totals since start, from any thread. */
void dns_rrl_stats(const struct dns_rrl *rrl, struct dns_rrl_stats *out);

#endif
