#!/usr/bin/env python3
"""Lists module -> module includes in src/, include/ and bench/, and fails
on a cycle.

A module is a .c file and its .h (src/queue.c with include/queue.h is
"queue"); it depends on every other module whose header it, or its header,
includes. Program entry points (*_main.c) are modules too. A cycle means
two modules each need the other, so neither can be read, tested or
replaced alone: `make lint` refuses it.

    tools/module_graph.py            # print the graph, exit 1 on a cycle
    tools/module_graph.py --dot      # the same as a Graphviz digraph
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIRS = ["src", "include", "bench"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)


def modules():
    """module name -> set of modules it includes."""
    graph = {}
    for d in DIRS:
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            base, ext = os.path.splitext(name)
            if ext not in (".c", ".h"):
                continue
            with open(os.path.join(ROOT, d, name), encoding="utf-8") as f:
                deps = set(INCLUDE.findall(f.read()))
            graph.setdefault(base, set()).update(deps - {base})
    return graph


def find_cycle(graph):
    """A list of modules forming a cycle, or None."""
    state = {}  # 1: on the current path, 2: done
    path = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def main():
    graph = modules()
    if "--dot" in sys.argv:
        print("digraph modules {")
        for m in sorted(graph):
            for d in sorted(graph[m]):
                print(f'  "{m}" -> "{d}";')
        print("}")
    else:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '(nothing)'}")
    cycle = find_cycle(graph)
    if cycle:
        print("error: include cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
