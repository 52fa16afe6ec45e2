/* tests/zones/main.c - the zones module's Check binary: one suite per source file. */
#include <stdlib.h>

#include <check.h>

/* Suites: one line each, added with the test file that defines it. */
#define SUITES(X)                                                                                  \
    X(manifest) X(objects) X(model) X(files) X(cache) X(answer) X(json) X(kubeconfig) X(yaml)

#define DECLARE(name) Suite *name##_suite(void);
SUITES(DECLARE)

int main(void)
{
    SRunner *sr = srunner_create(NULL);
#define ADD(name) srunner_add_suite(sr, name##_suite());
    SUITES(ADD)
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
