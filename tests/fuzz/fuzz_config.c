/*
 * fuzz_config.c - arbitrary bytes through the configuration loader.  A
 * document that loads must also write itself out with config_to_yaml, and
 * that output must load again; everything must be freed (leaks fail).
 * Every key listed as not acted on has a path and a position.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    config *c = NULL;
    kiln_err err = {0};
    if (config_load_string("fuzz.yml", (const char *)data, size, &c, &err) != 0) {
        if (c != NULL || err.msg[0] == 0)
            abort(); /* a failed load returns nothing and says why */
        return 0;
    }
    for (size_t i = 0; i < c->nunused_keys; i++)
        if (!c->unused_keys[i].path[0] || c->unused_keys[i].line < 1 || c->unused_keys[i].col < 1)
            abort();
    buf out = BUF_INIT;
    if (config_to_yaml(c, &out) == 0) {
        config *c2 = NULL;
        if (config_load_string("fuzz-out.yml", out.data ? out.data : "", out.len, &c2, &err) != 0)
            abort(); /* our own output must load */
        for (size_t i = 0; i < c->nscrape_configs && i < c2->nscrape_configs; i++)
            (void)config_scrape_equal(&c->scrape_configs[i], &c2->scrape_configs[i]);
        config_free(c2);
    }
    buf_free(&out);
    config_free(c);
    return 0;
}
