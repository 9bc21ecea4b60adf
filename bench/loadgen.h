/*
 * loadgen.h - the engine of enchufe-bench: many non-blocking connections
 * driven by one epoll loop per thread, every response checked.
 *
 * Each thread owns its share of the connections and keeps its own
 * statistics; they are merged once at the end, so nothing is shared on the
 * hot path. In closed-loop mode each connection sends its next request as
 * soon as the last is answered and latency runs from the send. With a
 * fixed rate (-R) requests are due on a schedule and latency runs from the
 * time each was due, so a server that stalls shows its stall in the
 * percentiles instead of hiding it by slowing the generator down
 * (coordinated omission, as wrk2 corrects it).
 */
#ifndef ENCHUFE_BENCH_LOADGEN_H
#define ENCHUFE_BENCH_LOADGEN_H

#include "run.h"

#include <stddef.h>

/* Runs the load. Returns 0, or -1 with a message in err (bad address,
 * no threads). Errors met during the run are counted, not returned. */
int bench_run(const struct bench_config *cfg, struct bench_result *res, char *err,
              size_t errlen);

#endif
