/* dns/daemon/privileges.c - --user: started as root (a container without a securityContext,
 * an init script), svcdns binds its sockets and then becomes that user, keeping nothing.
 *
 * The user is looked up before anything is loaded, so a name that does not exist stops the
 * start with a clear error instead of running as root. The switch itself comes once every
 * privileged step is done (DNS and HTTP sockets bound) and before any worker thread exists:
 * supplementary groups, then gid, then uid (the other order would leave root's groups), and
 * no_new_privs so no exec can gain anything back. A uid change from root clears the
 * permitted, effective and ambient capabilities (capabilities(7)); what is left is checked,
 * and a switch that did not hold stops svcdns rather than serve as root. */
/* initgroups() is outside POSIX; glibc shows it with this feature macro. */
#define _DEFAULT_SOURCE // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp,readability-identifier-naming)

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "dns/daemon/daemon.h"
#include "dns/log.h"

int daemon_privileges_check(const char *name, bool serving, struct daemon_user *out)
{
    memset(out, 0, sizeof(*out));
    if (name == NULL)
        return 0;
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[16384];
    int err = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (found == NULL) {
        if (err != 0)
            return daemon_fail("--user %s: cannot look it up: %s", name, strerror(err));
        return daemon_fail("--user %s: no such user on this system; create it (useradd --system "
                           "%s) or name another",
                           name, name);
    }
    if (snprintf(out->name, sizeof(out->name), "%s", name) >= (int)sizeof(out->name))
        return daemon_fail("--user: the name \"%s\" is too long", name);
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    out->wanted = true;
    if (geteuid() == 0 || !serving)
        return 0;
    /* Only root can become someone else. Already being that user is fine (a container that
     * runs as it and a config that names it); anything else would leave svcdns running as a
     * user the operator did not ask for, so it is an error, not a warning. */
    if (geteuid() == out->uid && getegid() == out->gid) {
        out->wanted = false;
        return 0;
    }
    return daemon_fail("--user %s: svcdns runs as uid %u, not root, so it cannot become %s "
                       "(uid %u); start it as root, or leave --user out",
                       name, (unsigned)geteuid(), name, (unsigned)out->uid);
}

int daemon_privileges_drop(const struct daemon_user *u)
{
    if (!u->wanted)
        return 0;
    if (initgroups(u->name, u->gid) != 0)
        return daemon_fail("--user %s: setting its groups failed: %s", u->name, strerror(errno));
    if (setgid(u->gid) != 0)
        return daemon_fail("--user %s: setgid(%u) failed: %s", u->name, (unsigned)u->gid,
                           strerror(errno));
    if (setuid(u->uid) != 0)
        return daemon_fail("--user %s: setuid(%u) failed: %s", u->name, (unsigned)u->uid,
                           strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return daemon_fail("--user %s: no_new_privs failed: %s", u->name, strerror(errno));
    /* The switch must hold for real ids and saved ones: root must be out of reach. */
    bool held = getuid() == u->uid && geteuid() == u->uid && getgid() == u->gid &&
                getegid() == u->gid && (u->uid == 0 || setuid(0) != 0);
    if (!held)
        return daemon_fail("--user %s: the switch did not hold (uid %u, euid %u); stopping",
                           u->name, (unsigned)getuid(), (unsigned)geteuid());
    int groups = getgroups(0, NULL);
    log_info("main", "event=privileges_dropped user=%s uid=%u gid=%u groups=%d", u->name,
             (unsigned)u->uid, (unsigned)u->gid, groups);
    return 0;
}
