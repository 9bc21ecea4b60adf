/*
 * app_conn.h - serves one application-protocol connection in a worker:
 * read a frame, answer it, repeat, for as long as the client keeps up;
 * then the connection waits in the poller, and the next call resumes
 * where this one stopped. Its twin for the echo protocol is echo_conn.h.
 */
#ifndef ENCHUFE_APP_CONN_H
#define ENCHUFE_APP_CONN_H

#include "app.h"
#include "worker.h"

#include <stddef.h>

struct app_conn_config {
    size_t max_content;    /* largest request content accepted */
    int read_timeout_ms;   /* the whole request, first byte to last (0: none) */
    int write_timeout_ms;  /* the whole response (0: none) */
    struct app_server server; /* what stats and health requests ask of the server */
};

/* A worker_serve_fn; arg is a const struct app_conn_config. */
enum worker_next app_conn_serve(struct worker *w, struct conn *c, void *arg);

#endif
