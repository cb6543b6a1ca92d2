/*
 * event_id: prints the event ID of a PDU stored in a file.
 *
 *   cc -std=c99 -Iinclude examples/event_id.c -Ltarget/debug -lservership \
 *      -Wl,-rpath,"$PWD/target/debug" -o event_id
 *   ./event_id pdu.json 12          # $XEy9wBUPnTswE8-xZHYlz4NEt7JPyjV5J4RJ1Vl9Tf0
 *
 * On failure it prints the Matrix error body on stderr and exits with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servership.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PDU_FILE ROOM_VERSION\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    size_t cap = 65536 + 1, len = 0; /* a PDU is at most 64 KiB; one more byte to notice more */
    unsigned char *pdu = malloc(cap);
    if (pdu == NULL) {
        fclose(f);
        return 2;
    }
    len = fread(pdu, 1, cap, f);
    fclose(f);

    char *event_id = NULL;
    servership_status status =
        servership_event_id(pdu, len, argv[2], strlen(argv[2]), &event_id, NULL);
    free(pdu);
    if (status != SERVERSHIP_OK) {
        fprintf(stderr, "%s\n", servership_last_error_json());
        return 1;
    }
    printf("%s\n", event_id);
    servership_string_free(event_id);
    return 0;
}
