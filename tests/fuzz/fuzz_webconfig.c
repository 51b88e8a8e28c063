/*
 * fuzz_webconfig.c - arbitrary bytes through the web configuration loader
 * (config/webconfig.c).
 *
 * A failure must name the file and a place; nothing may leak.  A file that
 * loads must hold what the checks promise: known TLS versions, cipher and
 * curve names, a client-auth policy when TLS is on and both files named,
 * only the toolkit's headers, and hashes of a form libcrypt checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    config_web *w = NULL;
    kiln_err err = {0};
    int rc = config_web_load_string("fuzz.yml", "/d", (const char *)data, size, &w, &err);
    if (rc != 0) {
        if (w || strncmp(err.msg, "fuzz.yml", 8) != 0)
            abort();
        return 0;
    }
    const config_web_tls *t = &w->tls;
    if (!config_tls_version(t->min_version) || !config_tls_version(t->max_version))
        abort();
    for (size_t i = 0; i < t->ncipher_suites; i++)
        if (!config_web_cipher_openssl(t->cipher_suites[i]))
            abort();
    for (size_t i = 0; i < t->ncurve_preferences; i++)
        if (!config_web_curve_openssl(t->curve_preferences[i]))
            abort();
    if (t->enabled && (!t->cert_file || !t->key_file || t->client_auth < CONFIG_CLIENT_AUTH_NONE ||
                       t->client_auth > CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY))
        abort();
    if (t->client_ca_file && t->client_auth == CONFIG_CLIENT_AUTH_NONE)
        abort();
    for (size_t i = 0; i < w->nheaders; i++)
        if (strchr(w->headers[i].value, '\n') || strchr(w->headers[i].value, '\r'))
            abort();
    for (size_t i = 0; i < w->nusers; i++)
        if (strlen(w->users[i].value) < 59 || strncmp(w->users[i].value, "$2", 2) != 0)
            abort();
    config_web_free(w);
    return 0;
}
