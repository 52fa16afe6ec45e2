/* tests/dns/test_frame.c - dns/frame.c: framing a TCP byte stream (RFC 7766 §8).
 *
 * The head of a buffer is partial, a complete message or a runt, however the bytes arrived;
 * compacting keeps the unframed bytes and leaves room for the rest of the longest frame.
 * tests/fuzz/fuzz_tcp_stream.c cuts and merges streams at random; these are the cases by
 * name. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/frame.h"

static const struct {
    const char *what;
    uint8_t bytes[16];
    size_t avail;
    enum dns_frame_state state;
    size_t len; /* READY and RUNT */
} heads[] = {
    {"nothing yet", {0}, 0, DNS_FRAME_PARTIAL, 0},
    {"half a length", {0x00}, 1, DNS_FRAME_PARTIAL, 0},
    {"a length with no message yet", {0x00, 0x0c}, 2, DNS_FRAME_PARTIAL, 0},
    {"one byte short", {0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 13, DNS_FRAME_PARTIAL, 0},
    {"a header-sized message",
     {0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
     14,
     DNS_FRAME_READY,
     12},
    {"a message and the start of the next",
     {0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0},
     15,
     DNS_FRAME_READY,
     12},
    {"a length of 0", {0x00, 0x00}, 2, DNS_FRAME_RUNT, 0},
    {"a runt, known before its bytes", {0x00, 0x0b}, 2, DNS_FRAME_RUNT, 11},
    {"a long message, partial", {0xff, 0xff, 0}, 3, DNS_FRAME_PARTIAL, 0},
};

START_TEST(the_head_is_partial_ready_or_a_runt)
{
    size_t len = 4242;
    enum dns_frame_state state = dns_frame_head(heads[_i].bytes, heads[_i].avail, &len);
    ck_assert_msg(state == heads[_i].state, "%s: state %d", heads[_i].what, (int)state);
    if (state != DNS_FRAME_PARTIAL)
        ck_assert_msg(len == heads[_i].len, "%s: length %zu", heads[_i].what, len);
    else
        ck_assert_msg(len == 4242, "%s: length set while partial", heads[_i].what);
}
END_TEST

START_TEST(the_longest_message_is_ready_once_whole)
{
    uint8_t *buf = calloc(1, DNS_FRAME_MAX);
    ck_assert_ptr_nonnull(buf);
    dns_wire_put_u16(buf, DNS_MAX_MSG);
    size_t len = 0;
    ck_assert_int_eq(dns_frame_head(buf, DNS_FRAME_MAX - 1, &len), DNS_FRAME_PARTIAL);
    ck_assert_int_eq(dns_frame_head(buf, DNS_FRAME_MAX, &len), DNS_FRAME_READY);
    ck_assert_uint_eq(len, DNS_MAX_MSG);
    free(buf);
}
END_TEST

/* Unframed bytes at [off, len) of a 32-byte buffer. */
static const struct {
    const char *bytes;
    size_t off, len;
} compactions[] = {
    {"..........abcdef", 10, 16}, /* moved to the front */
    {"abcdef", 0, 6},             /* already there: nothing moves */
    {"abc", 3, 3},                /* all framed: the buffer is empty */
};

START_TEST(compacting_moves_the_unframed_bytes_to_the_front)
{
    uint8_t buf[32] = {0};
    memcpy(buf, compactions[_i].bytes, strlen(compactions[_i].bytes));
    size_t off = compactions[_i].off;
    size_t len = compactions[_i].len;
    size_t kept = len - off;
    ck_assert_uint_eq(dns_frame_compact(buf, sizeof(buf), &off, &len), sizeof(buf) - kept);
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(len, kept);
    ck_assert_mem_eq(buf, compactions[_i].bytes + compactions[_i].off, kept);
}
END_TEST

/* A buffer of DNS_FRAME_MAX bytes, read into after every frame it held was taken, has room
 * for the rest of the longest message behind any part of it. */
START_TEST(a_partial_longest_frame_always_has_room_for_its_rest)
{
    uint8_t *buf = calloc(1, DNS_FRAME_MAX);
    ck_assert_ptr_nonnull(buf);
    size_t off = DNS_FRAME_MAX - 3; /* 3 bytes left unframed: a length and one byte */
    size_t len = DNS_FRAME_MAX;
    dns_wire_put_u16(buf + off, DNS_MAX_MSG);
    size_t room = dns_frame_compact(buf, DNS_FRAME_MAX, &off, &len);
    ck_assert_uint_eq(len + room, DNS_FRAME_MAX);
    size_t msg = 0;
    ck_assert_int_eq(dns_frame_head(buf, len + room, &msg), DNS_FRAME_READY);
    ck_assert_uint_eq(msg, DNS_MAX_MSG);
    free(buf);
}
END_TEST

Suite *frame_suite(void); /* for tests/dns/main.c */
Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_add_loop_test(tc, the_head_is_partial_ready_or_a_runt, 0,
                        (int)(sizeof(heads) / sizeof(heads[0])));
    tcase_add_test(tc, the_longest_message_is_ready_once_whole);
    tcase_add_loop_test(tc, compacting_moves_the_unframed_bytes_to_the_front, 0,
                        (int)(sizeof(compactions) / sizeof(compactions[0])));
    tcase_add_test(tc, a_partial_longest_frame_always_has_room_for_its_rest);
    suite_add_tcase(s, tc);
    return s;
}
