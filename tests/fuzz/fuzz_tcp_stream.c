/* tests/fuzz/fuzz_tcp_stream.c - a DNS-over-TCP byte stream (RFC 7766), cut into chunks of
 * any size, through the framing dns/tcp.c uses (dns/frame.h).
 *
 * The harness reads the way a connection of dns/tcp.c does: into a small buffer of the
 * connection's own (DNS_FRAME_SMALL bytes), readied by dns_frame_compact(); a message longer
 * than that goes on into a buffer of its own (a request slot), read exactly up to the
 * message's end (dns_frame_needs()) and handed over whole. A "read" delivers the next chunk
 * (at most the room offered), and every complete message at the head is taken
 * (dns_frame_head()) before reading on, since tcp.c stops reading while one waits. Whatever
 * the cuts, the messages taken must be exactly those of the whole stream, in order and byte
 * for byte; a runt must end the stream where it stands; the bytes left at the end must be
 * the unfinished message; and a partial message must always have room for its rest (else a
 * connection would wait forever).
 *
 * Input: one byte N, then N chunk sizes (2 bytes each, big-endian; 0 reads as 1), used in
 * turn (after 1,000 reads, the rest comes in reads as large as the room); then the stream,
 * as items: a byte below 0x80 is followed by that many + 1 raw stream
 * bytes; a byte from 0x80 is followed by a 2-byte length L, and stands for a whole frame of
 * L bytes of filler, so that a small input makes frames up to 65,535 bytes.
 *
 *   CC=clang cmake -B build-fuzz -G Ninja -DFUZZ=ON && cmake --build build-fuzz \
 *       --target fuzz_tcp_stream
 *   build-fuzz/tests/fuzz_tcp_stream -max_total_time=60 tests/fuzz/corpus/tcp_stream */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CUTS 16
#define MAX_READS 1000 /* then the rest arrives in reads as large as the room, for speed */
#define MAX_STREAM (4 * DNS_FRAME_MAX)

/* The stream the input describes; returns its length. */
static size_t build_stream(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t len = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t item = in[i++];
        if (item < 0x80) {
            size_t raw = (size_t)item + 1;
            if (raw > n - i)
                raw = n - i;
            if (len + raw > MAX_STREAM)
                break;
            memcpy(out + len, in + i, raw);
            len += raw;
            i += raw;
            continue;
        }
        if (n - i < 2)
            break;
        size_t frame = dns_wire_get_u16(in + i);
        i += 2;
        if (len + 2 + frame > MAX_STREAM)
            break;
        dns_wire_put_u16(out + len, (uint16_t)frame);
        for (size_t k = 0; k < frame; k++)
            out[len + 2 + k] = (uint8_t)(k * 31 + item);
        len += 2 + frame;
    }
    return len;
}

/* The whole stream, framed at once: where each message starts (its length's offset), and
 * how the stream ends (a runt at an offset, or an unfinished tail of some bytes). */
struct expected {
    size_t starts[MAX_STREAM / (2 + DNS_HEADER_SIZE) + 1];
    size_t n;
    bool runt;
    size_t end; /* the runt's offset, or where the unfinished tail starts */
};

static void frame_whole(const uint8_t *s, size_t len, struct expected *e)
{
    size_t pos = 0;
    e->n = 0;
    e->runt = false;
    while (len - pos >= 2) {
        size_t msg = dns_wire_get_u16(s + pos);
        if (msg < DNS_HEADER_SIZE) {
            e->runt = true;
            break;
        }
        if (len - pos < 2 + msg)
            break;
        e->starts[e->n++] = pos;
        pos += 2 + msg;
    }
    e->end = pos;
}

struct reader {
    uint8_t *small;   /* the connection's own buffer */
    uint8_t *large;   /* a long message's slot, while one is read; NULL otherwise */
    uint8_t *slot;    /* the memory a slot is taken from */
    size_t off, len;  /* unframed bytes: [off, len) of the buffer in use */
    size_t taken;     /* messages taken */
    size_t stream_at; /* stream offset of the byte after the buffered ones */
    bool closed;      /* a runt */
};

static uint8_t *in_use(const struct reader *r)
{
    return r->large != NULL ? r->large : r->small;
}

static void take(struct reader *r, const struct expected *e, const uint8_t *stream, size_t msg)
{
    size_t at = r->stream_at - (r->len - r->off); /* the stream offset of the head */
    if (r->taken >= e->n || e->starts[r->taken] != at ||
        memcmp(in_use(r) + r->off, stream + at, 2 + msg) != 0)
        abort();
    r->taken++;
    if (r->large != NULL) {
        if (r->off != 0 || r->len != 2 + msg) /* the slot holds exactly its message */
            abort();
        r->large = NULL; /* it becomes the request; reading goes on into the small buffer */
        r->len = 0;
    } else {
        r->off += 2 + msg;
    }
    if (r->off == r->len)
        r->off = r->len = 0;
}

/* Takes every complete message at the head; a long one moves into a slot. False once the
 * stream is closed. */
static bool pump(struct reader *r, const struct expected *e, const uint8_t *stream)
{
    for (;;) {
        size_t msg = 0;
        const uint8_t *head = in_use(r) + r->off;
        switch (dns_frame_head(head, r->len - r->off, &msg)) {
        case DNS_FRAME_READY:
            take(r, e, stream, msg);
            break;
        case DNS_FRAME_RUNT:
            if (!e->runt || r->taken != e->n || r->stream_at - (r->len - r->off) != e->end)
                abort();
            r->closed = true;
            return false;
        case DNS_FRAME_PARTIAL:
            if (r->large == NULL && dns_frame_needs(head, r->len - r->off) > DNS_FRAME_SMALL) {
                r->large = r->slot;
                memcpy(r->large, head, r->len - r->off);
                r->len -= r->off;
                r->off = 0;
            }
            return true;
        }
    }
}

/* The room for the next read: in the slot up to the message's end, else in the small buffer.
 * The message at the head must be able to complete. */
static size_t ready(struct reader *r)
{
    size_t room;
    if (r->large != NULL)
        room = dns_frame_needs(r->large, r->len) - r->len;
    else
        room = dns_frame_compact(r->small, DNS_FRAME_SMALL, &r->off, &r->len);
    size_t have = r->len - r->off;
    if (room == 0 || r->off != 0)
        abort();
    if (have >= 2 && have + room < dns_frame_needs(in_use(r), have))
        abort();
    return room;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t stream[MAX_STREAM];
    static struct expected e;
    if (size < 1)
        return 0;
    size_t n_cuts = data[0] % (MAX_CUTS + 1);
    if (size < 1 + 2 * n_cuts)
        return 0;
    const uint8_t *cuts = data + 1;
    size_t len = build_stream(data + 1 + 2 * n_cuts, size - 1 - 2 * n_cuts, stream);
    frame_whole(stream, len, &e);

    /* Exactly as large as tcp.c's, so that ASan sees a write past the end. */
    struct reader r = {.small = malloc(DNS_FRAME_SMALL), .slot = malloc(DNS_FRAME_MAX)};
    if (r.small == NULL || r.slot == NULL)
        abort();
    for (size_t cut = 0; r.stream_at < len && !r.closed; cut++) {
        size_t room = ready(&r);
        size_t chunk =
            n_cuts && cut < MAX_READS ? dns_wire_get_u16(cuts + 2 * (cut % n_cuts)) : len;
        if (chunk == 0)
            chunk = 1;
        if (chunk > room)
            chunk = room;
        if (chunk > len - r.stream_at)
            chunk = len - r.stream_at;
        memcpy(in_use(&r) + r.len, stream + r.stream_at, chunk);
        r.len += chunk;
        r.stream_at += chunk;
        pump(&r, &e, stream);
    }
    /* The stream is over: every message taken, and what is left is the unfinished one. */
    if (r.closed != e.runt || r.taken != e.n)
        abort();
    if (!r.closed && r.len - r.off != len - e.end)
        abort();
    free(r.small);
    free(r.slot);
    return 0;
}
