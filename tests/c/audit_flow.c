/*
 * The MSC4358 audit from C, end to end: a join recorded with its audit queued in one
 * transaction, the queue, peers chosen by score, one peer asked about one room through the
 * bytes federation carries (answered by a shared-budget responder), the report from the
 * membership history, and budgets shared by two responders under normalised origins.
 * Run under valgrind by tests/c/run.sh. Usage: audit_flow DIR (a scratch directory).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define S(text) text, strlen(text)
#define J(text) (const uint8_t *)text, strlen(text)

static const char *ROOM = "!council:blue.example";

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The history Purple was shown: Gray joined and left, Green was kicked by Blue's moderator. */
static const char *HISTORY =
    "[[\"@blue:blue.example\",\"join\",\"@blue:blue.example\"],"
    "[\"@gray:gray.example\",\"join\",\"@gray:gray.example\"],"
    "[\"@gray:gray.example\",\"leave\",\"@gray:gray.example\"],"
    "[\"@green:green.example\",\"join\",\"@green:green.example\"],"
    "[\"@green:green.example\",\"leave\",\"@mod:blue.example\"],"
    "[\"@purple:purple.example\",\"join\",\"@purple:purple.example\"]]";

static void test_queue(const char *dir) {
    char *file = path_in(dir, "purple.sqlite");
    servership_tag_store *store = NULL;
    servership_audit_queue *queue = NULL;
    CHECK(servership_tag_store_open(S(file), S("purple.example"), &store) == SERVERSHIP_OK, "open");
    CHECK(servership_audit_queue_open(S(file), &queue) == SERVERSHIP_OK, "open queue");
    bool added = false;
    CHECK(servership_tag_store_record_join_and_queue_audit(store, S(ROOM), 10, 100, &added) ==
              SERVERSHIP_OK && added, "new room: tag and audit");
    CHECK(servership_tag_store_record_join_and_queue_audit(store, S(ROOM), 20, 200, &added) ==
              SERVERSHIP_OK && !added, "known room: nothing queued again");
    CHECK(servership_audit_queue_enqueue(queue, S("!lobby:green.example"), 50, 1, &added) ==
              SERVERSHIP_OK && added, "enqueue");
    CHECK(servership_audit_queue_enqueue(queue, S(ROOM), 5, 1, &added) == SERVERSHIP_OK && !added,
          "one audit per room");
    char *due = NULL;
    size_t due_len = 0;
    CHECK(servership_audit_queue_due(queue, 150, 10, &due, &due_len) == SERVERSHIP_OK, "due");
    CHECK(due != NULL && strcmp(due, "[\"!lobby:green.example\",\"!council:blue.example\"]") == 0 &&
              due_len == strlen(due), "earliest first");
    servership_string_free(due);
    bool done = false;
    CHECK(servership_audit_queue_postpone(queue, S("!lobby:green.example"), 400, &done) ==
              SERVERSHIP_OK && done, "postpone");
    CHECK(servership_audit_queue_finish(queue, S(ROOM), 300, S("removed_by_other_server"), &done) ==
              SERVERSHIP_OK && done, "finish");
    CHECK(servership_audit_queue_finish(queue, S(ROOM), 301, S("consistent"), &done) ==
              SERVERSHIP_OK && !done, "finish twice");
    CHECK(servership_audit_queue_finish(queue, S("!lobby:green.example"), 302, S("a\nb"), &done) ==
              SERVERSHIP_INVALID_PARAM, "control characters in the verdict");
    uint64_t finished = 9;
    CHECK(servership_audit_queue_finished_since(queue, 300, &finished) == SERVERSHIP_OK &&
              finished == 1, "finished_since");
    due = NULL;
    CHECK(servership_audit_queue_due(queue, 399, 10, &due, NULL) == SERVERSHIP_OK && due != NULL &&
              strcmp(due, "[]") == 0, "postponed and done rooms are not due");
    servership_string_free(due);
    servership_audit_queue_free(queue);

    /* A new handle (a restart) sees the same queue. */
    queue = NULL;
    CHECK(servership_audit_queue_open(S(file), &queue) == SERVERSHIP_OK, "reopen");
    due = NULL;
    CHECK(servership_audit_queue_due(queue, 1000, 10, &due, NULL) == SERVERSHIP_OK && due != NULL &&
              strcmp(due, "[\"!lobby:green.example\"]") == 0, "durable");
    servership_string_free(due);
    servership_audit_queue_free(queue);
    servership_tag_store_free(store);
    free(file);
}

static void test_audit(const char *dir) {
    /* Green really is in the room and answers from its own store with a shared budget. */
    char *file = path_in(dir, "green.sqlite");
    servership_tag_store *green = NULL;
    servership_responder *endpoint = NULL, *worker = NULL;
    CHECK(servership_tag_store_open(S(file), S("green.example"), &green) == SERVERSHIP_OK, "green");
    CHECK(servership_tag_store_record_join(green, S(ROOM), 1, NULL) == SERVERSHIP_OK, "green joined");
    CHECK(servership_responder_new_shared(green, 10, 15, 60000, &endpoint) == SERVERSHIP_OK, "shared");
    CHECK(servership_responder_new_shared(green, 10, 15, 60000, &worker) == SERVERSHIP_OK, "worker");

    /* Peers by rooms shared; Blue (visible) and Purple (us) are never chosen. */
    const char *candidates =
        "[[\"blue.example\",90],[\"purple.example\",90],[\"green.example\",3],[\"gray.example\",1]]";
    char *peers = NULL;
    CHECK(servership_audit_choose_peers(S(ROOM), S("purple.example"), J(HISTORY), NULL, 0,
                                        J(candidates), 5, 42, &peers, NULL) == SERVERSHIP_OK, "choose");
    CHECK(peers != NULL && (strcmp(peers, "[\"green.example\",\"gray.example\"]") == 0 ||
                            strcmp(peers, "[\"gray.example\",\"green.example\"]") == 0),
          "the two eligible peers");
    char *again = NULL;
    CHECK(servership_audit_choose_peers(S(ROOM), S("purple.example"), J(HISTORY), NULL, 0,
                                        J(candidates), 5, 42, &again, NULL) == SERVERSHIP_OK &&
              again != NULL && peers != NULL && strcmp(again, peers) == 0, "same seed, same plan");
    servership_string_free(peers);
    servership_string_free(again);

    /* Ask Green about the room: request bytes out, answer bytes back. */
    char *body = NULL, *answer = NULL;
    size_t body_len = 0, answer_len = 0;
    CHECK(servership_audit_request_body(S("green.example"), S(ROOM), &body, &body_len) ==
              SERVERSHIP_OK, "request body");
    CHECK(servership_responder_respond(endpoint, (const uint8_t *)body, body_len, S("PURPLE.example"),
                                       1, &answer, &answer_len) == SERVERSHIP_OK, "respond");
    int recognised = -1;
    CHECK(servership_audit_read_response(S("green.example"), S(ROOM), (const uint8_t *)answer,
                                         answer_len, &recognised) == SERVERSHIP_OK &&
              recognised == 1, "green recognises the room");
    CHECK(servership_audit_read_response(S("gray.example"), S(ROOM), (const uint8_t *)answer,
                                         answer_len, &recognised) == SERVERSHIP_BAD_JSON &&
              strstr(servership_last_error_message(), "not asked") != NULL,
          "an answer to another question is malformed");
    CHECK(servership_audit_read_response(S("gray.example"), S(ROOM), J("{\"recognised_tags\":[]}"),
                                         &recognised) == SERVERSHIP_OK && recognised == 0,
          "an empty answer is not recognised");
    servership_string_free(answer);
    servership_string_free(body);

    /* The second responder on the same file shares the budget, under the normalised origin:
     * 1 tag charged to PURPLE.example, 10 more to purple.example.:8448, then 5 left. */
    answer = NULL;
    const char *ten = "{\"room_participation_tags\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]}";
    CHECK(servership_responder_respond(worker, J(ten), S("purple.example.:8448"), 2, &answer, NULL) ==
              SERVERSHIP_OK, "the worker answers");
    servership_string_free(answer);
    answer = SENTINEL;
    CHECK(servership_responder_respond(endpoint, J(ten), S("purple.example"), 3, &answer, NULL) ==
              SERVERSHIP_LIMIT_EXCEEDED && servership_last_error_http_status() == 429 &&
              strstr(servership_last_error_json(), "retry_after_ms") != NULL &&
              strstr(servership_last_error_message(), "purple.example has asked about 11") != NULL,
          "one budget for both responders and every spelling");
    CHECK(answer == SENTINEL, "out untouched");
    char *norm = NULL;
    CHECK(servership_normalise_origin(S("[2001:DB8::1]:8448"), &norm, NULL) == SERVERSHIP_OK &&
              norm != NULL && strcmp(norm, "[2001:db8::1]") == 0, "normalise_origin");
    servership_string_free(norm);

    /* The report: Green was kicked by Blue's moderator, Gray left, White never was in the room. */
    const char *answers =
        "[{\"server\":\"green.example\",\"answer\":\"recognised\"},"
        "{\"server\":\"gray.example\",\"answer\":\"recognised\"},"
        "{\"server\":\"white.example\",\"answer\":\"not_recognised\"},"
        "{\"server\":\"black.example\",\"answer\":\"failed\",\"error\":\"timed out\"}]";
    char *report = NULL;
    CHECK(servership_audit_report(S(ROOM), S("purple.example"), J(HISTORY), NULL, 0, J(answers),
                                  &report, NULL) == SERVERSHIP_OK, "report");
    CHECK(report != NULL &&
              strstr(report, "\"removed\":[{\"membership\":\"leave\",\"removed_by\":[\"@mod:blue.example\"],"
                             "\"server\":\"green.example\"}]") != NULL &&
              strstr(report, "\"verdict\":\"removed_by_other_server\"") != NULL &&
              strstr(report, "\"explained\":[{\"membership\":\"leave\",\"server\":\"gray.example\"}]") != NULL &&
              strstr(report, "\"failed\":[{\"error\":\"timed out\",\"server\":\"black.example\"}]") != NULL,
          "removed, explained and failed peers in the report");
    if (report != NULL) printf("%s\n", report);
    servership_string_free(report);

    /* The homeserver's visible list wins: told Green is joined, its recognition is expected. */
    report = NULL;
    CHECK(servership_audit_report(S(ROOM), S("purple.example"), J(HISTORY),
                                  J("[\"blue.example\",\"green.example\"]"),
                                  J("[{\"server\":\"green.example\",\"answer\":\"recognised\"}]"),
                                  &report, NULL) == SERVERSHIP_OK && report != NULL &&
              strstr(report, "\"visible\":[\"green.example\"]") != NULL &&
              strstr(report, "\"verdict\":\"consistent\"") != NULL, "visible list");
    servership_string_free(report);

    servership_responder_free(worker);
    servership_responder_free(endpoint);
    servership_tag_store_free(green);
    free(file);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    test_queue(argv[1]);
    test_audit(argv[1]);
    return finish("audit_flow");
}
