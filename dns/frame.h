/* dns/frame.h - DNS over TCP framing (RFC 7766 §8, RFC 1035 §4.2.2): a byte stream of
 * messages, each behind its 2-byte length.
 *
 * dns/tcp.c reads a connection's bytes into a small buffer of its own and frames them with
 * these functions; a message too long for that buffer is read on into a request slot, up to
 * its end. They touch no socket, so a test can cut a stream anywhere and merge its pieces at
 * will (tests/fuzz/fuzz_tcp_stream.c follows tcp.c's reading). */
#ifndef DNS_FRAME_H
#define DNS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "dns/wire.h"

#define DNS_FRAME_MAX (2 + DNS_MAX_MSG) /* the longest frame: length and message */
#define DNS_FRAME_SMALL 512 /* a TCP connection's own buffer; a longer message goes to a slot */

enum dns_frame_state {
    DNS_FRAME_PARTIAL, /* no complete message at the head yet: read on */
    DNS_FRAME_READY,   /* a complete message follows the length */
    DNS_FRAME_RUNT,    /* the length is below a DNS header: not DNS; close */
};

/* What the head of data[0, avail) holds. READY and RUNT set *len to the message's length;
 * the message starts at data + 2. A runt is known as soon as its length is, before its
 * bytes. */
enum dns_frame_state dns_frame_head(const uint8_t *data, size_t avail, size_t *len);

/* The bytes the frame at the head of data[0, avail) takes, length included; 0 while fewer than
 * the 2 bytes of its length are there. */
size_t dns_frame_needs(const uint8_t *data, size_t avail);

/* Readies buf (cap bytes, holding unframed bytes at [*off, *len)) for the next read: moves
 * those bytes to the front when they do not start there, so that a whole frame fits behind
 * them. Returns the room at buf + *len. */
size_t dns_frame_compact(uint8_t *buf, size_t cap, size_t *off, size_t *len);

#endif
