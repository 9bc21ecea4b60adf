/*
 * json_agree.h - request_json.c's fast reader held against jansson, for
 * test_request_json.c and the fuzz target fuzz_request_json.
 */
#ifndef ENCHUFE_TEST_JSON_AGREE_H
#define ENCHUFE_TEST_JSON_AGREE_H

#include <stdbool.h>
#include <stddef.h>

/* Reads content both ways: request_json_read() and jansson alone
 * (json_loadb with JSON_DECODE_ANY, the strings taken from its tree).
 * Returns NULL if they agree (same verdict, same object-ness, the same
 * action and value byte for byte), else what differs. *fast says
 * whether the fast reader read it. */
const char *json_disagreement(const char *content, size_t len, bool *fast);

#endif
