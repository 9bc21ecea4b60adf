/*
 * service.c - systemd's notify protocol and socket activation, through
 * libsystemd (see service.h).
 */
#include "service.h"
#include "monotime.h"

#include <systemd/sd-daemon.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int service_listen_fds(int *fds, char names[][64], int max, char *err, size_t errlen)
{
    char **given = NULL;
    int n = sd_listen_fds_with_names(1, &given);
    if (n < 0) {
        snprintf(err, errlen, "LISTEN_FDS: %s", strerror(-n));
        return -1;
    }
    if (n == 0)
        return 0;
    int rc = n;
    if (n > max) {
        snprintf(err, errlen, "systemd handed over %d sockets; at most %d are used", n, max);
        rc = -1;
    }
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        if (rc > 0 && sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            snprintf(err, errlen, "socket %d handed over by systemd (%s) is not a listening "
                                  "stream socket", fd, given && given[i] ? given[i] : "unnamed");
            rc = -1;
        }
        if (rc > 0) {
            fds[i] = fd;
            snprintf(names[i], 64, "%s", given && given[i] ? given[i] : "unknown");
        }
        if (given)
            free(given[i]);
    }
    free(given);
    return rc;
}

static void notify(const char *what, const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s\nSTATUS=%s", what, status);
    sd_notify(0, msg);
}

void service_ready(const char *status)
{
    notify("READY=1", status);
}

void service_stopping(const char *status)
{
    notify("STOPPING=1", status);
}

void service_reloading(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char msg[128];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000);
    sd_notify(0, msg);
}

struct service_pinger {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    uint64_t watchdog_ms; /* 0: no watchdog */
    service_status_fn fn;
    void *arg;
};

static void *pinger_main(void *arg)
{
    struct service_pinger *p = arg;
    long long next_status = monotime_ms(), next_watchdog = monotime_ms();
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        long long now = monotime_ms();
        if (p->watchdog_ms && now >= next_watchdog) {
            sd_notify(0, "WATCHDOG=1");
            next_watchdog = now + (long long)p->watchdog_ms / 2;
        }
        if (now >= next_status) {
            char status[256], msg[300];
            p->fn(p->arg, status, sizeof status);
            snprintf(msg, sizeof msg, "STATUS=%s", status);
            sd_notify(0, msg);
            next_status = now + 1000;
        }
        long long until = next_status;
        if (p->watchdog_ms && next_watchdog < until)
            until = next_watchdog;
        struct timespec t = monotime_timespec_after((int)(until - now));
        pthread_cond_timedwait(&p->wake, &p->lock, &t);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct service_pinger *service_start_pinger(service_status_fn fn, void *arg)
{
    if (!getenv("NOTIFY_SOCKET"))
        return NULL;
    struct service_pinger *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0)
        p->watchdog_ms = usec / 1000;
    p->fn = fn;
    p->arg = arg;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, pinger_main, p) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

void service_stop_pinger(struct service_pinger *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
