/* tests/zones/test_files.c - zones/files.c: manifest files as sources, reread only when they
 * change, a file that does not parse keeping its last good objects. Real files in a temporary
 * directory, a real model. */
#include <stdbool.h> /* before ldns, which would make bool a signed char */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "dns/wire.h"
#include "tests/zones/ask.h"
#include "zones/files.h"

struct fixture {
    char dir[64];
    struct zones_files *files;
    struct zones_model *model;
};

static void start(struct fixture *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/svcdns-files-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    const char *paths[] = {f->dir};
    zones_files_new(&f->files, paths, 1, NULL, "test");
    struct zones_store_config cfg;
    zones_store_config_default(&cfg);
    ck_assert_int_eq(zones_model_new(&f->model, &cfg, NULL, NULL, 0), 0);
}

static void finish(struct fixture *f)
{
    zones_model_free(f->model);
    zones_files_free(f->files);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", f->dir);
    ck_assert_int_eq(system(command), 0);
}

/* Writes a file of Services "name=ip" (or raw text when it holds a ':'), giving it a new
 * modification time so a read sees the change whatever the clock's granularity. */
static void write_services(struct fixture *f, const char *file, const char *spec)
{
    static int tick;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, file);
    FILE *out = fopen(path, "w");
    ck_assert_ptr_nonnull(out);
    if (strchr(spec, ':') != NULL) {
        fputs(spec, out);
    } else {
        char copy[512];
        snprintf(copy, sizeof(copy), "%s", spec);
        for (char *save = NULL, *item = strtok_r(copy, " ", &save); item != NULL;
             item = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(item, '=');
            *eq = '\0';
            fprintf(out,
                    "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: t}\n"
                    "spec: {clusterIP: %s}\n",
                    item, eq + 1);
        }
    }
    fclose(out);
    tick++;
    struct timespec times[2] = {{.tv_sec = 1700000000 + tick}, {.tv_sec = 1700000000 + tick}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
}

static void remove_file(struct fixture *f, const char *file)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, file);
    ck_assert_int_eq(unlink(path), 0);
}

/* One reload: read, apply, commit, release. Returns the read's figures. */
static struct zones_files_read reload(struct fixture *f)
{
    struct zones_files_read read;
    zones_files_read(f->files, 2, &read);
    struct zones_files_read figures = read;
    zones_objects_init(&figures.diags);
    figures.entries = NULL;
    figures.gone = NULL;
    zones_files_apply(f->files, &read, f->model);
    zones_model_commit(f->model, 1);
    zones_files_release(f->files);
    return figures;
}

static const char *a_of(struct fixture *f, const char *name)
{
    char fqdn[128];
    snprintf(fqdn, sizeof(fqdn), "%s.t.svc.local.", name);
    return zones_test_addresses(zones_model_store(f->model), fqdn, DNS_TYPE_A);
}

START_TEST(reads_only_the_files_that_changed)
{
    struct fixture f;
    start(&f);
    write_services(&f, "a.yaml", "a1=10.0.0.1 a2=10.0.0.2");
    write_services(&f, "b.yaml", "b1=10.0.1.1");
    write_services(&f, "c.yaml", "c1=10.0.2.1");
    struct zones_files_read r = reload(&f);
    ck_assert_uint_eq(r.listed, 3);
    ck_assert_uint_eq(r.read, 3);
    ck_assert_str_eq(a_of(&f, "a2"), "10.0.0.2");
    /* Nothing changed: nothing is read. */
    r = reload(&f);
    ck_assert(r.unchanged);
    ck_assert_uint_eq(r.read, 0);
    /* One file changed: only it is read, and what it no longer has goes. */
    write_services(&f, "b.yaml", "b2=10.0.1.2");
    r = reload(&f);
    ck_assert(!r.unchanged);
    ck_assert_uint_eq(r.read, 1);
    ck_assert_str_eq(a_of(&f, "b1"), "NXDOMAIN");
    ck_assert_str_eq(a_of(&f, "b2"), "10.0.1.2");
    ck_assert_str_eq(a_of(&f, "a1"), "10.0.0.1");
    /* A file that goes takes its Services with it. */
    remove_file(&f, "c.yaml");
    r = reload(&f);
    ck_assert_uint_eq(r.read, 0);
    ck_assert_str_eq(a_of(&f, "c1"), "NXDOMAIN");
    struct zones_files_totals t;
    zones_files_totals(f.files, &t);
    ck_assert_uint_eq(t.files, 2);
    ck_assert_uint_eq(t.services, 3);
    ck_assert_uint_eq(t.errors, 0);
    finish(&f);
}
END_TEST

START_TEST(a_file_that_does_not_parse_keeps_its_last_good_objects)
{
    struct fixture f;
    start(&f);
    write_services(&f, "a.yaml", "a1=10.0.0.1");
    write_services(&f, "b.yaml", "b1=10.0.1.1");
    write_services(&f, "c.yaml", "c1=10.0.2.1");
    reload(&f);
    /* b breaks (an editor mid-save) while c changes: c updates, b keeps serving. */
    write_services(&f, "b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b9\n");
    write_services(&f, "c.yaml", "c2=10.0.2.2");
    struct zones_files_read r = reload(&f);
    ck_assert_uint_eq(r.read, 2);
    ck_assert_uint_eq(r.kept, 1);
    ck_assert_uint_ge(r.errors, 1);
    ck_assert_str_eq(a_of(&f, "b1"), "10.0.1.1");
    ck_assert_str_eq(a_of(&f, "b9"), "NXDOMAIN");
    ck_assert_str_eq(a_of(&f, "c2"), "10.0.2.2");
    ck_assert_str_eq(a_of(&f, "c1"), "NXDOMAIN");
    struct zones_files_totals t;
    zones_files_totals(f.files, &t);
    ck_assert_uint_ge(t.errors, 1); /* still broken */
    /* Not read again until it changes; then repaired. */
    r = reload(&f);
    ck_assert(r.unchanged);
    write_services(&f, "b.yaml", "b2=10.0.1.2");
    r = reload(&f);
    ck_assert_uint_eq(r.read, 1);
    ck_assert_uint_eq(r.errors, 0);
    ck_assert_str_eq(a_of(&f, "b1"), "NXDOMAIN");
    ck_assert_str_eq(a_of(&f, "b2"), "10.0.1.2");
    zones_files_totals(f.files, &t);
    ck_assert_uint_eq(t.errors, 0);
    finish(&f);
}
END_TEST

START_TEST(a_bad_object_costs_only_itself)
{
    struct fixture f;
    start(&f);
    write_services(&f, "a.yaml", "a1=10.0.0.1 a2=10.0.0.x a3=10.0.0.3");
    struct zones_files_read r = reload(&f);
    ck_assert_uint_eq(r.errors, 1);
    ck_assert_uint_eq(r.kept, 0);
    ck_assert_str_eq(a_of(&f, "a1"), "10.0.0.1");
    ck_assert_str_eq(a_of(&f, "a2"), "NXDOMAIN");
    ck_assert_str_eq(a_of(&f, "a3"), "10.0.0.3");
    struct zones_files_totals t;
    zones_files_totals(f.files, &t);
    ck_assert_uint_eq(t.invalid, 1);
    ck_assert_uint_eq(t.errors, 1);
    finish(&f);
}
END_TEST

/* A later file wins; a file that comes before another moves that one's rank. */
START_TEST(a_later_file_wins_as_the_order_changes)
{
    struct fixture f;
    start(&f);
    write_services(&f, "b.yaml", "web=10.0.0.2");
    write_services(&f, "c.yaml", "web=10.0.0.3");
    reload(&f);
    ck_assert_str_eq(a_of(&f, "web"), "10.0.0.3");
    remove_file(&f, "c.yaml");
    write_services(&f, "a.yaml", "web=10.0.0.1");
    struct zones_files_read r = reload(&f);
    ck_assert_uint_eq(r.read, 1);
    ck_assert_str_eq(a_of(&f, "web"), "10.0.0.2"); /* b.yaml, second of a, b */
    write_services(&f, "z.yaml", "web=10.0.0.26");
    reload(&f);
    ck_assert_str_eq(a_of(&f, "web"), "10.0.0.26");
    finish(&f);
}
END_TEST

/* --strict's reload: everything it read is dropped, and read again once anything changes. */
START_TEST(a_dropped_read_changes_nothing_and_is_read_again)
{
    struct fixture f;
    start(&f);
    write_services(&f, "a.yaml", "a1=10.0.0.1");
    write_services(&f, "b.yaml", "b1=10.0.1.1");
    reload(&f);
    write_services(&f, "a.yaml", "a2=10.0.0.2");
    write_services(&f, "b.yaml", "b2=10.0.1.x");
    struct zones_files_read read;
    zones_files_read(f.files, 1, &read);
    ck_assert_uint_eq(read.errors, 1);
    zones_files_drop(f.files, &read);
    ck_assert_str_eq(a_of(&f, "a1"), "10.0.0.1");
    zones_files_read(f.files, 1, &read);
    ck_assert(read.unchanged);
    zones_files_drop(f.files, &read);
    write_services(&f, "b.yaml", "b2=10.0.1.2");
    struct zones_files_read r = reload(&f);
    ck_assert_uint_eq(r.read, 2); /* a.yaml again, though only b.yaml changed since */
    ck_assert_str_eq(a_of(&f, "a2"), "10.0.0.2");
    ck_assert_str_eq(a_of(&f, "b2"), "10.0.1.2");
    finish(&f);
}
END_TEST

START_TEST(reads_many_files_on_several_threads)
{
    struct fixture f;
    start(&f);
    for (int i = 0; i < 64; i++) {
        char file[32];
        char spec[64];
        snprintf(file, sizeof(file), "f%02d.yaml", i);
        snprintf(spec, sizeof(spec), "s%d=10.1.%d.1", i, i);
        write_services(&f, file, spec);
    }
    struct zones_files_read read;
    zones_files_read(f.files, 8, &read);
    ck_assert_uint_eq(read.read, 64);
    ck_assert_uint_eq(read.errors, 0);
    zones_files_apply(f.files, &read, f.model);
    zones_model_commit(f.model, 1);
    for (int i = 0; i < 64; i++) {
        char name[16];
        char want[32];
        snprintf(name, sizeof(name), "s%d", i);
        snprintf(want, sizeof(want), "10.1.%d.1", i);
        ck_assert_str_eq(a_of(&f, name), want);
    }
    finish(&f);
}
END_TEST

/* --manifest-cache: a second start reads clean, unchanged files back instead of parsing
 * them; a changed file, or one with an error (whose messages must show at every start), is
 * parsed. */
START_TEST(a_restart_reads_unchanged_clean_files_from_the_cache)
{
    struct fixture f;
    start(&f);
    char cache[96];
    snprintf(cache, sizeof(cache), "%s/.cache", f.dir); /* dot-named: not a manifest */
    ck_assert_int_eq(mkdir(cache, 0700), 0);
    write_services(&f, "a.yaml", "a1=10.0.0.1");
    write_services(&f, "b.yaml", "b1=10.0.1.1 b2=10.0.1.x");
    write_services(&f, "c.yaml", "c1=10.0.2.1");
    const char *paths[] = {f.dir};
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            write_services(&f, "c.yaml", "c1=10.0.2.9");
        struct zones_files *files;
        zones_files_new(&files, paths, 1, cache, "test-build");
        struct zones_files_read read;
        zones_files_read(files, 2, &read);
        ck_assert_uint_eq(read.read, 3);
        ck_assert_uint_eq(read.cached, round == 0 ? 0 : round == 1 ? 2 : 1);
        ck_assert_uint_eq(read.errors, 1); /* b.yaml's, printed at every start */
        zones_model_free(f.model);
        struct zones_store_config cfg;
        zones_store_config_default(&cfg);
        ck_assert_int_eq(zones_model_new(&f.model, &cfg, NULL, NULL, 0), 0);
        zones_files_apply(files, &read, f.model);
        zones_model_commit(f.model, 1);
        ck_assert_str_eq(a_of(&f, "a1"), "10.0.0.1");
        ck_assert_str_eq(a_of(&f, "b1"), "10.0.1.1");
        ck_assert_str_eq(a_of(&f, "c1"), round == 2 ? "10.0.2.9" : "10.0.2.1");
        zones_model_free(f.model);
        f.model = NULL;
        zones_files_free(files);
        zones_model_new(&f.model, &cfg, NULL, NULL, 0);
    }
    finish(&f);
}
END_TEST

Suite *files_suite(void); /* for tests/zones/main.c */
Suite *files_suite(void)
{
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("reload");
    tcase_add_test(tc, reads_only_the_files_that_changed);
    tcase_add_test(tc, a_file_that_does_not_parse_keeps_its_last_good_objects);
    tcase_add_test(tc, a_bad_object_costs_only_itself);
    tcase_add_test(tc, a_later_file_wins_as_the_order_changes);
    tcase_add_test(tc, a_dropped_read_changes_nothing_and_is_read_again);
    tcase_add_test(tc, reads_many_files_on_several_threads);
    tcase_add_test(tc, a_restart_reads_unchanged_clean_files_from_the_cache);
    suite_add_tcase(s, tc);
    return s;
}
