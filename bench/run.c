/*
 * run.c - naming and merging what a load run measured (see run.h).
 */
#include "run.h"

const char *bench_error_name(enum bench_error e)
{
    static const char *const names[] = {"connect", "read", "write", "timeout", "closed",
                                        "framing", "header", "content", "tls"};
    return e < BENCH_ERR_KINDS ? names[e] : "?";
}

void bench_result_merge(struct bench_result *dst, const struct bench_result *src)
{
    dst->completed += src->completed;
    dst->bytes_read += src->bytes_read;
    dst->in_flight += src->in_flight;
    dst->retried += src->retried;
    dst->never_answered += src->never_answered;
    dst->connections_opened += src->connections_opened;
    dst->tls_full += src->tls_full;
    dst->tls_resumed += src->tls_resumed;
    dst->ever_connected |= src->ever_connected;
    if (src->connect_errno)
        dst->connect_errno = src->connect_errno;
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        dst->errors[e] += src->errors[e];
    hist_merge(&dst->latency, &src->latency);
    hist_merge(&dst->connect, &src->connect);
}
