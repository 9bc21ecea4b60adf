/*
 * report.c - formats a bench_result (see report.h).
 */
#include "report.h"

#include <inttypes.h>

static void fmt_time(char *out, size_t cap, double ns)
{
    if (ns < 1e3)
        snprintf(out, cap, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(out, cap, "%.2fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(out, cap, "%.2fms", ns / 1e6);
    else
        snprintf(out, cap, "%.2fs", ns / 1e9);
}

static void fmt_bytes(char *out, size_t cap, double b)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (b >= 1024 && u < 3) {
        b /= 1024;
        u++;
    }
    snprintf(out, cap, "%.2f%s", b, unit[u]);
}

static void print_latency(FILE *out, const char *title, const struct histogram *h)
{
    char mean[32], sd[32], max[32];
    fmt_time(mean, sizeof mean, hist_mean(h));
    fmt_time(sd, sizeof sd, hist_stdev(h));
    fmt_time(max, sizeof max, (double)h->max);
    fprintf(out, "  %-10s %10s %10s %10s\n", title, "Avg", "Stdev", "Max");
    fprintf(out, "  %-10s %10s %10s %10s\n", "", mean, sd, max);
}

static const double percentiles[] = {50, 90, 99, 99.9};

static void print_distribution(FILE *out, const char *title, const struct histogram *h)
{
    fprintf(out, "  %s\n", title);
    for (size_t i = 0; i < sizeof percentiles / sizeof percentiles[0]; i++) {
        char v[32];
        fmt_time(v, sizeof v, (double)hist_percentile(h, percentiles[i]));
        fprintf(out, "  %7g%% %10s\n", percentiles[i], v);
    }
}

/* The hostile connections beside the load: how many the server still
 * let stay at the end, and how many it closed (each then reopened). */
static void print_hostile(FILE *out, const struct siege_stats *h)
{
    fprintf(out, "  Hostile connections (held beside the load; closed ones are reopened):\n");
    fprintf(out, "  %-16s %8s %8s %18s\n", "kind", "asked", "open", "closed by server");
    for (int k = 0; k < SIEGE_KINDS; k++) {
        const struct siege_kind_stats *s = &h->kind[k];
        if (s->target == 0)
            continue;
        fprintf(out, "  %-16s %8d %8d %18" PRIu64 "%s\n", siege_kind_name((enum siege_kind)k),
                s->target, s->open, s->closed_by_server,
                s->connect_failed ? "  (some connects failed)" : "");
    }
}

void report_text(FILE *out, const struct bench_config *cfg, const struct report_info *info,
                 const struct bench_result *res)
{
    fprintf(out, "Running %s @ %s (%s, requests: %s%s)\n",
            cfg->requests ? "a fixed count" : "a timed test", info->target, info->mode, info->mix,
            info->rate > 0 ? ", fixed rate" : "");
    fprintf(out, "  %d threads and %d connections", cfg->threads, cfg->connections);
    if (cfg->pipeline > 1)
        fprintf(out, ", %d requests pipelined on each", cfg->pipeline);
    if (info->rate > 0)
        fprintf(out, ", target %.0f requests/s", info->rate);
    fprintf(out, "\n");
    print_latency(out, "Latency", &res->latency);
    print_distribution(out, info->rate > 0 ? "Latency Distribution (from intended send time)"
                                           : "Latency Distribution",
                       &res->latency);
    if (cfg->mode == BENCH_PER_CONN || res->connect.total > (uint64_t)cfg->connections)
        print_latency(out, "Connect", &res->connect);
    char read[32];
    fmt_bytes(read, sizeof read, (double)res->bytes_read);
    fprintf(out, "  %" PRIu64 " requests in %.2fs, %s read, %" PRIu64 " connections opened\n",
            res->completed, res->elapsed_s, read, res->connections_opened);
    if (cfg->tls)
        fprintf(out, "  TLS: %" PRIu64 " full handshakes, %" PRIu64 " resumed\n", res->tls_full,
                res->tls_resumed);
    if (res->in_flight)
        fprintf(out, "  %" PRIu64 " requests in flight at the end (not counted)\n",
                res->in_flight);
    if (res->never_answered)
        fprintf(out, "  %" PRIu64 " of %d connections never got an answer\n",
                res->never_answered, cfg->connections);
    if (res->retried)
        fprintf(out, "  %" PRIu64 " requests retried once on a new connection (the server closed "
                     "an idle keep-alive connection as they went out)\n", res->retried);
    uint64_t errors = 0;
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        errors += res->errors[e];
    if (errors) {
        fprintf(out, "  Errors: %" PRIu64 " (", errors);
        const char *sep = "";
        for (int e = 0; e < BENCH_ERR_KINDS; e++)
            if (res->errors[e]) {
                fprintf(out, "%s%s %" PRIu64, sep, bench_error_name(e), res->errors[e]);
                sep = ", ";
            }
        fprintf(out, ")\n");
    }
    if (info->hostile)
        print_hostile(out, info->hostile);
    double secs = res->elapsed_s > 0 ? res->elapsed_s : 1;
    char per_s[32];
    fmt_bytes(per_s, sizeof per_s, (double)res->bytes_read / secs);
    fprintf(out, "Requests/sec: %12.2f\n", (double)res->completed / secs);
    fprintf(out, "Transfer/sec: %12s\n", per_s);
}

static void json_hist(FILE *out, const char *name, const struct histogram *h)
{
    fprintf(out, "\"%s\": {\"count\": %" PRIu64 ", \"mean\": %.3f, \"stdev\": %.3f, "
                 "\"max\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p99.9\": %.3f}",
            name, h->total, hist_mean(h) / 1e3, hist_stdev(h) / 1e3, (double)h->max / 1e3,
            (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 90) / 1e3,
            (double)hist_percentile(h, 99) / 1e3, (double)hist_percentile(h, 99.9) / 1e3);
}

static void json_hostile(FILE *out, const struct siege_stats *h)
{
    fprintf(out, ", \"hostile\": {");
    const char *sep = "";
    for (int k = 0; k < SIEGE_KINDS; k++) {
        const struct siege_kind_stats *s = &h->kind[k];
        if (s->target == 0)
            continue;
        fprintf(out, "%s\"%s\": {\"asked\": %d, \"open\": %d, \"opened\": %" PRIu64
                     ", \"closed_by_server\": %" PRIu64 ", \"connect_failed\": %" PRIu64 "}",
                sep, siege_kind_name((enum siege_kind)k), s->target, s->open, s->opened,
                s->closed_by_server, s->connect_failed);
        sep = ", ";
    }
    fprintf(out, "}");
}

void report_json(FILE *out, const struct bench_config *cfg, const struct report_info *info,
                 const struct bench_result *res)
{
    double secs = res->elapsed_s > 0 ? res->elapsed_s : 1;
    fprintf(out, "{\"target\": \"%s\", \"mode\": \"%s\", \"mix\": \"%s\", \"threads\": %d, "
                 "\"connections\": %d, \"pipeline\": %d, \"rate\": %.0f, \"elapsed_s\": %.3f, ",
            info->target, info->mode, info->mix, cfg->threads, cfg->connections, cfg->pipeline,
            info->rate, res->elapsed_s);
    fprintf(out, "\"requests\": %" PRIu64 ", \"requests_per_s\": %.2f, \"bytes_read\": %" PRIu64
                 ", \"in_flight\": %" PRIu64 ", \"connections_opened\": %" PRIu64
                 ", \"never_answered\": %" PRIu64 ", \"retried\": %" PRIu64
                 ", \"tls\": %s, \"tls_full_handshakes\": %" PRIu64
                 ", \"tls_resumed\": %" PRIu64 ", ",
            res->completed, (double)res->completed / secs, res->bytes_read, res->in_flight,
            res->connections_opened, res->never_answered, res->retried,
            cfg->tls ? "true" : "false", res->tls_full, res->tls_resumed);
    json_hist(out, "latency_us", &res->latency);
    fprintf(out, ", ");
    json_hist(out, "connect_us", &res->connect);
    fprintf(out, ", \"errors\": {");
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        fprintf(out, "%s\"%s\": %" PRIu64, e ? ", " : "", bench_error_name(e), res->errors[e]);
    fprintf(out, "}");
    if (info->hostile)
        json_hostile(out, info->hostile);
    fprintf(out, "}\n");
}
