/*
 * The members functions (pseudouser joins, server users, knocks, the knock store, gated joins,
 * knock decisions, the negotiation choice rule) under hostile input: NULL pointers, invalid
 * UTF-8, huge and deep JSON, wrong types. Every case must come back as a status with a matching
 * last error; outputs stay untouched on failure. Run under valgrind by tests/c/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define S(x) (const uint8_t *)(x), strlen(x)
#define T(x) (x), strlen(x)

#define CREATE \
    "{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@a:origin.example\"," \
    "\"content\":{\"room_version\":\"11\"}}"

static const char *PUBLIC =
    "[" CREATE ",{\"type\":\"m.room.join_rules\",\"state_key\":\"\",\"content\":{\"join_rule\":"
    "\"public\"}}]";

static void test_pseudouser_join(void) {
    char *out = SENTINEL;
    size_t len = 0;
    const char *invited =
        "[" CREATE ",{\"type\":\"m.room.join_rules\",\"state_key\":\"\",\"content\":{\"join_rule\":"
        "\"public\"}},"
        "{\"type\":\"m.room.member\",\"state_key\":\"@bob:peer.example\",\"content\":{\"membership\":"
        "\"invite\"}}]";
    CHECK(servership_check_pseudouser_join(S(PUBLIC), T("@:peer.example"), &out, &len) ==
              SERVERSHIP_OK,
          "public room, no user of the server");
    CHECK(strstr(out, "\"reason\":\"no_user_of_server\"") && strstr(out, "\"allowed\":false") &&
              len == strlen(out),
          "denied with its reason");
    servership_string_free(out);
    CHECK(servership_check_pseudouser_join(S(invited), T("@:peer.example"), &out, NULL) ==
              SERVERSHIP_OK,
          "invited");
    CHECK(strstr(out, "\"reason\":\"server_has_invited_user\"") != NULL, "allowed when invited");
    servership_string_free(out);

    out = SENTINEL;
    CHECK(servership_check_pseudouser_join(NULL, 3, T("@:x.example"), &out, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL state with a length");
    CHECK(servership_check_pseudouser_join(S(PUBLIC), T("@:x.example"), NULL, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL out");
    CHECK(servership_check_pseudouser_join(S(PUBLIC), "@:\xff", 3, &out, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 user");
    CHECK(servership_check_pseudouser_join((const uint8_t *)"[\"\xff\"]", 5, T("@:x.example"), &out,
                                           NULL) != SERVERSHIP_OK,
          "invalid UTF-8 inside the JSON");
    CHECK(servership_check_pseudouser_join(S("{}"), T("@:x.example"), &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "state not an array");
    CHECK(servership_check_pseudouser_join(S("[{\"type\":\"a\",\"state_key\":1}]"), T("@:x.example"),
                                           &out, NULL) == SERVERSHIP_BAD_JSON,
          "state_key not a string");
    CHECK(strstr(servership_last_error_message(), "state[0]: state_key") != NULL,
          "message names the index");
    CHECK(servership_check_pseudouser_join(NULL, 0, T("@:x.example"), &out, NULL) ==
              SERVERSHIP_NOT_JSON,
          "empty state");
    CHECK(out == SENTINEL, "output untouched on every failure");

    /* A huge array (2 MB of numbers) and deep nesting: errors, no crash. */
    size_t n = 1024u * 1024u;
    char *huge = malloc(2 * n + 2);
    if (huge != NULL) {
        huge[0] = '[';
        for (size_t i = 0; i < n; i++) {
            huge[1 + 2 * i] = '0';
            huge[2 + 2 * i] = ',';
        }
        huge[2 * n] = ']';
        CHECK(servership_check_pseudouser_join((const uint8_t *)huge, 2 * n + 1, T("@:x.example"),
                                               &out, NULL) == SERVERSHIP_BAD_JSON,
              "huge array of numbers");
        memset(huge, '[', 100000);
        CHECK(servership_check_pseudouser_join((const uint8_t *)huge, 100000, T("@:x.example"), &out,
                                               NULL) != SERVERSHIP_OK,
              "deep nesting");
        free(huge);
    }
    CHECK(out == SENTINEL, "output untouched");
}

static void test_server_user(void) {
    char *out = SENTINEL;
    /* An s2s room (invite only) where the peer's pseudouser is invited. */
    const char *s2s =
        "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@:origin.example\","
        "\"content\":{\"room_version\":\"11\",\"type\":\"m.s2s\"}},"
        "{\"type\":\"m.room.member\",\"state_key\":\"@:peer.example\",\"content\":{\"membership\":"
        "\"invite\"}}]";
    CHECK(servership_check_server_user_membership(S(PUBLIC), T("@:peer.example"), T("join"),
                                                  T("s2s_only"), &out, NULL) == SERVERSHIP_OK,
          "s2s_only in a normal room");
    CHECK(strstr(out, "\"reason\":\"not_s2s_room\"") != NULL, "not an s2s room");
    servership_string_free(out);
    CHECK(servership_check_server_user_membership(S(s2s), T("@:peer.example"), T("join"),
                                                  T("either"), &out, NULL) == SERVERSHIP_OK,
          "either in an s2s room");
    CHECK(strstr(out, "\"allowed\":true") != NULL, "allowed");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_check_server_user_membership(S(PUBLIC), T("@:peer.example"), T("join"),
                                                  T("sometimes"), &out, NULL) ==
              SERVERSHIP_INVALID_PARAM,
          "unknown policy");
    CHECK(servership_check_server_user_membership(S(PUBLIC), T("@:peer.example"), NULL, 4,
                                                  T("either"), &out, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL membership");
    CHECK(out == SENTINEL, "output untouched");
}

static void test_knock_edu(void) {
    char *out = SENTINEL;
    CHECK(servership_parse_knock_edu(S("{\"room_id\":\"!r:x.example\"}"), &out, NULL) ==
              SERVERSHIP_OK,
          "content form");
    CHECK(strcmp(out, "!r:x.example") == 0, "room ID");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_parse_knock_edu(S("{\"room_id\":\"r\"}"), &out, NULL) ==
              SERVERSHIP_INVALID_PARAM,
          "bad room ID");
    CHECK(servership_parse_knock_edu(S("{}"), &out, NULL) == SERVERSHIP_MISSING_PARAM,
          "missing room ID");
    CHECK(servership_parse_knock_edu(S("{\"room_id\":\"\xff\"}"), &out, NULL) != SERVERSHIP_OK,
          "invalid UTF-8");
    CHECK(servership_parse_knock_edu(NULL, 1, &out, NULL) == SERVERSHIP_NULL_POINTER, "NULL");
    char *big = malloc(100000);
    if (big != NULL) {
        memset(big, ' ', 100000);
        CHECK(servership_parse_knock_edu((const uint8_t *)big, 100000, &out, NULL) ==
                  SERVERSHIP_TOO_LARGE,
              "too large");
        free(big);
    }
    CHECK(out == SENTINEL, "output untouched");
}

static void test_knock_store(const char *path) {
    servership_knock_store *store = (servership_knock_store *)SENTINEL;
    CHECK(servership_knock_store_open(NULL, 3, 1000, &store) == SERVERSHIP_NULL_POINTER, "NULL path");
    CHECK(servership_knock_store_open(T(path), 1000, NULL) == SERVERSHIP_NULL_POINTER, "NULL out");
    /* A location that is not UTF-8 is a Unix path of bytes, as for the tag store (a connection
     * string is always text). */
    char odd[4096];
    snprintf(odd, sizeof odd, "%s.\xff", path);
    CHECK(servership_knock_store_open(odd, strlen(odd), 1000, &store) == SERVERSHIP_OK,
          "a bytes path opens");
    servership_knock_store_free(store);
    remove(odd);
    store = (servership_knock_store *)SENTINEL;
    CHECK(servership_knock_store_open("/nonexistent/dir/x.db", 21, 1000, &store) != SERVERSHIP_OK,
          "unopenable path");
    CHECK(store == (servership_knock_store *)SENTINEL, "handle untouched");
    CHECK(servership_knock_store_open(T(path), 1000, &store) == SERVERSHIP_OK, "open");
    uint64_t times = 0;
    for (int i = 0; i < 1000; i++) {
        servership_knock_store_record(store, T("!r:x.example"), T("peer.example"), 5000 + i, &times);
    }
    CHECK(times == 1000, "1000 knocks, one row");
    char *out = NULL;
    CHECK(servership_knock_store_get(store, T("!r:x.example"), T("peer.example"), 6000, &out,
                                     NULL) == SERVERSHIP_OK,
          "get");
    CHECK(out != NULL && strstr(out, "\"times\":1000") != NULL, "record JSON");
    servership_string_free(out);
    CHECK(servership_knock_store_get(store, T("!r:x.example"), T("peer.example"), 99999, &out,
                                     NULL) == SERVERSHIP_OK,
          "get expired");
    CHECK(strcmp(out, "null") == 0, "expired knock is absent");
    servership_string_free(out);
    size_t purged = 0;
    CHECK(servership_knock_store_purge_expired(store, 99999, &purged) == SERVERSHIP_OK && purged == 1,
          "purge");
    CHECK(servership_knock_store_record(NULL, T("!r:x.example"), T("p.example"), 0, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL store");
    CHECK(servership_knock_store_record(store, "\xff", 1, T("p.example"), 0, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "UTF-8 room");
    CHECK(servership_knock_store_purge_expired(NULL, 0, NULL) == SERVERSHIP_NULL_POINTER, "NULL");
    servership_knock_store_free(store);
    servership_knock_store_free(NULL);

    /* A per-origin cap of 2 new knocks per minute: the third new room is refused, nothing written. */
    servership_knock_store *capped = (servership_knock_store *)SENTINEL;
    CHECK(servership_knock_store_open_with_limits(T(path), 1000, 2, 0, &capped) ==
              SERVERSHIP_INVALID_PARAM,
          "zero window");
    CHECK(capped == (servership_knock_store *)SENTINEL, "handle untouched");
    CHECK(servership_knock_store_open_with_limits(T(path), 1000, 2, 60000, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL out");
    CHECK(servership_knock_store_open_with_limits(T(path), 100000, 2, 60000, &capped) ==
              SERVERSHIP_OK,
          "open with limits");
    CHECK(servership_knock_store_record(capped, T("!a:x.example"), T("flood.example"), 200000,
                                        NULL) == SERVERSHIP_OK,
          "first");
    CHECK(servership_knock_store_record(capped, T("!b:x.example"), T("flood.example"), 200001,
                                        NULL) == SERVERSHIP_OK,
          "second");
    CHECK(servership_knock_store_record(capped, T("!c:x.example"), T("flood.example"), 200002,
                                        NULL) == SERVERSHIP_LIMIT_EXCEEDED,
          "third refused");
    CHECK(strstr(servership_last_error_json(), "retry_after_ms") != NULL, "retry_after_ms");
    CHECK(servership_knock_store_record(capped, T("!a:x.example"), T("flood.example"), 200003,
                                        &times) == SERVERSHIP_OK &&
              times == 2,
          "a repeat is not new");
    char *none = NULL;
    CHECK(servership_knock_store_get(capped, T("!c:x.example"), T("flood.example"), 200004, &none,
                                     NULL) == SERVERSHIP_OK &&
              strcmp(none, "null") == 0,
          "the refused knock was not written");
    servership_string_free(none);
    servership_knock_store_free(capped);
}

static void test_gate_and_decide(void) {
    char *out = SENTINEL;
    CHECK(servership_check_gated_join(S(PUBLIC), T("peer.example"), 0, &out, NULL) ==
              SERVERSHIP_OK,
          "ungated");
    CHECK(strstr(out, "room_not_gated") != NULL, "ungated allows");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_check_gated_join(S("[1]"), T("peer.example"), 1, &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "bad state");
    CHECK(servership_check_gated_join(S(PUBLIC), "\xfe", 1, 1, &out, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "UTF-8 server");
    CHECK(out == SENTINEL, "output untouched");

    CHECK(servership_decide_knock(T("!r:x.example"), T("peer.example"), NULL, 0, NULL, 0,
                                  T("moderator"), &out, NULL) == SERVERSHIP_OK,
          "unknown room");
    CHECK(strstr(out, "unknown_room") && strstr(out, "\"outward_event\":null"), "quiet denial");
    servership_string_free(out);
    const char *policy = "[{\"type\":\"m.policy.rule.server\",\"state_key\":\"r\",\"content\":"
                         "{\"entity\":\"*.evil.example\",\"recommendation\":\"m.ban\"}}]";
    CHECK(servership_decide_knock(T("!r:x.example"), T("a.evil.example"), S(PUBLIC), S(policy),
                                  T("auto_accept"), &out, NULL) == SERVERSHIP_OK,
          "policy glob");
    CHECK(strstr(out, "policy_ban") != NULL, "policy ban");
    servership_string_free(out);
    CHECK(servership_decide_knock(T("!r:x.example"), T("good.example"), S(PUBLIC), S(policy),
                                  T("auto_accept"), &out, NULL) == SERVERSHIP_OK,
          "auto accept");
    CHECK(strstr(out, "m.server.is_able_to_subscribe") != NULL, "outward event");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_decide_knock(T("!r:x.example"), T("p.example"), NULL, 5, NULL, 0,
                                  T("moderator"), &out, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL state with a length");
    CHECK(servership_decide_knock(T("!r:x.example"), T("p.example"), NULL, 0, S("{"),
                                  T("moderator"), &out, NULL) == SERVERSHIP_NOT_JSON,
          "bad policy JSON");
    CHECK(servership_decide_knock(T("!r:x.example"), T("p.example"), NULL, 0, NULL, 0, T("yolo"),
                                  &out, NULL) == SERVERSHIP_INVALID_PARAM,
          "bad mode");
    CHECK(out == SENTINEL, "output untouched");
}

static void test_choose(void) {
    char *out = SENTINEL;
    const char *ours = "[{\"version\":\"11\",\"rating\":10},{\"version\":\"12\",\"rating\":1}]";
    const char *theirs = "{\"versions\":[{\"version\":\"11\",\"rating\":1},{\"version\":\"12\",\"rating\":10}]}";
    const char *other = "[{\"version\":\"9\",\"rating\":1}]";
    CHECK(servership_negotiation_choose(S(ours), S(theirs), &out, NULL) == SERVERSHIP_OK, "choose");
    CHECK(strcmp(out, "12") == 0, "tie on the minimum, newest wins");
    servership_string_free(out);
    CHECK(servership_negotiation_choose(S(ours), S(other), &out, NULL) == SERVERSHIP_OK, "no match");
    CHECK(strcmp(out, "") == 0, "empty string for no match");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_negotiation_choose(S("[]"), S(other), &out, NULL) == SERVERSHIP_INVALID_PARAM,
          "empty list");
    CHECK(servership_negotiation_choose(S("[{\"version\":1,\"rating\":1}]"), S(other), &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "version not a string");
    CHECK(strstr(servership_last_error_message(), "ours") != NULL, "names the list");
    CHECK(servership_negotiation_choose(S("3"), S(other), &out, NULL) == SERVERSHIP_BAD_JSON,
          "not a list");
    CHECK(servership_negotiation_choose(NULL, 2, S(other), &out, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL");
    CHECK(out == SENTINEL, "output untouched");
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "members_hostile.db";
    test_pseudouser_join();
    test_server_user();
    test_knock_edu();
    test_knock_store(path);
    test_gate_and_decide();
    test_choose();
    return finish("members hostile");
}
