/*
 * check_invite: checks an MSC4329 invite request body as the receiving server would.
 *
 *   cc -std=c99 -Iinclude examples/check_invite.c -Ltarget/debug -lservership \
 *      -Wl,-rpath,"$PWD/target/debug" -o check_invite
 *   ./check_invite BODY_FILE PATH_ROOM_ID RECEIVING_SERVER ORIGIN [KEYS_JSON_FILE]
 *
 * PATH_ROOM_ID is the percent-decoded {roomId} of the request path. KEYS_JSON_FILE, when given,
 * holds verify keys grouped by server ({"origin.example": {"ed25519:1": {"key": "..."}}}), and
 * signatures and content hashes are checked too.
 *
 * Prints the result JSON (with the rewritten invite_room_state) and exits with 0, or prints the
 * Matrix error body to send back on stderr and exits with 1 (2 for usage and I/O errors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"

/* Reads a whole file (at most `limit` bytes plus one, so that the library sees an oversized body
 * and answers M_TOO_LARGE). Returns NULL on an I/O error. */
static unsigned char *read_file(const char *path, size_t limit, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    unsigned char *data = malloc(limit + 1);
    if (data == NULL) {
        fclose(f);
        return NULL;
    }
    *len = fread(data, 1, limit + 1, f);
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s BODY_FILE PATH_ROOM_ID RECEIVING_SERVER ORIGIN [KEYS_JSON_FILE]\n",
                argv[0]);
        return 2;
    }
    servership_key_ring *keys = NULL;
    if (argc == 6) {
        size_t keys_len = 0;
        unsigned char *keys_json = read_file(argv[5], 1 << 20, &keys_len);
        if (keys_json == NULL) {
            return 2;
        }
        servership_status status = servership_key_ring_from_json(keys_json, keys_len, &keys);
        free(keys_json);
        if (status != SERVERSHIP_OK) {
            fprintf(stderr, "bad keys file: %s\n", servership_last_error_message());
            return 2;
        }
    }
    size_t body_len = 0;
    unsigned char *body = read_file(argv[1], 1 << 20, &body_len);
    if (body == NULL) {
        servership_key_ring_free(keys);
        return 2;
    }

    const char *room_id = argv[2], *receiver = argv[3], *origin = argv[4];
    char *result = NULL;
    servership_status status = servership_check_invite(
        room_id, strlen(room_id), body, body_len, receiver, strlen(receiver), origin,
        strlen(origin), keys, &result, NULL);
    free(body);
    servership_key_ring_free(keys);
    if (status != SERVERSHIP_OK) {
        /* The status names the failure; the HTTP status and body are what to answer with. */
        fprintf(stderr, "%d %s\n", servership_last_error_http_status(),
                servership_last_error_json());
        return 1;
    }
    printf("%s\n", result);
    servership_string_free(result);
    return 0;
}
