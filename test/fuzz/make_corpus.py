#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: valid and broken enchufe messages.
Run from the repository root; the files it writes are committed."""
import json
import os
import struct


def frame(header, content=b""):
    h = header if isinstance(header, bytes) else json.dumps(header, ensure_ascii=False).encode()
    return struct.pack(">H", len(h)) + h + content


def hdr(ctype="text/json", enc="utf-8", length=0, order="little", **extra):
    d = {"byteorder": order, "content-type": ctype, "content-encoding": enc,
         "content-length": length}
    d.update(extra)
    return d


def req(action, value):
    c = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode()
    return frame(hdr(length=len(c)), c)


seeds = {
    "search_morpheus": req("search", "morpheus"),
    "search_dog": req("search", "\U0001f436"),
    "search_miss": req("search", "neo"),
    "invalid_action": req("find", "x"),
    "binary": frame(hdr("binary/custom-client-binary-type", "binary", 12), b"getsomething"),
    "binary_empty": frame(hdr("binary/x", "binary", 0)),
    "pipelined": req("search", "ring") + req("search", "x"),
    "big_endian_extra_keys": frame(hdr(order="big", length=2, extra=[1, {"a": None}]), b"{}"),
    "proto_zero": b"\x00\x00",
    "not_json": frame(b"{not json}"),
    "not_object": frame(b"[1,2,3]"),
    "bad_utf8": frame(b'{"byteorder": "l\xff"}'),
    "missing_length": frame({"byteorder": "little", "content-type": "text/json",
                             "content-encoding": "utf-8"}),
    "negative_length": frame(hdr(length=-1)),
    "fractional_length": frame(b'{"byteorder": "little", "content-type": "a", '
                               b'"content-encoding": "b", "content-length": 4.5}'),
    "too_large": frame(hdr(length=10 ** 9)),
    "duplicate_key": frame(b'{"byteorder": "little", "byteorder": "big", "content-type": "a", '
                           b'"content-encoding": "b", "content-length": 0}'),
    "bad_content": frame(hdr(length=5), b"{oops"),
    "deep": frame(b"[" * 3000 + b"]" * 3000),
    "truncated": req("search", "ring")[:-3],
}

for target in ("frame", "request"):
    d = os.path.join("test", "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
