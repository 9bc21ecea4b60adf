/*
 * report.h - enchufe-bench's output: a wrk-like summary for people and
 * one JSON object for machines.
 */
#ifndef ENCHUFE_BENCH_REPORT_H
#define ENCHUFE_BENCH_REPORT_H

#include "run.h"
#include "siege.h"

#include <stdio.h>

/* What the run was, for the headline and the JSON. */
struct report_info {
    const char *target;  /* HOST:PORT */
    const char *mode;    /* keepalive / per-conn */
    const char *mix;     /* e.g. "hit,binary:4096" */
    double rate;         /* 0: closed loop */
    const struct siege_stats *hostile; /* the hostile connections held (NULL: none) */
};

void report_text(FILE *out, const struct bench_config *cfg, const struct report_info *info,
                 const struct bench_result *res);
void report_json(FILE *out, const struct bench_config *cfg, const struct report_info *info,
                 const struct bench_result *res);

#endif
