/* test_mask.c — the mask maths of libcore/mask.c against brute force and closed forms:
 * the distance transform against an all-pairs search (cubic and anisotropic grids), extend
 * and shrink against relion's definition (a voxel at distance < N), the soft-edge values
 * 0.5 + 0.5 cos(pi d / W), the low-pass on single Fourier components, the threshold's >=,
 * and cryo_mask_make's combination of threshold, zone and --invert.
 * The voxel-by-voxel comparisons with relion_mask_create and scipy are in tests/bats/vol-mask.bats. */
#include "cryolvm/mask.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NX 13
#define NY 11
#define NZ 9
#define N (NX * NY * NZ)

static void random_fg(uint8_t *fg, double density, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < N; i++)
        fg[i] = (tu_rand(&s) + 1) / 2 < density;
}

static double dist2(int a, int b, const double sp[3])
{
    int ax = a % NX, ay = (a / NX) % NY, az = a / (NX * NY);
    int bx = b % NX, by = (b / NX) % NY, bz = b / (NX * NY);
    double dx = (ax - bx) * sp[0], dy = (ay - by) * sp[1], dz = (az - bz) * sp[2];
    return dx * dx + dy * dy + dz * dz;
}

/* min over foreground voxels of the squared distance, INFINITY if none */
static double brute_d2(const uint8_t *fg, int i, const double sp[3])
{
    double best = INFINITY;
    for (int j = 0; j < N; j++)
        if (fg[j]) {
            double d = dist2(i, j, sp);
            if (d < best)
                best = d;
        }
    return best;
}

static struct cryo_mask_grid grid(double sx, double sy, double sz)
{
    struct cryo_mask_grid g = {NX, NY, NZ, {sx, sy, sz}};
    return g;
}

TEST(edt_matches_brute_force)
{
    static uint8_t fg[N];
    static float d2[N];
    const double sps[3][3] = {{1, 1, 1}, {1, 1.5, 2.25}, {1.3, 1, 1}};
    for (int t = 0; t < 3; t++) {
        struct cryo_mask_grid g = grid(sps[t][0], sps[t][1], sps[t][2]);
        random_fg(fg, t == 0 ? 0.02 : 0.05, 11 + (uint64_t)t);
        fg[0] = 1; /* at least one, and one in a corner */
        CHECK_EQ_INT(cryo_mask_edt2(fg, &g, d2, NULL), 0);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double want = brute_d2(fg, i, sps[t]);
            if (t == 0 ? (double)d2[i] != want : fabs(d2[i] - want) > 1e-5 * (1 + want))
                bad++;
        }
        CHECK_EQ_INT(bad, 0);
    }
}

TEST(edt_empty_foreground_is_infinite)
{
    static uint8_t fg[N];
    static float d2[N];
    struct cryo_mask_grid g = grid(1, 1, 1);
    memset(fg, 0, sizeof fg);
    CHECK_EQ_INT(cryo_mask_edt2(fg, &g, d2, NULL), 0);
    int finite = 0;
    for (int i = 0; i < N; i++)
        finite += isfinite(d2[i]);
    CHECK_EQ_INT(finite, 0);
    struct cryo_mask_grid bad = grid(1, 0, 1);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mask_edt2(fg, &bad, d2, &err), CRYO_E_INVALID);
}

TEST(extend_and_shrink_follow_relion)
{
    static uint8_t fg[N], m[N];
    const double sp[3] = {1, 1, 1};
    struct cryo_mask_grid g = grid(1, 1, 1);
    const double ns[] = {1, 2, 2.5, 3, -1, -2, -1.5};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        double n = ns[t];
        random_fg(fg, n > 0 ? 0.03 : 0.8, 5 + t);
        memcpy(m, fg, N);
        CHECK_EQ_INT(cryo_mask_extend(m, &g, n, NULL), 0);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            int want;
            if (n > 0) {
                want = brute_d2(fg, i, sp) < n * n;
            } else { /* a mask voxel stays unless a background voxel is closer than |n| */
                static uint8_t bg[N];
                if (i == 0)
                    for (int j = 0; j < N; j++)
                        bg[j] = !fg[j];
                want = fg[i] && !(brute_d2(bg, i, sp) < n * n);
            }
            bad += m[i] != want;
        }
        CHECK_EQ_INT(bad, 0);
    }
    /* exactly at distance N: not included (relion compares r^2 < N^2) */
    memset(fg, 0, N);
    fg[(4 * NY + 5) * NX + 6] = 1;
    CHECK_EQ_INT(cryo_mask_extend(fg, &g, 2, NULL), 0);
    CHECK_EQ_INT(fg[(4 * NY + 5) * NX + 7], 1);
    CHECK_EQ_INT(fg[(4 * NY + 5) * NX + 8], 0);      /* d = 2 */
    CHECK_EQ_INT(fg[(4 * NY + 6) * NX + 7], 1);      /* d = sqrt 2 */
    CHECK_EQ_INT(fg[(5 * NY + 6) * NX + 7], 1);      /* d = sqrt 3 */
}

TEST(soft_edge_values)
{
    static uint8_t fg[N];
    static float out[N];
    struct cryo_mask_grid g = grid(1, 1, 1);
    memset(fg, 0, N);
    const int c = (4 * NY + 5) * NX + 6;
    fg[c] = 1;
    CHECK_EQ_INT(cryo_mask_soft_edge(fg, &g, 3, out, NULL), 0);
    CHECK_CLOSE(out[c], 1.0, 0);
    CHECK_CLOSE(out[c + 1], 0.75, 1e-6);                                  /* d = 1: 0.5+0.5cos(pi/3) */
    CHECK_CLOSE(out[c - 2], 0.25, 1e-6);                                  /* d = 2 */
    CHECK_CLOSE(out[c + 3], 0.0, 0);                                      /* d = 3 = W: outside */
    CHECK_CLOSE(out[c + NX + 1], 0.5 + 0.5 * cos(M_PI * sqrt(2.0) / 3), 1e-6);
    CHECK_CLOSE(out[c + NX * NY + NX + 1], 0.5 + 0.5 * cos(M_PI * sqrt(3.0) / 3), 1e-6);
    /* width 0: the binary mask as 0/1 */
    CHECK_EQ_INT(cryo_mask_soft_edge(fg, &g, 0, out, NULL), 0);
    double s = 0;
    for (int i = 0; i < N; i++)
        s += out[i];
    CHECK_CLOSE(s, 1.0, 0);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mask_soft_edge(fg, &g, -1, out, &err), CRYO_E_INVALID);
}

/* cos(2 pi k x / n) along x of a 32^3 box: the low-pass keeps shell k fully when k < i - 1,
 * halves it at k = i, removes it for k > i + 1 (i = round(L / res)). */
TEST(lowpass_is_relions_raised_cosine)
{
    const int n = 32;
    const double apix = 1.5, L = n * apix;
    const int ks[] = {3, 8, 10, 12};
    const double res = L / 10.4; /* rounds to shell 10 */
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        CHECK_EQ_INT(cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, n, n, n, NULL), 0);
        for (int d = 0; d < 3; d++)
            v.apix[d] = apix;
        float *x = v.data;
        for (int i = 0; i < n * n * n; i++)
            x[i] = (float)(2.0 + cos(2 * M_PI * ks[t] * (i % n) / n));
        CHECK_EQ_INT(cryo_mask_lowpass(&v, res, NULL), 0);
        double want = ks[t] < 9 ? 1.0 : ks[t] == 10 ? 0.5 : 0.0;
        double amp = 0, mean = 0;
        for (int i = 0; i < n * n * n; i++) {
            amp += (x[i] - 2.0) * cos(2 * M_PI * ks[t] * (i % n) / n);
            mean += x[i];
        }
        CHECK_CLOSE(amp * 2 / (n * n * n), want, 1e-5);
        CHECK_CLOSE(mean / (n * n * n), 2.0, 1e-5); /* the mean (DC) is kept */
        cryo_volume_free(&v);
    }
    struct cryo_volume v;
    cryo_volume_init(&v);
    cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, 8, 8, 8, NULL);
    memset(v.data, 0, 8 * 8 * 8 * sizeof(float));
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mask_lowpass(&v, 100, &err), CRYO_E_INVALID); /* coarser than the 8 Å box */
    cryo_volume_free(&v);
}

static void atom_at(struct cryo_model *m, double x, double y, double z)
{
    struct cryo_atom a;
    memset(&a, 0, sizeof a);
    a.xyz[0] = x, a.xyz[1] = y, a.xyz[2] = z;
    strcpy(a.element, "C");
    a.z = 6;
    a.occ = 1;
    cryo_model_push(m, &a, NULL);
}

TEST(make_combines_threshold_zone_and_invert)
{
    struct cryo_volume map, out;
    cryo_volume_init(&map);
    cryo_volume_init(&out);
    CHECK_EQ_INT(cryo_volume_alloc(&map, CRYO_DTYPE_F32, 1, 10, 10, 10, NULL), 0);
    for (int d = 0; d < 3; d++)
        map.apix[d] = 2.0, map.origin[d] = -10.0; /* voxel i at -10 + 2i Å */
    float *x = map.data;
    for (int i = 0; i < 1000; i++)
        x[i] = (float)(i % 10); /* x index as value */
    struct cryo_mask_opts o;
    cryo_mask_opts_default(&o);
    o.use_threshold = 1;
    o.threshold = 7; /* >= : x index 7, 8, 9 */
    size_t nb = 0;
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, NULL), 0);
    CHECK_EQ_INT(nb, 300);
    CHECK_CLOSE(((float *)out.data)[7], 1.0, 0);
    CHECK_CLOSE(((float *)out.data)[6], 0.0, 0);
    CHECK_CLOSE(out.origin[0], -10.0, 0);
    CHECK_CLOSE(out.apix[2], 2.0, 0);

    /* zone of 2.5 Å around an atom on voxel (8,5,5) = (6,0,0) Å: that voxel and its 6
     * neighbours 2 Å away (diagonals are 2.83 Å); all have x index >= 7, so all pass */
    struct cryo_model m;
    cryo_model_init(&m);
    atom_at(&m, 6.0, 0.0, 0.0);
    o.model = &m;
    o.zone = 2.5;
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, NULL), 0);
    CHECK_EQ_INT(nb, 7);
    o.threshold = 8.5; /* only x = 9 in the threshold: (9,5,5) */
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, NULL), 0);
    CHECK_EQ_INT(nb, 1);
    o.use_threshold = 0; /* zone alone: the cross of 7 */
    o.invert = 1;
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, NULL), 0);
    CHECK_EQ_INT(nb, 7);
    double s = 0;
    for (int i = 0; i < 1000; i++)
        s += ((float *)out.data)[i];
    CHECK_CLOSE(s, 993, 0);

    struct cryo_error err = {0};
    o.model = NULL;
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, &err), CRYO_E_INVALID); /* nothing to mask by */
    CHECK(out.data == NULL);
    o.use_threshold = 1;
    x[5] = NAN;
    CHECK_EQ_INT(cryo_mask_make(&out, &map, &o, &nb, &err), CRYO_E_NUMERIC);
    cryo_model_free(&m);
    cryo_volume_free(&out);
    cryo_volume_free(&map);
}

TEST(parse_length_units)
{
    double v = 0;
    int a = -1;
    CHECK_EQ_INT(cryo_mask_parse_length("6", "--x", &v, &a, NULL), 0);
    CHECK_CLOSE(v, 6, 0);
    CHECK_EQ_INT(a, 0);
    CHECK_EQ_INT(cryo_mask_parse_length("-2.5A", "--x", &v, &a, NULL), 0);
    CHECK_CLOSE(v, -2.5, 0);
    CHECK_EQ_INT(a, 1);
    CHECK_EQ_INT(cryo_mask_parse_length("4\xc3\x85", "--x", &v, &a, NULL), 0);
    CHECK_EQ_INT(a, 1);
    struct cryo_error err = {0};
    const char *bad[] = {"", "A", "3nm", "3 A", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(cryo_mask_parse_length(bad[i], "--x", &v, &a, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "--x") != NULL);
}

int main(void)
{
    return RUN_TESTS(parse_length_units, edt_matches_brute_force, edt_empty_foreground_is_infinite, extend_and_shrink_follow_relion,
                     soft_edge_values, lowpass_is_relions_raised_cosine, make_combines_threshold_zone_and_invert);
}
