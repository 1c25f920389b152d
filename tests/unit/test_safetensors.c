/* test_safetensors.c — safetensors write/read round trip and refusal of lying headers.
 * (Interchange with numpy and PyTorch is tested in tests/bats/engine-model.bats.) */
#include "cryolvm/safetensors.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* A file image with the given JSON header and `datalen` bytes of zeros. */
static char *image(const char *json, size_t datalen, size_t *len)
{
    size_t hl = strlen(json);
    *len = 8 + hl + datalen;
    char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        b[i] = (char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    return b;
}

static int parse_status(const char *json, size_t datalen, char *msg, size_t msgcap)
{
    size_t len;
    char *b = image(json, datalen, &len);
    struct cryo_safetensors *st = NULL;
    struct cryo_error e = {0};
    int rc = cryo_safetensors_parse(&st, b, len, "bad.safetensors", &e);
    snprintf(msg, msgcap, "%s", e.msg);
    cryo_safetensors_free(st);
    free(b);
    return rc;
}

TEST(roundtrip)
{
    struct cryo_safetensors *st;
    struct cryo_error e = {0};
    CHECK(cryo_safetensors_create(&st, &e) == 0);
    float w[24];
    for (int i = 0; i < 24; i++)
        w[i] = (float)i * 0.5f - 3.0f;
    int64_t sw[3] = {2, 3, 4}, sb[1] = {3}, sc[1] = {1};
    double b[3] = {1.5, -2.0, 1e-300};
    int64_t step = 123456789012345LL;
    CHECK(cryo_safetensors_add(st, "enc.0.weight", CRYO_ST_F32, 3, sw, w, &e) == 0);
    CHECK(cryo_safetensors_add(st, "enc.0.bias", CRYO_ST_F64, 1, sb, b, &e) == 0);
    CHECK(cryo_safetensors_add(st, "step", CRYO_ST_I64, 1, sc, &step, &e) == 0);
    CHECK(cryo_safetensors_add(st, "step", CRYO_ST_I64, 1, sc, &step, &e) == CRYO_E_INVALID);
    CHECK(cryo_safetensors_add(st, "__metadata__", CRYO_ST_I64, 1, sc, &step, &e) == CRYO_E_INVALID);
    CHECK(cryo_meta_set(&st->meta, "config", "width=32,depth=2", &e) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/a.safetensors", tu_tmpdir());
    CHECK(cryo_safetensors_write(st, path, &e) == 0);
    cryo_safetensors_free(st);

    size_t len = 0;
    char *raw = slurp(path, &len);
    CHECK(raw != NULL && len >= 8);
    if (!raw || len < 8)
        return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (unsigned char)raw[i];
    CHECK((8 + hl) % 8 == 0);
    CHECK(len == 8 + hl + sizeof w + sizeof b + 8);
    free(raw);

    struct cryo_safetensors *r = NULL;
    CHECK(cryo_safetensors_read(&r, path, &e) == 0);
    if (!r)
        return;
    CHECK_EQ_INT(r->n, 3);
    const float *wr;
    CHECK(cryo_safetensors_get_f32(r, "enc.0.weight", 3, sw, &wr, &e) == 0);
    CHECK(memcmp(wr, w, sizeof w) == 0);
    int64_t wrong[3] = {2, 4, 3};
    CHECK(cryo_safetensors_get_f32(r, "enc.0.weight", 3, wrong, &wr, &e) == CRYO_E_FORMAT);
    CHECK(strstr(e.msg, "[2,3,4]") != NULL);
    CHECK(cryo_safetensors_get_f32(r, "enc.0.bias", 1, sb, &wr, &e) == CRYO_E_FORMAT);
    CHECK(cryo_safetensors_get_f32(r, "nope", 1, sb, &wr, &e) == CRYO_E_FORMAT);
    const struct cryo_st_tensor *tb = cryo_safetensors_find(r, "enc.0.bias");
    CHECK(tb && tb->dtype == CRYO_ST_F64 && memcmp(tb->data, b, sizeof b) == 0);
    const struct cryo_st_tensor *ts = cryo_safetensors_find(r, "step");
    CHECK(ts && *(const int64_t *)ts->data == step);
    CHECK(cryo_meta_get(&r->meta, "config") && strcmp(cryo_meta_get(&r->meta, "config"), "width=32,depth=2") == 0);
    cryo_safetensors_free(r);
}

TEST(lying_headers_refused)
{
    char m[1024];
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    CHECK(parse_status(ok, 8, m, sizeof m) == 0);
    /* data beyond the tensors */
    CHECK(parse_status(ok, 12, m, sizeof m) == CRYO_E_FORMAT);
    /* offsets out of range */
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(strstr(m, "bad.safetensors") && strstr(m, "'a'"));
    /* shape does not match the byte count */
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    /* overlap */
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    /* hole */
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    /* unknown dtype, negative dim, overflowing shape, bad JSON, duplicate key */
    CHECK(parse_status("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,8],\"data_offsets\":[0,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",", 8, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(parse_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, m, sizeof m) == CRYO_E_FORMAT);
    CHECK(parse_status("{\"__metadata__\":{\"k\":3}}", 0, m, sizeof m) == CRYO_E_FORMAT);
    /* absurd header length and truncated header */
    char b[16] = {0};
    b[7] = 0x10;
    struct cryo_safetensors *st = NULL;
    struct cryo_error e = {0};
    CHECK(cryo_safetensors_parse(&st, b, sizeof b, "x", &e) == CRYO_E_FORMAT && !st);
    memset(b, 0, sizeof b);
    b[0] = 100;
    CHECK(cryo_safetensors_parse(&st, b, sizeof b, "x", &e) == CRYO_E_TRUNCATED && !st);
    CHECK(cryo_safetensors_parse(&st, b, 5, "x", &e) == CRYO_E_TRUNCATED && !st);
    CHECK(cryo_safetensors_read(&st, "/nonexistent/w.safetensors", &e) == CRYO_E_IO);
    CHECK(strstr(e.msg, "/nonexistent/w.safetensors") != NULL);
}

/* Every cut and many random byte flips of a valid file: parsing either succeeds with a
 * consistent table or fails with a message, never crashes or reads out of bounds (run it
 * under `make SAN=address,undefined`). */
TEST(cut_and_flipped_files)
{
    struct cryo_safetensors *st;
    struct cryo_error e = {0};
    CHECK(cryo_safetensors_create(&st, &e) == 0);
    float w[40];
    for (int i = 0; i < 40; i++)
        w[i] = (float)i;
    int64_t s1[2] = {5, 4}, s2[1] = {20};
    CHECK(cryo_safetensors_add(st, "a.weight", CRYO_ST_F32, 2, s1, w, &e) == 0);
    CHECK(cryo_safetensors_add(st, "a.bias", CRYO_ST_F32, 1, s2, w + 20, &e) == 0);
    CHECK(cryo_meta_set(&st->meta, "config", "width=8", &e) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/f.safetensors", tu_tmpdir());
    CHECK(cryo_safetensors_write(st, path, &e) == 0);
    cryo_safetensors_free(st);
    size_t len = 0;
    char *raw = slurp(path, &len);
    CHECK(raw && len > 8);
    if (!raw)
        return;
    int ok = 0, refused = 0, silent = 0;
    for (size_t cut = 0; cut < len; cut++) {
        struct cryo_safetensors *r = NULL;
        e.msg[0] = 0;
        int rc = cryo_safetensors_parse(&r, raw, cut, "cut", &e);
        refused += rc < 0;
        silent += rc < 0 && e.msg[0] == 0;
        ok += rc == 0;
        cryo_safetensors_free(r);
    }
    CHECK(ok == 0 && refused == (int)len && silent == 0); /* no proper prefix is a valid file */
    uint64_t rs = 5;
    char *buf = malloc(len);
    int flips_ok = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(buf, raw, len);
        int nflip = 1 + (int)((tu_rand(&rs) + 1) * 1.5);
        for (int k = 0; k < nflip; k++) {
            size_t at = (size_t)((tu_rand(&rs) + 1) / 2 * (double)len) % len;
            buf[at] = (char)(buf[at] ^ (1 << ((int)((tu_rand(&rs) + 1) * 4) & 7)));
        }
        struct cryo_safetensors *r = NULL;
        e.msg[0] = 0;
        int rc = cryo_safetensors_parse(&r, buf, len, "flip", &e);
        if (rc == 0) { /* accepted: then the table must tile the data exactly */
            size_t tot = 0;
            for (size_t i = 0; i < r->n; i++)
                tot += r->t[i].nbytes;
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--)
                hl = hl << 8 | (unsigned char)buf[i];
            flips_ok += tot == len - 8 - hl;
            flips_ok -= 1;
        } else {
            flips_ok -= e.msg[0] == 0; /* a refusal always says why */
        }
        cryo_safetensors_free(r);
    }
    CHECK(flips_ok == 0);
    free(buf);
    free(raw);
}

/* Lean exported weights store float16 or bfloat16; copy_f32 widens them. Expected values are
 * the encodings numpy (np.float16(x).view(np.uint16)) and torch (bfloat16 view int16) give. */
TEST(copy_f32_widens_half_precision)
{
    struct cryo_error e = {0};
    struct cryo_safetensors *st = NULL;
    CHECK(cryo_safetensors_create(&st, &e) == 0);
    if (!st)
        return;
    /* 1.5, -2.25, 0.1 (nearest half 0.0999755859375), 65504 (largest half) */
    const uint16_t h[4] = {0x3E00, 0xC080, 0x2E66, 0x7BFF};
    /* bfloat16: 1.5, -2.25, 0.1 (nearest 0.10009765625), 3.0e38 (0x7F62 = 3.00e38) */
    const uint16_t bf[4] = {0x3FC0, 0xC010, 0x3DCD, 0x7F62};
    const float f[4] = {1.5f, -2.25f, 0.1f, 7.0f};
    const int64_t s4[1] = {4};
    CHECK(cryo_safetensors_add(st, "h", CRYO_ST_F16, 1, s4, h, &e) == 0);
    CHECK(cryo_safetensors_add(st, "bf", CRYO_ST_BF16, 1, s4, bf, &e) == 0);
    CHECK(cryo_safetensors_add(st, "f", CRYO_ST_F32, 1, s4, f, &e) == 0);
    CHECK(cryo_safetensors_add(st, "i", CRYO_ST_I64, 1, (const int64_t[]){1}, (const int64_t[]){3}, &e) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/half.safetensors", tu_tmpdir());
    CHECK(cryo_safetensors_write(st, path, &e) == 0);
    cryo_safetensors_free(st);
    struct cryo_safetensors *r = NULL;
    CHECK(cryo_safetensors_read(&r, path, &e) == 0);
    if (!r)
        return;
    float out[4];
    CHECK(cryo_safetensors_copy_f32(r, "h", 1, s4, out, &e) == 0);
    CHECK(out[0] == 1.5f && out[1] == -2.25f && out[2] == 0.0999755859375f && out[3] == 65504.0f);
    CHECK(cryo_safetensors_copy_f32(r, "bf", 1, s4, out, &e) == 0);
    CHECK(out[0] == 1.5f && out[1] == -2.25f && out[2] == 0.10009765625f);
    CHECK(fabsf(out[3] - 3.0e38f) < 1e36f);
    CHECK(cryo_safetensors_copy_f32(r, "f", 1, s4, out, &e) == 0);
    CHECK(memcmp(out, f, sizeof f) == 0);
    /* the strict accessor still refuses half storage; other dtypes and shapes refused */
    const float *p;
    CHECK(cryo_safetensors_get_f32(r, "h", 1, s4, &p, &e) == CRYO_E_FORMAT);
    CHECK(cryo_safetensors_copy_f32(r, "i", 1, (const int64_t[]){1}, out, &e) == CRYO_E_FORMAT);
    CHECK(strstr(e.msg, "'i'") != NULL);
    CHECK(cryo_safetensors_copy_f32(r, "h", 1, (const int64_t[]){3}, out, &e) == CRYO_E_FORMAT);
    CHECK(cryo_safetensors_copy_f32(r, "nope", 1, s4, out, &e) == CRYO_E_FORMAT);
    cryo_safetensors_free(r);
}

int main(void) { return RUN_TESTS(roundtrip, lying_headers_refused, cut_and_flipped_files, copy_f32_widens_half_precision); }
