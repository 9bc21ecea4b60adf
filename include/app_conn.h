/*
 * app_conn.h - serves one application-protocol connection: read a frame,
 * answer it, repeat until the client closes, idles out, or errs.
 */
#ifndef ENCHUFE_APP_CONN_H
#define ENCHUFE_APP_CONN_H

#include "pool.h"

#include <stdbool.h>

/* A pool_serve_fn; ctx is the server's const struct serve_ctx. */
void app_conn_serve(struct pool_conn *conn, void *ctx);

#endif
