/* tests/zones/test_yaml.c - zones/yaml.c and its fast path (zones/yaml_fast.c): which pieces
 * the fast path reads, and that every tree it makes is libyaml's, positions and all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "tests/zones/yaml_tree.h"
#include "zones/manifest.h"

/* Parses text both ways, asserts the same trees and errors, and returns who read it. */
static struct zones_yaml_stats same_both_ways(const char *name, const char *text, size_t len)
{
    struct zones_yaml_stats stats;
    char *fast = yaml_tree_parse(text, len, ZONES_YAML_FAST_FIRST, &stats);
    char *slow = yaml_tree_parse(text, len, ZONES_YAML_LIBYAML, NULL);
    ck_assert_msg(strcmp(fast, slow) == 0, "%s:\n%s\nfast path:\n%s\nlibyaml:\n%s", name, text,
                  fast, slow);
    free(fast);
    free(slow);
    return stats;
}

/* The block style of hand-written manifests and of kubectl get -o yaml. */
static const char *const fast_cases[] = {
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: default\n",
    "---\napiVersion: v1\nkind: Service\n---\nkind: Service\n",
    "--- # first\na: 1\n", /* a comment on the "---" line */
    "# a comment\n\n---\n\n# another\nkind: Service   # trailing\nspec:\n  type: ClusterIP\n",
    /* lists: indented, and at the key's own column (as kubectl writes them) */
    ("spec:\n  ports:\n  - name: http\n    port: 80\n  - name: dns\n    port: 53\n    "
     "protocol: UDP\n  selector:\n    app: echo\n"),
    "spec:\n  ports:\n    - port: 80\n      name: http\n",
    "items:\n- kind: Service\n  metadata:\n    name: a\n- kind: Pod\n",
    "a:\n- x\n- 'y'\n- \"z\"\n- {}\n- []\nb: 2\n",
    "- a\n- b: 1\n  c: 2\n- d\n", /* a list at the root */
    "  a: 1\n  b: 2\n",           /* an indented root */
    /* nulls: where libyaml puts an empty value */
    "a:\nb:   \nc: # nothing\nd:\n",
    "a:\n  b:\n  c: 1\nd:",
    "- a:\n- b:\n  c:\n",
    /* scalars */
    "a: 'it''s'\nb: \"q\\\"uote\\\\ \\/ \\n \\t\"\nc: ''\nd: \"\"\n",
    "a: x  y  # two spaces stay inside, not before the comment\nb: a#b\nc: http://h:80/p\n",
    "a: -1\nb: ~\nc: null\nd: true\ne: 0x1F\nf: 1e3\ng: --x\nh: x:y\n",
    "key : value\nk e y: v\n", /* spaces before the colon, inside a key */
    "a: {}\nb: []  # empty\nc: {}\n",
    /* literal block scalars, as kubectl's last-applied-configuration */
    "metadata:\n  annotations:\n    last: |\n      {\"kind\":\"Service\"}\n  name: a\n",
    "a: |-\n  one\n    two\n  # not a comment\nb: 1\n",
    "- k: | # comment\n    x\n  j: 2\n",
    "a: |\n x\n# a comment after it\nb: 1\n",
    "a: x,y [z] {w}\n",
    "a: b\n...x: 1\n", /* "..." not followed by a space is text */
    "a: 1",            /* no newline at the end */
    "\n\n   \n",
};

START_TEST(the_fast_path_reads_the_block_style)
{
    const char *text = fast_cases[_i];
    struct zones_yaml_stats stats = same_both_ways("fast case", text, strlen(text));
    ck_assert_msg(stats.libyaml == 0 && stats.fast > 0, "%s: went to libyaml", text);
}
END_TEST

/* Everything else is libyaml's, and reads as it did before the fast path. */
static const char *const libyaml_cases[] = {
    "a: &x 1\nb: *x\n",          /* anchors and aliases */
    "a: !!str 1\n",              /* tags */
    "a: {b: 1}\n",               /* flow collections with content */
    "a: [1, 2]\n",               /* and flow lists */
    "{\"kind\": \"Service\"}\n", /* JSON */
    "a: |+\n  text\n",           /* block scalars but "|" and "|-" */
    "a: |2\n  text\n",
    "a: |\n  one\n\n  two\n", /* "|" with a blank line */
    "a: |\n  text",           /* or no line break at its end */
    "- |\n  text\n",          /* or as a list item */
    "a: >\n  text\n",         /* folded ones */
    "a: one\n  two\n",        /* a plain scalar on two lines */
    "a: \"one\n  two\"\n",    /* a quoted one */
    "a:\n\tb: 1\n",           /* a tab */
    "a: 1\r\n",               /* CR */
    "a: caf\xc3\xa9\n",       /* not ASCII */
    "a: \"\\u00e9\"\n",       /* escapes other than \\ \" \/ \n \t */
    "\"a\": 1\n",             /* a quoted key */
    "? a\n: 1\n",             /* a complex key */
    "a: 1\n...\n",            /* a document end */
    "%YAML 1.1\n---\na: 1\n", /* a directive */
    "--- a\n",                /* a document on its "---" line */
    "- - a\n",                /* a list in a list on one line */
    "-\n  a: 1\n",            /* an item on the line after its "-" */
    "a: b: c\n",              /* errors */
    "a: 1\n b: 2\n",
    "a:\n  b: 1\n c: 2\n",
    "a\n", /* a scalar document */
    "a: 'x' y\n",
    "a: @x\n",
    "a: 1\n---x: 2\n", /* a key that starts with "-" */
};

START_TEST(everything_else_goes_to_libyaml)
{
    const char *text = libyaml_cases[_i];
    struct zones_yaml_stats stats = same_both_ways("libyaml case", text, strlen(text));
    ck_assert_msg(stats.fast == 0 && stats.libyaml > 0, "%s: read by the fast path", text);
}
END_TEST

START_TEST(an_error_in_one_piece_leaves_the_others_on_the_fast_path)
{
    const char *text = "---\na: 1\n---\na: b: c\n---\nb: 2\n";
    struct zones_yaml_stats stats = same_both_ways("mixed", text, strlen(text));
    ck_assert_uint_eq(stats.fast, 2);
    ck_assert_uint_eq(stats.libyaml, 1);
}
END_TEST

START_TEST(nesting_past_the_limit_is_reported_as_before)
{
    static char text[16384];
    size_t len = 0;
    for (int depth = 0; depth <= ZONES_MANIFEST_MAX_DEPTH; depth++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%*sk:\n", 2 * depth, "");
    len += (size_t)snprintf(text + len, sizeof(text) - len, "%*sv: 1\n",
                            2 * (ZONES_MANIFEST_MAX_DEPTH + 1), "");
    ck_assert_uint_lt(len, sizeof(text));
    struct zones_yaml_stats stats = same_both_ways("deep", text, len);
    ck_assert_uint_eq(stats.fast, 0);
}
END_TEST

/* A file from the repository, read both ways; the pieces the fast path took. */
static struct zones_yaml_stats read_both_ways(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof(buf), f);
    ck_assert(feof(f));
    fclose(f);
    return same_both_ways(path, buf, len);
}

START_TEST(the_cluster_exports_and_examples_take_the_fast_path)
{
    static const char *const files[] = {
        "../../e2e/data/exports/aks.yaml",       "../../e2e/data/exports/eks.yaml",
        "../../e2e/data/exports/gke.yaml",       "../../e2e/data/exports/k3s.yaml",
        "../../e2e/data/exports/kubeadm.yaml",   "../../e2e/data/exports/openshift.yaml",
        "../../../examples/simple-service.yaml",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, files[i]);
        struct zones_yaml_stats stats = read_both_ways(path);
        /* kubectl's output, last-applied-configuration and all, is the fast path's */
        ck_assert_msg(stats.fast > 0 && stats.libyaml == 0, "%s: %zu pieces went to libyaml", path,
                      stats.libyaml);
    }
}
END_TEST

/* The benchmark's manifests (tests/bench/gen-dataset.py): every document on the fast path. */
START_TEST(generated_services_all_take_the_fast_path)
{
    size_t cap = 1 << 20;
    char *text = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc%d\n"
                                "  namespace: ns%d\n  labels:\n    app: svc%d\nspec:\n  type: "
                                "ClusterIP\n  clusterIP: 10.96.%d.%d\n  ports:\n  - name: http\n"
                                "    port: 80\n    protocol: TCP\n    targetPort: 8080\n"
                                "  selector:\n    app: svc%d\n",
                                i, i % 7, i, i / 250, i % 250, i);
    struct zones_yaml_stats stats = same_both_ways("generated", text, len);
    ck_assert_uint_eq(stats.fast, 1000);
    ck_assert_uint_eq(stats.libyaml, 0);
    free(text);
}
END_TEST

Suite *yaml_suite(void); /* for tests/zones/main.c */
Suite *yaml_suite(void)
{
    Suite *s = suite_create("yaml");
    TCase *tc = tcase_create("yaml");
    tcase_add_loop_test(tc, the_fast_path_reads_the_block_style, 0,
                        sizeof(fast_cases) / sizeof(fast_cases[0]));
    tcase_add_loop_test(tc, everything_else_goes_to_libyaml, 0,
                        sizeof(libyaml_cases) / sizeof(libyaml_cases[0]));
    tcase_add_test(tc, an_error_in_one_piece_leaves_the_others_on_the_fast_path);
    tcase_add_test(tc, nesting_past_the_limit_is_reported_as_before);
    tcase_add_test(tc, the_cluster_exports_and_examples_take_the_fast_path);
    tcase_add_test(tc, generated_services_all_take_the_fast_path);
    suite_add_tcase(s, tc);
    return s;
}
