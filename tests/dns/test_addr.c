/* tests/dns/test_addr.c - dns/addr.c: the one address syntax of --listen, --upstream, --http
 * and resolv.conf, and the comparisons the server and the forwarder make. */
#include <netinet/in.h>
#include <string.h>

#include <check.h>

#include "dns/addr.h"

/* Address text: input, then the formatted result with default port 5353 ("" when it must be
 * rejected). */
static const struct {
    const char *text;
    const char *formatted;
} addr_cases[] = {
    {"127.0.0.1:53", "127.0.0.1:53"},
    {"127.0.0.1", "127.0.0.1:5353"},
    {"10.96.0.10:65535", "10.96.0.10:65535"},
    {"10.0.0.10:5353", "10.0.0.10:5353"},
    {"[::1]:5353", "[::1]:5353"},
    {"[::1]", "[::1]:5353"},
    {"::1", "[::1]:5353"},
    {"::", "[::]:5353"},
    {"fd00::10", "[fd00::10]:5353"},
    {"[fd00::10]:53", "[fd00::10]:53"},
    {"[fe80::1%lo]:53", "[fe80::1]:53"},
    {"0.0.0.0:1053", "0.0.0.0:1053"},
    {"", ""},
    {":53", ""},
    {"127.0.0.1:", ""},
    {"127.0.0.1:0", ""},
    {"127.0.0.1:65536", ""},
    {"127.0.0.1:053x", ""},
    {"127.0.0.1:+53", ""},
    {"127.0.0.1:123456", ""},
    {"127.0.0.1 :53", ""},
    {"127.0.0", ""},
    {"localhost:53", ""},
    {"example.com", ""},
    {"[::1]53", ""},
    {"[::1", ""},
    {"[::1]:-5", ""},
    {"[fd00::10]x", ""},
    {"[127.0.0.1]:53", ""},
    {"[]:53", ""},
    {"1.2.3.4.5", ""},
};

START_TEST(parse_and_format_cases)
{
    struct sockaddr_storage ss;
    char out[DNS_ADDR_TEXT_MAX];
    int r = dns_addr_parse(addr_cases[_i].text, 5353, &ss);
    if (addr_cases[_i].formatted[0] == '\0') {
        ck_assert_msg(r == -1, "%s accepted", addr_cases[_i].text);
        return;
    }
    ck_assert_msg(r == 0, "%s rejected", addr_cases[_i].text);
    dns_addr_format(&ss, out, sizeof(out));
    ck_assert_str_eq(out, addr_cases[_i].formatted);
}
END_TEST

START_TEST(parse_without_port_needs_a_default)
{
    struct sockaddr_storage ss;
    ck_assert_int_eq(dns_addr_parse("127.0.0.1", 0, &ss), -1);
    ck_assert_int_eq(dns_addr_parse("127.0.0.1:53", 0, &ss), 0);
    ck_assert_int_eq(dns_addr_parse(NULL, 53, &ss), -1);
    char small[8];
    dns_addr_format(&ss, small, sizeof(small)); /* truncated, still terminated */
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

START_TEST(hosts_ports_and_wildcards_compare)
{
    struct sockaddr_storage a;
    struct sockaddr_storage b;
    char host[DNS_ADDR_TEXT_MAX];
    ck_assert_int_eq(dns_addr_parse("10.0.0.1:53", 53, &a), 0);
    ck_assert_int_eq(dns_addr_parse("10.0.0.1:5353", 53, &b), 0);
    ck_assert(dns_addr_same_host(&a, &b));
    ck_assert(!dns_addr_equal(&a, &b));
    ck_assert_uint_eq(dns_addr_port(&b), 5353);
    ck_assert_uint_eq(dns_addr_len(&a), sizeof(struct sockaddr_in));
    dns_addr_format_host(&b, host, sizeof(host));
    ck_assert_str_eq(host, "10.0.0.1");
    ck_assert_int_eq(dns_addr_parse("[::1]:53", 53, &b), 0);
    ck_assert(!dns_addr_same_host(&a, &b)); /* another family */
    ck_assert_uint_eq(dns_addr_len(&b), sizeof(struct sockaddr_in6));
    ck_assert(dns_addr_is_local(&b));
    ck_assert(!dns_addr_is_any(&b));
    ck_assert_int_eq(dns_addr_parse("[::]:53", 53, &b), 0);
    ck_assert(dns_addr_is_any(&b));
    ck_assert_int_eq(dns_addr_parse("0.0.0.0:53", 53, &b), 0);
    ck_assert(dns_addr_is_any(&b));
    ck_assert_int_eq(dns_addr_parse("127.0.0.53:53", 53, &b), 0);
    ck_assert(dns_addr_is_local(&b)); /* all of 127/8 */
    ck_assert_int_eq(dns_addr_parse("192.0.2.1:53", 53, &b), 0);
    ck_assert(!dns_addr_is_local(&b)); /* TEST-NET-1 is no interface's here */
    const uint8_t *bytes;
    ck_assert_uint_eq(dns_addr_bytes(&b, &bytes), 4);
    ck_assert_mem_eq(bytes, "\xc0\x00\x02\x01", 4);
}
END_TEST

Suite *addr_suite(void); /* for tests/dns/main.c */
Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");
    tcase_add_loop_test(tc, parse_and_format_cases, 0,
                        (int)(sizeof(addr_cases) / sizeof(addr_cases[0])));
    tcase_add_test(tc, parse_without_port_needs_a_default);
    tcase_add_test(tc, hosts_ports_and_wildcards_compare);
    suite_add_tcase(s, tc);
    return s;
}
