/*
 * fuzz_frame.c - libFuzzer target for the frame decoder.
 *
 * The input is fed to the decoder whole and then split at a point taken
 * from its first byte, and the two runs must agree; every complete frame
 * must lie inside the input and describe its own content exactly.
 */
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONTENT 65536

/* Decodes every frame in data[0..size), feeding pieces cut at `cut`.
 * Returns the status that ended the walk and the bytes consumed. */
static enum frame_status walk(const uint8_t *data, size_t size, size_t cut, size_t *consumed)
{
    struct frame_decoder d;
    struct frame f;
    size_t off = 0;
    enum frame_status st = FRAME_NEED_MORE;
    frame_decoder_init(&d, MAX_CONTENT);
    while (off < size) {
        size_t avail = size - off;
        size_t first = cut < avail ? cut : avail;
        st = frame_decode(&d, data + off, first, &f);
        if (st == FRAME_NEED_MORE && first < avail)
            st = frame_decode(&d, data + off, avail, &f);
        if (st != FRAME_COMPLETE)
            break;
        if (f.size > avail || f.content + f.header.content_length != data + off + f.size)
            abort(); /* a frame outside its buffer, or content of the wrong size */
        if (f.header.content_length > MAX_CONTENT)
            abort();
        off += f.size;
    }
    *consumed = off;
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t whole_used, split_used;
    enum frame_status whole = walk(data, size, size, &whole_used);
    size_t cut = size ? data[0] % (size + 1) : 0;
    enum frame_status split = walk(data, size, cut, &split_used);
    if (whole != split || whole_used != split_used)
        abort(); /* how bytes arrive must not change what they mean */
    return 0;
}
