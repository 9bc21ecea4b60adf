/*
 * outbox.c - answers sent together (see outbox.h).
 */
#include "outbox.h"

void outbox_init(struct outbox *o)
{
    o->n = 0;
    o->bytes = 0;
}

struct app_response *outbox_next(struct outbox *o)
{
    return &o->answers[o->n].resp;
}

int outbox_commit(struct outbox *o, uint64_t started_ns)
{
    struct outbox_answer *a = &o->answers[o->n];
    int n = frame_encode_header(a->head, a->resp.content_type, a->resp.content_encoding,
                                a->resp.length);
    if (n < 0)
        return -1;
    a->head_len = (size_t)n;
    a->started_ns = started_ns;
    o->n++;
    o->bytes += a->head_len + a->resp.length;
    return 0;
}

bool outbox_full(const struct outbox *o)
{
    return o->n == OUTBOX_ANSWERS || o->bytes >= OUTBOX_BYTES;
}

int outbox_iov(const struct outbox *o, struct iovec *iov)
{
    struct iovec *v = iov;
    for (int i = 0; i < o->n; i++) {
        *v++ = (struct iovec){.iov_base = (void *)o->answers[i].head,
                              .iov_len = o->answers[i].head_len};
        *v++ = (struct iovec){.iov_base = (void *)o->answers[i].resp.content,
                              .iov_len = o->answers[i].resp.length};
    }
    return (int)(v - iov);
}

void outbox_clear(struct outbox *o)
{
    for (int i = 0; i < o->n; i++)
        app_response_free(&o->answers[i].resp);
    outbox_init(o);
}
