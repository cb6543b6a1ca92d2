/*
 * The members rules through C: every case of tests/vectors/auth_members_room_version.json, fed
 * by tests/c/run.sh on stdin as one tab-separated line per case
 * (name, room_version, event JSON, auth events JSON, verdict, reason), goes through
 * servership_check_members_rules and must give the expected verdict and reason. Then hostile
 * calls: NULLs, bad JSON, an unknown room version, huge and deep input; outputs stay untouched on
 * failure. Run under valgrind by tests/c/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"
#include "check.h"

#define S(x) (const uint8_t *)(x), strlen(x)
#define T(x) (x), strlen(x)

/* Splits `line` at tabs into `fields` (at most `n`); returns how many. */
static size_t split(char *line, char **fields, size_t n) {
    size_t count = 0;
    char *p = line;
    while (count < n) {
        fields[count++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL) {
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    return count;
}

static int vectors(void) {
    size_t cap = 1u << 20;
    char *line = malloc(cap);
    int cases = 0;
    if (line == NULL) {
        return 0;
    }
    while (fgets(line, (int)cap, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *f[6];
        if (split(line, f, 6) != 6) {
            CHECK(0, "a vector line has six fields");
            continue;
        }
        char *out = SENTINEL;
        size_t len = 0;
        int status = servership_check_members_rules(S(f[2]), S(f[3]), T(f[1]), &out, &len);
        CHECK(status == SERVERSHIP_OK, f[0]);
        if (status != SERVERSHIP_OK) {
            continue;
        }
        char want_verdict[64], want_reason[96];
        snprintf(want_verdict, sizeof want_verdict, "\"verdict\":\"%s\"", f[4]);
        snprintf(want_reason, sizeof want_reason, "\"reason\":\"%s\"", f[5]);
        int ok = strstr(out, want_verdict) != NULL && strstr(out, want_reason) != NULL &&
                 len == strlen(out);
        if (!ok) {
            fprintf(stderr, "%s: got %s\n", f[0], out);
        }
        CHECK(ok, f[0]);
        servership_string_free(out);
        cases++;
    }
    free(line);
    return cases;
}

#define CREATE                                                                              \
    "{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@a:a.example\",\"content\":" \
    "{\"room_version\":\"org.servership.v12.members.1\"}}"
#define JOIN                                                                                  \
    "{\"type\":\"m.room.member\",\"state_key\":\"@:b.example\",\"sender\":\"@:b.example\"," \
    "\"content\":{\"membership\":\"join\"}}"

static void hostile(void) {
    const char *auth = "[" CREATE "]";
    const char *v = "org.servership.v12.members.1";
    char *out = SENTINEL;

    CHECK(servership_check_members_rules(S(JOIN), S(auth), T(v), NULL, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL out");
    CHECK(servership_check_members_rules(NULL, 4, S(auth), T(v), &out, NULL) ==
              SERVERSHIP_NULL_POINTER,
          "NULL event with a length");
    CHECK(servership_check_members_rules(S(JOIN), S(auth), T("99"), &out, NULL) ==
              SERVERSHIP_INCOMPATIBLE_ROOM_VERSION,
          "unknown room version");
    CHECK(servership_check_members_rules(S(JOIN), S(auth), "\xff", 1, &out, NULL) ==
              SERVERSHIP_INVALID_UTF8,
          "room version not UTF-8");
    CHECK(servership_check_members_rules(S("{"), S(auth), T(v), &out, NULL) == SERVERSHIP_NOT_JSON,
          "event not JSON");
    CHECK(servership_check_members_rules(S(JOIN), S("{}"), T(v), &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "auth events not an array");
    CHECK(servership_check_members_rules(S(JOIN), S("[1]"), T(v), &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "an auth event not an object");
    CHECK(strstr(servership_last_error_message(), "auth_events[0]") != NULL,
          "message names the index");
    CHECK(servership_check_members_rules(S(JOIN), S("[{\"a\":1,\"a\":2}]"), T(v), &out, NULL) ==
              SERVERSHIP_BAD_JSON,
          "duplicate keys");
    CHECK(out == SENTINEL, "output untouched on every failure");

    /* A decision, not an error: the create event missing. */
    CHECK(servership_check_members_rules(S(JOIN), S("[]"), T(v), &out, NULL) == SERVERSHIP_OK,
          "no create event is a decision");
    CHECK(strstr(out, "\"reason\":\"auth_events_invalid\"") != NULL, "refused for it");
    servership_string_free(out);

    /* 100,000 auth events and 10,000 levels of nesting: an answer or an error, no crash. */
    size_t n = 100000;
    const char *item = "{\"type\":\"t\",\"state_key\":\"\"},";
    size_t item_len = strlen(item);
    char *huge = malloc(strlen(CREATE) + n * item_len + 8);
    if (huge != NULL) {
        char *p = huge;
        *p++ = '[';
        for (size_t i = 0; i < n; i++) {
            memcpy(p, item, item_len);
            p += item_len;
        }
        memcpy(p, CREATE, strlen(CREATE));
        p += strlen(CREATE);
        *p++ = ']';
        out = SENTINEL;
        int status = servership_check_members_rules(S(JOIN), (const uint8_t *)huge,
                                                    (size_t)(p - huge), T(v), &out, NULL);
        CHECK(status == SERVERSHIP_OK && strstr(out, "auth_events_invalid") != NULL,
              "many auth events with one key: refused as duplicates");
        if (status == SERVERSHIP_OK) {
            servership_string_free(out);
        }
        free(huge);
    }
    size_t depth = 10000;
    char *deep = malloc(2 * depth + 1);
    if (deep != NULL) {
        memset(deep, '[', depth);
        memset(deep + depth, ']', depth);
        out = SENTINEL;
        CHECK(servership_check_members_rules(S(JOIN), (const uint8_t *)deep, 2 * depth, T(v), &out,
                                             NULL) == SERVERSHIP_BAD_JSON,
              "deep nesting is refused");
        CHECK(out == SENTINEL, "untouched");
        free(deep);
    }
}

int main(void) {
    int cases = vectors();
    CHECK(cases >= 60, "the vectors were read");
    printf("members_room_version: %d vectors\n", cases);
    hostile();
    return finish("members_room_version");
}
