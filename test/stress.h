/*
 * stress.h - a check macro for the plain-C stress programs, which run
 * under ThreadSanitizer where Criterion cannot: report and exit non-zero.
 */
#ifndef ENCHUFE_TEST_STRESS_H
#define ENCHUFE_TEST_STRESS_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#endif
