/* dns/notify.h - tells a service manager how svcdns is doing: systemd's sd_notify(3)
 * protocol, spoken directly (one datagram to the unix socket named by $NOTIFY_SOCKET), so
 * `Type=notify` units start what depends on DNS only once it answers. */
#ifndef DNS_NOTIFY_H
#define DNS_NOTIFY_H

/* Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...", lines joined by '\n').
 * 0 when sent or when $NOTIFY_SOCKET is unset (not run by a service manager), else -errno. */
int dns_notify(const char *state);

#endif
