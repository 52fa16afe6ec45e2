/* tests/dns/daemon/test_limits.c - dns/daemon/limits.c: how the open file limit is shared out
 * between svcdns's own descriptors, upstream sockets and TCP clients. */
#include <stdbool.h>
#include <sys/resource.h>

#include <check.h>

#include "dns/daemon/daemon.h"

static struct daemon_fd_needs needs(unsigned long limit, bool forwarding)
{
    return (struct daemon_fd_needs){
        .limit = limit,
        .open_now = 4,
        .workers = 2,
        .listeners = 1,
        .http = false,
        .forwarding = forwarding,
        .upstreams = 1,
        .max_concurrent = 1000,
        .tcp_default = 1024,
    };
}

/* What the plan hands out never exceeds the limit. */
static void check_fits(const struct daemon_fd_needs *in, const struct daemon_fd_plan *p)
{
    unsigned long used =
        (unsigned long)p->reserved + (unsigned long)p->tcp_per_worker * in->workers + p->upstream;
    ck_assert_msg(used <= in->limit, "limit %lu: %lu handed out", in->limit, used);
}

START_TEST(a_high_limit_gives_the_defaults)
{
    struct daemon_fd_needs in = needs(20000, true);
    struct daemon_fd_plan p;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    ck_assert_uint_eq(p.tcp_per_worker, 1024);
    ck_assert_uint_eq(p.max_concurrent, 1000);
    ck_assert_uint_eq(p.upstream, 1002); /* and a health probe and a loop check */
    ck_assert_uint_gt(p.reserved, in.open_now + in.workers * 2 * in.listeners);
    check_fits(&in, &p);
}
END_TEST

/* ulimit -n 300 with the defaults (the report: 290 idle TCP clients made every forwarded
 * query fail): TCP clients and upstream queries share what is left, half each. */
START_TEST(a_low_limit_is_shared_between_tcp_and_upstreams)
{
    struct daemon_fd_needs in = needs(300, true);
    struct daemon_fd_plan p;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    check_fits(&in, &p);
    unsigned long avail = in.limit - p.reserved;
    ck_assert_uint_ge(p.tcp_per_worker * in.workers, avail / 2 - in.workers);
    ck_assert_uint_lt(p.max_concurrent, 1000);
    ck_assert_uint_ge(p.max_concurrent + 2, avail / 2);
    ck_assert_uint_eq(p.upstream, p.max_concurrent + 2);
}
END_TEST

START_TEST(without_forwarding_tcp_gets_everything_left)
{
    struct daemon_fd_needs in = needs(300, false);
    struct daemon_fd_plan p;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    check_fits(&in, &p);
    ck_assert_uint_eq(p.upstream, 0);
    ck_assert_uint_eq(p.tcp_per_worker, (in.limit - p.reserved) / in.workers);
}
END_TEST

START_TEST(http_and_more_listeners_and_workers_are_reserved_for)
{
    struct daemon_fd_needs in = needs(20000, true);
    struct daemon_fd_plan base;
    struct daemon_fd_plan p;
    size_t base_listeners = in.listeners;
    ck_assert_int_eq(daemon_limits_plan(&in, &base), 0);
    in.http = true;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    ck_assert_uint_gt(p.reserved, base.reserved + 64); /* the HTTP connection cap */
    in.http = false;
    in.listeners = 3; /* a UDP and a TCP socket per worker each */
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    ck_assert_uint_eq(p.reserved, base.reserved + 2 * 2 * in.workers);
    in.listeners = base_listeners;
    in.kubernetes = true; /* the API source's connections */
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    ck_assert_uint_gt(p.reserved, base.reserved + 4);
}
END_TEST

START_TEST(a_limit_too_low_is_refused_with_what_is_needed)
{
    struct daemon_fd_needs in = needs(60, true);
    struct daemon_fd_plan p;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), -1);
    ck_assert_uint_gt(p.needed, 60);
    in.limit = p.needed;
    ck_assert_int_eq(daemon_limits_plan(&in, &p), 0);
    check_fits(&in, &p);
}
END_TEST

/* Whatever the limit, what is handed out fits, and a small --max-concurrent is kept. */
START_TEST(every_limit_fits)
{
    for (unsigned long limit = 50; limit < 5000; limit += 7) {
        for (int fwd = 0; fwd < 2; fwd++) {
            struct daemon_fd_needs in = needs(limit, fwd == 1);
            in.max_concurrent = limit % 3 == 0 ? 10 : 1000;
            struct daemon_fd_plan p;
            if (daemon_limits_plan(&in, &p) == 0) {
                check_fits(&in, &p);
                ck_assert_uint_le(p.max_concurrent, in.max_concurrent);
                ck_assert_uint_le(p.tcp_per_worker, in.tcp_default);
            } else {
                ck_assert_uint_gt(p.needed, limit);
            }
        }
    }
}
END_TEST

START_TEST(raise_lifts_the_soft_limit_to_the_hard_one)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 256)
        return;        /* nothing to lower the soft limit below */
    rl.rlim_cur = 200; /* this test runs in a process of its own (CK_FORK) */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    unsigned long limit;
    unsigned long was;
    ck_assert_int_eq(daemon_limits_raise(&limit, &was), 0);
    ck_assert_uint_eq(was, 200);
    ck_assert_uint_gt(limit, 200);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_uint_eq(rl.rlim_cur, limit);
    ck_assert_uint_ge(daemon_limits_open_fds(), 3);
}
END_TEST

Suite *limits_suite(void); /* for tests/dns/daemon/main.c */
Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_add_test(tc, a_high_limit_gives_the_defaults);
    tcase_add_test(tc, a_low_limit_is_shared_between_tcp_and_upstreams);
    tcase_add_test(tc, without_forwarding_tcp_gets_everything_left);
    tcase_add_test(tc, http_and_more_listeners_and_workers_are_reserved_for);
    tcase_add_test(tc, a_limit_too_low_is_refused_with_what_is_needed);
    tcase_add_test(tc, every_limit_fits);
    tcase_add_test(tc, raise_lifts_the_soft_limit_to_the_hard_one);
    suite_add_tcase(s, tc);
    return s;
}
