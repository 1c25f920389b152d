/* safetensors.c — reader and atomic writer of the safetensors format (see safetensors.h).
 *
 * The reader takes the whole file into memory (weights and optimiser state are tens of MB),
 * parses the JSON header with jansson and then checks the table against the data section:
 * sorted by begin offset, the tensors must tile [0, data size) exactly, as the reference
 * implementation demands, so any lie in an offset, a shape or a dtype shows up as a gap,
 * an overlap or a size mismatch.
 */
#include "cryolvm/safetensors.h"
#include "cryolvm/mem.h"
#include "cryolvm/outfile.h"
#include "cryolvm/volume.h" /* cryo_f16_to_f32 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
    const char *name;
    size_t size;
} st_types[] = {
    [CRYO_ST_INVALID] = {"", 0}, [CRYO_ST_BOOL] = {"BOOL", 1}, [CRYO_ST_U8] = {"U8", 1},
    [CRYO_ST_I8] = {"I8", 1},    [CRYO_ST_U16] = {"U16", 2},   [CRYO_ST_I16] = {"I16", 2},
    [CRYO_ST_F16] = {"F16", 2},  [CRYO_ST_BF16] = {"BF16", 2}, [CRYO_ST_U32] = {"U32", 4},
    [CRYO_ST_I32] = {"I32", 4},  [CRYO_ST_F32] = {"F32", 4},   [CRYO_ST_U64] = {"U64", 8},
    [CRYO_ST_I64] = {"I64", 8},  [CRYO_ST_F64] = {"F64", 8},
};
#define ST_NTYPES (sizeof st_types / sizeof st_types[0])

size_t cryo_st_dtype_size(enum cryo_st_dtype t)
{
    return (unsigned)t < ST_NTYPES ? st_types[t].size : 0;
}

const char *cryo_st_dtype_name(enum cryo_st_dtype t)
{
    return (unsigned)t < ST_NTYPES ? st_types[t].name : "";
}

enum cryo_st_dtype cryo_st_dtype_from_name(const char *s)
{
    for (size_t i = 1; s && i < ST_NTYPES; i++)
        if (strcmp(s, st_types[i].name) == 0)
            return (enum cryo_st_dtype)i;
    return CRYO_ST_INVALID;
}

size_t cryo_st_tensor_count(const struct cryo_st_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

int cryo_safetensors_create(struct cryo_safetensors **st, struct cryo_error *err)
{
    *st = cryo_alloc_array(1, sizeof **st, err);
    if (!*st)
        return CRYO_E_NOMEM;
    cryo_meta_init(&(*st)->meta);
    return CRYO_OK;
}

void cryo_safetensors_free(struct cryo_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        free(st->t[i].name);
    free(st->t);
    cryo_meta_free(&st->meta);
    cryo_free_big(st->blob);
    free(st->name);
    free(st);
}

/* Bytes of a dtype × shape, overflow-checked. */
static int st_nbytes(enum cryo_st_dtype dtype, int ndim, const int64_t *shape, size_t *out,
                     struct cryo_error *err)
{
    size_t n = cryo_st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return cryo_fail(err, CRYO_E_INVALID, "negative dimension %lld", (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX)
            return cryo_fail(err, CRYO_E_NOMEM, "dimension %lld too large", (long long)shape[i]);
        CRYO_TRY(cryo_mul_size(n, (size_t)shape[i], &n, err));
    }
    *out = n;
    return CRYO_OK;
}

static int st_push(struct cryo_safetensors *st, const char *name, enum cryo_st_dtype dtype, int ndim,
                   const int64_t *shape, size_t nbytes, const void *data, struct cryo_error *err)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        size_t bytes;
        CRYO_TRY(cryo_mul_size(cap, sizeof *st->t, &bytes, err));
        struct cryo_st_tensor *t = realloc(st->t, bytes);
        if (!t)
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory for the tensor table");
        st->t = t;
        st->cap = cap;
    }
    struct cryo_st_tensor *t = &st->t[st->n];
    memset(t, 0, sizeof *t);
    t->name = cryo_strdup(name, err);
    if (!t->name)
        return CRYO_E_NOMEM;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->data = data;
    st->n++;
    return CRYO_OK;
}

const struct cryo_st_tensor *cryo_safetensors_find(const struct cryo_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

int cryo_safetensors_add(struct cryo_safetensors *st, const char *name, enum cryo_st_dtype dtype,
                         int ndim, const int64_t *shape, const void *data, struct cryo_error *err)
{
    if (!name || !*name || strncmp(name, "__", 2) == 0)
        return cryo_fail(err, CRYO_E_INVALID, "invalid tensor name '%s'", name ? name : "");
    if (cryo_st_dtype_size(dtype) == 0)
        return cryo_fail(err, CRYO_E_INVALID, "%s: invalid dtype", name);
    if (ndim < 0 || ndim > CRYO_ST_MAX_DIMS)
        return cryo_fail(err, CRYO_E_INVALID, "%s: %d dimensions (at most %d)", name, ndim,
                         CRYO_ST_MAX_DIMS);
    if (cryo_safetensors_find(st, name))
        return cryo_fail(err, CRYO_E_INVALID, "duplicate tensor name '%s'", name);
    size_t nbytes;
    if (st_nbytes(dtype, ndim, shape, &nbytes, err) < 0)
        return cryo_error_prefix(err, name);
    if (nbytes && !data)
        return cryo_fail(err, CRYO_E_INVALID, "%s: no data", name);
    return st_push(st, name, dtype, ndim, shape, nbytes, data, err);
}

static int st_check_shape(const char *file, const struct cryo_st_tensor *t, int ndim,
                          const int64_t *shape, struct cryo_error *err);

int cryo_safetensors_get_f32(const struct cryo_safetensors *st, const char *name, int ndim,
                             const int64_t *shape, const float **data, struct cryo_error *err)
{
    const char *file = st->name ? st->name : "weights";
    const struct cryo_st_tensor *t = cryo_safetensors_find(st, name);
    if (!t)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' missing", file, name);
    if (t->dtype != CRYO_ST_F32)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' is %s, expected F32", file, name,
                         cryo_st_dtype_name(t->dtype));
    CRYO_TRY(st_check_shape(file, t, ndim, shape, err));
    *data = t->data;
    return CRYO_OK;
}

int cryo_safetensors_check_float(const struct cryo_safetensors *st, const char *name, int ndim,
                                 const int64_t *shape, struct cryo_error *err)
{
    const char *file = st->name ? st->name : "weights";
    const struct cryo_st_tensor *t = cryo_safetensors_find(st, name);
    if (!t)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' missing", file, name);
    if (t->dtype != CRYO_ST_F32 && t->dtype != CRYO_ST_F16 && t->dtype != CRYO_ST_BF16)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' is %s, expected F32, F16 or BF16",
                         file, name, cryo_st_dtype_name(t->dtype));
    return st_check_shape(file, t, ndim, shape, err);
}

int cryo_safetensors_copy_f32(const struct cryo_safetensors *st, const char *name, int ndim,
                              const int64_t *shape, float *dst, struct cryo_error *err)
{
    const char *file = st->name ? st->name : "weights";
    const struct cryo_st_tensor *t = cryo_safetensors_find(st, name);
    if (!t)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' missing", file, name);
    if (t->dtype != CRYO_ST_F32 && t->dtype != CRYO_ST_F16 && t->dtype != CRYO_ST_BF16)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' is %s, expected F32, F16 or BF16",
                         file, name, cryo_st_dtype_name(t->dtype));
    CRYO_TRY(st_check_shape(file, t, ndim, shape, err));
    size_t n = cryo_st_tensor_count(t);
    /* the data section is not aligned for 2- or 4-byte loads: copy bytes */
    const unsigned char *src = t->data;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == CRYO_ST_F32) {
            memcpy(dst + i, src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == CRYO_ST_F16 ? cryo_f16_to_f32(h) : cryo_bf16_to_f32(h);
        }
    }
    return CRYO_OK;
}

static int st_check_shape(const char *file, const struct cryo_st_tensor *t, int ndim,
                          const int64_t *shape, struct cryo_error *err)
{
    const char *name = t->name;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[160] = "", b[160] = "";
        size_t la = 0, lb = 0;
        for (int i = 0; i < t->ndim && la < sizeof a - 24; i++)
            la += (size_t)snprintf(a + la, sizeof a - la, "%s%lld", i ? "," : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim && lb < sizeof b - 24; i++)
            lb += (size_t)snprintf(b + lb, sizeof b - lb, "%s%lld", i ? "," : "", (long long)shape[i]);
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' has shape [%s], the model needs [%s]",
                         file, name, a, b);
    }
    return CRYO_OK;
}

/* ---- reading ------------------------------------------------------------------------- */

struct st_span {
    uint64_t begin, end;
    size_t idx;
};

static int span_cmp(const void *a, const void *b)
{
    const struct st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int st_get_u64(json_t *j, uint64_t *out)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

static int st_parse_entry(struct cryo_safetensors *st, const char *file, const char *key, json_t *v,
                          uint64_t datalen, uint64_t *b, uint64_t *e, struct cryo_error *err)
{
    if (!json_is_object(v))
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s': entry is not an object", file, key);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        return cryo_fail(err, CRYO_E_FORMAT,
                         "%s: tensor '%s': needs string dtype, array shape and array data_offsets",
                         file, key);
    enum cryo_st_dtype dt = cryo_st_dtype_from_name(json_string_value(jd));
    if (dt == CRYO_ST_INVALID)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", file, key,
                         json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > CRYO_ST_MAX_DIMS)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", file,
                         key, nd, CRYO_ST_MAX_DIMS);
    int64_t shape[CRYO_ST_MAX_DIMS];
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (st_get_u64(json_array_get(js, i), &d) < 0 || d > (uint64_t)INT64_MAX)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s': shape has a negative or non-integer dimension",
                             file, key);
        shape[i] = (int64_t)d;
    }
    if (json_array_size(jo) != 2 || st_get_u64(json_array_get(jo, 0), b) < 0 ||
        st_get_u64(json_array_get(jo, 1), e) < 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers",
                         file, key);
    if (*b > *e || *e > datalen)
        return cryo_fail(err, CRYO_E_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu) outside the %llu bytes of data",
                         file, key, (unsigned long long)*b, (unsigned long long)*e,
                         (unsigned long long)datalen);
    size_t nbytes;
    struct cryo_error tmp = {0};
    if (st_nbytes(dt, (int)nd, shape, &nbytes, &tmp) < 0 || nbytes != *e - *b)
        return cryo_fail(err, CRYO_E_FORMAT,
                         "%s: tensor '%s': %s shape needs %s bytes but data_offsets give %llu", file,
                         key, json_string_value(jd), tmp.status ? "too many" : "a different number of",
                         (unsigned long long)(*e - *b));
    return st_push(st, key, dt, (int)nd, shape, nbytes, NULL, err);
}

int cryo_safetensors_parse(struct cryo_safetensors **out, const void *buf, size_t len,
                           const char *file, struct cryo_error *err)
{
    *out = NULL;
    const unsigned char *p = buf;
    if (len < 8)
        return cryo_fail(err, CRYO_E_TRUNCATED, "%s: %zu bytes, too short for a safetensors file", file, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: header length %llu is absurd (not a safetensors file?)",
                         file, (unsigned long long)hlen);
    if (hlen > len - 8)
        return cryo_fail(err, CRYO_E_TRUNCATED, "%s: header claims %llu bytes but the file has %zu",
                         file, (unsigned long long)hlen, len - 8);
    if (hlen < 2 || p[8] != '{')
        return cryo_fail(err, CRYO_E_FORMAT, "%s: not a safetensors file (header is not a JSON object)", file);
    json_error_t je;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: header JSON: %s at byte %d", file, je.text, je.position);
    int rc = CRYO_OK;
    struct cryo_safetensors *st = NULL;
    struct st_span *spans = NULL;
    if (!json_is_object(root)) {
        rc = cryo_fail(err, CRYO_E_FORMAT, "%s: header is not a JSON object", file);
        goto done;
    }
    if ((rc = cryo_safetensors_create(&st, err)) < 0)
        goto done;
    if (!(st->name = cryo_strdup(file, err))) {
        rc = CRYO_E_NOMEM;
        goto done;
    }
    uint64_t datalen = len - 8 - hlen;
    size_t nent = json_object_size(root);
    spans = cryo_alloc_array(nent ? nent : 1, sizeof *spans, err);
    if (!spans) {
        rc = CRYO_E_NOMEM;
        goto done;
    }
    const char *key;
    json_t *v;
    size_t ns = 0;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = cryo_fail(err, CRYO_E_FORMAT, "%s: __metadata__ is not an object", file);
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv)
            {
                if (!json_is_string(mv)) {
                    rc = cryo_fail(err, CRYO_E_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                                   file, mk);
                    goto done;
                }
                if ((rc = cryo_meta_set(&st->meta, mk, json_string_value(mv), err)) < 0)
                    goto done;
            }
            continue;
        }
        uint64_t b = 0, e = 0;
        if ((rc = st_parse_entry(st, file, key, v, datalen, &b, &e, err)) < 0)
            goto done;
        spans[ns].begin = b;
        spans[ns].end = e;
        spans[ns].idx = st->n - 1;
        ns++;
    }
    qsort(spans, ns, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < ns; i++) {
        const char *nm = st->t[spans[i].idx].name;
        if (spans[i].begin < at) {
            rc = cryo_fail(err, CRYO_E_FORMAT, "%s: tensor '%s' overlaps another tensor's data", file, nm);
            goto done;
        }
        if (spans[i].begin > at) {
            rc = cryo_fail(err, CRYO_E_FORMAT, "%s: %llu bytes of data before tensor '%s' belong to no tensor",
                           file, (unsigned long long)(spans[i].begin - at), nm);
            goto done;
        }
        at = spans[i].end;
    }
    if (at != datalen) {
        rc = cryo_fail(err, CRYO_E_FORMAT, "%s: tensors cover %llu of the %llu data bytes", file,
                       (unsigned long long)at, (unsigned long long)datalen);
        goto done;
    }
    st->blob = cryo_alloc_big(datalen ? (size_t)datalen : 1, err);
    if (!st->blob) {
        rc = CRYO_E_NOMEM;
        goto done;
    }
    memcpy(st->blob, p + 8 + hlen, (size_t)datalen);
    for (size_t i = 0; i < ns; i++)
        st->t[spans[i].idx].data = (const char *)st->blob + spans[i].begin;
done:
    free(spans);
    json_decref(root);
    if (rc < 0)
        cryo_safetensors_free(st);
    else
        *out = st;
    return rc;
}

int cryo_safetensors_read(struct cryo_safetensors **out, const char *path, struct cryo_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return cryo_fail(err, CRYO_E_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *buf = cryo_alloc_big(len ? len : 1, err);
    if (!buf) {
        fclose(f);
        return CRYO_E_NOMEM;
    }
    size_t got = fread(buf, 1, len, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != len) {
        cryo_free_big(buf);
        return cryo_fail(err, CRYO_E_IO, "%s: read failed", path);
    }
    int rc = cryo_safetensors_parse(out, buf, len, path, err);
    cryo_free_big(buf);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------- */

static int st_write_all(FILE *f, const void *p, size_t n)
{
    const char *c = p;
    while (n) { /* 1 GiB pieces: some libcs mishandle larger single writes */
        size_t k = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        if (fwrite(c, 1, k, f) != k)
            return -1;
        c += k;
        n -= k;
    }
    return 0;
}

int cryo_safetensors_write(const struct cryo_safetensors *st, const char *path, struct cryo_error *err)
{
    json_t *root = json_object();
    if (!root)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory building the header");
    int rc = CRYO_OK;
    char *hdr = NULL;
    struct cryo_outfile *of = NULL;
    if (st->meta.n) {
        json_t *m = json_object();
        for (size_t i = 0; m && i < st->meta.n; i++)
            json_object_set_new(m, st->meta.keys[i], json_string(st->meta.vals[i]));
        if (!m || json_object_set_new(root, "__metadata__", m) < 0) {
            rc = cryo_fail(err, CRYO_E_NOMEM, "out of memory building the header");
            goto done;
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct cryo_st_tensor *t = &st->t[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", cryo_st_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes));
        if (!e || json_object_set_new(root, t->name, e) < 0) {
            rc = cryo_fail(err, CRYO_E_NOMEM, "out of memory building the header");
            goto done;
        }
        off += t->nbytes;
    }
    /* Keys in insertion order so the header reads like the state_dict. */
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        rc = cryo_fail(err, CRYO_E_NOMEM, "out of memory building the header");
        goto done;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    rc = cryo_outfile_open(&of, path, NULL, err);
    if (rc < 0)
        goto done;
    FILE *f = cryo_outfile_file(of);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    int bad = st_write_all(f, lenb, 8) || st_write_all(f, hdr, hl) || st_write_all(f, spaces, padded - hl);
    for (size_t i = 0; !bad && i < st->n; i++)
        bad = st_write_all(f, st->t[i].data, st->t[i].nbytes);
    if (bad) {
        rc = cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
        goto done;
    }
    rc = cryo_outfile_commit(of, err);
done:
    cryo_outfile_free(of);
    free(hdr);
    json_decref(root);
    return rc;
}
