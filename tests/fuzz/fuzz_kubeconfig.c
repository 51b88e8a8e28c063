/*
 * fuzz_kubeconfig.c - arbitrary bytes through the kubeconfig reader
 * (config/kubeconfig.c) that kubernetes_sd_configs' kubeconfig_file uses.
 *
 * A failure must name the file; a file that loads must give a server URL,
 * a certificate with its key or neither, not a token with a username or
 * password, files under the given directory or absolute, and inline data
 * of the length it says.  Nothing may leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_file(const char *f) {
    if (f && f[0] != '/')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    config_kubeconfig *k = NULL;
    kiln_err err = {0};
    int rc = config_kubeconfig_parse("fuzz.yml", "/d", (const char *)data, size, &k, &err);
    if (rc != 0) {
        if (k || !strstr(err.msg, "fuzz.yml"))
            abort();
        return 0;
    }
    if (!k->server || !strstr(k->server, "://"))
        abort();
    if ((k->cert_file || k->cert_data) != (k->key_file || k->key_data))
        abort();
    if ((k->token || k->token_file) && (k->username || k->password))
        abort();
    check_file(k->ca_file);
    check_file(k->cert_file);
    check_file(k->key_file);
    check_file(k->token_file);
    if ((k->ca_data && strlen(k->ca_data) > k->ca_len) ||
        (k->cert_data && strlen(k->cert_data) > k->cert_len) ||
        (k->key_data && strlen(k->key_data) > k->key_len))
        abort();
    config_kubeconfig_free(k);
    return 0;
}
