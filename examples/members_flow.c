/*
 * A server knocks on a gated room: the knock is recorded, the decision stays pending for a
 * moderator, the gated join is refused, and after the moderator's
 * m.server.is_able_to_subscribe event the join is allowed.
 *
 *   cc -std=c99 members_flow.c -lservership -o members_flow && ./members_flow /tmp/servership.db
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "servership.h"

#define ROOM "!room:origin.example"
#define PEER "peer.example"

static int fail(const char *what) {
    fprintf(stderr, "%s failed: %s\n", what, servership_last_error_json());
    return 1;
}

/* Prints a gated-join decision for `state`; returns 0 on success. */
static int gated_join(const char *label, const char *state) {
    char *decision = NULL;
    if (servership_check_gated_join((const uint8_t *)state, strlen(state), PEER, strlen(PEER),
                                    1, &decision, NULL) != SERVERSHIP_OK) {
        return fail("servership_check_gated_join");
    }
    printf("%s: %s\n", label, decision);
    servership_string_free(decision);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "members_flow.db";
    const char *edu = "{\"edu_type\":\"m.server.knock\",\"content\":{\"room_id\":\"" ROOM "\"}}";
    const char *before =
        "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"content\":{\"room_version\":\"11\"}}]";
    const char *after =
        "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"content\":{\"room_version\":\"11\"}},"
        "{\"type\":\"m.server.is_able_to_subscribe\",\"state_key\":\"" PEER "\","
        "\"sender\":\"@mod:origin.example\",\"content\":{\"is_able_to_subscribe\":true}}]";
    const char *mode = "moderator";
    servership_knock_store *store = NULL;
    char *room_id = NULL;
    char *decision = NULL;
    uint64_t times = 0;
    int rc = 1;

    /* 1. The knock EDU arrives from PEER (the transaction origin); record it. */
    if (servership_parse_knock_edu((const uint8_t *)edu, strlen(edu), &room_id, NULL) !=
        SERVERSHIP_OK) {
        return fail("servership_parse_knock_edu");
    }
    if (servership_knock_store_open(path, strlen(path), 86400000u, &store) != SERVERSHIP_OK) {
        fail("servership_knock_store_open");
        goto out;
    }
    if (servership_knock_store_record(store, room_id, strlen(room_id), PEER, strlen(PEER), -1,
                                      &times) != SERVERSHIP_OK) {
        fail("servership_knock_store_record");
        goto out;
    }
    printf("knock on %s from %s recorded (seen %lu times)\n", room_id, PEER,
           (unsigned long)times);

    /* 2. Decide: the room wants a moderator, so it stays pending and nothing is sent. */
    if (servership_decide_knock(room_id, strlen(room_id), PEER, strlen(PEER),
                                (const uint8_t *)before, strlen(before), NULL, 0, mode,
                                strlen(mode), &decision, NULL) != SERVERSHIP_OK) {
        fail("servership_decide_knock");
        goto out;
    }
    printf("knock decision: %s\n", decision);

    /* 3. The gated join is refused, 4. then allowed once the moderator's event is in the state. */
    if (gated_join("join before", before) != 0 || gated_join("join after", after) != 0) {
        goto out;
    }
    rc = 0;
out:
    servership_string_free(decision);
    servership_string_free(room_id);
    servership_knock_store_free(store);
    return rc;
}
