/*
 * Every store opened from a PostgreSQL connection string through the C API: tags (and a second
 * handle that sees them), the shared discovery budget, knocks and the audit queue; bad and
 * unreachable connection strings fail with the documented codes.
 *   store_postgres CONNECTION_STRING   (an empty database of its own; tests/c/run.sh makes one)
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define S(text) text, strlen(text)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CONNECTION_STRING\n", argv[0]);
        return 2;
    }
    const char *dsn = argv[1];
    servership_tag_store *store = NULL, *again = NULL, *other = NULL;
    CHECK(servership_tag_store_open(S(dsn), S("c.example"), &store) == SERVERSHIP_OK,
          "open the tag store on PostgreSQL");
    bool added = false, known = false;
    CHECK(servership_tag_store_record_join(store, S("!c:c.example"), 1000, &added) ==
                  SERVERSHIP_OK && added,
          "record a join");
    CHECK(servership_tag_store_record_join(store, S("!c:c.example"), 2000, &added) ==
                  SERVERSHIP_OK && !added,
          "recording it again adds nothing");
    CHECK(servership_tag_store_open(S(dsn), S("c.example"), &again) == SERVERSHIP_OK,
          "a second handle");
    CHECK(servership_tag_store_record_join(again, S("!d':c.example"), 3000, &added) ==
                  SERVERSHIP_OK && added,
          "the second handle records a room with a quote in it");
    CHECK(servership_tag_store_contains_room(store, S("!d':c.example"), &known) ==
                  SERVERSHIP_OK && known,
          "the first handle sees it without reopening");
    size_t len = 0;
    CHECK(servership_tag_store_len(store, &len) == SERVERSHIP_OK && len == 2, "two rooms");
    CHECK(servership_tag_store_open(S(dsn), S("other.example"), &other) ==
                  SERVERSHIP_INVALID_PARAM && other == NULL,
          "the database belongs to c.example");

    servership_responder *responder = NULL;
    CHECK(servership_responder_new_shared(store, 100, 1000, 60000, &responder) == SERVERSHIP_OK,
          "a responder with its budget in PostgreSQL");
    servership_responder_free(responder);

    servership_knock_store *knocks = NULL;
    CHECK(servership_knock_store_open(S(dsn), 3600000, &knocks) == SERVERSHIP_OK,
          "open the knock store");
    uint64_t times = 0;
    CHECK(servership_knock_store_record(knocks, S("!c:c.example"), S("k.example"), 5, &times) ==
                  SERVERSHIP_OK && times == 1,
          "record a knock");
    CHECK(servership_knock_store_record(knocks, S("!c:c.example"), S("k.example"), 6, &times) ==
                  SERVERSHIP_OK && times == 2,
          "the same knock again");
    servership_knock_store_free(knocks);

    servership_audit_queue *queue = NULL;
    CHECK(servership_audit_queue_open(S(dsn), &queue) == SERVERSHIP_OK, "open the audit queue");
    CHECK(servership_audit_queue_enqueue(queue, S("!c:c.example"), 10, 1, &added) ==
                  SERVERSHIP_OK && added,
          "queue an audit");
    char *due = NULL;
    size_t due_len = 0;
    CHECK(servership_audit_queue_due(queue, 10, 10, &due, &due_len) == SERVERSHIP_OK &&
                  due != NULL && strcmp(due, "[\"!c:c.example\"]") == 0,
          "it is due");
    servership_string_free(due);
    servership_audit_queue_free(queue);

    servership_tag_store *bad = NULL;
    CHECK(servership_tag_store_open(S("postgresql://h:notaport/db"), S("c.example"), &bad) ==
                  SERVERSHIP_INVALID_PARAM && bad == NULL,
          "an invalid connection string");
    CHECK(servership_tag_store_open(S("postgresql://x:pw@127.0.0.1:1/db"), S("c.example"), &bad) ==
                  SERVERSHIP_UNKNOWN && bad == NULL,
          "nothing listens on port 1");
    CHECK(strstr(servership_last_error_json(), ":pw@") == NULL, "the password is not shown");
    servership_audit_queue *untouched = (servership_audit_queue *)(void *)SENTINEL;
    CHECK(servership_audit_queue_open(S("host=127.0.0.1 port=1 connect_timeout=1"), &untouched) ==
                  SERVERSHIP_UNKNOWN &&
              untouched == (servership_audit_queue *)(void *)SENTINEL,
          "a failed open writes nothing");

    servership_tag_store_free(again);
    servership_tag_store_free(store);
    return finish("store_postgres");
}
