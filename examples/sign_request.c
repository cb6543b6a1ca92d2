/*
 * Federation signing end to end: a server name is validated, a signing key is made from a seed,
 * a JSON object is signed and verified, and a federation request gets an X-Matrix Authorization
 * header that the receiving side verifies (and refuses once the body is changed).
 *
 *   cc -std=c99 sign_request.c $(pkg-config --cflags --libs servership) -o sign_request
 *   ./sign_request    # prints the signed object, the header and the authenticated origin
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "servership.h"

#define ORIGIN "origin.example"
#define DESTINATION "destination.example"
#define KEY_ID "ed25519:1"
/* 32 bytes of seed in unpadded base64; a real server reads its own from its key file. */
#define SEED "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define URI "/_matrix/federation/v1/send/1"

static int fail(const char *what) {
    fprintf(stderr, "%s failed: %s\n", what, servership_last_error_json());
    return 1;
}

int main(void) {
    servership_signing_key *key = NULL;
    char *public_key = NULL, *signed_json = NULL, *header = NULL, *origin = NULL, *again = NULL;
    int code = 1;
    const char *object = "{\"hello\":\"world\"}";
    const char *body = "{\"pdus\":[],\"edus\":[]}";
    const char *tampered = "{\"pdus\":[],\"edus\":[{}]}";
    char keys[128];
    size_t signed_len = 0;

    if (servership_validate_server_name(ORIGIN, strlen(ORIGIN)) != SERVERSHIP_OK) {
        return fail("validate_server_name");
    }
    if (servership_signing_key_new(KEY_ID, strlen(KEY_ID), SEED, strlen(SEED), &key)
            != SERVERSHIP_OK) {
        return fail("signing_key_new");
    }
    if (servership_signing_key_public_key(key, &public_key, NULL) != SERVERSHIP_OK) {
        fail("signing_key_public_key");
        goto done;
    }

    /* Sign a JSON object and check the signature with the public half. */
    if (servership_sign_json_with_key((const uint8_t *)object, strlen(object), ORIGIN,
                                      strlen(ORIGIN), key, &signed_json, &signed_len)
            != SERVERSHIP_OK) {
        fail("sign_json_with_key");
        goto done;
    }
    printf("signed: %s\n", signed_json);
    if (servership_verify_json((const uint8_t *)signed_json, signed_len, ORIGIN, strlen(ORIGIN),
                               KEY_ID, strlen(KEY_ID), public_key, strlen(public_key))
            != SERVERSHIP_OK) {
        fail("verify_json");
        goto done;
    }

    /* The sending side signs the request; the receiving side verifies it with the origin's keys. */
    if (servership_x_matrix_sign_request("PUT", 3, URI, strlen(URI), ORIGIN, strlen(ORIGIN),
                                         DESTINATION, strlen(DESTINATION),
                                         (const uint8_t *)body, strlen(body), key, &header, NULL)
            != SERVERSHIP_OK) {
        fail("x_matrix_sign_request");
        goto done;
    }
    printf("Authorization: %s\n", header);
    snprintf(keys, sizeof keys, "{\"" KEY_ID "\":\"%s\"}", public_key);
    if (servership_x_matrix_verify_request(header, strlen(header), "PUT", 3, URI, strlen(URI),
                                           DESTINATION, strlen(DESTINATION),
                                           (const uint8_t *)body, strlen(body),
                                           (const uint8_t *)keys, strlen(keys), &origin, NULL)
            != SERVERSHIP_OK) {
        fail("x_matrix_verify_request");
        goto done;
    }
    printf("authenticated origin: %s\n", origin);

    /* The same header over another body must not verify; the error says what to answer. */
    if (servership_x_matrix_verify_request(header, strlen(header), "PUT", 3, URI, strlen(URI),
                                           DESTINATION, strlen(DESTINATION),
                                           (const uint8_t *)tampered, strlen(tampered),
                                           (const uint8_t *)keys, strlen(keys), &again, NULL)
            == SERVERSHIP_OK) {
        fprintf(stderr, "a changed body verified\n");
        goto done;
    }
    printf("changed body: %u %s\n", servership_last_error_http_status(),
           servership_last_error_errcode());
    code = 0;

done:
    servership_string_free(again);
    servership_string_free(origin);
    servership_string_free(header);
    servership_string_free(signed_json);
    servership_string_free(public_key);
    servership_signing_key_free(key);
    return code;
}
