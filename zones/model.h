/* zones/model.h - every source's objects, merged into what the store serves.
 *
 * Sources are ranked, and when two of them define one object the higher rank wins: manifest
 * files in load order (a later file replaces a Service, as a second kubectl apply would), the
 * Kubernetes API above them all. The model keeps, on one writer thread at a time, which
 * definition of each object counts, the EndpointSlices of each Service (or, without any, the
 * Pods its selector picks), which namespaces exist, and the address each Service without
 * one is given. Changes mark what they touch; a commit builds the views of the Services that
 * changed and puts them, the namespaces and the Pods' addresses in the store. The work of a
 * commit grows with what changed, not with the cluster.
 *
 * Objects are the caller's: each must stay valid while the model holds it (until it is
 * removed, or its source replaced, and the next commit is done). */
#ifndef ZONES_MODEL_H
#define ZONES_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/epoch.h"
#include "zones/objects.h"
#include "zones/store.h"

/* Sources are identified by the id zones_model_add_source() gives, and ranked: of two
 * definitions of one object the higher rank's counts (within one rank, the first). The
 * Kubernetes API is the source that exists from the start, ranked above every file. */
#define ZONES_MODEL_API_SOURCE 0
#define ZONES_MODEL_API_RANK UINT32_MAX

struct zones_model;

/* A model over a new store (epoch as for zones_store_new). cidrs (copied) are the ranges
 * Services without an address draw from, before those of ServiceCIDR objects. Returns 0 or
 * -EINVAL (a bad cluster domain). */
int zones_model_new(struct zones_model **out, const struct zones_store_config *cfg,
                    struct dns_epoch *epoch, const struct zones_cidr *cidrs, size_t n_cidrs);
/* The model and its store. NULL is a no-op. */
void zones_model_free(struct zones_model *model);
/* From now on, what the store replaces goes to epoch: workers read the store. Before the first
 * worker reads it, a store may be built with no epoch (freed at once) and given one here. */
void zones_model_set_epoch(struct zones_model *model, struct dns_epoch *epoch);
/* The store the model writes, for the workers. */
struct zones_store *zones_model_store(struct zones_model *model);
/* Frees the model and hands its store over (tests, --dump: a store that no longer changes). */
struct zones_store *zones_model_detach(struct zones_model *model);

/* A new source, empty, ranked rank; returns its id. */
uint32_t zones_model_add_source(struct zones_model *m, uint32_t rank);
/* Moves a source to another rank (a file now loads at another place in the order). The next
 * commit settles whatever it defines together with another source. */
void zones_model_set_rank(struct zones_model *m, uint32_t source, uint32_t rank);
/* Replaces every object of a source with those of objs (NULL: none). Reports what one source
 * defines twice as an error in diags and keeps the first. */
void zones_model_set_source(struct zones_model *m, uint32_t source,
                            const struct zones_objects *objs);
/* Empties a source and frees its id for zones_model_add_source(). */
void zones_model_remove_source(struct zones_model *m, uint32_t source);

/* One object of a source comes, changes (the same pointer, or another for the same name) or
 * goes; for sources that change one object at a time (the Kubernetes API). */
void zones_model_put_service(struct zones_model *m, uint32_t source,
                             const struct zones_service *old, const struct zones_service *svc);
void zones_model_put_slice(struct zones_model *m, uint32_t source, const struct zones_slice *old,
                           const struct zones_slice *slice);
void zones_model_put_pod(struct zones_model *m, uint32_t source, const struct zones_pod *old,
                         const struct zones_pod *pod);
void zones_model_put_namespace(struct zones_model *m, uint32_t source,
                               const struct zones_namespace *old, const struct zones_namespace *ns);
void zones_model_put_service_cidr(struct zones_model *m, uint32_t source,
                                  const struct zones_service_cidr *old,
                                  const struct zones_service_cidr *sc);

/* Puts every change since the last commit in the store, with this SOA serial. Returns the
 * Services whose view changed. */
size_t zones_model_commit(struct zones_model *m, uint32_t serial);

/* Problems found while merging (a name defined twice in one source, two Services stating one
 * address, a range with no address left) since the caller last cleared them: diags and
 * warnings, with their positions. */
struct zones_objects *zones_model_diags(struct zones_model *model);

/* The whole of objs in a new store, in one step (tests, fuzzers): a model with one source,
 * committed, detached. What merging found is copied to diags when not NULL. 0 or -EINVAL. */
int zones_model_build(struct zones_store **out, const struct zones_objects *objs,
                      const struct zones_store_config *cfg, const struct zones_cidr *cidrs,
                      size_t n_cidrs, struct zones_objects *diags);

#endif
