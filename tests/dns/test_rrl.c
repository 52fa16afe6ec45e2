/* tests/dns/test_rrl.c - dns/rrl.c: the rate per prefix, the burst, slips, and races. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <check.h>
#include <uv.h>

#include "dns/addr.h"
#include "dns/rrl.h"

#define SEC UINT64_C(1000000000)
/* A second after the test starts, in uv_hrtime() time (after the table's making). */
static uint64_t t0;
#define T0 t0

static void setup(void)
{
    t0 = uv_hrtime() + SEC;
}

static struct dns_rrl *make(unsigned rate, unsigned slip, unsigned buckets)
{
    struct dns_rrl_config cfg;
    dns_rrl_config_default(&cfg);
    cfg.rate = rate;
    cfg.slip = slip;
    if (buckets)
        cfg.buckets = buckets;
    struct dns_rrl *rrl;
    ck_assert_int_eq(dns_rrl_new(&rrl, &cfg), 0);
    return rrl;
}

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    ck_assert_int_eq(dns_addr_parse(text, 53, &ss), 0);
    return ss;
}

/* How many of n responses at now pass, and how many are dropped and slipped. */
struct tally {
    unsigned pass, drop, slip;
};

static struct tally send_n(struct dns_rrl *rrl, const char *client, unsigned n, uint64_t now)
{
    struct tally t = {0};
    struct sockaddr_storage ss = addr(client);
    for (unsigned i = 0; i < n; i++) {
        enum dns_rrl_action a = dns_rrl_check(rrl, &ss, now);
        t.pass += a == DNS_RRL_PASS;
        t.drop += a == DNS_RRL_DROP;
        t.slip += a == DNS_RRL_SLIP;
    }
    return t;
}

START_TEST(a_burst_gets_one_second_then_every_second_limited_reply_slips)
{
    struct dns_rrl *rrl = make(10, 2, 0);
    struct tally t = send_n(rrl, "192.0.2.7", 30, T0);
    ck_assert_uint_eq(t.pass, 10);
    ck_assert_uint_eq(t.drop, 10);
    ck_assert_uint_eq(t.slip, 10);
    struct dns_rrl_stats st;
    dns_rrl_stats(rrl, &st);
    ck_assert_uint_eq(st.dropped, 10);
    ck_assert_uint_eq(st.slipped, 10);
    dns_rrl_free(rrl);
}
END_TEST

START_TEST(the_bucket_refills_at_the_rate)
{
    struct dns_rrl *rrl = make(10, 2, 0);
    ck_assert_uint_eq(send_n(rrl, "192.0.2.7", 10, T0).pass, 10);
    ck_assert_uint_eq(send_n(rrl, "192.0.2.7", 5, T0 + SEC / 20).pass, 0); /* half an interval */
    ck_assert_uint_eq(send_n(rrl, "192.0.2.7", 5, T0 + SEC / 10).pass, 1); /* one interval */
    ck_assert_uint_eq(send_n(rrl, "192.0.2.7", 5, T0 + SEC / 10 * 3).pass, 2);
    /* Quiet for long enough: the whole burst again, never more. */
    ck_assert_uint_eq(send_n(rrl, "192.0.2.7", 50, T0 + 60 * SEC).pass, 10);
    /* A steady 100 a second for 10 s: the burst, then 10 a second. */
    unsigned pass = 0;
    for (unsigned ms = 0; ms < 10000; ms += 10)
        pass += send_n(rrl, "192.0.2.99", 1, T0 + 120 * SEC + ms * (SEC / 1000)).pass;
    ck_assert_uint_ge(pass, 10 * 10 + 9);
    ck_assert_uint_le(pass, 10 * 10 + 10);
    dns_rrl_free(rrl);
}
END_TEST

START_TEST(clients_are_counted_by_prefix)
{
    struct dns_rrl *rrl = make(5, 0, 0);
    ck_assert_uint_eq(send_n(rrl, "10.1.2.3", 3, T0).pass, 3);
    ck_assert_uint_eq(send_n(rrl, "10.1.2.250", 5, T0).pass, 2);        /* the same /24 */
    ck_assert_uint_eq(send_n(rrl, "[::ffff:10.1.2.9]", 2, T0).pass, 0); /* mapped: the same */
    ck_assert_uint_eq(send_n(rrl, "10.1.3.3", 5, T0).pass, 5);          /* the next /24 */
    ck_assert_uint_eq(send_n(rrl, "[2001:db8:0:1200::1]", 3, T0).pass, 3);
    ck_assert_uint_eq(send_n(rrl, "[2001:db8:0:12ff:1::7]", 5, T0).pass, 2); /* same /56 */
    ck_assert_uint_eq(send_n(rrl, "[2001:db8:0:1300::1]", 5, T0).pass, 5);   /* next /56 */
    /* slip 0: every limited response is dropped. */
    struct tally t = send_n(rrl, "10.1.2.3", 4, T0);
    ck_assert_uint_eq(t.drop, 4);
    ck_assert_uint_eq(t.slip, 0);
    dns_rrl_free(rrl);
}
END_TEST

START_TEST(slip_one_truncates_every_limited_response)
{
    struct dns_rrl *rrl = make(1, 1, 0);
    struct tally t = send_n(rrl, "198.51.100.1", 8, T0);
    ck_assert_uint_eq(t.pass, 1);
    ck_assert_uint_eq(t.slip, 7);
    dns_rrl_free(rrl);
}
END_TEST

START_TEST(more_prefixes_than_buckets_still_limit_the_busy_one)
{
    /* 16 buckets, 1000 quiet prefixes: each gets its answer, and they push one another out,
     * not the busy prefix, whose bucket runs furthest ahead. */
    struct dns_rrl *rrl = make(3, 0, 16);
    ck_assert_uint_eq(send_n(rrl, "203.0.113.5", 20, T0).pass, 3);
    char text[32];
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(text, sizeof(text), "10.%u.%u.1", i / 256, i % 256);
        ck_assert_uint_eq(send_n(rrl, text, 1, T0).pass, 1);
    }
    ck_assert_uint_eq(send_n(rrl, "203.0.113.5", 20, T0).pass, 0);
    ck_assert_uint_eq(send_n(rrl, "203.0.113.5", 20, T0 + SEC).pass, 3);
    dns_rrl_free(rrl);
}
END_TEST

struct racer {
    struct dns_rrl *rrl;
    unsigned pass;
};

static void race(void *arg)
{
    struct racer *r = arg;
    r->pass = send_n(r->rrl, "192.0.2.1", 20000, T0).pass;
}

START_TEST(racing_workers_never_exceed_the_burst)
{
    struct dns_rrl *rrl = make(1000, 2, 0);
    struct racer racers[4];
    uv_thread_t threads[4];
    for (int i = 0; i < 4; i++) {
        racers[i] = (struct racer){rrl, 0};
        ck_assert_int_eq(uv_thread_create(&threads[i], race, &racers[i]), 0);
    }
    unsigned pass = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&threads[i]);
        pass += racers[i].pass;
    }
    ck_assert_uint_eq(pass, 1000);
    struct dns_rrl_stats st;
    dns_rrl_stats(rrl, &st);
    ck_assert_uint_eq(st.dropped + st.slipped, 4 * 20000 - 1000);
    ck_assert_uint_eq(st.slipped, (4 * 20000 - 1000) / 2);
    dns_rrl_free(rrl);
}
END_TEST

START_TEST(a_rate_out_of_range_is_refused)
{
    struct dns_rrl_config cfg;
    dns_rrl_config_default(&cfg);
    struct dns_rrl *rrl = NULL;
    ck_assert_int_eq(dns_rrl_new(&rrl, &cfg), UV_EINVAL);
    cfg.rate = DNS_RRL_RATE_MAX + 1;
    ck_assert_int_eq(dns_rrl_new(&rrl, &cfg), UV_EINVAL);
    ck_assert_ptr_null(rrl);
    dns_rrl_free(NULL);
}
END_TEST

Suite *rrl_suite(void); /* for tests/dns/main.c */
Suite *rrl_suite(void)
{
    Suite *s = suite_create("rrl");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, a_burst_gets_one_second_then_every_second_limited_reply_slips);
    tcase_add_test(tc, the_bucket_refills_at_the_rate);
    tcase_add_test(tc, clients_are_counted_by_prefix);
    tcase_add_test(tc, slip_one_truncates_every_limited_response);
    tcase_add_test(tc, more_prefixes_than_buckets_still_limit_the_busy_one);
    tcase_add_test(tc, racing_workers_never_exceed_the_burst);
    tcase_add_test(tc, a_rate_out_of_range_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
