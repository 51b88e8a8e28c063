/*
 * fuzz_tombstones.c - arbitrary bytes as a block's tombstones file.  A file
 * that decodes must encode to a file that decodes to the same set (the set
 * is normalised: sorted, merged), and every interval's samples must filter
 * out; a failed decode says why and leaves the set empty.  An input whose
 * first byte is odd is taken as the entries alone and wrapped in a valid
 * header and checksum, so the fuzzer reaches the entry decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/tombstones.h"
#include "storage/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tombstones t = {0}, back = {0};
    kiln_err err = {0};
    buf in = BUF_INIT;
    if (size && (data[0] & 1)) {
        static const uint8_t head[5] = {0x01, 0x30, 0xBA, 0x30, 0x01};
        uint32_t crc = crc32c(0, data + 1, size - 1);
        uint8_t c4[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
        if (buf_append(&in, head, 5) || buf_append(&in, data + 1, size - 1) || buf_append(&in, c4, 4))
            abort();
        data = (const uint8_t *)in.data;
        size = in.len;
    }
    int rc = tombstones_decode(data, size, &t, &err);
    buf_free(&in);
    if (rc != 0) {
        if (t.n != 0 || err.msg[0] == 0)
            abort();
        return 0;
    }
    buf out = BUF_INIT;
    if (tombstones_encode(&t, &out) != 0)
        abort();
    if (tombstones_decode((const uint8_t *)out.data, out.len, &back, &err) != 0 || back.n != t.n ||
        (t.n && memcmp(back.v, t.v, t.n * sizeof *t.v) != 0))
        abort();
    for (size_t i = 0; i < t.n; i++) {
        if (t.v[i].mint > t.v[i].maxt ||
            (i && t.v[i].ref == t.v[i - 1].ref && t.v[i].mint <= t.v[i - 1].maxt))
            abort(); /* sorted, disjoint */
        size_t n;
        const tstone *iv = tombstones_of(&t, t.v[i].ref, &n);
        sample s[2] = {{t.v[i].mint, 1}, {t.v[i].maxt, 2}};
        if (!iv || tombstones_filter(iv, n, s, 2) != 0)
            abort();
    }
    buf_free(&out);
    tombstones_free(&t);
    tombstones_free(&back);
    return 0;
}
