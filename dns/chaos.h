/* dns/chaos.h - CHAOS-class identity queries: version.bind, version.server, hostname.bind,
 * id.server (TXT), as NSD, Knot, Unbound and dnsmasq answer them. */
#ifndef DNS_CHAOS_H
#define DNS_CHAOS_H

#include "dns/chain.h"

struct dns_chaos {
    char version[64];  /* "svcdns 0.1.0" */
    char identity[64]; /* the host name, e.g. the pod name */
};

void dns_chaos_init(struct dns_chaos *chaos, const char *version);
enum dns_verdict dns_chaos_serve(void *self, struct dns_request *req);

#endif
