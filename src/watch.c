/*
 * watch.c - the stats watch view (see watch.h).
 */
#include "watch.h"
#include "client.h"
#include "escape.h"
#include "frame.h"
#include "monotime.h"
#include "protocol.h"
#include "snapshot.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINES_PER_HEADER 20

static const char stats_request[] = "{\"action\": \"stats\"}";

/* Asks for one stats answer on *conn (reconnecting if needed). */
static int fetch(const struct watch_config *cfg, struct stream *conn, struct snapshot *out,
                 char *err, size_t errlen)
{
    if (conn->fd < 0 &&
        client_open(cfg->ep, cfg->tls, monotime_deadline(cfg->timeout_ms), conn, err, errlen) < 0)
        return -1;
    struct client_response resp;
    if (client_exchange_on(conn, PROTO_TEXT_JSON, PROTO_UTF8, stats_request,
                        sizeof stats_request - 1, FRAME_DEFAULT_MAX_CONTENT,
                        monotime_deadline(cfg->timeout_ms), &resp, err, errlen) < 0) {
        client_close(conn);
        return -1;
    }
    json_t *obj = json_loadb((const char *)resp.content, resp.length, 0, NULL);
    int rc = snapshot_from_json(json_object_get(obj, "result"), out);
    if (rc < 0)
        snprintf(err, errlen, "the server does not answer stats requests");
    json_decref(obj);
    client_response_free(&resp);
    return rc;
}

static uint64_t errors_of(const struct snapshot *s)
{
    uint64_t n = 0;
    for (int e = 0; e < PROTO_ERR_COUNT; e++)
        n += s->errors[e];
    return n;
}

static void header(void)
{
    printf("%9s %8s %7s %7s %5s %8s %8s %10s %10s\n", "req/s", "err/s", "active", "parked",
           "busy", "p50 ms", "p99 ms", "in KiB/s", "out KiB/s");
}

/* One line: what happened between a and b. */
static void line(const struct snapshot *a, const struct snapshot *b)
{
    double dt = b->uptime_s - a->uptime_s;
    if (dt <= 0)
        dt = 1e-9;
    struct latency_sum l;
    latency_diff(&l, &b->latency, &a->latency);
    printf("%9.1f %8.1f %7llu %7llu %5llu %8.3f %8.3f %10.1f %10.1f\n",
           (double)(b->requests - a->requests) / dt, (double)(errors_of(b) - errors_of(a)) / dt,
           (unsigned long long)b->active, (unsigned long long)b->parked,
           (unsigned long long)b->busy, latency_quantile(&l, 0.5) * 1e3,
           latency_quantile(&l, 0.99) * 1e3, (double)(b->bytes_in - a->bytes_in) / dt / 1024,
           (double)(b->bytes_out - a->bytes_out) / dt / 1024);
    fflush(stdout);
}

/* Sleeps until the absolute monotime_ms() point. */
static void sleep_until(long long when)
{
    long long left;
    while ((left = when - monotime_ms()) > 0) {
        struct timespec t = {left / 1000, (left % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
}

int watch_run(const struct watch_config *cfg)
{
    char err[512];
    struct stream conn = {.fd = -1};
    struct snapshot prev, now;
    if (fetch(cfg, &conn, &prev, err, sizeof err) < 0) {
        fputs("enchufe-cli: ", stderr);
        escape_fputs(stderr, err, strlen(err));
        fputc('\n', stderr);
        return -1;
    }
    long long next = monotime_ms();
    for (int n = 0; cfg->count == 0 || n < cfg->count; n++) {
        next += cfg->interval_ms;
        sleep_until(next);
        if (fetch(cfg, &conn, &now, err, sizeof err) < 0) {
            fputs("enchufe-cli: ", stderr);
            escape_fputs(stderr, err, strlen(err));
            fputc('\n', stderr);
            client_close(&conn);
            return -1;
        }
        if (n % LINES_PER_HEADER == 0)
            header();
        line(&prev, &now);
        prev = now;
    }
    client_close(&conn);
    return 0;
}
