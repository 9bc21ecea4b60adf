/*
 * json_agree.c - the fast reader against jansson (see json_agree.h).
 */
#include "json_agree.h"
#include "request_json.h"

#include <jansson.h>
#include <string.h>

static bool same_string(const struct request_string *s, json_t *v)
{
    if (!json_is_string(v))
        return s->text == NULL;
    return s->text && s->len == json_string_length(v) &&
           memcmp(s->text, json_string_value(v), s->len) == 0;
}

const char *json_disagreement(const char *content, size_t len, bool *fast)
{
    struct request_json r;
    enum request_json_status st = request_json_read(content, len, &r);
    *fast = r.fast;
    json_error_t e;
    json_t *tree = json_loadb(content, len, JSON_DECODE_ANY, &e);
    const char *why = NULL;
    if (st == REQUEST_JSON_NO_MEMORY)
        why = "no memory";
    else if (!tree != (st == REQUEST_JSON_INVALID))
        why = tree ? "refused what jansson accepts" : "accepted what jansson refuses";
    else if (tree && r.is_object != json_is_object(tree))
        why = "object or not";
    else if (tree && json_is_object(tree) &&
             !same_string(&r.action, json_object_get(tree, "action")))
        why = "action";
    else if (tree && json_is_object(tree) && !same_string(&r.value, json_object_get(tree, "value")))
        why = "value";
    else if (!tree && strcmp(r.error, e.text) != 0)
        why = "error text";
    json_decref(tree);
    request_json_release(&r);
    return why;
}
