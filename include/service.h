/*
 * service.h - running under a service manager (systemd), the way daemons
 * on Debian are run; all of it does nothing when not under one (no
 * NOTIFY_SOCKET, no LISTEN_FDS), so the server behaves exactly as before.
 *
 *  - Socket activation: listening sockets handed over in LISTEN_FDS (TCP
 *    and Unix, with their names from FileDescriptorName=). Such a socket
 *    outlives the process: connections wait in its backlog while the
 *    service restarts, so a restart refuses no client.
 *  - Type=notify: READY=1 once the server listens, RELOADING=1 (with
 *    MONOTONIC_USEC=) when a reload begins and READY=1 again when it is
 *    over, STOPPING=1 when the drain begins, STATUS= with the live counts
 *    every second, and WATCHDOG=1 at half the unit's WatchdogSec= when it
 *    asks for that.
 */
#ifndef ENCHUFE_SERVICE_H
#define ENCHUFE_SERVICE_H

#include <stddef.h>

#define SERVICE_MAX_FDS 8

/* The listening sockets handed over, at most max, their names in names
 * (may be "unknown"). Returns how many (0 when not activated), or -1 with
 * a message in err if one of them is not a listening stream socket. */
int service_listen_fds(int *fds, char names[][64], int max, char *err, size_t errlen);

/* READY=1 with a status line. */
void service_ready(const char *status);

/* STOPPING=1 with a status line. */
void service_stopping(const char *status);

/* RELOADING=1, MONOTONIC_USEC= now; service_ready() when it is over. */
void service_reloading(void);

/* Writes the STATUS= line into out. */
typedef void (*service_status_fn)(void *arg, char *out, size_t cap);

/* Starts the thread that sends STATUS= every second and WATCHDOG=1 at
 * half the watchdog interval, until service_stop_pinger. Returns NULL
 * when there is no service manager to tell (nothing to do). */
struct service_pinger *service_start_pinger(service_status_fn fn, void *arg);
void service_stop_pinger(struct service_pinger *p);

#endif
