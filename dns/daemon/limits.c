/* dns/daemon/limits.c - the open file limit, shared out before anything is opened.
 *
 * Every TCP client, every upstream try and every HTTP client is a descriptor. When the limit
 * runs out, accept() fails and so does the socket() of each upstream try, and every forwarded
 * query gets SERVFAIL. So at start svcdns raises the soft limit to the hard one, keeps what
 * its own machinery needs (listeners, event loops, HTTP, reloads, logs, and whatever was
 * already open), reserves one descriptor per upstream query it lets be in flight, and gives
 * the rest to TCP clients, per worker. When the limit is too low for the defaults, TCP clients
 * and upstream queries share what there is, neither getting less than half of it, and
 * --max-concurrent is lowered to what its share allows. */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>

#include "dns/daemon/daemon.h"
#include "dns/http.h"
#include "dns/log.h"

/* The control loop's own: epoll, its async eventfd and libuv's spare for EMFILE, the signal
 * pipes (libuv's global one and the loop's), inotify; reading manifests, the config file and
 * resolv.conf (a file and a directory at a time); log files; the sd_notify socket; and a
 * margin for libraries. */
#define FDS_FIXED 32
/* Per worker: epoll, the loop's eventfd, libuv's spare for EMFILE, and one that a connection
 * over the cap holds while it is accepted and closed again; the sockets come on top. */
#define FDS_PER_WORKER 4
/* --http: the connection cap, and as many again for the ones accepted in a burst and closed
 * at once when the cap is full (dns/http.c), plus the listener. */
#define FDS_HTTP (2 * DNS_HTTP_MAX_CONNS + 1)
/* Following an API server (zones/kube.c): a connection per watched kind (HTTP/1.1; one for
 * all with HTTP/2), libcurl's wakeup pair, and as many again while a connection is replaced. */
#define FDS_KUBERNETES 12
/* Per upstream, outside --max-concurrent: one health probe and one loop-check query. */
#define FDS_PER_UPSTREAM 2
/* Below these there is no sensible service: say so at start instead of failing later. */
#define MIN_TCP_PER_WORKER 8
#define MIN_MAX_CONCURRENT 16
/* The most the soft limit is raised to: hard limits of "unlimited" exist, the kernel takes
 * at most fs.nr_open (1048576 by default), and svcdns never needs more. */
#define RAISE_CAP ((rlim_t)1 << 20)

unsigned daemon_limits_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return 3; /* stdin, stdout, stderr */
    unsigned n = 0;
    for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir)) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(dir);
    return n > 0 ? n - 1 : 0; /* the directory's own */
}

int daemon_limits_raise(unsigned long *limit, unsigned long *was)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    *was = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)RAISE_CAP : (unsigned long)rl.rlim_cur;
    *limit = *was;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > RAISE_CAP ? RAISE_CAP : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            *limit = (unsigned long)want;
    }
    return 0;
}

int daemon_limits_plan(const struct daemon_fd_needs *in, struct daemon_fd_plan *out)
{
    memset(out, 0, sizeof(*out));
    out->limit = in->limit;
    out->reserved = in->open_now + FDS_FIXED + (in->http ? FDS_HTTP : 0) +
                    (in->kubernetes ? FDS_KUBERNETES : 0) +
                    in->workers * (FDS_PER_WORKER + 2 * (unsigned)in->listeners);
    unsigned probes = in->forwarding ? FDS_PER_UPSTREAM * in->upstreams : 0;
    unsigned long upstream = in->forwarding ? (unsigned long)in->max_concurrent + probes : 0;
    unsigned long tcp_want = (unsigned long)in->workers * in->tcp_default;
    unsigned long avail = in->limit > out->reserved ? in->limit - out->reserved : 0;
    unsigned long tcp = tcp_want;
    if (avail < upstream + tcp_want) {
        /* Not enough for both: TCP gets what the upstreams leave, but at least half. */
        tcp = avail > upstream ? avail - upstream : 0;
        if (in->forwarding && tcp < avail / 2)
            tcp = avail / 2;
        if (!in->forwarding)
            tcp = avail;
        if (tcp > tcp_want)
            tcp = tcp_want;
    }
    out->tcp_per_worker = (unsigned)(tcp / in->workers);
    out->max_concurrent = in->max_concurrent;
    if (in->forwarding) {
        unsigned long left = avail - (unsigned long)out->tcp_per_worker * in->workers;
        unsigned long room = left > probes ? left - probes : 0;
        if (room < out->max_concurrent)
            out->max_concurrent = (unsigned)room;
        out->upstream = out->max_concurrent + probes;
    }
    out->needed = out->reserved + in->workers * MIN_TCP_PER_WORKER +
                  (in->forwarding ? MIN_MAX_CONCURRENT + probes : 0);
    if (out->tcp_per_worker < MIN_TCP_PER_WORKER ||
        (in->forwarding && out->max_concurrent < MIN_MAX_CONCURRENT &&
         out->max_concurrent < in->max_concurrent))
        return -1;
    return 0;
}
