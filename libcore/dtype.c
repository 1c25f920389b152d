/* dtype.c — element types: sizes, names, and half-precision conversions.
 * float16 conversion follows IEEE 754 binary16 with round-to-nearest-even; bfloat16 keeps
 * float32's exponent and rounds the mantissa to 7 bits (nearest even), NaN stays NaN. */
#include "cryolvm/volume.h"

#include <math.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtype_info[CRYO_DTYPE_COUNT] = {
    [CRYO_DTYPE_INVALID] = {"invalid", 0}, [CRYO_DTYPE_F32] = {"float32", 4},
    [CRYO_DTYPE_F16] = {"float16", 2},     [CRYO_DTYPE_BF16] = {"bfloat16", 2},
    [CRYO_DTYPE_U8] = {"uint8", 1},        [CRYO_DTYPE_I8] = {"int8", 1},
    [CRYO_DTYPE_I16] = {"int16", 2},       [CRYO_DTYPE_U16] = {"uint16", 2},
    [CRYO_DTYPE_I32] = {"int32", 4},
};

size_t cryo_dtype_size(enum cryo_dtype t)
{
    return (t > 0 && t < CRYO_DTYPE_COUNT) ? dtype_info[t].size : 0;
}

const char *cryo_dtype_name(enum cryo_dtype t)
{
    return (t >= 0 && t < CRYO_DTYPE_COUNT) ? dtype_info[t].name : "invalid";
}

enum cryo_dtype cryo_dtype_from_name(const char *name)
{
    for (int t = 1; t < CRYO_DTYPE_COUNT; t++)
        if (strcmp(name, dtype_info[t].name) == 0)
            return (enum cryo_dtype)t;
    /* Common aliases. */
    if (!strcmp(name, "f32") || !strcmp(name, "float")) return CRYO_DTYPE_F32;
    if (!strcmp(name, "f16") || !strcmp(name, "half")) return CRYO_DTYPE_F16;
    if (!strcmp(name, "bf16")) return CRYO_DTYPE_BF16;
    return CRYO_DTYPE_INVALID;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float cryo_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)                       /* Inf / NaN */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {                        /* zero / subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t cryo_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u)                 /* Inf or NaN (keep NaN quiet) */
        return sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0);
    if (au >= 0x477ff000u)                 /* rounds to >= 65520: overflow to Inf */
        return sign | 0x7c00;
    if (au < 0x38800000u) {                /* below 2^-14: subnormal half (or zero) */
        /* value / 2^-24, rounded to nearest even, exact in float arithmetic */
        float v = bits_f32(au) * 16777216.0f;
        float r = nearbyintf(v);           /* default rounding mode = nearest even */
        return sign | (uint16_t)r;
    }
    uint32_t exp = ((au >> 23) - 112) << 10;
    uint32_t man = au & 0x7fffff;
    uint32_t h = exp | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;                               /* carry into the exponent is correct rounding */
    return sign | (uint16_t)h;
}

float cryo_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cryo_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
