/* tests/dns/test_log.c - dns/log.c: one line per event whatever the bytes, in text and JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/log.h"

static void teardown(void)
{
    log_set_format(LOG_FORMAT_TEXT);
}

static char line[8192];

static const char *render(enum log_format format, const char *body)
{
    log_set_format(format);
    size_t n = log_render(line, sizeof(line), LOG_LEVEL_INFO, "query", body);
    ck_assert_uint_eq(n, strlen(line));
    ck_assert_msg(n > 0 && line[n - 1] == '\n', "no newline at the end of %s", line);
    ck_assert_msg(strchr(line, '\n') == line + n - 1, "more than one line: %s", line);
    return line;
}

/* What follows the time stamp: " level=...". */
static const char *after_ts(const char *text)
{
    const char *p = strchr(text, ' ');
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(quote_escapes_quotes_backslashes_and_control_bytes)
{
    char out[64];
    ck_assert_str_eq(log_quote("a\"b\\c\nd\x7f", out, sizeof(out)), "a\\\"b\\\\c\\010d\\127");
    /* Cut short, never in the middle of an escape. */
    ck_assert_str_eq(log_quote("ab\ncd", out, 5), "ab");
    ck_assert_str_eq(log_quote("abcdef", out, 4), "abc");
}
END_TEST

START_TEST(text_lines_escape_control_bytes)
{
    const char *text = render(LOG_FORMAT_TEXT, "name=x\n2026-01-01T00:00:00.000Z level=error "
                                               "module=reload rcode=NOERROR");
    ck_assert_str_eq(after_ts(text), " level=info module=query name=x\\0102026-01-01T00:00:00.000Z "
                                     "level=error module=reload rcode=NOERROR\n");
    text = render(LOG_FORMAT_TEXT, "a=\r\x1b[2J");
    ck_assert_str_eq(after_ts(text), " level=info module=query a=\\013\\027[2J\n");
}
END_TEST

START_TEST(json_lines_hold_each_pair_as_a_field)
{
    const char *text = render(LOG_FORMAT_JSON, "serving zone=local records=12 ratio=0.5 id=007 "
                                               "neg=-3 error=\"said \\\"no\\\" to \\\\x\" stopped");
    const char *want = ",\"level\":\"info\",\"module\":\"query\",\"msg\":\"serving stopped\","
                       "\"zone\":\"local\",\"records\":12,\"ratio\":0.5,\"id\":\"007\","
                       "\"neg\":-3,\"error\":\"said \\\"no\\\" to \\\\x\"}\n";
    ck_assert_msg(strncmp(text, "{\"ts\":\"", 7) == 0, "%s", text);
    ck_assert_msg(strstr(text, want) != NULL && strlen(strstr(text, want)) == strlen(want),
                  "got %s", text);
}
END_TEST

START_TEST(json_lines_escape_what_json_cannot_hold)
{
    /* Control bytes, a raw quote in a bare value, invalid and valid UTF-8. */
    const char *text =
        render(LOG_FORMAT_JSON, "name=a\"b\n{\"level\":\"error\"} path=\xc3\xa9\xff\xed\xa0\x80");
    const char *want = "\"name\":\"a\\\"b\\u000a{\\\"level\\\":\\\"error\\\"}\","
                       "\"path\":\"\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\"}\n";
    ck_assert_msg(strstr(text, want) != NULL, "got %s", text);
}
END_TEST

START_TEST(long_json_lines_stay_valid)
{
    char body[4000];
    size_t n = 0;
    for (int i = 0; n + 20 < sizeof(body); i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "k%d=\"\\\\\\\\\\\\\" ", i);
    log_set_format(LOG_FORMAT_JSON);
    char small[512];
    size_t len = log_render(small, sizeof(small), LOG_LEVEL_INFO, "query", body);
    ck_assert_uint_eq(len, strlen(small));
    ck_assert_uint_lt(len, sizeof(small));
    const char *end = ",\"truncated\":true}\n";
    ck_assert_str_eq(small + len - strlen(end), end);
    /* The field before the cut is whole. */
    ck_assert_msg(strstr(small, "\"k0\":\"\\\\\\\\\\\\\"") != NULL, "%s", small);
}
END_TEST

START_TEST(formats_parse_by_name)
{
    enum log_format f;
    ck_assert_int_eq(log_parse_format("json", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_JSON);
    ck_assert_int_eq(log_parse_format("text", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_TEXT);
    ck_assert_int_eq(log_parse_format("JSON", &f), -1);
}
END_TEST

Suite *log_suite(void); /* for tests/dns/main.c */
Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("lines");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, quote_escapes_quotes_backslashes_and_control_bytes);
    tcase_add_test(tc, text_lines_escape_control_bytes);
    tcase_add_test(tc, json_lines_hold_each_pair_as_a_field);
    tcase_add_test(tc, json_lines_escape_what_json_cannot_hold);
    tcase_add_test(tc, long_json_lines_stay_valid);
    tcase_add_test(tc, formats_parse_by_name);
    suite_add_tcase(s, tc);
    return s;
}
