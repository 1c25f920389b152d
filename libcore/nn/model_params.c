/* model_params.c — SCUNet-3D configuration, parameter table, default initialisation and
 * analytic FLOP count (see nn_model.h).
 *
 * The table is the single source of the parameters' names, shapes and arena offsets: the
 * model slices its arenas with it, checkpoints write it, and the PyTorch module in
 * tests/ref/torch_scunet.py produces the same names, so the two must agree name by name.
 */
#include "model_impl.h"
#include "cryolvm/mem.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cryo_scunet_config_default(struct cryo_scunet_config *c)
{
    c->in_ch = 1;
    c->out_ch = 1;
    c->width = 32;
    c->levels = 3;
    c->depth = 2;
    c->window = 4;
    c->head_dim = 16;
    c->mlp_ratio = 4;
    c->drop_path = 0.0;
}

int cryo_scunet_config_check(const struct cryo_scunet_config *c, struct cryo_error *err)
{
    if (c->in_ch < 1 || c->in_ch > 64 || c->out_ch < 1 || c->out_ch > 64)
        return cryo_fail(err, CRYO_E_INVALID, "config: in_ch and out_ch must be 1..64");
    if (c->levels < 1 || c->levels > CRYO_SCUNET_MAX_LEVELS)
        return cryo_fail(err, CRYO_E_INVALID, "config: levels must be 1..%d, not %d",
                         CRYO_SCUNET_MAX_LEVELS, c->levels);
    if (c->depth < 1 || c->depth > 16)
        return cryo_fail(err, CRYO_E_INVALID, "config: depth must be 1..16, not %d", c->depth);
    if (c->window < 2 || c->window > 16 || c->window % 2)
        return cryo_fail(err, CRYO_E_INVALID, "config: window must be even, 2..16, not %d", c->window);
    if (c->head_dim < 1 || c->head_dim > 256)
        return cryo_fail(err, CRYO_E_INVALID, "config: head_dim must be 1..256, not %d", c->head_dim);
    if (c->mlp_ratio < 1 || c->mlp_ratio > 16)
        return cryo_fail(err, CRYO_E_INVALID, "config: mlp_ratio must be 1..16, not %d", c->mlp_ratio);
    if (c->width < 2 || c->width > 4096 || c->width % 2 || (c->width / 2) % c->head_dim)
        return cryo_fail(err, CRYO_E_INVALID,
                         "config: width %d must be even with width/2 a multiple of head_dim %d",
                         c->width, c->head_dim);
    if (!(c->drop_path >= 0 && c->drop_path < 1))
        return cryo_fail(err, CRYO_E_INVALID, "config: drop_path must be in [0, 1)");
    if ((long)c->width << c->levels > 65536)
        return cryo_fail(err, CRYO_E_INVALID, "config: width·2^levels above 65536 channels");
    return CRYO_OK;
}

static const struct {
    const char *key;
    size_t off;
} cfg_keys[] = {
    {"in_ch", offsetof(struct cryo_scunet_config, in_ch)},
    {"out_ch", offsetof(struct cryo_scunet_config, out_ch)},
    {"width", offsetof(struct cryo_scunet_config, width)},
    {"levels", offsetof(struct cryo_scunet_config, levels)},
    {"depth", offsetof(struct cryo_scunet_config, depth)},
    {"window", offsetof(struct cryo_scunet_config, window)},
    {"head_dim", offsetof(struct cryo_scunet_config, head_dim)},
    {"mlp_ratio", offsetof(struct cryo_scunet_config, mlp_ratio)},
};
#define N_CFG_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

int cryo_scunet_config_parse(struct cryo_scunet_config *c, const char *text, struct cryo_error *err)
{
    struct cryo_scunet_config t = *c;
    const char *p = text ? text : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[128];
        if (len == 0 || len >= sizeof item)
            return cryo_fail(err, CRYO_E_INVALID, "config: bad item '%.*s' (expected KEY=VALUE)",
                             (int)(len < 64 ? len : 64), p);
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (!eq)
            return cryo_fail(err, CRYO_E_INVALID, "config: '%s' is not KEY=VALUE", item);
        *eq = '\0';
        size_t k = 0;
        while (k < N_CFG_KEYS && strcmp(cfg_keys[k].key, item) != 0)
            k++;
        if (k == N_CFG_KEYS && strcmp(item, "drop_path") != 0)
            return cryo_fail(err, CRYO_E_INVALID,
                             "config: unknown key '%s' (known: in_ch, out_ch, width, levels, depth, "
                             "window, head_dim, mlp_ratio, drop_path)", item);
        const char *val = eq + 1;
        char *q;
        errno = 0;
        /* strtod/strtol skip leading blanks and CR, and would let "-0" through as a
         * negative zero that prints as absent: values must start with a digit or a sign and
         * end at the item's end (no hexadecimal), and -0 is stored as 0. */
        int starts_ok = ((val[0] >= '0' && val[0] <= '9') || val[0] == '-' || val[0] == '+') &&
                        !strpbrk(val, "xX");
        if (strcmp(item, "drop_path") == 0) {
            double dv = starts_ok ? strtod(val, &q) : 0.0;
            if (!starts_ok || q == val || *q || errno || !(dv >= 0 && dv < 1))
                return cryo_fail(err, CRYO_E_INVALID, "config: drop_path: '%s' is not a number in [0, 1)", val);
            t.drop_path = dv == 0 ? 0.0 : dv;
            p += len;
            if (*p == ',')
                p++;
            continue;
        }
        long v = starts_ok ? strtol(val, &q, 10) : 0;
        if (!starts_ok || q == val || *q || errno || v < -1000000 || v > 1000000)
            return cryo_fail(err, CRYO_E_INVALID, "config: %s: '%s' is not an integer", item, val);
        *(int *)((char *)&t + cfg_keys[k].off) = (int)v;
        p += len;
        if (*p == ',')
            p++;
    }
    CRYO_TRY(cryo_scunet_config_check(&t, err));
    *c = t;
    return CRYO_OK;
}

int cryo_scunet_config_equal(const struct cryo_scunet_config *a, const struct cryo_scunet_config *b)
{
    return a->in_ch == b->in_ch && a->out_ch == b->out_ch && a->width == b->width &&
           a->levels == b->levels && a->depth == b->depth && a->window == b->window &&
           a->head_dim == b->head_dim && a->mlp_ratio == b->mlp_ratio && a->drop_path == b->drop_path;
}

void cryo_scunet_config_format(const struct cryo_scunet_config *c, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "in_ch=%d,out_ch=%d,width=%d,levels=%d,depth=%d,window=%d,head_dim=%d,mlp_ratio=%d",
                     c->in_ch, c->out_ch, c->width, c->levels, c->depth, c->window, c->head_dim,
                     c->mlp_ratio);
    /* %.17g: the value parses back to the same double */
    if (c->drop_path > 0 && k > 0 && (size_t)k < cap)
        snprintf(buf + k, cap - (size_t)k, ",drop_path=%.17g", c->drop_path);
}

/* ---- the table ------------------------------------------------------------------------ */

struct tb {
    struct cryo_nn_param *t;
    size_t n, cap, floats;
    int bad;
};

static size_t tb_add(struct tb *b, const char *prefix, const char *suffix, int init, int decay,
                     int64_t fan_in, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                     int64_t s4)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        struct cryo_nn_param *t = realloc(b->t, cap * sizeof *t);
        if (!t) {
            b->bad = 1;
            return 0;
        }
        b->t = t;
        b->cap = cap;
    }
    struct cryo_nn_param *p = &b->t[b->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s%s", prefix, suffix);
    p->ndim = ndim;
    int64_t s[5] = {s0, s1, s2, s3, s4};
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = s[i];
        p->count *= (size_t)s[i];
    }
    p->offset = b->floats;
    p->decay = decay;
    p->init = init;
    p->fan_in = fan_in;
    b->floats += p->count;
    return b->n++;
}

static void tb_block(struct tb *b, const char *prefix, int C, const struct cryo_scunet_config *c)
{
    int64_t h = C / 2, heads = h / c->head_dim, r = 2 * c->window - 1, m = (int64_t)c->mlp_ratio * h;
    enum { K = CRYO_NN_INIT_KAIMING, B = CRYO_NN_INIT_BIAS, O = CRYO_NN_INIT_ONES, Z = CRYO_NN_INIT_ZEROS };
    tb_add(b, prefix, "conv1_1.weight", K, 1, C, 5, C, C, 1, 1, 1);
    tb_add(b, prefix, "conv1_1.bias", B, 0, C, 1, C, 0, 0, 0, 0);
    tb_add(b, prefix, "conv1_2.weight", K, 1, C, 5, C, C, 1, 1, 1);
    tb_add(b, prefix, "conv1_2.bias", B, 0, C, 1, C, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.0.weight", K, 1, 27 * h, 5, h, h, 3, 3, 3);
    tb_add(b, prefix, "conv_block.1.gamma", O, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.1.beta", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.1.tau", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.2.weight", K, 1, 27 * h, 5, h, h, 3, 3, 3);
    tb_add(b, prefix, "conv_block.3.gamma", O, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.3.beta", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "conv_block.3.tau", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.ln1.weight", O, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.ln1.bias", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.msa.embedding_layer.weight", K, 1, h, 2, 3 * h, h, 0, 0, 0);
    tb_add(b, prefix, "trans_block.msa.embedding_layer.bias", B, 0, h, 1, 3 * h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.msa.relative_position_params", CRYO_NN_INIT_TRUNC02, 0, 0, 4,
           heads, r, r, r, 0);
    tb_add(b, prefix, "trans_block.msa.linear.weight", K, 1, h, 2, h, h, 0, 0, 0);
    tb_add(b, prefix, "trans_block.msa.linear.bias", B, 0, h, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.ln2.weight", O, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.ln2.bias", Z, 0, 0, 1, h, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.mlp.0.weight", K, 1, h, 2, m, h, 0, 0, 0);
    tb_add(b, prefix, "trans_block.mlp.0.bias", B, 0, h, 1, m, 0, 0, 0, 0);
    tb_add(b, prefix, "trans_block.mlp.2.weight", K, 1, m, 2, h, m, 0, 0, 0);
    tb_add(b, prefix, "trans_block.mlp.2.bias", B, 0, m, 1, h, 0, 0, 0, 0);
}

int scunet_table(const struct cryo_scunet_config *c, struct cryo_nn_param **tab, size_t *n,
                 size_t *nfloats, struct sc_layout *lay, struct cryo_error *err)
{
    CRYO_TRY(cryo_scunet_config_check(c, err));
    struct tb b = {0};
    struct sc_layout L;
    memset(&L, 0, sizeof L);
    char pre[64];
    int W = c->width, K = CRYO_NN_INIT_KAIMING;
    L.head = tb_add(&b, "", "head.weight", K, 1, 27 * c->in_ch, 5, W, c->in_ch, 3, 3, 3);
    for (int l = 0; l < c->levels; l++) {
        int C = W << l;
        L.enc[l] = b.n;
        for (int i = 0; i < c->depth; i++) {
            snprintf(pre, sizeof pre, "enc.%d.blocks.%d.", l, i);
            tb_block(&b, pre, C, c);
        }
        snprintf(pre, sizeof pre, "enc.%d.", l);
        L.down[l] = tb_add(&b, pre, "down.weight", K, 1, 8 * C, 5, 2 * C, C, 2, 2, 2);
    }
    L.body = b.n;
    for (int i = 0; i < c->depth; i++) {
        snprintf(pre, sizeof pre, "body.%d.", i);
        tb_block(&b, pre, W << c->levels, c);
    }
    for (int l = c->levels - 1; l >= 0; l--) {
        int C = W << l;
        snprintf(pre, sizeof pre, "dec.%d.", l);
        /* ConvTranspose3d weight is Cin × Cout × k³; PyTorch takes fan_in from dim 1. */
        L.up[l] = tb_add(&b, pre, "up.weight", K, 1, 8 * C, 5, 2 * C, C, 2, 2, 2);
        L.dec[l] = b.n;
        for (int i = 0; i < c->depth; i++) {
            snprintf(pre, sizeof pre, "dec.%d.blocks.%d.", l, i);
            tb_block(&b, pre, C, c);
        }
    }
    L.tail = tb_add(&b, "", "tail.weight", K, 1, 27 * W, 5, c->out_ch, W, 3, 3, 3);
    if (b.bad) {
        free(b.t);
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory for the parameter table");
    }
    if (tab)
        *tab = b.t;
    else
        free(b.t);
    if (n)
        *n = b.n;
    if (nfloats)
        *nfloats = b.floats;
    if (lay)
        *lay = L;
    return CRYO_OK;
}

int cryo_scunet_param_count(const struct cryo_scunet_config *c, size_t *count, struct cryo_error *err)
{
    return scunet_table(c, NULL, NULL, count, NULL, err);
}

/* ---- initialisation ------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 bits */
static double unif(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

static double normal(uint64_t *s)
{
    double u1 = unif(s), u2 = unif(s);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

void cryo_nn_params_init(float *host, const struct cryo_nn_param *tab, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        const struct cryo_nn_param *p = &tab[i];
        /* One stream per tensor, so adding a tensor does not change the others. */
        uint64_t s = seed ^ (0x5851F42D4C957F2DULL * (i + 1));
        float *x = host + p->offset;
        double bound = p->fan_in > 0 ? 1.0 / sqrt((double)p->fan_in) : 0.0;
        for (size_t j = 0; j < p->count; j++) {
            switch (p->init) {
            case CRYO_NN_INIT_KAIMING: /* kaiming_uniform_(a=√5): bound = 1/√fan_in */
            case CRYO_NN_INIT_BIAS:
                x[j] = (float)((2.0 * unif(&s) - 1.0) * bound);
                break;
            case CRYO_NN_INIT_ONES:
                x[j] = 1.0f;
                break;
            case CRYO_NN_INIT_ZEROS:
                x[j] = 0.0f;
                break;
            default: {
                double v;
                do
                    v = 0.02 * normal(&s);
                while (v < -2.0 || v > 2.0);
                x[j] = (float)v;
            }
            }
        }
    }
}

/* ---- FLOPs ---------------------------------------------------------------------------- */

/* Σ over the windows along one axis of (window length)²: full windows of `win`, one
 * partial window of the remainder, or one window of the whole axis when it is shorter. */
static double axis_pairs(int L, int win)
{
    if (L <= win)
        return (double)L * L;
    return (double)(L / win) * win * win + (double)(L % win) * (L % win);
}

static double block_flops(const struct cryo_scunet_config *c, int C, int n, int d, int h, int w)
{
    double hc = C / 2.0, m = c->mlp_ratio * hc, T = (double)n * d * h * w;
    /* query-key pairs computed: Σ over windows of (tokens in window)², which factorises
     * over the axes because a window is a box */
    double pairs = n * axis_pairs(d, c->window) * axis_pairs(h, c->window) * axis_pairs(w, c->window);
    double f = 0;
    f += 2 * 2 * T * C * C;            /* conv1_1, conv1_2 */
    f += 2 * 2 * T * hc * hc * 27;     /* two 3³ convs */
    f += 2 * T * hc * 3 * hc;          /* qkv */
    f += 2 * 2 * pairs * hc;           /* q·kᵀ and a·v, over all heads */
    f += 2 * T * hc * hc;              /* proj */
    f += 2 * 2 * T * hc * m;           /* MLP */
    return f;
}

int cryo_scunet_flops(const struct cryo_scunet_config *c, int n, int d, int h, int w,
                      double *flops, struct cryo_error *err)
{
    CRYO_TRY(cryo_scunet_config_check(c, err));
    int q = 1 << c->levels;
    if (n < 1 || d < q || h < q || w < q || d % q || h % q || w % q)
        return cryo_fail(err, CRYO_E_INVALID, "box %dx%dx%d is not a multiple of %d", d, h, w, q);
    double f = 0, T0 = (double)n * d * h * w;
    f += 2 * T0 * c->in_ch * c->width * 27 + 2 * T0 * c->width * c->out_ch * 27;
    for (int l = 0; l <= c->levels; l++) {
        int C = c->width << l, dl = d >> l, hl = h >> l, wl = w >> l;
        double T = (double)n * dl * hl * wl;
        /* enc and dec stages at levels < L, the body once at L */
        f += (l < c->levels ? 2 : 1) * c->depth * block_flops(c, C, n, dl, hl, wl);
        if (l < c->levels) /* down conv and transposed conv: 8 taps per coarse voxel */
            f += 2 * 2 * (T / 8) * (2.0 * C) * C * 8;
    }
    *flops = f;
    return CRYO_OK;
}
