/*
 * canonicalize: reads JSON on stdin, writes its Matrix canonical form on stdout.
 *
 *   cc -std=c99 -Iinclude examples/canonicalize.c -Ltarget/debug -lservership \
 *      -Wl,-rpath,"$PWD/target/debug" -o canonicalize
 *   echo '{"b": 1, "a": [true, null]}' | ./canonicalize      # {"a":[true,null],"b":1}
 *
 * On failure it prints the Matrix error body on stderr and exits with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"

/* Reads all of `f` into a malloc'd buffer; returns NULL on allocation or read failure. */
static unsigned char *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, used = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) return NULL;
    for (;;) {
        size_t n = fread(buf + used, 1, cap - used, f);
        used += n;
        if (used < cap) break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) { free(buf); return NULL; }
        buf = bigger;
        cap *= 2;
    }
    if (ferror(f)) { free(buf); return NULL; }
    *len = used;
    return buf;
}

int main(void) {
    size_t len = 0;
    unsigned char *input = read_all(stdin, &len);
    if (input == NULL) {
        fprintf(stderr, "canonicalize: cannot read stdin\n");
        return 2;
    }

    char *canonical = NULL;
    size_t canonical_len = 0;
    servership_status status = servership_canonical_json(input, len, &canonical, &canonical_len);
    free(input);
    if (status != SERVERSHIP_OK) {
        /* The error body is what a homeserver would send back, e.g.
         * {"errcode":"M_BAD_JSON","error":"duplicate key \"a\" at byte 9"} */
        fprintf(stderr, "%s\n", servership_last_error_json());
        return 1;
    }
    fwrite(canonical, 1, canonical_len, stdout);
    fputc('\n', stdout);
    servership_string_free(canonical);
    return 0;
}
