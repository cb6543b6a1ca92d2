/*
 * The discovery C API (tags, tag store, responder) under hostile input: NULL pointers and
 * handles, invalid UTF-8, bad room IDs, malformed and huge (10 MB) request bodies, an exhausted
 * budget, and freeing the store before its responder. Every failure must be a status with a
 * matching last error and untouched outputs; nothing may crash or leak (run under valgrind).
 * Usage: discovery_hostile DIR (a scratch directory for the SQLite files).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define S(text) text, strlen(text)

static char path_buf[4096];
static const char *scratch(const char *dir, const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

static char *tag_of(const char *server, const char *room) {
    char *tag = NULL;
    size_t len = 0;
    CHECK(servership_participation_tag(S(server), S(room), &tag, &len) == SERVERSHIP_OK, "tag");
    CHECK(tag != NULL && len == 43 && strlen(tag) == 43, "43 characters");
    return tag;
}

static void test_tag(void) {
    char *a = tag_of("a.example", "!room:a.example");
    char *b = tag_of("b.example", "!room:a.example");
    char *again = tag_of("a.example", "!room:a.example");
    CHECK(strcmp(a, again) == 0, "deterministic");
    CHECK(strcmp(a, b) != 0, "keyed by the server name");
    servership_string_free(a);
    servership_string_free(b);
    servership_string_free(again);

    char *out = SENTINEL;
    size_t out_len = 99;
    CHECK(servership_participation_tag(NULL, 3, S("!r:a"), &out, &out_len) ==
              SERVERSHIP_NULL_POINTER, "NULL server name with a length");
    CHECK(out == SENTINEL && out_len == 99, "outputs untouched");
    CHECK(servership_participation_tag(S("a.example"), S("!r:a"), NULL, NULL) ==
              SERVERSHIP_NULL_POINTER, "NULL out");
    CHECK(servership_participation_tag("a\xff", 2, S("!r:a"), &out, &out_len) ==
              SERVERSHIP_INVALID_UTF8, "invalid UTF-8 server name");
    CHECK(strcmp(servership_last_error_errcode(), "M_INVALID_PARAM") == 0, "UTF-8 errcode");
    CHECK(strstr(servership_last_error_message(), "server_name") != NULL, "names the argument");
    CHECK(servership_participation_tag(S("a.example"), "!\xc3\x28", 3, &out, &out_len) ==
              SERVERSHIP_INVALID_UTF8, "invalid UTF-8 room ID");
    CHECK(out == SENTINEL && out_len == 99, "outputs untouched");
}

static void test_store(const char *dir) {
    servership_tag_store *store = (servership_tag_store *)SENTINEL;
    CHECK(servership_tag_store_open(NULL, 0, S("a.example"), &store) == SERVERSHIP_INVALID_PARAM,
          "empty path");
    CHECK(servership_tag_store_open(NULL, 4, S("a.example"), &store) == SERVERSHIP_NULL_POINTER,
          "NULL path with a length");
    CHECK(servership_tag_store_open("a\0b", 3, S("a.example"), &store) ==
              SERVERSHIP_INVALID_PARAM, "NUL in the path");
    char path[4096];
    snprintf(path, sizeof path, "%s", scratch(dir, "hostile.sqlite"));
    CHECK(servership_tag_store_open(S(path), "\xff", 1, &store) == SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 server name");
    CHECK(servership_tag_store_open(S(path), S("a.example"), NULL) == SERVERSHIP_NULL_POINTER,
          "NULL out");
    CHECK(store == (servership_tag_store *)SENTINEL, "out untouched");
    CHECK(servership_tag_store_open(S(scratch(dir, "no/such/dir/x.sqlite")), S("a.example"),
                                    &store) == SERVERSHIP_UNKNOWN, "unopenable file");

    store = NULL;
    CHECK(servership_tag_store_open(S(path), S("a.example"), &store) == SERVERSHIP_OK, "open");
    servership_tag_store *other = (servership_tag_store *)SENTINEL;
    CHECK(servership_tag_store_open(S(path), S("b.example"), &other) == SERVERSHIP_INVALID_PARAM,
          "another server name");
    CHECK(strstr(servership_last_error_message(), "a.example") != NULL, "names the owner");
    CHECK(other == (servership_tag_store *)SENTINEL, "out untouched");

    bool added = false;
    CHECK(servership_tag_store_record_join(store, S("!one:a.example"), 5, &added) ==
              SERVERSHIP_OK && added, "first join");
    CHECK(servership_tag_store_record_join(store, S("!one:a.example"), 6, &added) ==
              SERVERSHIP_OK && !added, "second join");
    CHECK(servership_tag_store_record_join(store, S("!two:a.example"), 6, NULL) == SERVERSHIP_OK,
          "NULL newly_added_out is allowed");
    added = true;
    CHECK(servership_tag_store_record_join(store, S("no-bang"), 6, &added) ==
              SERVERSHIP_INVALID_PARAM && added, "room ID without '!'");
    CHECK(servership_tag_store_record_join(store, "!\xff", 2, 6, &added) == SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 room ID");
    CHECK(servership_tag_store_record_join(NULL, S("!x:a"), 6, &added) ==
              SERVERSHIP_NULL_POINTER, "NULL store");

    size_t count = 12345;
    CHECK(servership_tag_store_backfill(store, S("[\"!two:a.example\",\"!three:a.example\"]"), 7,
                                        &count) == SERVERSHIP_OK && count == 1, "backfill");
    count = 12345;
    CHECK(servership_tag_store_backfill(store, S("[\"!four:a.example\", 5]"), 7, &count) ==
              SERVERSHIP_BAD_JSON && count == 12345, "a non-string room");
    CHECK(strstr(servership_last_error_message(), "room_ids[1]") != NULL, "names the index");
    CHECK(servership_tag_store_backfill(store, S("{\"a\":1}"), 7, &count) == SERVERSHIP_BAD_JSON,
          "not an array");
    CHECK(servership_tag_store_backfill(store, S("[\"!ok:a\",\"bad\"]"), 7, &count) ==
              SERVERSHIP_INVALID_PARAM, "a bad room ID");
    CHECK(servership_tag_store_backfill(store, "[\"\xff\"]", 5, 7, &count) == SERVERSHIP_NOT_JSON,
          "invalid UTF-8 inside the JSON");
    CHECK(servership_tag_store_backfill(store, NULL, 0, 7, &count) == SERVERSHIP_NOT_JSON, "empty");
    CHECK(servership_tag_store_backfill(NULL, S("[]"), 7, &count) == SERVERSHIP_NULL_POINTER,
          "NULL store");

    size_t len = 0;
    CHECK(servership_tag_store_len(store, &len) == SERVERSHIP_OK && len == 3, "three rooms");
    CHECK(servership_tag_store_len(store, NULL) == SERVERSHIP_NULL_POINTER, "NULL out");
    CHECK(servership_tag_store_len(NULL, &len) == SERVERSHIP_NULL_POINTER, "NULL store");
    bool has = false;
    CHECK(servership_tag_store_contains_room(store, S("!three:a.example"), &has) ==
              SERVERSHIP_OK && has, "contains");
    CHECK(servership_tag_store_contains_room(store, S("!four:a.example"), &has) ==
              SERVERSHIP_OK && !has, "all or nothing: !four was not recorded");

    /* A second handle on the same file sees the first one's writes. */
    servership_tag_store *second = NULL;
    CHECK(servership_tag_store_open(S(path), S("a.example"), &second) == SERVERSHIP_OK, "reopen");
    CHECK(servership_tag_store_record_join(store, S("!five:a.example"), 8, NULL) == SERVERSHIP_OK,
          "write through the first handle");
    CHECK(servership_tag_store_len(second, &len) == SERVERSHIP_OK && len == 4, "seen by second");
    servership_tag_store_free(second);
    servership_tag_store_free(store);
    servership_tag_store_free(NULL);
    servership_responder_free(NULL);
}

static void test_responder(const char *dir) {
    servership_tag_store *store = NULL;
    CHECK(servership_tag_store_open(S(scratch(dir, "responder.sqlite")), S("a.example"), &store) ==
              SERVERSHIP_OK, "open");
    CHECK(servership_tag_store_record_join(store, S("!known:a.example"), 1, NULL) == SERVERSHIP_OK,
          "record");

    servership_responder *responder = (servership_responder *)SENTINEL;
    CHECK(servership_responder_new(store, 1000, 10, 60000, &responder) ==
              SERVERSHIP_INVALID_PARAM, "budget below the per-request cap");
    CHECK(servership_responder_new(store, 0, 10, 60000, &responder) == SERVERSHIP_INVALID_PARAM,
          "zero cap");
    CHECK(servership_responder_new(NULL, 10, 10, 60000, &responder) == SERVERSHIP_NULL_POINTER,
          "NULL store");
    CHECK(servership_responder_new(store, 10, 10, 60000, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL out");
    CHECK(responder == (servership_responder *)SENTINEL, "out untouched");
    responder = NULL;
    CHECK(servership_responder_new(store, 10, 20, 60000, &responder) == SERVERSHIP_OK, "new");
    /* The responder holds the store: freeing the handle first is safe. */
    servership_tag_store_free(store);

    char *known = tag_of("a.example", "!known:a.example");
    char *unknown = tag_of("a.example", "!secret:b.example");
    char body[256];
    snprintf(body, sizeof body, "{\"room_participation_tags\":[\"%s\",\"%s\"]}", unknown, known);
    char want[128];
    snprintf(want, sizeof want, "{\"recognised_tags\":[\"%s\"]}", known);
    char *out = NULL;
    size_t out_len = 0;
    CHECK(servership_responder_respond(responder, (const uint8_t *)body, strlen(body),
                                       S("b.example"), 0, &out, &out_len) == SERVERSHIP_OK,
          "respond");
    CHECK(out != NULL && out_len == strlen(want) && strcmp(out, want) == 0, "the known tag only");
    servership_string_free(out);

    struct {
        const char *body;
        servership_status status;
        int http;
        const char *message;
    } bad[] = {
        {"nope", SERVERSHIP_NOT_JSON, 400, ""},
        {"[]", SERVERSHIP_BAD_JSON, 400, "must be an object"},
        {"{}", SERVERSHIP_MISSING_PARAM, 400, "is required"},
        {"{\"room_participation_tags\":{}}", SERVERSHIP_BAD_JSON, 400, "must be an array"},
        {"{\"room_participation_tags\":[null]}", SERVERSHIP_BAD_JSON, 400,
         "room_participation_tags[0] must be a string"},
        {"{\"room_participation_tags\":[\"!!!\"]}", SERVERSHIP_INVALID_PARAM, 400,
         "room_participation_tags[0] is not 32 bytes of base64"},
        /* 31 bytes of base64. */
        {"{\"room_participation_tags\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]}",
         SERVERSHIP_INVALID_PARAM, 400, "room_participation_tags[0] is not 32 bytes"},
        {"{\"room_participation_tags\":[\"\xff\"]}", SERVERSHIP_NOT_JSON, 400, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = SENTINEL;
        out_len = 7;
        servership_status status = servership_responder_respond(
            responder, (const uint8_t *)bad[i].body, strlen(bad[i].body), S("b.example"), 0, &out,
            &out_len);
        CHECK(status == bad[i].status, bad[i].body);
        CHECK(servership_last_error_http_status() == bad[i].http, bad[i].body);
        CHECK(strstr(servership_last_error_message(), bad[i].message) != NULL, bad[i].body);
        CHECK(out == SENTINEL && out_len == 7, "outputs untouched");
    }

    /* 10 MB body: refused by size before parsing. */
    size_t huge_len = 10 * 1000 * 1000;
    uint8_t *huge = malloc(huge_len);
    CHECK(huge != NULL, "malloc");
    if (huge != NULL) {
        memset(huge, '[', huge_len);
        CHECK(servership_responder_respond(responder, huge, huge_len, S("b.example"), 0, &out,
                                           &out_len) == SERVERSHIP_TOO_LARGE, "10 MB body");
        CHECK(servership_last_error_http_status() == 413, "413");
        free(huge);
    }
    /* Eleven tags against a cap of ten. */
    char many[1024] = "{\"room_participation_tags\":[";
    for (int i = 0; i < 11; i++) {
        strcat(many, i ? ",\"" : "\"");
        strcat(many, known);
        strcat(many, "\"");
    }
    strcat(many, "]}");
    CHECK(servership_responder_respond(responder, (const uint8_t *)many, strlen(many),
                                       S("b.example"), 0, &out, &out_len) == SERVERSHIP_TOO_LARGE,
          "too many tags");

    /* NULLs and invalid UTF-8. */
    CHECK(servership_responder_respond(NULL, (const uint8_t *)body, strlen(body), S("b.example"), 0,
                                       &out, &out_len) == SERVERSHIP_NULL_POINTER, "NULL responder");
    CHECK(servership_responder_respond(responder, NULL, 5, S("b.example"), 0, &out, &out_len) ==
              SERVERSHIP_NULL_POINTER, "NULL body with a length");
    CHECK(servership_responder_respond(responder, (const uint8_t *)body, strlen(body), NULL, 3, 0,
                                       &out, &out_len) == SERVERSHIP_NULL_POINTER, "NULL origin");
    CHECK(servership_responder_respond(responder, (const uint8_t *)body, strlen(body), "\xfe", 1,
                                       0, &out, &out_len) == SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 origin");
    CHECK(servership_responder_respond(responder, (const uint8_t *)body, strlen(body), NULL, 0, 0,
                                       &out, &out_len) == SERVERSHIP_INVALID_PARAM, "empty origin");
    CHECK(servership_responder_respond(responder, (const uint8_t *)body, strlen(body),
                                       S("b.example"), 0, NULL, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL out");

    /* Budget: 20 tags a minute for one origin; this body has 2. */
    int answered = 0;
    servership_status status = SERVERSHIP_OK;
    while (answered < 100) {
        status = servership_responder_respond(responder, (const uint8_t *)body, strlen(body),
                                              S("greedy.example"), 1000, &out, &out_len);
        if (status != SERVERSHIP_OK) break;
        servership_string_free(out);
        answered++;
    }
    CHECK(answered == 10, "ten two-tag requests fit a budget of twenty");
    CHECK(status == SERVERSHIP_LIMIT_EXCEEDED, "then 429");
    CHECK(servership_last_error_http_status() == 429, "http 429");
    CHECK(strstr(servership_last_error_json(), "\"retry_after_ms\":60000") != NULL,
          "retry_after_ms in the error body");

    servership_string_free(known);
    servership_string_free(unknown);
    servership_responder_free(responder);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    test_tag();
    test_store(argv[1]);
    test_responder(argv[1]);
    return finish("discovery hostile");
}
