/*
 * ulid.c - ULIDs, the names of TSDB blocks: 48 bits of Unix milliseconds and
 * 80 random bits, written as 26 characters of Crockford's base32, most
 * significant first, so that names sort by creation time.
 *
 * Threading: any thread.
 */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/util.h"

void ulid_new(char out[ULID_LEN + 1]) {
    static const char enc[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint8_t rnd[10] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)(time_mono_sec() * 1e9) * 1000003u ^ (uint64_t)getpid();
        memcpy(rnd, &x, 8);
    }
    uint64_t ms = (uint64_t)time_now_ms();
    for (int i = 9; i >= 0; i--) {
        out[i] = enc[ms & 31];
        ms >>= 5;
    }
    /* 80 random bits as 16 characters of 5 bits, most significant first */
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int bit = 0; bit < 5; bit++) {
            int k = i * 5 + bit;
            v = v << 1 | ((rnd[k / 8] >> (7 - k % 8)) & 1);
        }
        out[10 + i] = enc[v];
    }
    out[ULID_LEN] = 0;
}

int ulid_valid(const char *s) {
    if (strlen(s) != ULID_LEN)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z')))
            return 0;
    return 1;
}
