/* dns/frame.c - DNS over TCP framing: where the messages of a byte stream begin and end. */
#include "dns/frame.h"

#include <string.h>

enum dns_frame_state dns_frame_head(const uint8_t *data, size_t avail, size_t *len)
{
    if (avail < 2)
        return DNS_FRAME_PARTIAL;
    size_t n = dns_wire_get_u16(data);
    if (avail < 2 + n && n >= DNS_HEADER_SIZE)
        return DNS_FRAME_PARTIAL;
    *len = n;
    /* A length of 0 or a runt is not a DNS message; NSD, Knot and Unbound close. */
    return n < DNS_HEADER_SIZE ? DNS_FRAME_RUNT : DNS_FRAME_READY;
}

size_t dns_frame_needs(const uint8_t *data, size_t avail)
{
    return avail < 2 ? 0 : 2 + (size_t)dns_wire_get_u16(data);
}

size_t dns_frame_compact(uint8_t *buf, size_t cap, size_t *off, size_t *len)
{
    if (*off > 0) {
        memmove(buf, buf + *off, *len - *off);
        *len -= *off;
        *off = 0;
    }
    return cap - *len;
}
