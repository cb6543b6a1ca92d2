/*
 * Hostile input through the C API: NULL pointers, invalid UTF-8, a 10 MB string, deep nesting,
 * duplicate keys, bad keys and tampered signatures. Every case must come back as a status code
 * with a matching last error; nothing may crash, leak or write outputs on failure.
 * Built with -std=c99 -Wall -Wextra -Werror and run under valgrind by tests/c/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"


static const char *SEED = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; /* 32 zero bytes */
static const char *KEY_ID = "ed25519:test";

/* canonical_json of a C string, expecting `want_status`; on success compares with `want`. */
static void expect_canonical(const char *input, servership_status want_status, const char *want) {
    char *out = SENTINEL;
    size_t out_len = 12345;
    servership_status status =
        servership_canonical_json((const uint8_t *)input, strlen(input), &out, &out_len);
    CHECK(status == want_status, input);
    if (status == SERVERSHIP_OK) {
        CHECK(want != NULL && out_len == strlen(want) && strcmp(out, want) == 0, input);
        CHECK(servership_last_error_status() == SERVERSHIP_OK, "success clears the last error");
        CHECK(strcmp(servership_last_error_message(), "") == 0, "no message after success");
        servership_string_free(out);
    } else {
        CHECK(out == SENTINEL && out_len == 12345, "outputs untouched on failure");
        CHECK(servership_last_error_status() == status, "last error status");
        CHECK(strlen(servership_last_error_message()) > 0, "a message on failure");
    }
}

static void test_canonical(void) {
    expect_canonical("{\"b\": 1, \"a\": [true, null, \"\\u00e9\"]}", SERVERSHIP_OK,
                     "{\"a\":[true,null,\"\xc3\xa9\"],\"b\":1}");
    expect_canonical("-0", SERVERSHIP_OK, "0");
    expect_canonical("{\"a\": 1, \"a\": 2}", SERVERSHIP_BAD_JSON, NULL);
    CHECK(strcmp(servership_last_error_errcode(), "M_BAD_JSON") == 0, "duplicate key errcode");
    CHECK(servership_last_error_http_status() == 400, "duplicate key http status");
    CHECK(strstr(servership_last_error_json(), "\"errcode\":\"M_BAD_JSON\"") != NULL,
          "error body carries the errcode");
    expect_canonical("{\"a\": 1.5}", SERVERSHIP_BAD_JSON, NULL);
    expect_canonical("9007199254740992", SERVERSHIP_BAD_JSON, NULL);
    expect_canonical("\"\\ud800\"", SERVERSHIP_BAD_JSON, NULL);
    expect_canonical("{\"a\":", SERVERSHIP_NOT_JSON, NULL);
    expect_canonical("", SERVERSHIP_NOT_JSON, NULL);
    expect_canonical("\xff\xfe", SERVERSHIP_NOT_JSON, NULL);
    expect_canonical("\"\xc3\x28\"", SERVERSHIP_NOT_JSON, NULL); /* invalid UTF-8 in a string */
}

static void test_null_pointers(void) {
    char *out = SENTINEL;
    size_t out_len = 7;
    CHECK(servership_canonical_json(NULL, 5, &out, &out_len) == SERVERSHIP_NULL_POINTER,
          "NULL input with a length");
    CHECK(out == SENTINEL && out_len == 7, "outputs untouched");
    CHECK(strcmp(servership_last_error_errcode(), "M_UNKNOWN") == 0, "NULL is a caller bug");
    CHECK(servership_canonical_json((const uint8_t *)"{}", 2, NULL, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL out");
    /* NULL with length 0 is the empty input, which is not JSON. */
    CHECK(servership_canonical_json(NULL, 0, &out, NULL) == SERVERSHIP_NOT_JSON, "NULL, 0");
    /* out_len is optional. */
    CHECK(servership_canonical_json((const uint8_t *)"[]", 2, &out, NULL) == SERVERSHIP_OK,
          "NULL out_len");
    CHECK(strcmp(out, "[]") == 0, "NULL out_len output");
    servership_string_free(out);

    servership_string_free(NULL);
    servership_signing_key_free(NULL);
    CHECK(servership_signing_key_public_key(NULL, &out, NULL) == SERVERSHIP_NULL_POINTER,
          "NULL key handle");
    CHECK(servership_sign_json_with_key((const uint8_t *)"{}", 2, "a", 1, NULL, &out, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL key for signing");
    CHECK(servership_verify_json(NULL, 1, "a", 1, KEY_ID, strlen(KEY_ID), "x", 1) ==
              SERVERSHIP_NULL_POINTER,
          "verify with NULL json");
    servership_signing_key *key = (servership_signing_key *)SENTINEL;
    CHECK(servership_signing_key_new(NULL, 3, SEED, strlen(SEED), &key) == SERVERSHIP_NULL_POINTER,
          "NULL key id");
    CHECK(key == (servership_signing_key *)SENTINEL, "handle untouched");
    CHECK(servership_signing_key_new(KEY_ID, strlen(KEY_ID), SEED, strlen(SEED), NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL handle out");
}

static void test_invalid_utf8(void) {
    char *out = SENTINEL;
    CHECK(servership_sign_json((const uint8_t *)"{}", 2, "ex\xffmple.org", 11, KEY_ID,
                               strlen(KEY_ID), SEED, strlen(SEED), &out, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 server name");
    CHECK(strcmp(servership_last_error_errcode(), "M_INVALID_PARAM") == 0, "utf8 errcode");
    CHECK(strstr(servership_last_error_message(), "server_name") != NULL, "names the argument");
    CHECK(out == SENTINEL, "untouched");
    servership_signing_key *key = NULL;
    CHECK(servership_signing_key_new("ed25519:\xc0", 9, SEED, strlen(SEED), &key) ==
              SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 key id");
}

static void test_big_and_deep(void) {
    /* A 10 MB JSON string. */
    size_t n = 10 * 1024 * 1024;
    char *big = malloc(n + 3);
    CHECK(big != NULL, "malloc");
    if (big == NULL) return;
    big[0] = '"';
    memset(big + 1, 'x', n);
    big[n + 1] = '"';
    big[n + 2] = '\0';
    char *out = NULL;
    size_t out_len = 0;
    CHECK(servership_canonical_json((const uint8_t *)big, n + 2, &out, &out_len) == SERVERSHIP_OK,
          "10 MB string");
    CHECK(out_len == n + 2 && memcmp(out, big, n + 2) == 0, "10 MB string round trip");
    servership_string_free(out);
    /* The same with a NUL byte inside: raw control characters are refused, no crash. */
    big[100] = '\0';
    CHECK(servership_canonical_json((const uint8_t *)big, n + 2, &out, &out_len) != SERVERSHIP_OK,
          "raw NUL in a string");
    free(big);

    /* 100000 nested arrays: refused (depth limit), not a stack overflow. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth);
    CHECK(deep != NULL, "malloc");
    if (deep == NULL) return;
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    CHECK(servership_canonical_json((const uint8_t *)deep, 2 * depth, &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "deep nesting");
    /* 128 levels are allowed. */
    memset(deep + 128, ']', 128);
    CHECK(servership_canonical_json((const uint8_t *)deep, 256, &out, NULL) == SERVERSHIP_OK,
          "128 levels");
    servership_string_free(out);
    free(deep);
}

static void test_signing(void) {
    servership_signing_key *key = NULL;
    CHECK(servership_signing_key_new(KEY_ID, strlen(KEY_ID), SEED, strlen(SEED), &key) ==
              SERVERSHIP_OK,
          "key from seed");
    char *public_key = NULL, *key_id = NULL;
    size_t public_key_len = 0;
    CHECK(servership_signing_key_public_key(key, &public_key, &public_key_len) == SERVERSHIP_OK,
          "public key");
    CHECK(public_key_len == 43 && strlen(public_key) == 43, "public key is unpadded base64");
    CHECK(servership_signing_key_id(key, &key_id, NULL) == SERVERSHIP_OK &&
              strcmp(key_id, KEY_ID) == 0,
          "key id");

    const char *event = "{\"b\":2,\"a\":1,\"unsigned\":{\"age\":5}}";
    char *signed_json = NULL;
    size_t signed_len = 0;
    CHECK(servership_sign_json_with_key((const uint8_t *)event, strlen(event), "example.org", 11,
                                        key, &signed_json, &signed_len) == SERVERSHIP_OK,
          "sign with handle");
    CHECK(signed_len == strlen(signed_json), "signed length");
    CHECK(strncmp(signed_json, "{\"a\":1,\"b\":2,\"signatures\":{\"example.org\":{\"ed25519:test\":\"",
                  58) == 0,
          "signed JSON is canonical with the signature in place");

    /* The one-off form gives the same bytes. */
    char *signed_again = NULL;
    CHECK(servership_sign_json((const uint8_t *)event, strlen(event), "example.org", 11, KEY_ID,
                               strlen(KEY_ID), SEED, strlen(SEED), &signed_again,
                               NULL) == SERVERSHIP_OK &&
              strcmp(signed_json, signed_again) == 0,
          "sign with seed");
    servership_string_free(signed_again);

    CHECK(servership_verify_json((const uint8_t *)signed_json, signed_len, "example.org", 11,
                                 KEY_ID, strlen(KEY_ID), public_key,
                                 public_key_len) == SERVERSHIP_OK,
          "verify");
    CHECK(servership_verify_json((const uint8_t *)signed_json, signed_len, "other.org", 9, KEY_ID,
                                 strlen(KEY_ID), public_key,
                                 public_key_len) == SERVERSHIP_UNAUTHORIZED,
          "wrong server: unauthorized");
    CHECK(servership_last_error_http_status() == 401, "401");
    signed_json[5] = '7'; /* "a":1 -> "a":7 */
    CHECK(servership_verify_json((const uint8_t *)signed_json, signed_len, "example.org", 11,
                                 KEY_ID, strlen(KEY_ID), public_key,
                                 public_key_len) == SERVERSHIP_UNAUTHORIZED,
          "tampered: unauthorized");
    CHECK(servership_verify_json((const uint8_t *)signed_json, signed_len, "example.org", 11,
                                 KEY_ID, strlen(KEY_ID), "short", 5) == SERVERSHIP_INVALID_PARAM,
          "malformed public key");

    CHECK(servership_sign_json_with_key((const uint8_t *)"[1]", 3, "example.org", 11, key,
                                        &signed_again, NULL) == SERVERSHIP_BAD_JSON,
          "signing a non-object");
    CHECK(servership_sign_json_with_key((const uint8_t *)"{\"signatures\":1}", 16, "example.org",
                                        11, key, &signed_again, NULL) == SERVERSHIP_BAD_JSON,
          "signatures not an object");

    servership_signing_key *bad = NULL;
    CHECK(servership_signing_key_new("rsa:1", 5, SEED, strlen(SEED), &bad) ==
              SERVERSHIP_INVALID_PARAM && bad == NULL,
          "bad key id");
    CHECK(servership_signing_key_new(KEY_ID, strlen(KEY_ID), "AAAA", 4, &bad) ==
              SERVERSHIP_INVALID_PARAM && bad == NULL,
          "short seed");
    const char *line = "ed25519 a_b AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
    CHECK(servership_signing_key_from_synapse_line(line, strlen(line), &bad) == SERVERSHIP_OK,
          "synapse key line");
    servership_signing_key_free(bad);

    servership_string_free(signed_json);
    servership_string_free(key_id);
    servership_string_free(public_key);
    servership_signing_key_free(key);
}

static void test_events(void) {
    const char *ev = "{\"type\":\"m.room.message\",\"content\":{},\"room_id\":\"!r:a\","
                     "\"sender\":\"@a:a\",\"origin_server_ts\":1,\"depth\":1,"
                     "\"prev_events\":[],\"auth_events\":[],\"hashes\":{}}";
    char *out = SENTINEL;
    CHECK(servership_event_id((const uint8_t *)ev, strlen(ev), "99", 2, &out, NULL) ==
              SERVERSHIP_INCOMPATIBLE_ROOM_VERSION && out == SENTINEL,
          "unknown room version");
    CHECK(strstr(servership_last_error_json(), "\"room_version\":\"99\"") != NULL,
          "the error body names the version");
    CHECK(servership_event_id((const uint8_t *)ev, strlen(ev), NULL, 2, &out, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL room version");
    CHECK(servership_event_id((const uint8_t *)ev, strlen(ev), "1\xff", 2, &out, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "invalid UTF-8 room version");
    CHECK(servership_event_id((const uint8_t *)"{\"a\":1,\"a\":1}", 13, "12", 2, &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "event with duplicate keys");
    CHECK(servership_event_id((const uint8_t *)ev, strlen(ev), "12", 2, &out, NULL) ==
              SERVERSHIP_OK && out[0] == '$' && strlen(out) == 44,
          "v12 event ID");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_event_id((const uint8_t *)ev, strlen(ev), "1", 1, &out, NULL) ==
              SERVERSHIP_BAD_JSON && out == SENTINEL,
          "v1 event without event_id");
    CHECK(servership_redact((const uint8_t *)ev, strlen(ev), "12", 2, &out, NULL) ==
              SERVERSHIP_OK && strstr(out, "\"content\":{}") != NULL,
          "redact");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(servership_room_id_from_create_event((const uint8_t *)ev, strlen(ev), &out, NULL) !=
              SERVERSHIP_OK && out == SENTINEL,
          "room ID from a non-create event");
}

static void test_descriptions(void) {
    CHECK(strcmp(servership_status_description(SERVERSHIP_OK), "success") == 0, "ok text");
    CHECK(strncmp(servership_status_description(SERVERSHIP_BAD_JSON), "M_BAD_JSON", 10) == 0,
          "bad json text");
    CHECK(strcmp(servership_status_description(9999), "unknown status code") == 0, "unknown");
    CHECK(strlen(servership_version()) > 0, "version");
}

int main(void) {
    test_canonical();
    test_null_pointers();
    test_invalid_utf8();
    test_big_and_deep();
    test_signing();
    test_events();
    test_descriptions();
    return finish("hostile");
}
