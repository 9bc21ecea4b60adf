/*
 * echo.h - serves one echo connection: every byte back until EOF.
 */
#ifndef ENCHUFE_ECHO_H
#define ENCHUFE_ECHO_H

#include "pool.h"

#include <stdbool.h>

/* A pool_serve_fn; ctx is the server's const struct serve_ctx. */
void echo_conn_serve(struct pool_conn *conn, void *ctx);

#endif
