/*
 * echo_conn.h - serves one echo connection in a worker: every byte back,
 * for as long as the client keeps up (then it waits in the poller), until
 * the client closes. The twin of app_conn.h.
 */
#ifndef ENCHUFE_ECHO_CONN_H
#define ENCHUFE_ECHO_CONN_H

#include "worker.h"

struct echo_conn_config {
    int write_timeout_ms; /* each chunk's echo, from a write that must wait (0: none) */
};

/* A worker_serve_fn; arg is a const struct echo_conn_config. */
enum worker_next echo_conn_serve(struct worker *w, struct conn *c, void *arg);

#endif
