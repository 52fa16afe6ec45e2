/* tests/zones/test_objects.c - zones/objects.c: IPs and CIDRs, and the object container.
 * ClusterIP assignment is the model's: tests/zones/test_model.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "zones/objects.h"

/* ---- helpers ---- */

static struct zones_cidr cidr(const char *text)
{
    struct zones_cidr c;
    ck_assert_msg(zones_cidr_parse(text, &c) == 0, "cannot parse %s", text);
    return c;
}

static struct zones_ip ip(const char *text)
{
    struct zones_ip out;
    ck_assert_msg(zones_ip_parse(text, &out) == 0, "cannot parse %s", text);
    return out;
}

static const char *ip_text(const struct zones_ip *addr)
{
    static char text[4][64];
    static int next;
    next = (next + 1) % 4;
    return zones_ip_format(addr, text[next], sizeof(text[next]));
}

/* ---- IPs and CIDRs ---- */

START_TEST(parses_and_formats_ips)
{
    struct zones_ip a = ip("10.96.0.10");
    ck_assert_uint_eq(a.family, 4);
    ck_assert_uint_eq(a.addr[0], 10);
    ck_assert_uint_eq(a.addr[3], 10);
    ck_assert_str_eq(ip_text(&a), "10.96.0.10");
    struct zones_ip b = ip("FD00:0:0::0A");
    ck_assert_uint_eq(b.family, 6);
    ck_assert_str_eq(ip_text(&b), "fd00::a");
    ck_assert_str_eq(ip_text(&(struct zones_ip){.family = 0}), "?");
}
END_TEST

static const char *const bad_ips[] = {"10.0.0.256", "::g",     "1.2.3",        " 1.2.3.4",
                                      "1.2.3.4 ",   "",        "fe80::1%eth0", "10.0.0.1/32",
                                      "None",       "01.2.3.4"};

START_TEST(rejects_bad_ips)
{
    struct zones_ip out;
    ck_assert_msg(zones_ip_parse(bad_ips[_i], &out) == -1, "accepted %s", bad_ips[_i]);
}
END_TEST

START_TEST(parses_ipv4_cidr)
{
    struct zones_cidr c = cidr("10.96.0.0/12");
    ck_assert_uint_eq(c.prefix, 12);
    ck_assert_str_eq(ip_text(&c.base), "10.96.0.0");
    ck_assert(zones_cidr_contains(&c, &(struct zones_ip){0}) == false);
    struct zones_ip inside = ip("10.111.255.255");
    struct zones_ip below = ip("10.95.255.255");
    struct zones_ip above = ip("10.112.0.0");
    struct zones_ip six = ip("::ffff:10.96.0.1");
    ck_assert(zones_cidr_contains(&c, &inside));
    ck_assert(!zones_cidr_contains(&c, &below));
    ck_assert(!zones_cidr_contains(&c, &above));
    ck_assert(!zones_cidr_contains(&c, &six));
    /* Host bits are cleared, as net.ParseCIDR does. */
    struct zones_cidr host = cidr("10.96.7.9/12");
    ck_assert_str_eq(ip_text(&host.base), "10.96.0.0");
    struct zones_cidr all = cidr("0.0.0.0/0");
    ck_assert(zones_cidr_contains(&all, &below));
    struct zones_cidr one = cidr("192.0.2.7/32");
    struct zones_ip same = ip("192.0.2.7");
    struct zones_ip next = ip("192.0.2.8");
    ck_assert(zones_cidr_contains(&one, &same));
    ck_assert(!zones_cidr_contains(&one, &next));
}
END_TEST

START_TEST(parses_ipv6_cidr)
{
    struct zones_cidr c = cidr("fd00:10:96::/108");
    ck_assert_uint_eq(c.prefix, 108);
    ck_assert_uint_eq(c.base.family, 6);
    struct zones_ip inside = ip("fd00:10:96::f:ffff");
    struct zones_ip outside = ip("fd00:10:96::10:0");
    struct zones_ip four = ip("10.96.0.1");
    ck_assert(zones_cidr_contains(&c, &inside));
    ck_assert(!zones_cidr_contains(&c, &outside));
    ck_assert(!zones_cidr_contains(&c, &four));
    struct zones_cidr odd = cidr("fd00::ffff/117");
    ck_assert_str_eq(ip_text(&odd.base), "fd00::f800");
}
END_TEST

static const char *const bad_cidrs[] = {
    "10.96.0.0",    "10.96.0.0/",     "10.96.0.0/33",  "10.96.0.0/1a",
    "10.96.0.0/-1", "fd00::/129",     "x/8",           "",
    "/12",          "10.96.0.0/12/1", "10.96.0.0/ 12", "fd00::/00000128",
    "300.0.0.0/8"};

START_TEST(rejects_bad_cidrs)
{
    struct zones_cidr out;
    ck_assert_msg(zones_cidr_parse(bad_cidrs[_i], &out) == -1, "accepted %s", bad_cidrs[_i]);
}
END_TEST

/* ---- the container ---- */

START_TEST(rolls_back_to_a_checkpoint)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    for (int i = 0; i < 5; i++)
        zones_objects_add_service(&objs)->name = zones_objects_strndup(&objs, "kept", 4);
    struct zones_objects_mark mark = zones_objects_checkpoint(&objs);
    for (int i = 0; i < 20; i++) {
        struct zones_service *svc = zones_objects_add_service(&objs);
        svc->name = zones_objects_strndup(&objs, "dropped", 7);
        svc->ips = zones_objects_alloc(&objs, sizeof(*svc->ips));
        svc->n_ips = 1;
        zones_objects_add_pod(&objs)->labels =
            zones_objects_alloc(&objs, sizeof(struct zones_label));
        zones_objects_add_slice(&objs)->service = zones_objects_strndup(&objs, "x", 1);
        zones_objects_add_namespace(&objs)->name = zones_objects_strndup(&objs, "ns", 2);
        objs.n_skipped++;
    }
    zones_objects_rollback(&objs, &mark);
    ck_assert_uint_eq(objs.n_services, 5);
    ck_assert_uint_eq(objs.n_pods + objs.n_slices + objs.n_namespaces + objs.n_skipped, 0);
    /* Adding after a rollback reuses the array. */
    for (int i = 0; i < 40; i++)
        zones_objects_add_service(&objs);
    ck_assert_str_eq(objs.services[4].name, "kept");
    ck_assert_ptr_null(objs.services[5].name);
    zones_objects_free(&objs);
    ck_assert_uint_eq(objs.n_services, 0);
    zones_objects_free(&objs); /* freeing twice is harmless */
}
END_TEST

/* The objects' memory: zeroed, aligned, and big arrays beside the small ones. */
START_TEST(allocates_zeroed_aligned_memory_freed_with_the_objects)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    char *text = zones_objects_strndup(&objs, "echo-and-more", 4);
    ck_assert_str_eq(text, "echo");
    size_t sizes[] = {1, 17, 3, 200000, 24, 65536, 5};
    for (size_t round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = zones_objects_alloc(&objs, sizes[i]);
            ck_assert_uint_eq((uintptr_t)p % 8, 0);
            bool zero = true;
            for (size_t k = 0; k < sizes[i]; k++)
                zero = zero && p[k] == 0;
            ck_assert(zero);
            memset(p, 0xa5, sizes[i]); /* ASan: every byte is ours, and no block overlaps */
        }
    }
    ck_assert_str_eq(text, "echo");
    zones_objects_free(&objs);
    ck_assert_ptr_null(objs.blocks.head);
}
END_TEST

START_TEST(keeps_its_own_copy_of_error_file_names)
{
    struct zones_objects objs;
    zones_objects_init(&objs);
    char file[32] = "first.yaml";
    struct zones_where where = {.file = file, .line = 3, .col = 4};
    zones_objects_error(&objs, &where, "bad %s at %d", "thing", 7);
    strcpy(file, "overwritten");
    ck_assert_str_eq(objs.diags[0].where.file, "first.yaml");
    ck_assert_str_eq(objs.diags[0].message, "bad thing at 7");
    ck_assert_uint_eq(objs.diags[0].where.line, 3);
    const char *interned = zones_objects_intern_file(&objs, "x.yaml");
    where.file = interned;
    zones_objects_error(&objs, &where, "again");
    ck_assert_ptr_eq(objs.diags[1].where.file, interned);
    zones_objects_free(&objs);
}
END_TEST

Suite *objects_suite(void); /* for tests/zones/main.c */
Suite *objects_suite(void)
{
    Suite *s = suite_create("objects");
    TCase *addresses = tcase_create("addresses");
    tcase_add_test(addresses, parses_and_formats_ips);
    tcase_add_loop_test(addresses, rejects_bad_ips, 0, (int)(sizeof(bad_ips) / sizeof(bad_ips[0])));
    tcase_add_test(addresses, parses_ipv4_cidr);
    tcase_add_test(addresses, parses_ipv6_cidr);
    tcase_add_loop_test(addresses, rejects_bad_cidrs, 0,
                        (int)(sizeof(bad_cidrs) / sizeof(bad_cidrs[0])));
    suite_add_tcase(s, addresses);

    TCase *container = tcase_create("container");
    tcase_add_test(container, rolls_back_to_a_checkpoint);
    tcase_add_test(container, allocates_zeroed_aligned_memory_freed_with_the_objects);
    tcase_add_test(container, keeps_its_own_copy_of_error_file_names);
    suite_add_tcase(s, container);

    return s;
}
