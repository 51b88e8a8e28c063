/*
 * fuzz_sd_kube.c - arbitrary bytes through Kubernetes SD's watch-event
 * decoder (sd_kube_event) and, for an event carrying an object, the role's
 * mapping of it to a target group (sd_kube_build); byte 0 picks the role.
 *
 * A decoded event has a known type and an object whose place lies in the
 * line; a group's source names the role and every target has an
 * __address__.  Nothing may leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const roles[] = {"node", "pod", "service", "endpoints", "endpointslice", "ingress"};
    static const char *const prefixes[] = {"node/",      "pod/",           "svc/",
                                           "endpoints/", "endpointslice/", "ingress/"};
    if (size < 1)
        return 0;
    size_t r = data[0] % 6;
    const char *line = (const char *)data + 1;
    size_t len = size - 1;
    arena a;
    arena_init(&a, 0);
    int type;
    const json_val *o;
    long code;
    kiln_err err = {0};
    if (sd_kube_event(line, len, &a, &type, &o, &code, &err) == 0) {
        if (type < SD_KUBE_ADDED || type > SD_KUBE_ERROR || !o || o->type != JSON_OBJ || o->end > len ||
            line[o->off] != '{' || line[o->end - 1] != '}')
            abort();
        sd_gb b;
        sd_gb_init(&b);
        sd_tg *g = NULL;
        if (type != SD_KUBE_ERROR && sd_kube_build(roles[r], o, NULL, &b, &a, &g) == 0) {
            if (strncmp(g->source, prefixes[r], strlen(prefixes[r])) != 0)
                abort();
            for (size_t i = 0; i < g->nt; i++)
                if (!labels_get(g->t[i].ls, g->t[i].n, "__address__"))
                    abort();
            sd_tg_unref(g);
        }
        sd_gb_free(&b);
    } else if (!err.msg[0]) {
        abort();
    }
    arena_free(&a);
    return 0;
}
