/*
 * What every C test program here shares: pass/fail counters, CHECK, an output sentinel and the
 * closing line (`<name>: N passed, N failed`, the form CI reads).
 */
#ifndef SERVERSHIP_TEST_CHECK_H
#define SERVERSHIP_TEST_CHECK_H

#include <stdio.h>

#include "servership.h"

static int passed = 0, failed = 0;

#define CHECK(cond, what)                                                      \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, what, servership_last_error_json());             \
        }                                                                      \
    } while (0)

/* A sentinel that outputs must keep when a call fails. */
static char sentinel_byte;
#define SENTINEL (&sentinel_byte)

/* Prints the closing line; the program's exit code. */
static int finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
