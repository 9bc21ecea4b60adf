/*
 * fuzz_request_json.c - libFuzzer target: the fast request reader
 * (yajl) must read every input exactly as jansson does, and refuse
 * nothing jansson accepts (test/json_agree.c compares them).
 */
#include "json_agree.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool fast;
    const char *why = json_disagreement((const char *)data, size, &fast);
    if (why) {
        fprintf(stderr, "fast reader and jansson disagree: %s (%s)\n", why,
                fast ? "read fast" : "read by jansson");
        abort();
    }
    return 0;
}
