/*
 * Identifiers, X-Matrix and invites through the C API, with hostile input: NULL pointers, invalid
 * UTF-8, a 10 MB body, deep nesting, wrong types and tampered requests. Every failure must come
 * back as a status with a matching last error and untouched outputs; nothing may crash or leak.
 * Usage: hostile_invite FIXTURES_DIR (tests/c/fixtures, made by tests/fixtures_invite.rs).
 * Built with -std=c99 -Wall -Wextra -Werror and run under valgrind by tests/c/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define S(x) (x), strlen(x)

static const char *fixtures;

/* Reads fixtures/<name> into a new buffer (NUL-terminated, trailing newline removed). */
static char *fixture(const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    char *data = malloc(1 << 16);
    if (data == NULL) {
        exit(2);
    }
    size_t n = fread(data, 1, (1 << 16) - 1, f);
    fclose(f);
    while (n > 0 && data[n - 1] == '\n') {
        n--;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* The value of a string member "key":"value" in flat JSON text, copied into `out`. */
static void json_string(const char *json, const char *key, char *out, size_t cap) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":\"", key);
    const char *start = strstr(json, needle);
    out[0] = '\0';
    if (start == NULL) {
        return;
    }
    start += strlen(needle);
    const char *end = strchr(start, '"');
    size_t n = end == NULL ? 0 : (size_t)(end - start);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, start, n);
    out[n] = '\0';
}

static void expect_failure(servership_status status, servership_status want, int http,
                           const char *what) {
    CHECK(status == want, what);
    CHECK(servership_last_error_status() == want, "last error status");
    CHECK(servership_last_error_http_status() == http, what);
    CHECK(strlen(servership_last_error_message()) > 0, "a message on failure");
}

static void test_ids(void) {
    CHECK(servership_validate_server_name(S("matrix.org:8448")) == SERVERSHIP_OK, "server name");
    CHECK(servership_validate_server_name(S("[::1]:80")) == SERVERSHIP_OK, "IPv6 server name");
    expect_failure(servership_validate_server_name(S("bad_name!")), SERVERSHIP_INVALID_PARAM, 400,
                   "bad server name");
    CHECK(strcmp(servership_last_error_errcode(), "M_INVALID_PARAM") == 0, "errcode");
    expect_failure(servership_validate_server_name(NULL, 0), SERVERSHIP_INVALID_PARAM, 400,
                   "empty server name");
    expect_failure(servership_validate_server_name(NULL, 3), SERVERSHIP_NULL_POINTER, 500,
                   "NULL with a length");
    expect_failure(servership_validate_server_name("\xff\xfe", 2), SERVERSHIP_INVALID_UTF8, 400,
                   "invalid UTF-8");
    CHECK(servership_validate_user_id(S("@alice:example.org")) == SERVERSHIP_OK, "user ID");
    CHECK(servership_validate_user_id(S("@:example.org")) == SERVERSHIP_OK, "pseudouser ID");
    expect_failure(servership_validate_user_id(S("alice:example.org")), SERVERSHIP_INVALID_PARAM,
                   400, "user ID without @");
    CHECK(servership_validate_room_id(S("!abc:example.org")) == SERVERSHIP_OK, "room ID");
    CHECK(servership_validate_room_id(S("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM")) ==
              SERVERSHIP_OK,
          "v12 room ID");
    expect_failure(servership_validate_room_id(S("!abc")), SERVERSHIP_INVALID_PARAM, 400,
                   "room ID without server");
    CHECK(servership_validate_event_id(S("$abc:example.org")) == SERVERSHIP_OK, "v1 event ID");
    expect_failure(servership_validate_event_id(S("$short")), SERVERSHIP_INVALID_PARAM, 400,
                   "short event ID");
    /* A NUL inside an identifier is refused, not truncated. */
    expect_failure(servership_validate_user_id("@a\0b:example.org", 16), SERVERSHIP_INVALID_PARAM,
                   400, "NUL in a user ID");

    CHECK(servership_is_server_pseudouser(S("@:example.org")), "pseudouser");
    CHECK(!servership_is_server_pseudouser(S("@alice:example.org")), "not a pseudouser");
    CHECK(!servership_is_server_pseudouser(NULL, 0), "NULL is not a pseudouser");
    CHECK(!servership_is_server_pseudouser(NULL, 5), "NULL with a length");
    CHECK(!servership_is_server_pseudouser("@:\xff", 3), "invalid UTF-8");

    char *out = SENTINEL;
    size_t out_len = 0;
    CHECK(servership_server_pseudouser(S("example.org:8448"), &out, &out_len) == SERVERSHIP_OK &&
              strcmp(out, "@:example.org:8448") == 0 && out_len == 18,
          "server_pseudouser");
    servership_string_free(out);
    out = SENTINEL;
    expect_failure(servership_server_pseudouser(S("not a server"), &out, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "pseudouser of a bad server");
    CHECK(out == SENTINEL, "output untouched");
    expect_failure(servership_server_pseudouser(S("example.org"), NULL, NULL),
                   SERVERSHIP_NULL_POINTER, 500, "NULL out");

    CHECK(servership_percent_decode_path_segment(S("%21abc%3Aexample.org"), &out, NULL) ==
              SERVERSHIP_OK && strcmp(out, "!abc:example.org") == 0,
          "percent decode");
    servership_string_free(out);
    out = SENTINEL;
    expect_failure(servership_percent_decode_path_segment(S("%zz"), &out, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "bad escape");
    expect_failure(servership_percent_decode_path_segment(S("a%00b"), &out, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "escaped NUL");
    CHECK(out == SENTINEL, "output untouched");
    CHECK(servership_percent_encode_path_segment(S("!abc:example.org"), &out, NULL) ==
              SERVERSHIP_OK && strcmp(out, "%21abc%3Aexample.org") == 0,
          "percent encode");
    servership_string_free(out);
}

static void test_x_matrix(void) {
    servership_signing_key *key = NULL;
    /* The spec's test key (tests/vectors/x_matrix.json "keys.spec"). */
    CHECK(servership_signing_key_new(S("ed25519:1"), S("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"),
                                     &key) == SERVERSHIP_OK,
          "spec key");
    const char *uri = "/_matrix/federation/v1/version";
    char *header = NULL;
    CHECK(servership_x_matrix_sign_request(S("GET"), S(uri), S("domain"), S("remote.example"),
                                           NULL, 0, key, &header, NULL) == SERVERSHIP_OK,
          "sign without body");
    /* The vector's header for this request. */
    CHECK(header != NULL &&
              strcmp(header, "X-Matrix origin=\"domain\",destination=\"remote.example\","
                             "key=\"ed25519:1\",sig=\"wR1E4UZ3G3F2knf0x+RNgxQ2N/hCiZ/ZdOktAey0wSvTWc/"
                             "nHH8YPJaOvRhipwX46AZPntLZhHd0DFjZ7H7iDQ\"") == 0,
          "header matches the vector");
    const char *keys = "{\"ed25519:1\": \"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI\"}";
    char *origin = SENTINEL;
    size_t origin_len = 0;
    CHECK(servership_x_matrix_verify_request(S(header), S("GET"), S(uri), S("remote.example"), NULL,
                                             0, (const uint8_t *)keys, strlen(keys), &origin,
                                             &origin_len) == SERVERSHIP_OK &&
              strcmp(origin, "domain") == 0 && origin_len == 6,
          "verify");
    servership_string_free(origin);
    origin = SENTINEL;
    expect_failure(servership_x_matrix_verify_request(S(header), S("POST"), S(uri),
                                                      S("remote.example"), NULL, 0,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "other method");
    expect_failure(servership_x_matrix_verify_request(S(header), S("GET"), S(uri),
                                                      S("other.example"), NULL, 0,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "other destination");
    expect_failure(servership_x_matrix_verify_request(S(header), S("GET"), S(uri),
                                                      S("remote.example"), NULL, 0,
                                                      (const uint8_t *)"{}", 2, &origin, NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "no keys");
    expect_failure(servership_x_matrix_verify_request("X-Matrix \xff", 10, S("GET"), S(uri),
                                                      S("remote.example"), NULL, 0,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "header not UTF-8");
    expect_failure(servership_x_matrix_verify_request(S("Bearer abc"), S("GET"), S(uri),
                                                      S("remote.example"), NULL, 0,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "other scheme");
    expect_failure(servership_x_matrix_verify_request(S(header), S("GET"), S(uri),
                                                      S("remote.example"), NULL, 0,
                                                      (const uint8_t *)"[1]", 3, &origin, NULL),
                   SERVERSHIP_BAD_JSON, 400, "keys not an object");
    CHECK(origin == SENTINEL, "origin untouched on failure");
    servership_string_free(header);

    /* With a body: the body is signed, and changing it breaks the signature. */
    const char *body = "{\"b\": [1, 2], \"a\": \"x\"}";
    header = NULL;
    CHECK(servership_x_matrix_sign_request(S("PUT"), S("/p"), S("domain"), S("remote.example"),
                                           (const uint8_t *)body, strlen(body), key, &header,
                                           NULL) == SERVERSHIP_OK,
          "sign with body");
    CHECK(servership_x_matrix_verify_request(S(header), S("PUT"), S("/p"), S("remote.example"),
                                             (const uint8_t *)"{\"a\":\"x\",\"b\":[1,2]}", 19,
                                             (const uint8_t *)keys, strlen(keys), &origin,
                                             NULL) == SERVERSHIP_OK,
          "body compared as canonical JSON");
    servership_string_free(origin);
    origin = SENTINEL;
    expect_failure(servership_x_matrix_verify_request(S(header), S("PUT"), S("/p"),
                                                      S("remote.example"),
                                                      (const uint8_t *)"{\"a\":\"y\"}", 9,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_UNAUTHORIZED, 401, "changed body");
    expect_failure(servership_x_matrix_verify_request(S(header), S("PUT"), S("/p"),
                                                      S("remote.example"),
                                                      (const uint8_t *)"{\"a\":", 5,
                                                      (const uint8_t *)keys, strlen(keys), &origin,
                                                      NULL),
                   SERVERSHIP_NOT_JSON, 400, "body not JSON");
    servership_string_free(header);
    header = SENTINEL;
    expect_failure(servership_x_matrix_sign_request(S("PUT"), S("/p"), S("domain"),
                                                    S("remote.example"), (const uint8_t *)"{1.5",
                                                    4, key, &header, NULL),
                   SERVERSHIP_NOT_JSON, 400, "sign a bad body");
    expect_failure(servership_x_matrix_sign_request(S("GET"), S("/p"), S("domain"),
                                                    S("remote.example"), NULL, 0, NULL, &header,
                                                    NULL),
                   SERVERSHIP_NULL_POINTER, 500, "NULL key");
    expect_failure(servership_x_matrix_sign_request(S("GET"), S("/p"), S("bad origin"),
                                                    S("remote.example"), NULL, 0, key, &header,
                                                    NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "bad origin");
    CHECK(header == SENTINEL, "header untouched on failure");
    servership_signing_key_free(key);
}

static void test_key_ring(void) {
    servership_key_ring *ring = NULL;
    CHECK(servership_key_ring_new(&ring) == SERVERSHIP_OK && ring != NULL, "new ring");
    CHECK(servership_key_ring_add(ring, S("origin.example"), S("ed25519:1"),
                                  S("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI")) == SERVERSHIP_OK,
          "add");
    expect_failure(servership_key_ring_add(ring, S("origin.example"), S("ed25519:1"), S("!!")),
                   SERVERSHIP_INVALID_PARAM, 400, "bad base64");
    expect_failure(servership_key_ring_add(ring, S("origin.example"), S("rsa:1"),
                                           S("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI")),
                   SERVERSHIP_INVALID_PARAM, 400, "bad key ID");
    expect_failure(servership_key_ring_add(NULL, S("o"), S("ed25519:1"), S("x")),
                   SERVERSHIP_NULL_POINTER, 500, "NULL ring");
    expect_failure(servership_key_ring_new(NULL), SERVERSHIP_NULL_POINTER, 500, "NULL out");
    servership_key_ring_free(ring);
    servership_key_ring_free(NULL);

    ring = (servership_key_ring *)SENTINEL;
    expect_failure(servership_key_ring_from_json((const uint8_t *)"{\"o\": 1}", 8, &ring),
                   SERVERSHIP_BAD_JSON, 400, "server entry not an object");
    expect_failure(servership_key_ring_from_json((const uint8_t *)"nope", 4, &ring),
                   SERVERSHIP_NOT_JSON, 400, "not JSON");
    CHECK(ring == (servership_key_ring *)SENTINEL, "ring untouched on failure");
}

/* check_invite with the fixture's arguments, expecting `want`. */
static servership_status check(const char *body, size_t len, const servership_key_ring *keys,
                               char **out) {
    size_t meta_len = 0;
    char *meta = fixture("invite_v12_meta.json", &meta_len);
    char room_id[256], receiver[256], origin[256];
    json_string(meta, "room_id", room_id, sizeof room_id);
    json_string(meta, "receiving_server", receiver, sizeof receiver);
    json_string(meta, "origin", origin, sizeof origin);
    free(meta);
    return servership_check_invite(S(room_id), (const uint8_t *)body, len, S(receiver), S(origin),
                                   keys, out, NULL);
}

static void test_check_invite(void) {
    size_t keys_len = 0, body_len = 0, tampered_len = 0, meta_len = 0;
    char *keys_json = fixture("keys.json", &keys_len);
    char *body = fixture("invite_v12.json", &body_len);
    char *tampered = fixture("invite_v12_tampered.json", &tampered_len);
    char *meta = fixture("invite_v12_meta.json", &meta_len);
    char event_id[128];
    json_string(meta, "event_id", event_id, sizeof event_id);
    servership_key_ring *keys = NULL;
    CHECK(servership_key_ring_from_json((const uint8_t *)keys_json, keys_len, &keys) ==
              SERVERSHIP_OK,
          "keys.json");

    char *out = SENTINEL;
    CHECK(check(body, body_len, keys, &out) == SERVERSHIP_OK, "valid invite");
    CHECK(out != SENTINEL && strstr(out, event_id) != NULL &&
              strstr(out, "\"signatures_checked\":true") != NULL &&
              strstr(out, "\"creator_servers\":[\"origin.example\"]") != NULL,
          "result JSON");
    /* state holds only the create event: nothing proves the origin is in the room. */
    CHECK(strstr(out, "\"inviter_membership\":null") != NULL &&
              strstr(out, "\"proven_creator_servers\":[]") != NULL,
          "creator servers unproven without the inviter's join");
    servership_string_free(out);
    out = SENTINEL;
    CHECK(check(body, body_len, NULL, &out) == SERVERSHIP_OK &&
              strstr(out, "\"signatures_checked\":false") != NULL,
          "without keys");
    servership_string_free(out);

    out = SENTINEL;
    expect_failure(check(tampered, tampered_len, keys, &out), SERVERSHIP_INVALID_PARAM, 400,
                   "tampered invite");
    CHECK(strstr(servership_last_error_json(), "\"errcode\":\"M_INVALID_PARAM\"") != NULL,
          "error body");
    CHECK(out == SENTINEL, "output untouched on failure");

    /* Hostile bodies. */
    expect_failure(check(NULL, 10, keys, &out), SERVERSHIP_NULL_POINTER, 500, "NULL body");
    expect_failure(check(NULL, 0, keys, &out), SERVERSHIP_NOT_JSON, 400, "empty body");
    expect_failure(check(body, body_len, keys, NULL), SERVERSHIP_NULL_POINTER, 500, "NULL out");
    expect_failure(check("not json", 8, keys, &out), SERVERSHIP_NOT_JSON, 400, "not JSON");
    expect_failure(check("[]", 2, keys, &out), SERVERSHIP_BAD_JSON, 400, "an array");
    expect_failure(check("{\"event\": {}}", 13, keys, &out), SERVERSHIP_MISSING_PARAM, 400,
                   "no state");
    expect_failure(check("{\"event\": [], \"state\": []}", 26, keys, &out), SERVERSHIP_BAD_JSON,
                   400, "event of the wrong type");
    expect_failure(check("{\"event\": {}, \"state\": {}}", 26, keys, &out), SERVERSHIP_BAD_JSON,
                   400, "state of the wrong type");
    expect_failure(check("{\"event\": {}, \"state\": [1.5]}", 29, keys, &out), SERVERSHIP_BAD_JSON,
                   400, "a float");
    expect_failure(check("{\"event\": {}, \"state\": []}\0", 27, keys, &out), SERVERSHIP_NOT_JSON,
                   400, "a trailing NUL");

    size_t big = 10 * 1024 * 1024;
    char *huge = malloc(big);
    if (huge != NULL) {
        memset(huge, ' ', big);
        huge[0] = '{';
        huge[big - 1] = '}';
        expect_failure(check(huge, big, keys, &out), SERVERSHIP_TOO_LARGE, 413, "10 MB body");
        /* Deep nesting within the size limit. */
        size_t depth = 100000;
        for (size_t i = 0; i < depth; i++) {
            huge[i] = '[';
            huge[depth + i] = ']';
        }
        expect_failure(check(huge, 2 * depth, keys, &out), SERVERSHIP_BAD_JSON, 400,
                       "deep nesting");
        free(huge);
    }
    CHECK(out == SENTINEL, "output untouched through every failure");

    /* Invalid UTF-8 in the path's room ID. */
    expect_failure(servership_check_invite("!\xff", 2, (const uint8_t *)body, body_len,
                                           S("receiver.example"), S("origin.example"), keys, &out,
                                           NULL),
                   SERVERSHIP_INVALID_UTF8, 400, "room ID not UTF-8");
    /* A room ID that is not the one the body is for. */
    expect_failure(servership_check_invite(S("!other:origin.example"), (const uint8_t *)body,
                                           body_len, S("receiver.example"), S("origin.example"),
                                           keys, &out, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "other room");

    /* Spec invites: an unknown endpoint, and an MSC4329 body on the v2 endpoint. */
    expect_failure(servership_check_spec_invite(3, S("!a:b.example"), S(event_id),
                                                (const uint8_t *)body, body_len,
                                                S("receiver.example"), S("origin.example"), keys,
                                                &out, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "unknown endpoint");
    CHECK(servership_check_spec_invite(SERVERSHIP_SPEC_INVITE_V2, S("!a:b.example"), S(event_id),
                                       (const uint8_t *)body, body_len, S("receiver.example"),
                                       S("origin.example"), keys, &out, NULL) != SERVERSHIP_OK,
          "MSC4329 body on the v2 endpoint");
    CHECK(out == SENTINEL, "spec output untouched");

    servership_key_ring_free(keys);
    free(keys_json);
    free(body);
    free(tampered);
    free(meta);
}

static void test_build(void) {
    const char *invite = "{\"type\":\"m.room.member\",\"content\":{\"membership\":\"invite\"},"
                         "\"room_id\":\"!abc:origin.example\",\"state_key\":\"@bob:r.example\"}";
    const char *create = "{\"type\":\"m.room.create\",\"content\":{\"room_version\":\"11\"}}";
    const char *stripped = "[{\"type\":\"m.room.create\"},{\"type\":\"m.room.name\"}]";
    char *path = SENTINEL, *body = SENTINEL;
    size_t path_len = 0, body_len = 0;
    CHECK(servership_build_invite_request((const uint8_t *)invite, strlen(invite),
                                          (const uint8_t *)create, strlen(create), NULL, 0,
                                          (const uint8_t *)stripped, strlen(stripped), &path,
                                          &path_len, &body, &body_len) == SERVERSHIP_OK,
          "build");
    const char *prefix = servership_invite_path_unstable_prefix();
    CHECK(strncmp(path, prefix, strlen(prefix)) == 0 &&
              strcmp(path + strlen(prefix), "%21abc%3Aorigin.example") == 0 &&
              path_len == strlen(path),
          "path");
    CHECK(strstr(body, "\"invite_room_state\":[{\"type\":\"m.room.name\"}]") != NULL &&
              strstr(body, "\"state\":[{\"content\":{\"room_version\":\"11\"}") != NULL &&
              body_len == strlen(body),
          "body: create in state, not in invite_room_state");
    servership_string_free(path);
    servership_string_free(body);
    path = SENTINEL;
    body = SENTINEL;
    expect_failure(servership_build_invite_request((const uint8_t *)create, strlen(create),
                                                   (const uint8_t *)create, strlen(create), NULL,
                                                   0, NULL, 0, &path, NULL, &body, NULL),
                   SERVERSHIP_INVALID_PARAM, 400, "not an invite");
    expect_failure(servership_build_invite_request((const uint8_t *)invite, strlen(invite),
                                                   (const uint8_t *)create, strlen(create),
                                                   (const uint8_t *)"{}", 2, NULL, 0, &path, NULL,
                                                   &body, NULL),
                   SERVERSHIP_BAD_JSON, 400, "extra state not an array");
    expect_failure(servership_build_invite_request((const uint8_t *)invite, strlen(invite),
                                                   (const uint8_t *)create, strlen(create),
                                                   (const uint8_t *)"[1]", 3, NULL, 0, &path, NULL,
                                                   &body, NULL),
                   SERVERSHIP_BAD_JSON, 400, "extra state entry not an object");
    expect_failure(servership_build_invite_request((const uint8_t *)invite, strlen(invite),
                                                   (const uint8_t *)create, strlen(create), NULL,
                                                   0, NULL, 0, &path, NULL, NULL, NULL),
                   SERVERSHIP_NULL_POINTER, 500, "NULL body_out");
    CHECK(path == SENTINEL && body == SENTINEL, "outputs untouched on failure");
    CHECK(strcmp(servership_invite_path_v3_prefix(), "/_matrix/federation/v3/invite/") == 0, "v3");
    CHECK(strstr(servership_invite_path_unstable_alias_prefix(), "msc0000") != NULL, "alias");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    test_ids();
    test_x_matrix();
    test_key_ring();
    test_check_invite();
    test_build();
    return finish("hostile_invite");
}
