/*
 * request.h - the requests enchufe-bench sends and the answers it demands
 * (written from docs/protocol.md, not taken from the server's code).
 */
#ifndef ENCHUFE_BENCH_REQUEST_H
#define ENCHUFE_BENCH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_kind { BENCH_HIT, BENCH_MISS, BENCH_BINARY, BENCH_ECHO, BENCH_RAW };

/* One prepared request and the answer it must get. */
struct bench_request {
    enum bench_kind kind;
    uint8_t *bytes; /* what is sent */
    size_t len;
    bool framed;    /* the answer is an enchufe frame (else raw bytes) */
    char content_type[64];
    char content_encoding[16];
    uint8_t *expect; /* the exact answer content (or raw bytes) */
    size_t expect_len;
    bool check_bytes; /* false: raw answers are only counted, not compared */
};

/* Builds a request of the given kind (size: the binary or echo payload).
 * Returns 0, or -1 if memory ran out. */
int bench_prepare(struct bench_request *r, enum bench_kind kind, size_t size);

/* A raw request; expect may be NULL to only count expect_len bytes. */
int bench_prepare_raw(struct bench_request *r, const uint8_t *bytes, size_t len,
                      const uint8_t *expect, size_t expect_len);

void bench_request_free(struct bench_request *r);

#endif
