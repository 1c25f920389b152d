/* test_resample.c — resampling against analytic facts:
 *   Fourier resampling of a band-limited plane wave (crop and pad, odd and even sizes,
 *   non-cubic) equals the wave evaluated at the new voxel centres (box-edge convention);
 *   pad-then-crop of white noise returns the input (the Nyquist split/merge is symmetric);
 *   the mean density is kept; a Gaussian blob keeps its centroid in Å under every method and
 *   under box crop/pad; linear reproduces ramps and Keys cubic reproduces quadratics inside
 *   the box; the cryo_resampler gives identical results when reused and across channels;
 *   bad requests are refused. numpy comparisons are in tests/bats/mrc-resample.bats. */
#include "cryolvm/resample.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void alloc_vol(struct cryo_volume *v, int64_t c, int64_t nz, int64_t ny, int64_t nx, double ax, double ay,
                      double az)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, c, nz, ny, nx, NULL);
    v->apix[0] = ax, v->apix[1] = ay, v->apix[2] = az;
    v->origin[0] = 3.0, v->origin[1] = -7.5, v->origin[2] = 11.0;
}

static float *at(struct cryo_volume *v, int64_t c, int64_t k, int64_t j, int64_t i)
{
    return (float *)v->data + ((c * v->nz + k) * v->ny + j) * v->nx + i;
}

/* Voxel (i,j,k) position in Å. */
static void pos(const struct cryo_volume *v, int64_t i, int64_t j, int64_t k, double p[3])
{
    p[0] = v->origin[0] + (double)i * v->apix[0];
    p[1] = v->origin[1] + (double)j * v->apix[1];
    p[2] = v->origin[2] + (double)k * v->apix[2];
}

/* cos(2 pi (h . (x - o + a/2)) / L) of physical position: a wave fixed in Å. */
static double wave_at(const struct cryo_volume *src, const int h[3], const double p[3])
{
    double ph = 0;
    const int64_t n[3] = {src->nx, src->ny, src->nz};
    for (int d = 0; d < 3; d++)
        ph += (double)h[d] * (p[d] - src->origin[d]) / ((double)n[d] * src->apix[d]);
    return cos(2 * M_PI * ph + 0.3);
}

static void fill_wave(struct cryo_volume *v, const int h[3])
{
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++) {
                double p[3];
                pos(v, i, j, k, p);
                *at(v, 0, k, j, i) = (float)wave_at(v, h, p);
            }
}

static double wave_err(const struct cryo_volume *out, const struct cryo_volume *src, const int h[3])
{
    double m = 0;
    for (int64_t k = 0; k < out->nz; k++)
        for (int64_t j = 0; j < out->ny; j++)
            for (int64_t i = 0; i < out->nx; i++) {
                double p[3];
                pos(out, i, j, k, p);
                double d = fabs(*at((struct cryo_volume *)out, 0, k, j, i) - wave_at(src, h, p));
                if (!(d <= m))
                    m = d;
            }
    return m;
}

TEST(fourier_plane_wave_crop_and_pad)
{
    /* (nx,ny,nz) -> boxes; waves below both Nyquists */
    const int64_t shapes[][3] = {{20, 17, 12}, {15, 16, 9}};
    const int64_t boxes[][3] = {{26, 23, 16}, {14, 12, 10}, {31, 18, 11}, {9, 8, 7}, {20, 17, 12}};
    const int h[3] = {2, -3, 1};
    for (size_t s = 0; s < 2; s++)
        for (size_t b = 0; b < 5; b++) {
            struct cryo_volume in, out;
            alloc_vol(&in, 1, shapes[s][2], shapes[s][1], shapes[s][0], 1.3, 1.1, 0.9);
            cryo_volume_init(&out);
            fill_wave(&in, h);
            CHECK_EQ_INT(cryo_resample(&out, &in, boxes[b], NULL, CRYO_RESAMPLE_FOURIER, NULL, NULL), 0);
            CHECK_EQ_INT(out.nx, boxes[b][0]);
            CHECK_EQ_INT(out.nz, boxes[b][2]);
            CHECK_CLOSE(out.apix[0], 1.3 * (double)shapes[s][0] / (double)boxes[b][0], 1e-12);
            CHECK_CLOSE(out.origin[1], in.origin[1] - 1.1 / 2 + out.apix[1] / 2, 1e-12);
            CHECK(wave_err(&out, &in, h) < 2e-5);
            cryo_volume_free(&in);
            cryo_volume_free(&out);
        }
}

TEST(fourier_nyquist_wave_padding)
{
    /* cos(pi x) on an even grid is the Nyquist term; padded it must stay the cosine. */
    struct cryo_volume in, out;
    alloc_vol(&in, 1, 4, 6, 16, 1, 1, 1);
    cryo_volume_init(&out);
    for (int64_t k = 0; k < 4; k++)
        for (int64_t j = 0; j < 6; j++)
            for (int64_t i = 0; i < 16; i++)
                *at(&in, 0, k, j, i) = (float)cos(M_PI * (double)i);
    const int64_t box[3] = {40, 6, 4};
    CHECK_EQ_INT(cryo_resample(&out, &in, box, NULL, CRYO_RESAMPLE_FOURIER, NULL, NULL), 0);
    double m = 0;
    for (int64_t i = 0; i < 40; i++) {
        double u = ((double)i + 0.5) * 16.0 / 40.0 - 0.5;
        double d = fabs(*at(&out, 0, 2, 3, i) - cos(M_PI * u));
        if (!(d <= m))
            m = d;
    }
    CHECK(m < 1e-5);
    cryo_volume_free(&in);
    cryo_volume_free(&out);
}

static void fill_noise(struct cryo_volume *v, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < cryo_volume_count(v); i++)
        ((float *)v->data)[i] = (float)(tu_rand(&st) + 0.25);
}

TEST(pad_then_crop_is_identity_and_mean_kept)
{
    const int64_t shapes[][3] = {{12, 10, 8}, {11, 9, 7}, {16, 5, 6}};
    const int64_t pads[][3] = {{20, 15, 13}, {24, 20, 14}, {17, 12, 9}};
    for (size_t s = 0; s < 3; s++) {
        struct cryo_volume in, up, back;
        alloc_vol(&in, 1, shapes[s][2], shapes[s][1], shapes[s][0], 1.0, 1.2, 0.8);
        cryo_volume_init(&up);
        cryo_volume_init(&back);
        fill_noise(&in, 7 + s);
        CHECK_EQ_INT(cryo_resample(&up, &in, pads[s], NULL, CRYO_RESAMPLE_FOURIER, NULL, NULL), 0);
        CHECK_EQ_INT(cryo_resample(&back, &up, shapes[s], NULL, CRYO_RESAMPLE_FOURIER, NULL, NULL), 0);
        CHECK_REL_ERR((float *)back.data, (float *)in.data, cryo_volume_count(&in), 1e-5);
        for (int d = 0; d < 3; d++) {
            CHECK_CLOSE(back.apix[d], in.apix[d], 1e-12);
            CHECK_CLOSE(back.origin[d], in.origin[d], 1e-12);
        }
        struct cryo_stats a, b;
        cryo_volume_stats(&in, &a);
        cryo_volume_stats(&up, &b);
        CHECK_CLOSE(b.mean, a.mean, 1e-5);
        cryo_volume_free(&in);
        cryo_volume_free(&up);
        cryo_volume_free(&back);
    }
}

/* Density-weighted centroid in Å. */
static void centroid(const struct cryo_volume *v, double c[3])
{
    double s = 0, m[3] = {0, 0, 0};
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++) {
                double w = *at((struct cryo_volume *)v, 0, k, j, i), p[3];
                pos(v, i, j, k, p);
                s += w;
                for (int d = 0; d < 3; d++)
                    m[d] += w * p[d];
            }
    for (int d = 0; d < 3; d++)
        c[d] = m[d] / s;
}

TEST(blob_stays_in_place_in_angstrom)
{
    struct cryo_volume in;
    alloc_vol(&in, 1, 30, 33, 36, 1.0, 1.1, 0.9);
    const double centre[3] = {3.0 + 15.3, -7.5 + 17.2, 11.0 + 12.6}; /* off-grid, Å */
    for (int64_t k = 0; k < in.nz; k++)
        for (int64_t j = 0; j < in.ny; j++)
            for (int64_t i = 0; i < in.nx; i++) {
                double p[3], r2 = 0;
                pos(&in, i, j, k, p);
                for (int d = 0; d < 3; d++)
                    r2 += (p[d] - centre[d]) * (p[d] - centre[d]);
                *at(&in, 0, k, j, i) = (float)exp(-r2 / (2 * 2.5 * 2.5));
            }
    double c0[3];
    centroid(&in, c0);
    for (int d = 0; d < 3; d++)
        CHECK_CLOSE(c0[d], centre[d], 1e-6);
    const double targets[][3] = {{1.5, 1.5, 1.5}, {0.7, 0.8, 1.3}, {2.0, 1.1, 0.6}};
    for (int meth = 0; meth < 3; meth++)
        for (int t = 0; t < 3; t++) {
            struct cryo_volume out;
            cryo_volume_init(&out);
            int64_t box[3];
            CHECK_EQ_INT(cryo_resample_box_for_apix(&in, targets[t], box, NULL), 0);
            CHECK_EQ_INT(cryo_resample(&out, &in, box, meth ? targets[t] : NULL, (enum cryo_resample_method)meth,
                                       NULL, NULL),
                         0);
            double c[3];
            centroid(&out, c);
            for (int d = 0; d < 3; d++)
                CHECK(fabs(c[d] - centre[d]) < (meth == 0 ? 1e-3 : 0.02));
            if (meth != 0)
                for (int d = 0; d < 3; d++)
                    CHECK_CLOSE(out.apix[d], targets[t][d], 1e-12);
            cryo_volume_free(&out);
        }
    const int64_t boxes[][3] = {{40, 31, 29}, {27, 40, 30}, {45, 44, 43}};
    for (int b = 0; b < 3; b++) {
        struct cryo_volume out;
        cryo_volume_init(&out);
        CHECK_EQ_INT(cryo_volume_crop_pad(&out, &in, boxes[b], 0, NULL), 0);
        double c[3];
        centroid(&out, c);
        for (int d = 0; d < 3; d++)
            CHECK(fabs(c[d] - centre[d]) < 1e-4);
        cryo_volume_free(&out);
    }
    cryo_volume_free(&in);
}

TEST(real_space_reproduce_polynomials)
{
    CHECK_CLOSE(cryo_keys_cubic(0), 1, 0);
    CHECK_CLOSE(cryo_keys_cubic(1), 0, 0);
    CHECK_CLOSE(cryo_keys_cubic(2), 0, 0);
    for (double t = 0; t < 1; t += 0.125) /* partition of unity */
        CHECK_CLOSE(cryo_keys_cubic(t + 1) + cryo_keys_cubic(t) + cryo_keys_cubic(1 - t) + cryo_keys_cubic(2 - t), 1,
                    1e-12);
    struct cryo_volume in;
    alloc_vol(&in, 1, 6, 7, 30, 1.0, 1.0, 1.0);
    for (int cubic = 0; cubic < 2; cubic++) {
        for (int64_t k = 0; k < in.nz; k++)
            for (int64_t j = 0; j < in.ny; j++)
                for (int64_t i = 0; i < in.nx; i++)
                    *at(&in, 0, k, j, i) = (float)(cubic ? 0.02 * (double)(i * i) - 0.3 * (double)i + 1
                                                         : 0.5 * (double)i - 2);
        struct cryo_volume out;
        cryo_volume_init(&out);
        const double ap[3] = {0.7, 1.0, 1.0};
        int64_t box[3];
        CHECK_EQ_INT(cryo_resample_box_for_apix(&in, ap, box, NULL), 0);
        CHECK_EQ_INT(box[0], 43);
        CHECK_EQ_INT(cryo_resample(&out, &in, box, ap, cubic ? CRYO_RESAMPLE_CUBIC : CRYO_RESAMPLE_LINEAR, NULL, NULL),
                     0);
        double m = 0;
        for (int64_t i = 0; i < out.nx; i++) {
            double u = ((double)i + 0.5) * 0.7 - 0.5;
            if (u < 1 || u > 27) /* away from clamped edges */
                continue;
            double want = cubic ? 0.02 * u * u - 0.3 * u + 1 : 0.5 * u - 2;
            double d = fabs(*at(&out, 0, 3, 3, i) - want);
            if (!(d <= m))
                m = d;
        }
        CHECK(m < 1e-5);
        cryo_volume_free(&out);
    }
    cryo_volume_free(&in);
}

TEST(resampler_reuse_and_channels)
{
    struct cryo_volume in, one, out1, out2;
    alloc_vol(&in, 2, 9, 10, 12, 1.0, 1.0, 1.0);
    alloc_vol(&one, 1, 9, 10, 12, 1.0, 1.0, 1.0);
    cryo_volume_init(&out1);
    cryo_volume_init(&out2);
    fill_noise(&in, 99);
    struct cryo_resampler *r = NULL;
    CHECK_EQ_INT(cryo_resampler_create(&r, NULL), 0);
    const int64_t box[3] = {7, 15, 6};
    CHECK_EQ_INT(cryo_resample(&out1, &in, box, NULL, CRYO_RESAMPLE_FOURIER, r, NULL), 0);
    CHECK_EQ_INT(out1.c, 2);
    const size_t n = cryo_volume_channel_count(&one), m = cryo_volume_channel_count(&out1);
    for (int c = 0; c < 2; c++) {
        memcpy(one.data, (float *)in.data + c * n, n * sizeof(float));
        CHECK_EQ_INT(cryo_resample(&out2, &one, box, NULL, CRYO_RESAMPLE_FOURIER, r, NULL), 0);
        CHECK(memcmp(out2.data, (float *)out1.data + c * m, m * sizeof(float)) == 0);
    }
    const int64_t box2[3] = {13, 11, 10}; /* replans */
    CHECK_EQ_INT(cryo_resample(&out2, &one, box2, NULL, CRYO_RESAMPLE_FOURIER, r, NULL), 0);
    CHECK_EQ_INT(out2.nx, 13);
    cryo_resampler_free(r);
    cryo_volume_free(&in);
    cryo_volume_free(&one);
    cryo_volume_free(&out1);
    cryo_volume_free(&out2);
}

/* Gaussian blob of sigma sg Å at c (Å), in every voxel of v. */
static void fill_blob(struct cryo_volume *v, const double c[3], double sg)
{
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++) {
                double p[3], r2 = 0;
                pos(v, i, j, k, p);
                for (int d = 0; d < 3; d++)
                    r2 += (p[d] - c[d]) * (p[d] - c[d]);
                *at(v, 0, k, j, i) = (float)exp(-r2 / (2 * sg * sg));
            }
}

/* max |v - blob| over voxels inside the input's box [lo, hi) (Å), and max |v - fill| outside */
static void blob_err(const struct cryo_volume *v, const double c[3], double sg, const double lo[3],
                     const double hi[3], double fill, double *in_err, double *out_err)
{
    *in_err = *out_err = 0;
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++) {
                double p[3], r2 = 0;
                int inside = 1;
                pos(v, i, j, k, p);
                for (int d = 0; d < 3; d++) {
                    r2 += (p[d] - c[d]) * (p[d] - c[d]);
                    inside &= p[d] + v->apix[d] / 2 > lo[d] && p[d] - v->apix[d] / 2 < hi[d];
                }
                double val = *at((struct cryo_volume *)v, 0, k, j, i);
                double e = inside ? fabs(val - exp(-r2 / (2 * sg * sg))) : fabs(val - fill);
                double *m = inside ? in_err : out_err;
                if (!(e <= *m))
                    *m = e;
            }
}

static int smooth7(int64_t x)
{
    for (int p = 2; p <= 7; p++)
        while (x % p == 0)
            x /= p;
    return x == 1;
}

TEST(plan_exact_sizes_are_exact_and_fft_friendly)
{
    /* (n, a, a') -> an exact N, M with 2,3,5,7 factors where one exists in range */
    const struct { int64_t n; double a, ap; } cases[] = {
        {256, 1.0, 1.5}, {256, 2.0, 1.0}, {256, 1.5, 1.0}, {35, 2.5, 3.0}, {52, 2.5, 3.0}, {47, 2.5, 3.0},
        {100, 1.742, 1.0}, {256, 1.06, 1.0}, {20, 1.25, 1.6}, {64, 1.0, 1.0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cryo_volume v;
        alloc_vol(&v, 1, 2, 2, cases[i].n, cases[i].a, 1, 1);
        const double ap[3] = {cases[i].ap, 1, 1};
        struct cryo_grid g;
        struct cryo_resample_axis ax[3];
        CHECK_EQ_INT(cryo_resample_grid_for_apix(&v, ap, &g, NULL), 0);
        CHECK_EQ_INT(g.n[0], (int64_t)floor((double)cases[i].n * cases[i].a / cases[i].ap + 0.5));
        CHECK_EQ_INT(cryo_resample_plan(&v, &g, CRYO_RESAMPLE_FOURIER, ax, NULL), 0);
        const struct cryo_resample_axis *x = &ax[0];
        double ratio = (double)x->pad * cases[i].a / (double)x->fft;
        if (cases[i].n == 100) { /* 1.742 = 871/500: needs N = 500, beyond n + n/2 */
            CHECK(!x->exact);
            CHECK(x->residual > CRYO_RESAMPLE_APIX_TOL && x->residual < 1e-3);
            CHECK_CLOSE(x->apix, ratio, 1e-15);
        } else {
            CHECK(x->exact);
            CHECK(fabs(ratio - cases[i].ap) <= 1.2e-7 * cases[i].ap);
            if (cases[i].n == 256 && cases[i].a == 1.06) /* 1.06 = 53/50: M always holds 53 */
                CHECK(smooth7(x->pad));
            else
                CHECK(smooth7(x->pad) && smooth7(x->fft));
        }
        CHECK(x->pad >= cases[i].n && x->fft >= x->keep);
        CHECK_EQ_INT(x->first, 0);
        CHECK_EQ_INT(x->keep, g.n[0]);
        if (cases[i].a == cases[i].ap)
            CHECK(x->pad == cases[i].n && x->fft == cases[i].n);
        if (cases[i].n == 256 && cases[i].a == 1.0 && cases[i].ap == 1.5) /* cheapest: 270 -> 180 */
            CHECK(x->pad == 270 && x->fft == 180);
        cryo_volume_free(&v);
    }
    /* 1.0 -> 0.9999 is 10000/9999: no exact pad in range; the residual is stated */
    struct cryo_volume v;
    alloc_vol(&v, 1, 2, 2, 64, 1.0, 1, 1);
    const double ap[3] = {0.9999, 1, 1};
    struct cryo_grid g;
    struct cryo_resample_axis ax[3];
    CHECK_EQ_INT(cryo_resample_grid_for_apix(&v, ap, &g, NULL), 0);
    CHECK_EQ_INT(cryo_resample_plan(&v, &g, CRYO_RESAMPLE_FOURIER, ax, NULL), 0);
    CHECK(!ax[0].exact);
    CHECK_CLOSE(ax[0].residual, 1 / 0.9999 - 1, 1e-9); /* every N < 5000 gives M = N */
    CHECK(ax[1].exact && ax[1].pad == 2);
    CHECK_EQ_INT(cryo_resample_plan(&v, &g, CRYO_RESAMPLE_CUBIC, ax, NULL), 0);
    CHECK(ax[0].exact && ax[0].pad == 0);
    cryo_volume_free(&v);
}

TEST(grid_fourier_exact_voxel_size_blob_to_float_precision)
{
    /* a blob band-limited to float precision (sigma >= 2 voxels of input and output), far
     * from the edges: the output must equal the blob at the new voxel centres in Å */
    struct cryo_volume in;
    alloc_vol(&in, 1, 47, 52, 35, 2.5, 2.5, 2.5);
    const double c[3] = {3.0 + 41.3, -7.5 + 66.1, 11.0 + 57.2}, sg = 7.0;
    fill_blob(&in, c, sg);
    const double lo[3] = {in.origin[0] - 1.25, in.origin[1] - 1.25, in.origin[2] - 1.25};
    const double hi[3] = {lo[0] + 35 * 2.5, lo[1] + 52 * 2.5, lo[2] + 47 * 2.5};
    const double targets[][3] = {{3.0, 3.0, 3.0}, {1.0, 1.0, 1.0}, {2.1, 3.3, 1.7}};
    for (int t = 0; t < 3; t++) {
        struct cryo_grid g;
        struct cryo_resample_axis ax[3];
        struct cryo_volume out;
        cryo_volume_init(&out);
        CHECK_EQ_INT(cryo_resample_grid_for_apix(&in, targets[t], &g, NULL), 0);
        CHECK_EQ_INT(cryo_resample_to_grid(&out, &in, &g, CRYO_RESAMPLE_FOURIER, 0, NULL, ax, NULL), 0);
        for (int d = 0; d < 3; d++) {
            CHECK(ax[d].exact);
            CHECK(out.apix[d] == targets[t][d]); /* exactly the voxel size asked */
            CHECK_CLOSE(out.origin[d], in.origin[d] - 1.25 + targets[t][d] / 2, 1e-12);
        }
        CHECK_EQ_INT(out.nx, g.n[0]);
        CHECK_EQ_INT(out.nz, g.n[2]);
        double ein, eout;
        blob_err(&out, c, sg, lo, hi, 0, &ein, &eout);
        CHECK(ein < 2e-5);
        CHECK_CLOSE(eout, 0, 0);
        cryo_volume_free(&out);
    }
    cryo_volume_free(&in);
}

TEST(grid_like_another_map_offset_origin_and_fill)
{
    /* a grid with its own voxel size, a box larger than the map on some sides and an origin
     * off the input's lattice: data where its cells overlap the map, fill elsewhere */
    struct cryo_volume in;
    alloc_vol(&in, 1, 40, 36, 44, 1.2, 1.2, 1.2);
    const double c[3] = {3.0 + 25.1, -7.5 + 20.3, 11.0 + 23.9}, sg = 4.0;
    fill_blob(&in, c, sg);
    const double lo[3] = {in.origin[0] - 0.6, in.origin[1] - 0.6, in.origin[2] - 0.6};
    const double hi[3] = {lo[0] + 44 * 1.2, lo[1] + 36 * 1.2, lo[2] + 40 * 1.2};
    struct cryo_grid g = {{40, 30, 50}, {1.5, 1.5, 1.5}, {-4.37, -3.11, 5.93}};
    for (int meth = 0; meth < 3; meth++) {
        struct cryo_volume out;
        cryo_volume_init(&out);
        struct cryo_resample_axis ax[3];
        CHECK_EQ_INT(cryo_resample_to_grid(&out, &in, &g, (enum cryo_resample_method)meth, -2.0, NULL, ax, NULL), 0);
        for (int d = 0; d < 3; d++) {
            CHECK(ax[d].exact);
            CHECK(out.apix[d] == g.apix[d]);
            CHECK_CLOSE(out.origin[d], g.origin[d], 1e-12);
        }
        /* x: starts before the map, ends inside; y: starts inside, ends beyond; z: both */
        CHECK(ax[0].first == 5 && ax[0].keep == 35);
        CHECK(ax[1].first == 0 && ax[1].keep == 26);
        CHECK(ax[2].first > 0 && ax[2].first + ax[2].keep < 50);
        CHECK_EQ_INT(out.nx, 40);
        CHECK_EQ_INT(out.ny, 30);
        CHECK_EQ_INT(out.nz, 50);
        double ein, eout;
        blob_err(&out, c, sg, lo, hi, -2.0, &ein, &eout);
        CHECK(ein < (meth == 0 ? 2e-6 : meth == 1 ? 0.04 : 3e-3)); /* interpolation error of the last two */
        CHECK_CLOSE(eout, 0, 0);
        cryo_volume_free(&out);
    }
    /* a grid beside the map is refused */
    struct cryo_grid far = {{10, 10, 10}, {1, 1, 1}, {500, 0, 0}};
    struct cryo_volume out;
    cryo_volume_init(&out);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_resample_to_grid(&out, &in, &far, CRYO_RESAMPLE_FOURIER, 0, NULL, NULL, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "overlap") != NULL);
    cryo_volume_free(&in);
}

TEST(grid_inexact_ratio_writes_the_size_obtained)
{
    struct cryo_volume in, out;
    alloc_vol(&in, 1, 20, 24, 30, 1.0, 1.0, 1.0);
    fill_noise(&in, 5);
    cryo_volume_init(&out);
    const double ap[3] = {0.9999, 1.0, 0.5};
    struct cryo_grid g;
    struct cryo_resample_axis ax[3];
    CHECK_EQ_INT(cryo_resample_grid_for_apix(&in, ap, &g, NULL), 0);
    CHECK_EQ_INT(cryo_resample_to_grid(&out, &in, &g, CRYO_RESAMPLE_FOURIER, 0, NULL, ax, NULL), 0);
    CHECK(!ax[0].exact && ax[1].exact && ax[2].exact);
    CHECK(out.apix[0] == ax[0].apix && out.apix[0] != 0.9999);
    CHECK(out.apix[1] == 1.0 && out.apix[2] == 0.5);
    CHECK_EQ_INT(out.nx, 30);
    CHECK_EQ_INT(out.nz, 40);
    for (int d = 0; d < 3; d++)
        CHECK_CLOSE(out.origin[d], g.origin[d], 1e-12);
    cryo_volume_free(&in);
    cryo_volume_free(&out);
}

TEST(grid_channels_and_reuse_with_padding)
{
    struct cryo_volume in, one, out1, out2;
    alloc_vol(&in, 2, 9, 10, 12, 1.0, 1.1, 0.9);
    alloc_vol(&one, 1, 9, 10, 12, 1.0, 1.1, 0.9); /* 1.0 -> 1.6 = 8/5 and 1.1 -> 1.3 = 13/11 need pads */
    cryo_volume_init(&out1);
    cryo_volume_init(&out2);
    fill_noise(&in, 42);
    struct cryo_resampler *r = NULL;
    CHECK_EQ_INT(cryo_resampler_create(&r, NULL), 0);
    const double ap[3] = {1.6, 1.3, 0.7};
    struct cryo_grid g;
    struct cryo_resample_axis ax[3];
    CHECK_EQ_INT(cryo_resample_grid_for_apix(&in, ap, &g, NULL), 0);
    CHECK_EQ_INT(cryo_resample_to_grid(&out1, &in, &g, CRYO_RESAMPLE_FOURIER, 0, r, ax, NULL), 0);
    CHECK(ax[0].pad > 12 && ax[1].pad > 10); /* the padded path is exercised */
    const size_t n = cryo_volume_channel_count(&one), m = cryo_volume_channel_count(&out1);
    for (int c = 0; c < 2; c++) {
        memcpy(one.data, (float *)in.data + c * n, n * sizeof(float));
        CHECK_EQ_INT(cryo_resample_to_grid(&out2, &one, &g, CRYO_RESAMPLE_FOURIER, 0, r, NULL, NULL), 0);
        CHECK(memcmp(out2.data, (float *)out1.data + c * m, m * sizeof(float)) == 0);
    }
    cryo_resampler_free(r);
    cryo_volume_free(&in);
    cryo_volume_free(&one);
    cryo_volume_free(&out1);
    cryo_volume_free(&out2);
}

TEST(bad_requests_refused)
{
    struct cryo_volume in, out;
    alloc_vol(&in, 1, 4, 4, 4, 1, 1, 1);
    memset(in.data, 0, cryo_volume_bytes(&in));
    cryo_volume_init(&out);
    struct cryo_error err = {0};
    const int64_t zero[3] = {0, 4, 4};
    CHECK_EQ_INT(cryo_resample(&out, &in, zero, NULL, CRYO_RESAMPLE_FOURIER, NULL, &err), CRYO_E_INVALID);
    const double bad[3] = {1, -1, 1};
    int64_t box[3];
    CHECK_EQ_INT(cryo_resample_box_for_apix(&in, bad, box, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "y") != NULL);
    in.apix[2] = 0;
    const int64_t ok[3] = {4, 4, 4};
    CHECK_EQ_INT(cryo_resample(&out, &in, ok, NULL, CRYO_RESAMPLE_LINEAR, NULL, &err), CRYO_E_INVALID);
    in.apix[2] = 1;
    CHECK_EQ_INT(cryo_volume_convert(&in, CRYO_DTYPE_I16, NULL), 0);
    CHECK_EQ_INT(cryo_resample(&out, &in, ok, NULL, CRYO_RESAMPLE_FOURIER, NULL, &err), CRYO_E_INVALID);
    CHECK_EQ_INT(cryo_resample_method_from_name("spline"), -1);
    CHECK_EQ_INT(cryo_resample_method_from_name("cubic"), CRYO_RESAMPLE_CUBIC);
    cryo_volume_free(&in);
}

int main(void)
{
    return RUN_TESTS(fourier_plane_wave_crop_and_pad, fourier_nyquist_wave_padding,
                     pad_then_crop_is_identity_and_mean_kept, blob_stays_in_place_in_angstrom,
                     real_space_reproduce_polynomials, resampler_reuse_and_channels,
                     plan_exact_sizes_are_exact_and_fft_friendly, grid_fourier_exact_voxel_size_blob_to_float_precision,
                     grid_like_another_map_offset_origin_and_fill, grid_inexact_ratio_writes_the_size_obtained,
                     grid_channels_and_reuse_with_padding, bad_requests_refused);
}
