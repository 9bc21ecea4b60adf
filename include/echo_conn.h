/*
 * echo_conn.h - serves one echo connection in a worker: every byte back
 * until the client closes. The twin of app_conn.h.
 */
#ifndef ENCHUFE_ECHO_CONN_H
#define ENCHUFE_ECHO_CONN_H

#include "worker.h"

struct echo_conn_config {
    int write_timeout_ms; /* each chunk's echo (0: none) */
};

/* A worker_serve_fn; arg is a const struct echo_conn_config. */
void echo_conn_serve(struct worker *w, void *arg);

#endif
