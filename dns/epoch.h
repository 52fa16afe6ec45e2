/* dns/epoch.h - freeing what the workers may still be reading, once none can.
 *
 * Quiescent-state-based reclamation (userspace RCU's QSBR flavour): the control loop publishes
 * a new version of shared data (a snapshot, a node) with an atomic pointer store and retires
 * the old one here. A worker holds no reference between two callbacks of its loop, so each
 * loop iteration it records the epoch it has seen; a retired object is freed once every
 * registered worker has recorded an epoch later than its retirement. A worker with nothing to
 * do is woken to record. Readers pay one relaxed store per loop iteration and nothing per
 * query: they read the published pointer with an acquire load. */
#ifndef DNS_EPOCH_H
#define DNS_EPOCH_H

#include <uv.h>

struct dns_epoch;

/* For up to max_readers workers; the timer that frees runs on control, and
 * dns_epoch_close() must close it there before dns_epoch_free(). */
int dns_epoch_new(struct dns_epoch **out, uv_loop_t *control, unsigned max_readers);
/* Frees what is still retired, then the epoch: every reader has stopped. Closes the timer
 * first with dns_epoch_close() and lets the control loop run its close callback. */
void dns_epoch_close(struct dns_epoch *epoch);
void dns_epoch_free(struct dns_epoch *epoch);

/* On the worker's thread, before it reads anything published: registers it and starts its
 * handles on its loop. 0 or a negative libuv error. */
int dns_epoch_reader_start(struct dns_epoch *epoch, unsigned reader, uv_loop_t *loop);
/* On the worker's thread, when it stops reading: unregisters it and closes its handles (the
 * worker's loop then runs their close callbacks). */
void dns_epoch_reader_stop(struct dns_epoch *epoch, unsigned reader);

/* From any thread (one writer at a time), after the pointer to ptr was replaced: free_fn(ptr)
 * runs on the control loop once no worker can still hold ptr. */
void dns_epoch_retire(struct dns_epoch *epoch, void *ptr, void (*free_fn)(void *ptr));

#endif
