/*
 * snapshot.c - the stats answer's JSON, both ways (see snapshot.h).
 */
#include "snapshot.h"

#include <string.h>

static json_t *latency_json(const struct latency_sum *l)
{
    json_t *buckets = json_array();
    for (size_t i = 0; i <= LATENCY_BOUNDS; i++)
        json_array_append_new(buckets, json_integer((json_int_t)l->buckets[i]));
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:o}", "count", (json_int_t)l->count,
                     "sum_s", (double)l->sum_ns / 1e9,
                     "p50_ms", latency_quantile(l, 0.50) * 1e3,
                     "p90_ms", latency_quantile(l, 0.90) * 1e3,
                     "p99_ms", latency_quantile(l, 0.99) * 1e3,
                     "p999_ms", latency_quantile(l, 0.999) * 1e3, "buckets", buckets);
}

static json_t *tls_json(const struct snapshot *s)
{
    json_t *failed = json_object();
    for (int i = 0; i < COUNTER_TLS_FAILURES; i++)
        json_object_set_new(failed, counter_tls_failure_name(i),
                            json_integer((json_int_t)s->tls_failed[i]));
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "handshakes", (json_int_t)s->tls_handshakes,
                     "resumed", (json_int_t)s->tls_resumed,
                     "waiting", (json_int_t)s->tls_waiting,
                     "waited", (json_int_t)s->tls_waited, "failed", failed,
                     "certificate_not_after", (json_int_t)s->tls_not_after);
}

static json_t *reloads_json(const struct snapshot *s)
{
    return json_pack("{s:I, s:I, s:I, s:b}", "done", (json_int_t)s->reloads_done,
                     "failed", (json_int_t)s->reloads_failed,
                     "last_success", (json_int_t)s->reload_last_ok_s,
                     "last_failed", s->reload_last_failed);
}

static json_t *closed_json(const struct snapshot *s)
{
    json_t *closed = json_object();
    for (int i = 0; i < CONN_END_COUNT; i++)
        json_object_set_new(closed, conn_end_name((enum conn_end)i),
                            json_integer((json_int_t)s->ended[i]));
    return closed;
}

json_t *snapshot_to_json(const struct snapshot *s)
{
    json_t *requests = json_pack("{s:I}", "total", (json_int_t)s->requests);
    json_t *errors = json_object();
    for (int k = 0; k < COUNTER_FIRST_ERROR; k++)
        json_object_set_new(requests, counter_kind_name((enum counter)k),
                            json_integer((json_int_t)s->answers[k]));
    for (int e = 0; e < PROTO_ERR_COUNT; e++)
        json_object_set_new(errors, proto_error_code((enum proto_error)e),
                            json_integer((json_int_t)s->errors[e]));
    return json_pack("{s:f, s:{s:I, s:I, s:I, s:I, s:o, s:I, s:I}, s:{s:I, s:I}, s:o, s:o, "
                     "s:{s:I, s:I}, s:o, s:o, s:{s:I}, s:o}",
                     "uptime_s", s->uptime_s,
                     "connections", "accepted", (json_int_t)s->accepted,
                     "active", (json_int_t)s->active, "queued", (json_int_t)s->queued,
                     "parked", (json_int_t)s->parked, "closed", closed_json(s),
                     "buffered_bytes", (json_int_t)s->buffered,
                     "buffered_limit", (json_int_t)s->buffer_budget,
                     "workers", "total", (json_int_t)s->workers, "busy", (json_int_t)s->busy,
                     "requests", requests, "errors", errors,
                     "bytes", "in", (json_int_t)s->bytes_in, "out", (json_int_t)s->bytes_out,
                     "latency", latency_json(&s->latency), "tls", tls_json(s),
                     "data", "entries", (json_int_t)s->data_entries,
                     "reloads", reloads_json(s));
}

static uint64_t get(json_t *obj, const char *group, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(json_object_get(obj, group), key));
    return v > 0 ? (uint64_t)v : 0;
}

int snapshot_from_json(json_t *obj, struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    json_t *buckets = json_object_get(json_object_get(obj, "latency"), "buckets");
    if (!json_is_object(obj) || !json_is_object(json_object_get(obj, "requests")))
        return -1;
    s->uptime_s = json_number_value(json_object_get(obj, "uptime_s"));
    s->accepted = get(obj, "connections", "accepted");
    s->active = get(obj, "connections", "active");
    s->queued = get(obj, "connections", "queued");
    s->parked = get(obj, "connections", "parked");
    for (int i = 0; i < CONN_END_COUNT; i++)
        s->ended[i] = get(json_object_get(obj, "connections"), "closed",
                          conn_end_name((enum conn_end)i));
    s->buffered = get(obj, "connections", "buffered_bytes");
    s->buffer_budget = get(obj, "connections", "buffered_limit");
    s->workers = get(obj, "workers", "total");
    s->busy = get(obj, "workers", "busy");
    s->requests = get(obj, "requests", "total");
    for (int k = 0; k < COUNTER_FIRST_ERROR; k++)
        s->answers[k] = get(obj, "requests", counter_kind_name((enum counter)k));
    for (int e = 0; e < PROTO_ERR_COUNT; e++)
        s->errors[e] = get(obj, "errors", proto_error_code((enum proto_error)e));
    s->bytes_in = get(obj, "bytes", "in");
    s->bytes_out = get(obj, "bytes", "out");
    s->tls_handshakes = get(obj, "tls", "handshakes");
    s->tls_resumed = get(obj, "tls", "resumed");
    s->tls_waiting = get(obj, "tls", "waiting");
    s->tls_waited = get(obj, "tls", "waited");
    for (int i = 0; i < COUNTER_TLS_FAILURES; i++)
        s->tls_failed[i] = get(json_object_get(obj, "tls"), "failed", counter_tls_failure_name(i));
    s->tls_not_after = (long long)get(obj, "tls", "certificate_not_after");
    s->data_entries = get(obj, "data", "entries");
    s->reloads_done = get(obj, "reloads", "done");
    s->reloads_failed = get(obj, "reloads", "failed");
    s->reload_last_ok_s = (long long)get(obj, "reloads", "last_success");
    s->reload_last_failed = json_is_true(json_object_get(json_object_get(obj, "reloads"),
                                                         "last_failed"));
    for (size_t i = 0; i <= LATENCY_BOUNDS && i < json_array_size(buckets); i++) {
        json_int_t n = json_integer_value(json_array_get(buckets, i));
        s->latency.buckets[i] = n > 0 ? (uint64_t)n : 0;
        s->latency.count += s->latency.buckets[i];
    }
    s->latency.sum_ns = (uint64_t)(json_number_value(
                            json_object_get(json_object_get(obj, "latency"), "sum_s")) * 1e9);
    return 0;
}
