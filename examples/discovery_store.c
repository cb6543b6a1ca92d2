/*
 * discovery_store: a homeserver's side of MSC4358 out-of-room discovery, from C.
 *
 *   cc -std=c99 -Iinclude examples/discovery_store.c -Ltarget/debug -lservership \
 *      -Wl,-rpath,"$PWD/target/debug" -o discovery_store
 *
 * Serve mode: open (or create) the tag store STORE of server SERVER, record that SERVER joined
 * each ROOM_ID given, read a discover_common_rooms request body on stdin and print the answer:
 *
 *   ./discovery_store STORE SERVER [ROOM_ID...] < request.json
 *   {"recognised_tags":["..."]}
 *
 * On a bad request it prints the HTTP status and the Matrix error body on stderr
 * ("400 {"errcode":"M_INVALID_PARAM",...}") and exits with status 1.
 *
 * Request mode: print the request body that asks SERVER about the ROOM_IDs (tags keyed by
 * SERVER's name), ready to pipe into serve mode:
 *
 *   ./discovery_store --request SERVER ROOM_ID... | ./discovery_store STORE SERVER ROOM_ID...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static int fail(const char *doing) {
    fprintf(stderr, "discovery_store: %s: %d %s\n", doing, (int)servership_last_error_http_status(),
            servership_last_error_json());
    return 1;
}

/* Prints {"room_participation_tags":[...]} for the rooms, tags keyed by `server`. Tags are
 * base64 (no quotes or backslashes), so they need no JSON escaping. */
static int print_request(const char *server, int count, char **rooms) {
    printf("{\"room_participation_tags\":[");
    for (int i = 0; i < count; i++) {
        char *tag = NULL;
        if (servership_participation_tag(server, strlen(server), rooms[i], strlen(rooms[i]), &tag,
                                         NULL) != SERVERSHIP_OK) {
            return fail("computing a tag");
        }
        printf("%s\"%s\"", i > 0 ? "," : "", tag);
        servership_string_free(tag);
    }
    printf("]}\n");
    return 0;
}

static int serve(const char *path, const char *server, int count, char **rooms) {
    servership_tag_store *store = NULL;
    if (servership_tag_store_open(path, strlen(path), server, strlen(server), &store) !=
        SERVERSHIP_OK) {
        return fail("opening the tag store");
    }
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    for (int i = 0; i < count; i++) {
        bool added = false;
        if (servership_tag_store_record_join(store, rooms[i], strlen(rooms[i]), now_ms, &added) !=
            SERVERSHIP_OK) {
            servership_tag_store_free(store);
            return fail("recording a join");
        }
    }
    size_t held = 0;
    servership_tag_store_len(store, &held);
    fprintf(stderr, "discovery_store: %s holds %zu room(s)\n", server, held);

    /* Default limits: 1000 tags a request, 10000 tags a minute per origin. The responder keeps
     * the store alive, so the store handle can go now. */
    servership_responder *responder = NULL;
    servership_status status = servership_responder_new(store, 1000, 10000, 60000, &responder);
    servership_tag_store_free(store);
    if (status != SERVERSHIP_OK) return fail("creating the responder");

    size_t len = 0;
    unsigned char *body = read_all(stdin, &len);
    if (body == NULL) {
        servership_responder_free(responder);
        fprintf(stderr, "discovery_store: cannot read stdin\n");
        return 2;
    }
    /* In a homeserver, origin is the server X-Matrix authenticated. */
    const char *origin = "requester.example";
    char *answer = NULL;
    size_t answer_len = 0;
    status = servership_responder_respond(responder, body, len, origin, strlen(origin),
                                          (uint64_t)now_ms, &answer, &answer_len);
    free(body);
    servership_responder_free(responder);
    if (status != SERVERSHIP_OK) {
        /* What the homeserver sends back: this HTTP status with this body. */
        fprintf(stderr, "%d %s\n", (int)servership_last_error_http_status(),
                servership_last_error_json());
        return 1;
    }
    fwrite(answer, 1, answer_len, stdout);
    fputc('\n', stdout);
    servership_string_free(answer);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--request") == 0) {
        return print_request(argv[2], argc - 3, argv + 3);
    }
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s STORE SERVER [ROOM_ID...] < request.json\n"
                "       %s --request SERVER ROOM_ID...\n",
                argv[0], argv[0]);
        return 2;
    }
    return serve(argv[1], argv[2], argc - 3, argv + 3);
}
