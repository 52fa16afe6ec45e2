/* dns/frame.h - DNS over TCP framing (RFC 7766 §8, RFC 1035 §4.2.2): a byte stream of
 * messages, each behind its 2-byte length.
 *
 * dns/tcp.c reads a connection's bytes into a buffer and frames them with these two
 * functions. They touch no socket, so a test can cut a stream anywhere and merge its pieces
 * at will (tests/fuzz/fuzz_tcp_stream.c). The invariant they keep: a buffer of
 * DNS_FRAME_MAX bytes always has room for the rest of the message at its head. */
#ifndef DNS_FRAME_H
#define DNS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "dns/wire.h"

#define DNS_FRAME_MAX (2 + DNS_MAX_MSG) /* the longest frame: length and message */

enum dns_frame_state {
    DNS_FRAME_PARTIAL, /* no complete message at the head yet: read on */
    DNS_FRAME_READY,   /* a complete message follows the length */
    DNS_FRAME_RUNT,    /* the length is below a DNS header: not DNS; close */
};

/* What the head of data[0, avail) holds. READY and RUNT set *len to the message's length;
 * the message starts at data + 2. A runt is known as soon as its length is, before its
 * bytes. */
enum dns_frame_state dns_frame_head(const uint8_t *data, size_t avail, size_t *len);

/* Readies buf (cap bytes, holding unframed bytes at [*off, *len)) for the next read: moves
 * those bytes to the front when they do not start there, so that a whole frame fits behind
 * them. Returns the room at buf + *len. */
size_t dns_frame_compact(uint8_t *buf, size_t cap, size_t *off, size_t *len);

#endif
