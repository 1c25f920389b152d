/* jepa_mask.c — I-JEPA multi-block masks in 3D (see jepa_mask.h).
 *
 * Counter-based randomness: a splitmix64 stream seeded by hashing (seed, step[, sample]),
 * so that any sample's mask can be drawn alone, in any order, by any process.
 */
#include "cryolvm/jepa_mask.h"

#include <math.h>
#include <string.h>

void cryo_jepa_mask_opts_default(struct cryo_jepa_mask_opts *o)
{
    o->targets = 4;
    o->scale_min = 0.15;
    o->scale_max = 0.2;
    o->aspect_min = 0.75;
    o->aspect_max = 1.5;
    o->min_keep = 4;
}

int cryo_jepa_mask_opts_check(const struct cryo_jepa_mask_opts *o, struct cryo_error *err)
{
    if (o->targets < 1 || o->targets > 64)
        return cryo_fail(err, CRYO_E_INVALID, "mask: targets must be 1..64 (got %d)", o->targets);
    if (!(o->scale_min > 0 && o->scale_min <= o->scale_max && o->scale_max < 1))
        return cryo_fail(err, CRYO_E_INVALID, "mask: scale needs 0 < min <= max < 1 (got %g, %g)",
                         o->scale_min, o->scale_max);
    if (!(o->aspect_min > 0 && o->aspect_min <= o->aspect_max && o->aspect_max < 100))
        return cryo_fail(err, CRYO_E_INVALID, "mask: aspect needs 0 < min <= max < 100 (got %g, %g)",
                         o->aspect_min, o->aspect_max);
    if (o->min_keep < 1)
        return cryo_fail(err, CRYO_E_INVALID, "mask: min_keep must be >= 1");
    return CRYO_OK;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t next(uint64_t *s) { return mix(*s += 0x9E3779B97F4A7C15ULL); }
static double unif(uint64_t *s) { return (double)(next(s) >> 11) * 0x1.0p-53; }
static int urange(uint64_t *s, int n) { return (int)(next(s) % (uint64_t)n); }

static int clamp_side(long v, int g)
{
    int hi = g > 1 ? g - 1 : 1; /* I-JEPA keeps a block strictly inside the grid */
    return v < 1 ? 1 : v > hi ? hi : (int)v;
}

int cryo_jepa_mask_draw(uint8_t *mask, struct cryo_mask_block *blocks, int n, int gd, int gh, int gw,
                        const struct cryo_jepa_mask_opts *o, uint64_t seed, uint64_t step,
                        uint64_t first, struct cryo_error *err)
{
    CRYO_TRY(cryo_jepa_mask_opts_check(o, err));
    if (n < 1 || gd < 1 || gh < 1 || gw < 1 || gd > 4096 || gh > 4096 || gw > 4096)
        return cryo_fail(err, CRYO_E_INVALID, "mask: bad grid %dx%dx%d x %d", gw, gh, gd, n);
    size_t T = (size_t)gd * gh * gw;
    if (T < 2)
        return cryo_fail(err, CRYO_E_INVALID, "mask: a grid of one token has nothing to predict from");
    /* block shape: one per batch */
    uint64_t rs = mix(seed ^ mix(step * 0xD1B54A32D192ED03ULL + 0x632BE59BD9B4E019ULL));
    double s = o->scale_min + (o->scale_max - o->scale_min) * unif(&rs);
    double la = log(o->aspect_min), lb = log(o->aspect_max);
    double rzy = exp(la + (lb - la) * unif(&rs)), ryx = exp(la + (lb - la) * unif(&rs));
    double vol = s * (double)T, hh = cbrt(vol * ryx / rzy);
    int bd = clamp_side(lround(rzy * hh), gd), bh = clamp_side(lround(hh), gh), bw = clamp_side(lround(hh / ryx), gw);
    size_t keep = (size_t)o->min_keep;
    if (keep > T / 4)
        keep = T / 4 ? T / 4 : 1; /* tiny grids: a quarter of the tokens */
    for (int i = 0; i < n; i++) {
        uint8_t *m = mask + (size_t)i * T;
        uint64_t r = mix(seed ^ mix(mix(step + 0x9E3779B97F4A7C15ULL) ^ (first + (uint64_t)i) * 0xA24BAED4963EE407ULL));
        int d = bd, h = bh, w = bw;
        for (int tries = 0;; tries++) {
            if (tries && tries % 20 == 0) { /* cannot keep enough context: smaller blocks */
                d = d > 1 ? d - 1 : 1;
                h = h > 1 ? h - 1 : 1;
                w = w > 1 ? w - 1 : 1;
            }
            memset(m, 0, T);
            size_t cnt = 0;
            for (int b = 0; b < o->targets; b++) {
                int z0 = urange(&r, gd - d + 1), y0 = urange(&r, gh - h + 1), x0 = urange(&r, gw - w + 1);
                if (blocks)
                    blocks[(size_t)i * o->targets + b] = (struct cryo_mask_block){z0, y0, x0, d, h, w};
                for (int z = z0; z < z0 + d; z++)
                    for (int y = y0; y < y0 + h; y++)
                        for (int x = x0; x < x0 + w; x++) {
                            uint8_t *q = &m[((size_t)z * gh + y) * gw + x];
                            cnt += !*q;
                            *q = 1;
                        }
            }
            if (T - cnt >= keep || (d == 1 && h == 1 && w == 1 && tries > 200))
                break;
        }
    }
    return CRYO_OK;
}
