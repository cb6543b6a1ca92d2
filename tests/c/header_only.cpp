// The header must compile as C++ with every warning on (g++ -Wall -Wextra -Werror).
#include "servership.h"

int main() {
    servership_status status = SERVERSHIP_OK;
    servership_signing_key *key = nullptr;
    servership_signing_key_free(key);
    return status == SERVERSHIP_OK && servership_version() != nullptr ? 0 : 1;
}
