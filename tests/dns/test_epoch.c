/* tests/dns/test_epoch.c - dns/epoch.c: a retired object is freed once, and only once no
 * reader can hold it.
 *
 * The stress test runs a worker thread that reads the published object on every turn of its
 * loop while the control loop publishes and retires a thousand versions; a use after free
 * fails the test under ASan, and each object checks its own magic number. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <check.h>
#include <uv.h>

#include "dns/epoch.h"

#define MAGIC 0x5eed5eedu

struct object {
    unsigned magic;
    unsigned version;
};

static atomic_int freed;

static void free_object(void *ptr)
{
    struct object *o = ptr;
    ck_assert_uint_eq(o->magic, MAGIC);
    o->magic = 0;
    free(o);
    atomic_fetch_add(&freed, 1);
}

static struct object *new_object(unsigned version)
{
    struct object *o = malloc(sizeof(*o));
    ck_assert_ptr_nonnull(o);
    o->magic = MAGIC;
    o->version = version;
    return o;
}

/* Runs the control loop until freed reaches want, or gives up after about a second. */
static bool run_until_freed(uv_loop_t *loop, int want)
{
    for (int i = 0; i < 200 && atomic_load(&freed) < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    return atomic_load(&freed) >= want;
}

START_TEST(without_readers_a_retired_object_goes_at_the_next_turn)
{
    uv_loop_t loop;
    struct dns_epoch *epoch;
    atomic_store(&freed, 0);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(dns_epoch_new(&epoch, &loop, 4), 0);
    dns_epoch_retire(epoch, new_object(1), free_object);
    ck_assert_int_eq(atomic_load(&freed), 0); /* freed on the control loop, not here */
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(atomic_load(&freed), 1);
    dns_epoch_close(epoch);
    uv_run(&loop, UV_RUN_DEFAULT);
    dns_epoch_free(epoch);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(a_reader_holds_a_retired_object_until_its_loop_turns)
{
    uv_loop_t control;
    uv_loop_t worker;
    struct dns_epoch *epoch;
    atomic_store(&freed, 0);
    ck_assert_int_eq(uv_loop_init(&control), 0);
    ck_assert_int_eq(uv_loop_init(&worker), 0);
    ck_assert_int_eq(dns_epoch_new(&epoch, &control, 4), 0);
    ck_assert_int_eq(dns_epoch_reader_start(epoch, 2, &worker), 0);
    dns_epoch_retire(epoch, new_object(1), free_object);
    /* The worker has not passed a quiescent point: nothing may go, however long we wait. */
    for (int i = 0; i < 5; i++) {
        uv_run(&control, UV_RUN_NOWAIT);
        uv_sleep(25);
    }
    ck_assert_int_eq(atomic_load(&freed), 0);
    uv_run(&worker, UV_RUN_NOWAIT); /* one turn: its prepare records the epoch */
    ck_assert(run_until_freed(&control, 1));
    /* A stopped reader no longer holds anything back. */
    dns_epoch_retire(epoch, new_object(2), free_object);
    ck_assert_int_eq(atomic_load(&freed), 1);
    dns_epoch_reader_stop(epoch, 2);
    ck_assert(run_until_freed(&control, 2));
    uv_run(&worker, UV_RUN_DEFAULT);
    dns_epoch_close(epoch);
    uv_run(&control, UV_RUN_DEFAULT);
    dns_epoch_free(epoch);
    ck_assert_int_eq(uv_loop_close(&control), 0);
    ck_assert_int_eq(uv_loop_close(&worker), 0);
}
END_TEST

/* A reload of 100k Services retires a few hundred thousand objects at once: they are freed a
 * slice per turn of the control loop, so that /health and /metrics, answered on that loop,
 * are not held up for the whole of it. */
START_TEST(a_big_retirement_is_freed_a_slice_per_turn)
{
    uv_loop_t loop;
    struct dns_epoch *epoch;
    atomic_store(&freed, 0);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(dns_epoch_new(&epoch, &loop, 4), 0);
    for (unsigned i = 0; i < 10000; i++)
        dns_epoch_retire(epoch, new_object(i), free_object);
    uv_run(&loop, UV_RUN_NOWAIT);
    int first = atomic_load(&freed);
    ck_assert_int_gt(first, 0);
    ck_assert_int_lt(first, 10000);
    ck_assert(run_until_freed(&loop, 10000));
    dns_epoch_close(epoch);
    uv_run(&loop, UV_RUN_DEFAULT);
    dns_epoch_free(epoch);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(what_is_still_retired_goes_with_the_epoch)
{
    uv_loop_t control;
    uv_loop_t worker;
    struct dns_epoch *epoch;
    atomic_store(&freed, 0);
    ck_assert_int_eq(uv_loop_init(&control), 0);
    ck_assert_int_eq(uv_loop_init(&worker), 0);
    ck_assert_int_eq(dns_epoch_new(&epoch, &control, 1), 0);
    ck_assert_int_eq(dns_epoch_reader_start(epoch, 0, &worker), 0);
    ck_assert_int_eq(dns_epoch_reader_start(epoch, 1, &worker), UV_EINVAL);
    dns_epoch_retire(epoch, new_object(1), free_object);
    dns_epoch_retire(epoch, new_object(2), free_object);
    dns_epoch_reader_stop(epoch, 0);
    uv_run(&worker, UV_RUN_DEFAULT);
    dns_epoch_close(epoch);
    uv_run(&control, UV_RUN_DEFAULT);
    dns_epoch_free(epoch);
    ck_assert_int_eq(atomic_load(&freed), 2);
    ck_assert_int_eq(uv_loop_close(&control), 0);
    ck_assert_int_eq(uv_loop_close(&worker), 0);
}
END_TEST

/* The stress test: a worker reads, a writer thread publishes and retires, the control loop
 * frees. */

struct shared {
    struct dns_epoch *epoch;
    _Atomic(struct object *) current;
    atomic_bool stop;
    atomic_ulong reads;
    uv_loop_t loop; /* the worker's */
    uv_idle_t idle;
};

static void on_idle(uv_idle_t *idle)
{
    struct shared *sh = idle->data;
    if (atomic_load(&sh->stop)) {
        dns_epoch_reader_stop(sh->epoch, 0);
        uv_close((uv_handle_t *)idle, NULL);
        return;
    }
    for (int i = 0; i < 64; i++) {
        const struct object *o = atomic_load_explicit(&sh->current, memory_order_acquire);
        ck_assert_uint_eq(o->magic, MAGIC);
    }
    atomic_fetch_add(&sh->reads, 1);
}

static void worker_main(void *arg)
{
    struct shared *sh = arg;
    uv_run(&sh->loop, UV_RUN_DEFAULT);
}

/* The end of a stress test, once its threads are joined: the readers did read, and the epoch
 * goes with what is left. */
static void end_stress(struct shared *sh, uv_loop_t *control)
{
    ck_assert_uint_gt(atomic_load(&sh->reads), 0);
    dns_epoch_close(sh->epoch);
    uv_run(control, UV_RUN_DEFAULT);
    dns_epoch_free(sh->epoch);
    free_object(atomic_load(&sh->current));
    ck_assert_int_eq(uv_loop_close(control), 0);
}

/* The writer: on a thread of its own, as the model's reloads run on libuv's pool. */
static void writer_main(void *arg)
{
    struct shared *sh = arg;
    for (unsigned v = 1; v <= 1000; v++) {
        struct object *old = atomic_exchange(&sh->current, new_object(v));
        dns_epoch_retire(sh->epoch, old, free_object);
    }
}

START_TEST(a_reading_worker_never_sees_a_freed_object)
{
    static struct shared sh;
    uv_loop_t control;
    uv_thread_t thread;
    atomic_store(&freed, 0);
    ck_assert_int_eq(uv_loop_init(&control), 0);
    ck_assert_int_eq(uv_loop_init(&sh.loop), 0);
    ck_assert_int_eq(dns_epoch_new(&sh.epoch, &control, 1), 0);
    atomic_store(&sh.current, new_object(0));
    /* Registered before the thread reads anything. */
    ck_assert_int_eq(dns_epoch_reader_start(sh.epoch, 0, &sh.loop), 0);
    uv_idle_init(&sh.loop, &sh.idle);
    sh.idle.data = &sh;
    uv_idle_start(&sh.idle, on_idle);
    ck_assert_int_eq(uv_thread_create(&thread, worker_main, &sh), 0);
    uv_thread_t writer;
    ck_assert_int_eq(uv_thread_create(&writer, writer_main, &sh), 0);
    /* The control loop (this thread) frees while the writer retires and the worker reads. */
    for (int i = 0; i < 400 && atomic_load(&freed) < 1000; i++) {
        uv_run(&control, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    uv_thread_join(&writer);
    ck_assert(run_until_freed(&control, 1000));
    atomic_store(&sh.stop, true);
    uv_thread_join(&thread);
    end_stress(&sh, &control);
    ck_assert_int_eq(uv_loop_close(&sh.loop), 0);
}
END_TEST

/* A worker's start (dns/daemon/main.c's chain_new): it registers, then reads the published
 * object at once, while a reload may be retiring that very object. Whatever it read after
 * registering must stay until its loop turns. Readers start and stop over and over on threads
 * of their own while a writer retires as fast as it can; each holds what it read across a
 * spin of some 100 µs. A read taken before registering fails this under ASan (or sees the
 * magic number cleared), which is why the start order matters. */

struct starter {
    struct shared *sh;
    unsigned index;
    atomic_bool *stop;
    uv_mutex_t *loops; /* around making and closing a loop; see starter_main */
};

static void hold(const struct object *o)
{
    uint64_t until = uv_hrtime() + 100 * 1000;
    while (uv_hrtime() < until)
        ck_assert_uint_eq(((const volatile struct object *)o)->magic, MAGIC);
}

static void starter_main(void *arg)
{
    struct starter *st = arg;
    while (!atomic_load(st->stop)) {
        /* libuv closes descriptors with a raw system call, which ThreadSanitizer does not see:
         * a loop made on one thread with the numbers another's close just freed reads to it as
         * a race on the descriptor. Making and closing loops one thread at a time orders that;
         * what the test is about, registering and reading, stays concurrent. */
        uv_loop_t loop;
        uv_mutex_lock(st->loops);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        uv_mutex_unlock(st->loops);
        ck_assert_int_eq(dns_epoch_reader_start(st->sh->epoch, st->index, &loop), 0);
        const struct object *o = atomic_load_explicit(&st->sh->current, memory_order_acquire);
        hold(o);
        uv_run(&loop, UV_RUN_NOWAIT); /* a quiescent point: o may go from here on */
        o = atomic_load_explicit(&st->sh->current, memory_order_acquire);
        hold(o);
        dns_epoch_reader_stop(st->sh->epoch, st->index);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_mutex_lock(st->loops);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        uv_mutex_unlock(st->loops);
        atomic_fetch_add(&st->sh->reads, 1);
    }
}

static void busy_writer_main(void *arg)
{
    struct shared *sh = arg;
    for (unsigned v = 1; v <= 20000; v++) {
        struct object *old = atomic_exchange(&sh->current, new_object(v));
        dns_epoch_retire(sh->epoch, old, free_object);
        if (v % 64 == 0)
            uv_sleep(1);
    }
}

START_TEST(a_worker_starting_while_objects_are_retired_keeps_what_it_read)
{
    enum { STARTERS = 3 };
    static struct shared sh;
    static atomic_bool stop;
    static uv_mutex_t loops;
    struct starter st[STARTERS];
    uv_thread_t threads[STARTERS];
    uv_thread_t writer;
    uv_loop_t control;
    atomic_store(&freed, 0);
    atomic_store(&stop, false);
    ck_assert_int_eq(uv_mutex_init(&loops), 0);
    uv_mutex_lock(&loops); /* the control loop, too, before any starter runs */
    ck_assert_int_eq(uv_loop_init(&control), 0);
    ck_assert_int_eq(dns_epoch_new(&sh.epoch, &control, STARTERS), 0);
    uv_mutex_unlock(&loops);
    atomic_store(&sh.current, new_object(0));
    for (unsigned i = 0; i < STARTERS; i++) {
        st[i] = (struct starter){&sh, i, &stop, &loops};
        ck_assert_int_eq(uv_thread_create(&threads[i], starter_main, &st[i]), 0);
    }
    ck_assert_int_eq(uv_thread_create(&writer, busy_writer_main, &sh), 0);
    for (int i = 0; i < 4000 && atomic_load(&freed) < 20000; i++) {
        uv_run(&control, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    uv_thread_join(&writer);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < STARTERS; i++)
        uv_thread_join(&threads[i]);
    ck_assert(run_until_freed(&control, 20000));
    end_stress(&sh, &control);
    uv_mutex_destroy(&loops);
}
END_TEST

Suite *epoch_suite(void); /* for tests/dns/main.c */
Suite *epoch_suite(void)
{
    Suite *s = suite_create("epoch");
    TCase *tc = tcase_create("epoch");
    tcase_add_test(tc, without_readers_a_retired_object_goes_at_the_next_turn);
    tcase_add_test(tc, a_reader_holds_a_retired_object_until_its_loop_turns);
    tcase_add_test(tc, a_big_retirement_is_freed_a_slice_per_turn);
    tcase_add_test(tc, what_is_still_retired_goes_with_the_epoch);
    tcase_add_test(tc, a_reading_worker_never_sees_a_freed_object);
    tcase_add_test(tc, a_worker_starting_while_objects_are_retired_keeps_what_it_read);
    suite_add_tcase(s, tc);
    return s;
}
