/* tests/zones/test_json.c - zones/json.c: JSON text into the document tree the decoder reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "zones/decode.h"
#include "zones/json.h"
#include "zones/manifest.h"

static struct zones_json *parse_ok(const char *text)
{
    struct zones_json *doc = NULL;
    char err[256] = "";
    ck_assert_msg(zones_json_parse(&doc, text, strlen(text), err, sizeof(err)) == 0, "%s: %s", text,
                  err);
    return doc;
}

START_TEST(maps_keep_their_keys_in_order)
{
    struct zones_json *doc = parse_ok("{\"b\": 1, \"a\": \"x\", \"c\": [true, null, 2.5]}");
    const struct zones_dom_node *root = zones_json_root(doc);
    ck_assert_int_eq(root->kind, ZONES_DOM_MAP);
    ck_assert_uint_eq(root->n, 6);
    ck_assert_str_eq(root->first->text, "b");
    ck_assert_str_eq(root->first->next->text, "1");
    ck_assert(root->first->next->plain); /* a number reads like unquoted YAML */
    ck_assert_str_eq(root->first->next->next->text, "a");
    const struct zones_dom_node *x = zones_dom_lookup(root, "a").value;
    ck_assert_str_eq(x->text, "x");
    ck_assert(!x->plain);
    const struct zones_dom_node *c = zones_dom_lookup(root, "c").value;
    ck_assert_int_eq(c->kind, ZONES_DOM_SEQ);
    ck_assert_uint_eq(c->n, 3);
    ck_assert_str_eq(c->first->text, "true");
    ck_assert(zones_dom_is_null(c->first->next));
    ck_assert_str_eq(c->last->text, "2.5");
    zones_json_free(doc);
}
END_TEST

START_TEST(a_quoted_null_is_a_string)
{
    struct zones_json *doc = parse_ok("[\"null\", \"\", \"tab\\there\", \"\\u00e9\"]");
    const struct zones_dom_node *root = zones_json_root(doc);
    ck_assert(!zones_dom_is_null(root->first));
    ck_assert(!zones_dom_is_null(root->first->next));
    ck_assert_str_eq(root->first->next->next->text, "tab\there");
    ck_assert_str_eq(root->last->text, "\xc3\xa9");
    zones_json_free(doc);
}
END_TEST

START_TEST(a_string_with_a_nul_keeps_its_length)
{
    struct zones_json *doc = parse_ok("{\"name\": \"a\\u0000b\"}");
    const struct zones_dom_node *name = zones_dom_lookup(zones_json_root(doc), "name").value;
    ck_assert_uint_eq(name->len, 3);
    zones_json_free(doc);
}
END_TEST

static const char *const bad_json[] = {
    "", "{", "{\"a\": }", "{\"a\": 1,}", "[1, 2] [3]", "{\"a\": 1} x", "nul",
};

START_TEST(rejects_what_is_not_one_json_value)
{
    const char *text = bad_json[_i];
    struct zones_json *doc = NULL;
    char err[256] = "";
    ck_assert_msg(zones_json_parse(&doc, text, strlen(text), err, sizeof(err)) < 0, "%s", text);
    ck_assert_ptr_null(doc);
    ck_assert_msg(err[0] != '\0', "no message for %s", text);
}
END_TEST

START_TEST(stops_at_the_loaders_nesting_limit)
{
    char deep[2 * (ZONES_MANIFEST_MAX_DEPTH + 2) + 1];
    size_t n = ZONES_MANIFEST_MAX_DEPTH + 2;
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    struct zones_json *doc = NULL;
    char err[256];
    ck_assert_int_lt(zones_json_parse(&doc, deep, strlen(deep), err, sizeof(err)), 0);
    deep[n - 3] = ' ';
    deep[n + 2] = ' ';
    deep[n - 2] = ' ';
    deep[n + 3] = ' ';
    ck_assert_int_eq(zones_json_parse(&doc, deep, strlen(deep), err, sizeof(err)), 0);
    zones_json_free(doc);
}
END_TEST

START_TEST(reads_a_string_at_a_path)
{
    struct zones_json *doc =
        parse_ok("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"42\","
                 "\"generation\":3}}}");
    const struct zones_dom_node *root = zones_json_root(doc);
    ck_assert_str_eq(zones_json_string(root, "type"), "ADDED");
    ck_assert_str_eq(zones_json_string(root, "object.metadata.resourceVersion"), "42");
    ck_assert_ptr_null(zones_json_string(root, "object.metadata.generation"));
    ck_assert_ptr_null(zones_json_string(root, "object.missing.resourceVersion"));
    ck_assert_ptr_null(zones_json_string(root, "type.deeper"));
    ck_assert_ptr_null(zones_json_string(root, "object"));
    zones_json_free(doc);
}
END_TEST

/* The API server's JSON goes through the manifest decoder unchanged. */
START_TEST(decodes_an_api_service)
{
    struct zones_json *doc = parse_ok(
        "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"db\","
        "\"namespace\":\"prod\",\"resourceVersion\":\"7\"},\"spec\":{\"ports\":[{\"name\":\"pg\","
        "\"protocol\":\"TCP\",\"port\":5432,\"targetPort\":5432}],\"clusterIP\":\"10.96.0.7\","
        "\"clusterIPs\":[\"10.96.0.7\"],\"type\":\"ClusterIP\"},\"status\":{\"loadBalancer\":{}}}");
    struct zones_objects objs;
    zones_objects_init(&objs);
    struct zones_report report = {.objs = &objs, .file = "api"};
    zones_decode_document(NULL, &report, zones_json_root(doc));
    zones_json_free(doc);
    ck_assert_uint_eq(objs.n_diags, 0);
    ck_assert_uint_eq(objs.n_services, 1);
    ck_assert_str_eq(objs.services[0].name, "db");
    ck_assert_uint_eq(objs.services[0].ports[0].port, 5432);
    ck_assert_uint_eq(objs.services[0].n_ips, 1);
    zones_objects_free(&objs);
}
END_TEST

Suite *json_suite(void); /* for tests/zones/main.c */
Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, maps_keep_their_keys_in_order);
    tcase_add_test(tc, a_quoted_null_is_a_string);
    tcase_add_test(tc, a_string_with_a_nul_keeps_its_length);
    tcase_add_loop_test(tc, rejects_what_is_not_one_json_value, 0,
                        (int)(sizeof(bad_json) / sizeof(bad_json[0])));
    tcase_add_test(tc, stops_at_the_loaders_nesting_limit);
    tcase_add_test(tc, reads_a_string_at_a_path);
    tcase_add_test(tc, decodes_an_api_service);
    suite_add_tcase(s, tc);
    return s;
}
