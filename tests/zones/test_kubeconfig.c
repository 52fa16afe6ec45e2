/* tests/zones/test_kubeconfig.c - zones/kubeconfig.c: a kubeconfig's current context and the
 * in-cluster service account, and the errors that stop svcdns before it serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "zones/kubeconfig.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/svcdns-kubeconfig-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const char *text)
{
    static char path[4][256];
    static int next;
    next = (next + 1) % 4;
    snprintf(path[next], sizeof(path[next]), "%s/%s", dir, name);
    FILE *f = fopen(path[next], "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path[next];
}

/* A kubeconfig with one context "c" on cluster "k" and user "u", whose fields are given. */
static const char *kubeconfig(const char *cluster, const char *user)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
             "contexts:\n- name: other\n  context: {cluster: nope, user: nope}\n"
             "- name: c\n  context: {cluster: k, user: u, namespace: kube-system}\n"
             "clusters:\n- name: k\n  cluster:\n%s"
             "users:\n- name: u\n  user:\n%s",
             cluster, user);
    return write_file("config", text);
}

static void load_fails(const char *path, const char *expect)
{
    struct zones_kubeconfig kc;
    char err[1024] = "";
    ck_assert_int_eq(zones_kubeconfig_load(&kc, path, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, expect) != NULL, "expected \"%s\" in: %s", expect, err);
    ck_assert_ptr_null(kc.server);
}

START_TEST(reads_a_token_and_a_relative_ca_file)
{
    make_dir();
    write_file("ca.crt", "PEM\n");
    const char *path = kubeconfig("    server: https://127.0.0.1:6443/\n"
                                  "    certificate-authority: ca.crt\n",
                                  "    token: secret-token\n");
    struct zones_kubeconfig kc;
    char err[512] = "";
    ck_assert_msg(zones_kubeconfig_load(&kc, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(kc.server, "https://127.0.0.1:6443");
    ck_assert_str_eq(kc.context, "c");
    ck_assert_str_eq(kc.source, path);
    char ca[256];
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    ck_assert_str_eq(kc.ca_file, ca);
    ck_assert_str_eq(kc.token, "secret-token");
    ck_assert_ptr_null(kc.token_file);
    ck_assert(!kc.insecure);
    zones_kubeconfig_free(&kc);
    remove_dir();
}
END_TEST

START_TEST(reads_json_with_inline_data)
{
    make_dir();
    /* "CA PEM", "CERT PEM", "KEY PEM" in base64 */
    const char *path = write_file(
        "config.json",
        "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"c\","
        "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\",\"user\":\"u\"}}],"
        "\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://[::1]:6443\","
        "\"certificate-authority-data\":\"Q0EgUEVN\",\"tls-server-name\":\"kubernetes\"}}],"
        "\"users\":[{\"name\":\"u\",\"user\":{\"client-certificate-data\":\"Q0VSVCBQRU0=\","
        "\"client-key-data\":\"S0VZIFBFTQ==\"}}]}");
    struct zones_kubeconfig kc;
    char err[512] = "";
    ck_assert_msg(zones_kubeconfig_load(&kc, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(kc.server, "https://[::1]:6443");
    ck_assert_uint_eq(kc.ca_pem_len, 6);
    ck_assert_str_eq(kc.ca_pem, "CA PEM");
    ck_assert_str_eq(kc.cert_pem, "CERT PEM");
    ck_assert_str_eq(kc.key_pem, "KEY PEM");
    ck_assert_uint_eq(kc.key_pem_len, 7);
    ck_assert_str_eq(kc.tls_server_name, "kubernetes");
    ck_assert_ptr_null(kc.token);
    zones_kubeconfig_free(&kc);
    remove_dir();
}
END_TEST

START_TEST(reads_client_certificate_files_and_a_token_file)
{
    make_dir();
    write_file("c.crt", "x");
    write_file("c.key", "x");
    write_file("token", "t");
    const char *path = kubeconfig("    server: http://localhost:8001\n"
                                  "    insecure-skip-tls-verify: true\n",
                                  "    client-certificate: c.crt\n    client-key: c.key\n"
                                  "    tokenFile: token\n");
    struct zones_kubeconfig kc;
    char err[512] = "";
    ck_assert_msg(zones_kubeconfig_load(&kc, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert(kc.insecure);
    ck_assert_ptr_nonnull(strstr(kc.cert_file, "/c.crt"));
    ck_assert_ptr_nonnull(strstr(kc.key_file, "/c.key"));
    ck_assert_ptr_nonnull(strstr(kc.token_file, "/token"));
    zones_kubeconfig_free(&kc);
    remove_dir();
}
END_TEST

/* Broken kubeconfigs: (cluster fields, user fields, what the error must say). */
static const char *const broken[][3] = {
    {"    certificate-authority-data: Q0EgUEVN\n", "    token: t\n", "cluster.server is missing"},
    {"    server: 10.0.0.1:6443\n", "    token: t\n", "is not an https:// (or http://) URL"},
    {"    server: https://a\n    certificate-authority: missing.crt\n", "    token: t\n",
     "cluster.certificate-authority: cannot read"},
    {"    server: https://a\n    certificate-authority-data: '%%%'\n", "    token: t\n",
     "cluster.certificate-authority-data is not base64"},
    {"    server: https://a\n    insecure-skip-tls-verify: true\n"
     "    certificate-authority-data: Q0EgUEVN\n",
     "    token: t\n", "insecure-skip-tls-verify with a certificate authority"},
    {"    server: https://a\n", "    exec: {command: aws}\n", "credential plugins (exec)"},
    {"    server: https://a\n", "    auth-provider: {name: gcp}\n", "auth-provider"},
    {"    server: https://a\n", "    username: admin\n    password: x\n", "basic authentication"},
    {"    server: https://a\n", "    client-certificate-data: Q0VSVCBQRU0=\n",
     "client certificate without its key"},
    {"    server: https://a\n    insecure-skip-tls-verify: maybe\n", "    token: t\n",
     "is not a boolean"},
    {"    server: https://a\n    proxy-url: http://proxy:3128\n", "    token: t\n",
     "proxy-url is not supported"},
};

START_TEST(refuses_a_broken_context)
{
    make_dir();
    load_fails(kubeconfig(broken[_i][0], broken[_i][1]), broken[_i][2]);
    remove_dir();
}
END_TEST

START_TEST(refuses_a_missing_or_unknown_context)
{
    make_dir();
    load_fails(write_file("a", "apiVersion: v1\nkind: Config\nclusters: []\n"),
               "current-context is not set");
    const char *path = write_file("b", "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
                                       "contexts:\n- name: dev\n  context: {cluster: k}\n");
    load_fails(path, ":3:18: \"prod\" names no entry of contexts");
    path = write_file("c", "current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: k}\n"
                           "clusters:\n- name: other\n  cluster: {server: https://a}\n");
    load_fails(path, "\"k\" names no entry of clusters");
    path = write_file("d", "current-context: dev\ncontexts:\n- name: dev\n  context: {user: u}\n");
    load_fails(path, "context \"dev\" names no cluster");
    load_fails(write_file("e", ""), "the file is empty");
    load_fails(write_file("f", "current-context: [\n"), "invalid YAML");
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
    load_fails(missing, "No such file or directory");
    remove_dir();
}
END_TEST

START_TEST(reads_the_service_account)
{
    make_dir();
    write_file("token", "t");
    write_file("ca.crt", "x");
    struct zones_kubeconfig kc;
    char err[512] = "";
    ck_assert_msg(zones_kubeconfig_in_cluster(&kc, "10.96.0.1", "443", dir, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(kc.server, "https://10.96.0.1:443");
    ck_assert_ptr_nonnull(strstr(kc.token_file, "/token"));
    ck_assert_ptr_nonnull(strstr(kc.ca_file, "/ca.crt"));
    zones_kubeconfig_free(&kc);
    ck_assert_int_eq(zones_kubeconfig_in_cluster(&kc, "fd00::1", "6443", dir, err, sizeof(err)), 0);
    ck_assert_str_eq(kc.server, "https://[fd00::1]:6443");
    zones_kubeconfig_free(&kc);
    ck_assert_int_eq(zones_kubeconfig_in_cluster(&kc, NULL, "443", dir, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "KUBERNETES_SERVICE_HOST"));
    unlink(write_file("token", "t"));
    ck_assert_int_eq(zones_kubeconfig_in_cluster(&kc, "10.96.0.1", "443", dir, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "/token"));
    remove_dir();
}
END_TEST

static const char *const base64_cases[][2] = {
    {"aGVsbG8=", "hello"}, {"aGVs\nbG8h", "hello!"},
    {"YQ==", "a"},         {"YWI=", "ab"},
    {"aGVsbG8", NULL},     {"YQ=", NULL},
    {"Y===", NULL},        {"a*==", NULL},
    {"YQ==YQ==", NULL},    {"", NULL},
};

START_TEST(decodes_base64)
{
    const char *in = base64_cases[_i][0];
    const char *want = base64_cases[_i][1];
    size_t len = 0;
    char *out = zones_kubeconfig_base64(in, strlen(in), &len);
    if (want == NULL) {
        ck_assert_msg(out == NULL, "%s decoded", in);
        return;
    }
    ck_assert_msg(out != NULL, "%s not decoded", in);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

Suite *kubeconfig_suite(void); /* for tests/zones/main.c */
Suite *kubeconfig_suite(void)
{
    Suite *s = suite_create("kubeconfig");
    TCase *tc = tcase_create("kubeconfig");
    tcase_add_test(tc, reads_a_token_and_a_relative_ca_file);
    tcase_add_test(tc, reads_json_with_inline_data);
    tcase_add_test(tc, reads_client_certificate_files_and_a_token_file);
    tcase_add_loop_test(tc, refuses_a_broken_context, 0, (int)(sizeof(broken) / sizeof(broken[0])));
    tcase_add_test(tc, refuses_a_missing_or_unknown_context);
    tcase_add_test(tc, reads_the_service_account);
    tcase_add_loop_test(tc, decodes_base64, 0,
                        (int)(sizeof(base64_cases) / sizeof(base64_cases[0])));
    suite_add_tcase(s, tc);
    return s;
}
