/* The header must compile as C99 on its own with every warning on. */
#include "servership.h"

int main(void) {
    servership_status status = SERVERSHIP_OK;
    servership_signing_key *key = NULL;
    servership_signing_key_free(key);
    return status == SERVERSHIP_OK && servership_version() != NULL ? 0 : 1;
}
