/* tests/dns/daemon/test_options.c - dns/daemon/options.c: the default number of workers from a
 * cgroup CPU quota. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <check.h>

#include "dns/daemon/options.h"

/* cgroup files as a container sees them under /sys/fs/cgroup. */
struct cgroup_case {
    const char *cpu_max;              /* v2 cpu.max; NULL: absent */
    const char *v1_quota, *v1_period; /* v1 cpu/cpu.cfs_{quota,period}_us; NULL: absent */
    unsigned cpus;
};

static const struct cgroup_case cgroup_cases[] = {
    {"max 100000\n", NULL, NULL, 0},
    {"200000 100000\n", NULL, NULL, 2},
    {"150000 100000\n", NULL, NULL, 2}, /* 1.5 CPUs: two loops, each busy at most 3/4 */
    {"50000 100000\n", NULL, NULL, 1},
    {NULL, "-1\n", "100000\n", 0},
    {NULL, "400000\n", "100000\n", 4},
    {NULL, "400000\n", NULL, 0},
    {NULL, NULL, NULL, 0},
    {"garbage\n", NULL, NULL, 0},
};

static void write_text(const char *dir, const char *name, const char *text)
{
    if (text == NULL)
        return;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(cgroup_cpu_quota_caps_the_workers)
{
    const struct cgroup_case *c = &cgroup_cases[_i];
    char root[] = "/tmp/svcdns-cgroup-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char cpu[sizeof(root) + 8];
    snprintf(cpu, sizeof(cpu), "%s/cpu", root);
    ck_assert_int_eq(mkdir(cpu, 0700), 0);
    write_text(root, "cpu.max", c->cpu_max);
    write_text(cpu, "cpu.cfs_quota_us", c->v1_quota);
    write_text(cpu, "cpu.cfs_period_us", c->v1_period);
    ck_assert_uint_eq(daemon_options_cgroup_cpus(root), c->cpus);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", root);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

Suite *options_suite(void); /* for tests/dns/daemon/main.c */
Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("workers");
    tcase_add_loop_test(tc, cgroup_cpu_quota_caps_the_workers, 0,
                        (int)(sizeof(cgroup_cases) / sizeof(cgroup_cases[0])));
    suite_add_tcase(s, tc);
    return s;
}
