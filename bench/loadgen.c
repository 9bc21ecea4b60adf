/*
 * loadgen.c - the load generator's threads (see loadgen.h): each owns its
 * share of the connections (slots, slot.c) and one epoll loop, decides
 * what each slot sends next (at once in closed loop, when due at a fixed
 * rate, within -n's quota), sweeps for deadlines and reconnects, and the
 * main thread prints progress and merges the results.
 */
#include "loadgen.h"
#include "monotime.h"
#include "net.h"
#include "slot.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_NS 100000000ULL /* timeouts and reconnects are checked this often */
#define MAX_EVENTS 256

struct lg_thread {
    pthread_t thread;
    struct slot_home home;     /* settings, epoll set and counts its slots share */
    struct slot *slots;
    int nslots;
    uint64_t start, warm, end; /* ns: run start, end of warmup, deadline */
    uint64_t quota, issued;    /* -n: requests this thread may send */
    uint64_t interval, next_due; /* -R: schedule */
    int idle_head;             /* -R: stack of idle slots */
    uint64_t connect_failures; /* warmup included */
    bool warmed;
};

/* --- what a slot sends next ------------------------------------------------- */

/* Rate mode: a slot with no request waits here to be handed the next one. */
static void push_idle(struct lg_thread *t, struct slot *s)
{
    if (s->in_idle)
        return;
    s->in_idle = true;
    s->idle_next = t->idle_head;
    t->idle_head = (int)(s - t->slots);
}

static struct slot *pop_idle(struct lg_thread *t)
{
    struct slot *s = &t->slots[t->idle_head];
    t->idle_head = s->idle_next;
    s->in_idle = false;
    return s;
}

static bool may_issue(const struct lg_thread *t)
{
    return t->issued < t->quota;
}

/* Takes the next batch's requests from the quota: the pipeline depth, or
 * what -n leaves. */
static unsigned take_batch(struct lg_thread *t)
{
    uint64_t left = t->quota - t->issued, depth = (uint64_t)t->home.cfg->pipeline;
    unsigned n = (unsigned)(left < depth ? left : depth);
    t->issued += n;
    return n;
}

/* A slot failed. A connect that failed with no request assigned yet (a
 * keep-alive slot reconnecting) still uses up one of -n's requests, so
 * that a run against a server that refuses every connection ends. At a
 * fixed rate the slot waits for its next due request; in closed loop the
 * sweep reopens it. */
static void after_failure(struct lg_thread *t, struct slot *s)
{
    if (s->error == BENCH_ERR_CONNECT) {
        t->connect_failures++;
        if (!s->dropped && may_issue(t))
            t->issued++;
    }
    if (t->interval)
        push_idle(t, s);
}

/* Acts on what a slot call left, until the slot waits: an idle slot gets
 * its next batch at once in closed loop, or waits on the idle stack to be
 * due at a fixed rate. */
static void follow_up(struct lg_thread *t, struct slot *s, enum slot_outcome o)
{
    while (o != SLOT_WAITING) {
        if (o == SLOT_FAILED) {
            after_failure(t, s);
            return;
        }
        if (t->interval) {
            push_idle(t, s);
            return;
        }
        if (!may_issue(t))
            return;
        o = slot_request(&t->home, s, take_batch(t), monotime_ns());
    }
}

/* Hands every request that is due to an idle slot, keeping its due time
 * as the latency origin, however late it actually goes out. */
static void issue_due(struct lg_thread *t, uint64_t now)
{
    while (t->next_due <= now && may_issue(t) && t->idle_head >= 0) {
        struct slot *s = pop_idle(t);
        uint64_t due = t->next_due;
        t->issued++;
        t->next_due += t->interval;
        follow_up(t, s, slot_request(&t->home, s, 1, due));
    }
}

/* Every SWEEP_NS: time out stuck requests and reopen closed slots. */
static void sweep(struct lg_thread *t, uint64_t now)
{
    const struct bench_config *cfg = t->home.cfg;
    for (int i = 0; i < t->nslots; i++) {
        struct slot *s = &t->slots[i];
        enum slot_outcome o = slot_check_deadline(&t->home, s, now);
        if (o == SLOT_WAITING && s->state == S_CLOSED && !t->interval) {
            if (cfg->mode == BENCH_KEEPALIVE && may_issue(t))
                o = slot_open(&t->home, s);
            else if (cfg->mode == BENCH_PER_CONN && !s->has_request)
                o = SLOT_IDLE;
        }
        follow_up(t, s, o);
    }
}

/* --- the loop --------------------------------------------------------------- */

static uint64_t in_flight(const struct lg_thread *t)
{
    uint64_t n = 0;
    for (int i = 0; i < t->nslots; i++)
        n += slot_unanswered(&t->slots[i]);
    return n;
}

static void reset_stats(struct lg_thread *t)
{
    struct bench_result *res = &t->home.res;
    memset(res->errors, 0, sizeof res->errors);
    res->completed = res->bytes_read = res->connections_opened = 0;
    res->tls_full = res->tls_resumed = 0;
    hist_reset(&res->latency);
    hist_reset(&res->connect);
    atomic_store_explicit(&t->home.progress, 0, memory_order_relaxed);
}

/* How long epoll may sleep: until the next sweep, the deadline, the end
 * of the warmup or, at a fixed rate, the next due request. */
static uint64_t wait_ns(const struct lg_thread *t, uint64_t now, uint64_t next_sweep)
{
    uint64_t until = next_sweep < t->end ? next_sweep : t->end;
    if (t->interval && t->idle_head >= 0 && t->next_due < until)
        until = t->next_due;
    if (!t->warmed && t->warm < until)
        until = t->warm;
    return until <= now ? 0 : until - now;
}

/* epoll_wait with a nanosecond timeout: at a fixed rate, rounding the
 * wait up to whole milliseconds would add up to a millisecond of made-up
 * latency to every request. Falls back on kernels without epoll_pwait2. */
static int wait_events(struct lg_thread *t, struct epoll_event *events, uint64_t ns)
{
    static atomic_bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                              .tv_nsec = (long)(ns % 1000000000ULL)};
        int n = epoll_pwait2(t->home.epfd, events, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&no_pwait2, true);
    }
    return epoll_wait(t->home.epfd, events, MAX_EVENTS, (int)((ns + 999999) / 1000000));
}

/* Keep-alive slots connect first; per-connection slots connect with their
 * first request. At a fixed rate every slot waits to be due. */
static void start_slots(struct lg_thread *t)
{
    bool keepalive = t->home.cfg->mode == BENCH_KEEPALIVE;
    for (int i = 0; i < t->nslots; i++) {
        struct slot *s = &t->slots[i];
        s->next = (unsigned)i;
        if (t->interval && !keepalive)
            s->state = S_IDLE;
        follow_up(t, s, keepalive ? slot_open(&t->home, s) : SLOT_IDLE);
        if (t->interval)
            push_idle(t, s);
    }
}

static bool finished(struct lg_thread *t, uint64_t now)
{
    if (now >= t->end)
        return true;
    /* Every connection has been tried and none got through: nothing
     * listens there, and waiting would only repeat that. */
    if (!t->home.res.ever_connected && t->connect_failures >= (uint64_t)t->nslots)
        return true;
    return t->home.cfg->requests && !may_issue(t) && in_flight(t) == 0;
}

static void *thread_main(void *arg)
{
    struct lg_thread *t = arg;
    struct epoll_event events[MAX_EVENTS];
    uint64_t now = monotime_ns(), next_sweep = now + SWEEP_NS;
    t->next_due = t->start;
    t->idle_head = -1;
    t->warmed = t->warm <= now;
    start_slots(t);
    while (!finished(t, now)) {
        if (!t->warmed && now >= t->warm) {
            reset_stats(t);
            t->warmed = true;
        }
        if (t->interval)
            issue_due(t, now);
        int n = wait_events(t, events, wait_ns(t, now, next_sweep));
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            follow_up(t, s, slot_on_event(&t->home, s, events[i].events));
        }
        now = monotime_ns();
        if (now >= next_sweep) {
            sweep(t, now);
            next_sweep = now + SWEEP_NS;
        }
    }
    t->home.res.in_flight = in_flight(t);
    for (int i = 0; i < t->nslots; i++)
        t->home.res.never_answered += t->slots[i].answered == 0;
    return NULL;
}

/* --- setup, progress and results -------------------------------------------- */

static int setup_thread(struct lg_thread *t, const struct bench_config *cfg, int index)
{
    int base = cfg->connections / cfg->threads, extra = cfg->connections % cfg->threads;
    size_t answer_cap = slot_answer_capacity(cfg);
    size_t batch_cap = cfg->pipeline > 1 ? slot_batch_capacity(cfg) : 0;
    t->home.cfg = cfg;
    t->nslots = base + (index < extra);
    t->slots = calloc((size_t)t->nslots, sizeof *t->slots);
    t->home.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!t->slots || t->home.epfd < 0)
        return -1;
    for (int i = 0; i < t->nslots; i++)
        if (slot_init(&t->slots[i], answer_cap, batch_cap) < 0)
            return -1;
    uint64_t per = cfg->requests / (uint64_t)cfg->threads;
    t->quota = cfg->requests ? per + ((uint64_t)index < cfg->requests % (uint64_t)cfg->threads)
                             : UINT64_MAX;
    if (cfg->rate > 0)
        t->interval = (uint64_t)(1e9 * cfg->threads / cfg->rate);
    return 0;
}

static void report_progress(struct lg_thread *ts, int n, uint64_t start, uint64_t end)
{
    uint64_t last = 0, last_t = monotime_ns();
    while (last_t + 1000000000ULL < end) {
        struct timespec one_s = {1, 0};
        nanosleep(&one_s, NULL);
        uint64_t total = 0, now = monotime_ns();
        for (int i = 0; i < n; i++)
            total += atomic_load_explicit(&ts[i].home.progress, memory_order_relaxed);
        if (total < last) /* the warmup ended and counters restarted */
            last = 0;
        fprintf(stderr, "  [%3.0fs] %.0f requests/s\n", (double)(now - start) / 1e9,
                (double)(total - last) * 1e9 / (double)(now - last_t));
        last = total;
        last_t = now;
    }
}

static void free_threads(struct lg_thread *ts, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; ts[i].slots && j < ts[i].nslots; j++) {
            slot_close(&ts[i].home, &ts[i].slots[j]);
            slot_free(&ts[i].slots[j]);
        }
        free(ts[i].slots);
        if (ts[i].home.epfd >= 0)
            close(ts[i].home.epfd);
    }
    free(ts);
}

int bench_run(const struct bench_config *cfg, struct bench_result *res, char *err, size_t errlen)
{
    struct net_address addr;
    memset(res, 0, sizeof *res);
    if (cfg->threads < 1 || cfg->connections < cfg->threads || cfg->mix_len == 0 ||
        cfg->pipeline < 1 || (cfg->pipeline > 1 && cfg->rate > 0)) {
        snprintf(err, errlen, "need at least one thread, a connection per thread, a request, "
                              "and a pipeline depth of 1 at a fixed rate");
        return -1;
    }
    struct net_endpoint ep = {.host = cfg->host, .port = cfg->port, .unix_path = cfg->unix_path};
    if (net_resolve(&ep, &addr, err, errlen) < 0)
        return -1;
    struct lg_thread *ts = calloc((size_t)cfg->threads, sizeof *ts);
    int ok = ts != NULL;
    for (int i = 0; ok && i < cfg->threads; i++) {
        ts[i].home.epfd = -1;
        ts[i].home.addr = &addr;
        ok = setup_thread(&ts[i], cfg, i) == 0;
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory or descriptors setting up %d connections",
                 cfg->connections);
        if (ts)
            free_threads(ts, cfg->threads);
        return -1;
    }
    uint64_t start = monotime_ns(), warm = start + (uint64_t)(cfg->warmup_s * 1e9);
    /* -n runs have no deadline but a generous bound, so none can hang. */
    double run_s = cfg->requests ? 86400.0 : cfg->duration_s;
    uint64_t end = warm + (uint64_t)(run_s * 1e9);
    for (int i = 0; i < cfg->threads; i++) {
        ts[i].start = start;
        ts[i].warm = warm;
        ts[i].end = end;
        pthread_create(&ts[i].thread, NULL, thread_main, &ts[i]);
    }
    if (cfg->progress && !cfg->requests && run_s > 3)
        report_progress(ts, cfg->threads, start, end);
    for (int i = 0; i < cfg->threads; i++)
        pthread_join(ts[i].thread, NULL);
    uint64_t stop = monotime_ns();
    for (int i = 0; i < cfg->threads; i++)
        bench_result_merge(res, &ts[i].home.res);
    res->elapsed_s = (double)(stop - (warm > start ? warm : start)) / 1e9;
    free_threads(ts, cfg->threads);
    return 0;
}
