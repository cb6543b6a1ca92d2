/*
 * What the other hostile tests leave out, for every exported function that takes a pointer:
 * NULL with a length, a length larger than any buffer (SIZE_MAX, never read), invalid UTF-8 in
 * text, NULL out-parameters and NULL handles. Each must give the documented status, record a
 * last error with an M_ errcode, and leave every output untouched. Every _free(NULL) is a no-op.
 * Run under valgrind by tests/c/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define BAD "\xff\xfe"
#define BAD_LEN 2
#define HUGE SIZE_MAX

/* One case: the status must be `expected`, the last error must agree, outputs untouched. */
static void expect(servership_status got, servership_status expected, const char *out_value,
                   size_t out_len, const char *what, int line) {
    int ok = got == expected && servership_last_error_status() == expected &&
             strncmp(servership_last_error_errcode(), "M_", 2) == 0 &&
             servership_last_error_http_status() >= 400 && out_value == SENTINEL &&
             out_len == 12345;
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL line %d: %s: status %d (expected %d), last error %s, out %s\n",
                line, what, (int)got, (int)expected, servership_last_error_json(),
                out_value == SENTINEL ? "untouched" : "WRITTEN");
    }
}

#define EXPECT(call, status)                                                   \
    do {                                                                       \
        char *out = SENTINEL;                                                  \
        size_t len = 12345;                                                    \
        servership_status got_ = (call);                                       \
        expect(got_, (status), out, len, #call, __LINE__);                     \
        if (out != SENTINEL) servership_string_free(out);                      \
    } while (0)

/* For calls whose out-parameter is the one under test (passed as NULL): only the status. */
#define EXPECT_NO_OUT(call, status)                                            \
    do {                                                                       \
        expect((call), (status), SENTINEL, 12345, #call, __LINE__);            \
    } while (0)

static const char *EVENT = "{\"type\":\"m.room.create\",\"sender\":\"@a:x.org\",\"content\":{}}";
#define E (const uint8_t *)EVENT, strlen(EVENT)
#define T(x) (x), strlen(x)

static void events(void) {
    EXPECT(servership_redact(NULL, 5, T("10"), &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_redact((const uint8_t *)"{}", HUGE, T("10"), &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_redact(E, BAD, BAD_LEN, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_redact(E, NULL, 3, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_redact(E, "10\0", 3, &out, &len), SERVERSHIP_INCOMPATIBLE_ROOM_VERSION);
    EXPECT_NO_OUT(servership_redact(E, T("10"), NULL, NULL), SERVERSHIP_NULL_POINTER);

    EXPECT(servership_room_id_from_create_event(NULL, 1, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_room_id_from_create_event((const uint8_t *)BAD, BAD_LEN, &out, &len),
           SERVERSHIP_NOT_JSON);
    EXPECT(servership_room_id_from_create_event((const uint8_t *)"{}", HUGE, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_room_id_from_create_event(E, NULL, NULL), SERVERSHIP_NULL_POINTER);

    EXPECT(servership_event_id(E, NULL, 2, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_event_id(E, BAD, BAD_LEN, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_canonical_json((const uint8_t *)"{}", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
}

static void identifiers(void) {
    EXPECT(servership_percent_encode_path_segment(NULL, 1, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_percent_encode_path_segment(BAD, BAD_LEN, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_percent_encode_path_segment("x", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_percent_encode_path_segment(T("x"), NULL, NULL), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_percent_decode_path_segment(T("%ff"), &out, &len), SERVERSHIP_INVALID_PARAM);
    EXPECT(servership_percent_decode_path_segment(T("%00"), &out, &len), SERVERSHIP_INVALID_PARAM);
    EXPECT(servership_percent_decode_path_segment("x", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_server_pseudouser("x", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_server_pseudouser("x.org\0", 6, &out, &len), SERVERSHIP_INVALID_PARAM);

    EXPECT_NO_OUT(servership_validate_server_name(NULL, 4), SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_validate_server_name(BAD, BAD_LEN), SERVERSHIP_INVALID_UTF8);
    EXPECT_NO_OUT(servership_validate_server_name("x", HUGE), SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_validate_user_id("@a:x.org\0", 9), SERVERSHIP_INVALID_PARAM);
    EXPECT_NO_OUT(servership_validate_room_id("x", HUGE), SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_validate_event_id(BAD, BAD_LEN), SERVERSHIP_INVALID_UTF8);
    /* A bool answer cannot carry a status: NULL, huge and invalid inputs are simply "no". */
    if (!servership_is_server_pseudouser(NULL, 5) && !servership_is_server_pseudouser("@:x", HUGE) &&
        !servership_is_server_pseudouser(BAD, BAD_LEN) && servership_is_server_pseudouser(T("@:x.org"))) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL: servership_is_server_pseudouser on hostile input\n");
    }
}

static void signing(void) {
    servership_signing_key *key = (servership_signing_key *)SENTINEL;
    EXPECT_NO_OUT(servership_signing_key_from_synapse_line(NULL, 3, &key), SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_signing_key_from_synapse_line(BAD, BAD_LEN, &key), SERVERSHIP_INVALID_UTF8);
    EXPECT_NO_OUT(servership_signing_key_from_synapse_line("x", HUGE, &key), SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_signing_key_from_synapse_line(T("ed25519 a"), &key),
                  SERVERSHIP_INVALID_PARAM);
    EXPECT_NO_OUT(servership_signing_key_from_synapse_line(T("ed25519 a AAAA"), NULL),
                  SERVERSHIP_NULL_POINTER);
    if (key == (servership_signing_key *)SENTINEL) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL: key out-parameter written on failure\n");
    }
    EXPECT(servership_signing_key_id(NULL, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_signing_key_public_key(NULL, &out, &len), SERVERSHIP_NULL_POINTER);

    EXPECT(servership_sign_json(E, NULL, 1, T("ed25519:a"), T("AAAA"), &out, &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT(servership_sign_json(E, T("x.org"), BAD, BAD_LEN, T("AAAA"), &out, &len),
           SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_sign_json(E, T("x.org"), T("ed25519:a"), "A", HUGE, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_sign_json(E, T("x.org"), T("ed25519:a"), T("not base64!"), &out, &len),
           SERVERSHIP_INVALID_PARAM);
    EXPECT_NO_OUT(servership_verify_json(E, T("x.org"), T("ed25519:a"), NULL, 9),
                  SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_verify_json(E, BAD, BAD_LEN, T("ed25519:a"), T("AAAA")),
                  SERVERSHIP_INVALID_UTF8);
}

static void invites(void) {
    EXPECT(servership_check_spec_invite(1, NULL, 3, T("$e"), E, T("x.org"), T("y.org"), NULL, &out,
                                        &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT(servership_check_spec_invite(1, T("!r:x.org"), BAD, BAD_LEN, E, T("x.org"), T("y.org"),
                                        NULL, &out, &len),
           SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_check_spec_invite(1, T("!r:x.org"), T("$e"), (const uint8_t *)"{", HUGE,
                                        T("x.org"), T("y.org"), NULL, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_check_spec_invite(7, T("!r:x.org"), T("$e"), E, T("x.org"), T("y.org"), NULL,
                                        &out, &len),
           SERVERSHIP_INVALID_PARAM);
    EXPECT(servership_check_spec_invite(INT32_MIN, T("!r:x.org"), T("$e"), E, T("x.org"), T("y.org"),
                                        NULL, &out, &len),
           SERVERSHIP_INVALID_PARAM);
    {
        char *path = SENTINEL, *body = SENTINEL;
        size_t path_len = 12345, body_len = 12345;
        servership_status s = servership_build_invite_request(NULL, 4, E, NULL, 0, NULL, 0, &path,
                                                              &path_len, &body, &body_len);
        expect(s, SERVERSHIP_NULL_POINTER, path, path_len, "build_invite_request(NULL invite)",
               __LINE__);
        expect(s, SERVERSHIP_NULL_POINTER, body, body_len, "build_invite_request(NULL invite)",
               __LINE__);
        s = servership_build_invite_request(E, E, NULL, 0, NULL, 0, &path, &path_len, NULL, NULL);
        expect(s, SERVERSHIP_NULL_POINTER, path, path_len, "build_invite_request(NULL body_out)",
               __LINE__);
    }
}

static void stores(void) {
    bool present = true;
    size_t n = 777;
    EXPECT_NO_OUT(servership_tag_store_contains_room(NULL, T("!r:x.org"), &present),
                  SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_tag_store_len(NULL, &n), SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_tag_store_backfill(NULL, T("[]"), 0, &n), SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_knock_store_purge_expired(NULL, 0, &n), SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_knock_store_open_with_limits(NULL, 3, 1000, 1, 1000, NULL),
                  SERVERSHIP_NULL_POINTER);
    EXPECT(servership_knock_store_get(NULL, T("!r:x.org"), T("y.org"), 0, &out, &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT(servership_responder_respond(NULL, (const uint8_t *)"{}", 2, T("y.org"), 0, &out, &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT_NO_OUT(servership_key_ring_add(NULL, T("x.org"), T("ed25519:a"), T("AAAA")),
                  SERVERSHIP_NULL_POINTER);
    if (present && n == 777) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL: store out-parameters written on failure\n");
    }
}

/* The audit, budgets and the audit queue: every new function, every pointer argument. */
#define H (const uint8_t *)"[]", 2
#define ANS (const uint8_t *)"[]", 2
#define ROOM T("!r:x.org")
#define ME T("x.org")
static void audits(void) {
    /* servership_audit_report: room, own server, history, visible, answers, out. */
    EXPECT(servership_audit_report(NULL, 3, ME, H, NULL, 0, ANS, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_report(BAD, BAD_LEN, ME, H, NULL, 0, ANS, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_audit_report("!", HUGE, ME, H, NULL, 0, ANS, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_report(ROOM, NULL, 2, H, NULL, 0, ANS, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_report(ROOM, BAD, BAD_LEN, H, NULL, 0, ANS, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_audit_report(ROOM, "x", HUGE, H, NULL, 0, ANS, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_report(ROOM, ME, NULL, 2, NULL, 0, ANS, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_report(ROOM, ME, (const uint8_t *)"[", HUGE, NULL, 0, ANS, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_report(ROOM, ME, (const uint8_t *)BAD, BAD_LEN, NULL, 0, ANS, &out, &len),
           SERVERSHIP_NOT_JSON);
    EXPECT(servership_audit_report(ROOM, ME, (const uint8_t *)"{}", 2, NULL, 0, ANS, &out, &len),
           SERVERSHIP_BAD_JSON);
    EXPECT(servership_audit_report(ROOM, ME, (const uint8_t *)"[[\"@a:b\",\"join\"]]", 17, NULL, 0,
                                   ANS, &out, &len),
           SERVERSHIP_BAD_JSON);
    EXPECT(servership_audit_report(ROOM, ME, (const uint8_t *)"[[\"@a:b\",\"join\",1]]", 19, NULL,
                                   0, ANS, &out, &len),
           SERVERSHIP_BAD_JSON);
    EXPECT(servership_audit_report(ROOM, ME, H, NULL, 5, ANS, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_report(ROOM, ME, H, (const uint8_t *)"[", HUGE, ANS, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_report(ROOM, ME, H, (const uint8_t *)"[1]", 3, ANS, &out, &len),
           SERVERSHIP_BAD_JSON);
    EXPECT(servership_audit_report(ROOM, ME, H, NULL, 0, NULL, 2, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_report(ROOM, ME, H, NULL, 0, (const uint8_t *)"[", HUGE, &out, &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_report(ROOM, ME, H, NULL, 0, (const uint8_t *)"[{}]", 4, &out, &len),
           SERVERSHIP_MISSING_PARAM);
    EXPECT(servership_audit_report(ROOM, ME, H, NULL, 0, (const uint8_t *)"[7]", 3, &out, &len),
           SERVERSHIP_BAD_JSON);
    {
        const char *maybe = "[{\"server\":\"y.org\",\"answer\":\"maybe\"}]";
        EXPECT(servership_audit_report(ROOM, ME, H, NULL, 0, (const uint8_t *)maybe, strlen(maybe),
                                       &out, &len),
               SERVERSHIP_INVALID_PARAM);
    }
    EXPECT_NO_OUT(servership_audit_report(ROOM, ME, H, NULL, 0, ANS, NULL, NULL), SERVERSHIP_NULL_POINTER);

    /* servership_audit_choose_peers */
    EXPECT(servership_audit_choose_peers(NULL, 1, ME, H, NULL, 0, H, 5, 1, &out, &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_choose_peers(ROOM, BAD, BAD_LEN, H, NULL, 0, H, 5, 1, &out, &len),
           SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_audit_choose_peers(ROOM, ME, (const uint8_t *)"[", HUGE, NULL, 0, H, 5, 1, &out,
                                         &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, NULL, 2, 5, 1, &out, &len),
           SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, (const uint8_t *)"[", HUGE, 5, 1, &out,
                                         &len),
           SERVERSHIP_TOO_LARGE);
    EXPECT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, (const uint8_t *)"[[\"y.org\",-1]]", 14,
                                         5, 1, &out, &len),
           SERVERSHIP_INVALID_PARAM);
    EXPECT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, (const uint8_t *)"[[\"y.org\"]]", 11, 5,
                                         1, &out, &len),
           SERVERSHIP_BAD_JSON);
    EXPECT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, (const uint8_t *)BAD, BAD_LEN, 5, 1,
                                         &out, &len),
           SERVERSHIP_NOT_JSON);
    EXPECT_NO_OUT(servership_audit_choose_peers(ROOM, ME, H, NULL, 0, H, 5, 1, NULL, NULL),
                  SERVERSHIP_NULL_POINTER);

    /* one room, one peer */
    EXPECT(servership_audit_request_body(NULL, 1, ROOM, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_audit_request_body(BAD, BAD_LEN, ROOM, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_audit_request_body(ME, "!", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT_NO_OUT(servership_audit_request_body(ME, ROOM, NULL, NULL), SERVERSHIP_NULL_POINTER);
    {
        int recognised = 77;
        EXPECT_NO_OUT(servership_audit_read_response(NULL, 1, ROOM, (const uint8_t *)"{}", 2, &recognised),
                      SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_read_response(ME, BAD, BAD_LEN, (const uint8_t *)"{}", 2,
                                                     &recognised),
                      SERVERSHIP_INVALID_UTF8);
        EXPECT_NO_OUT(servership_audit_read_response(ME, ROOM, (const uint8_t *)"{", HUGE, &recognised),
                      SERVERSHIP_TOO_LARGE);
        EXPECT_NO_OUT(servership_audit_read_response(ME, ROOM, NULL, 3, &recognised),
                      SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_read_response(ME, ROOM, (const uint8_t *)BAD, BAD_LEN,
                                                     &recognised),
                      SERVERSHIP_NOT_JSON);
        EXPECT_NO_OUT(servership_audit_read_response(ME, ROOM, (const uint8_t *)"{}", 2, &recognised),
                      SERVERSHIP_BAD_JSON);
        EXPECT_NO_OUT(servership_audit_read_response(ME, ROOM, (const uint8_t *)"{}", 2, NULL),
                      SERVERSHIP_NULL_POINTER);
        if (recognised == 77) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL: recognised written on failure\n");
        }
    }

    /* budgets */
    EXPECT(servership_normalise_origin(NULL, 1, &out, &len), SERVERSHIP_NULL_POINTER);
    EXPECT(servership_normalise_origin(BAD, BAD_LEN, &out, &len), SERVERSHIP_INVALID_UTF8);
    EXPECT(servership_normalise_origin("x", HUGE, &out, &len), SERVERSHIP_TOO_LARGE);
    EXPECT(servership_normalise_origin("a\0b", 3, &out, &len), SERVERSHIP_INVALID_PARAM);
    EXPECT_NO_OUT(servership_normalise_origin(ME, NULL, NULL), SERVERSHIP_NULL_POINTER);
    {
        servership_responder *r = (servership_responder *)SENTINEL;
        EXPECT_NO_OUT(servership_responder_new_shared(NULL, 10, 100, 1000, &r), SERVERSHIP_NULL_POINTER);
        if (r == (servership_responder *)SENTINEL) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL: responder written on failure\n");
        }
    }

    /* the audit queue and the joined-and-queued record */
    {
        bool flag = true;
        uint64_t count = 777;
        servership_audit_queue *q = (servership_audit_queue *)SENTINEL;
        EXPECT_NO_OUT(servership_tag_store_record_join_and_queue_audit(NULL, ROOM, 1, 2, &flag),
                      SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_open(NULL, 4, &q), SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_open("x", HUGE, &q), SERVERSHIP_TOO_LARGE);
        EXPECT_NO_OUT(servership_audit_queue_open(NULL, 0, &q), SERVERSHIP_INVALID_PARAM);
        EXPECT_NO_OUT(servership_audit_queue_open("a\0b", 3, &q), SERVERSHIP_INVALID_PARAM);
        EXPECT_NO_OUT(servership_audit_queue_open(T("q.db"), NULL), SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_enqueue(NULL, ROOM, 1, 1, &flag), SERVERSHIP_NULL_POINTER);
        EXPECT(servership_audit_queue_due(NULL, 1, 10, &out, &len), SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_finish(NULL, ROOM, 1, T("consistent"), &flag),
                      SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_postpone(NULL, ROOM, 1, &flag), SERVERSHIP_NULL_POINTER);
        EXPECT_NO_OUT(servership_audit_queue_finished_since(NULL, 0, &count), SERVERSHIP_NULL_POINTER);
        if (flag && count == 777 && q == (servership_audit_queue *)SENTINEL) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL: queue out-parameters written on failure\n");
        }
    }
}

static void frees(void) {
    /* Every destructor takes NULL as a no-op, and none of them touches the last error. */
    EXPECT_NO_OUT(servership_validate_server_name(NULL, 4), SERVERSHIP_NULL_POINTER);
    servership_string_free(NULL);
    servership_signing_key_free(NULL);
    servership_key_ring_free(NULL);
    servership_tag_store_free(NULL);
    servership_responder_free(NULL);
    servership_knock_store_free(NULL);
    servership_audit_queue_free(NULL);
    if (servership_last_error_status() == SERVERSHIP_NULL_POINTER) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL: a _free(NULL) changed the last error\n");
    }
}

int main(void) {
    events();
    identifiers();
    signing();
    invites();
    stores();
    audits();
    frees();
    return finish("hostile_all");
}
