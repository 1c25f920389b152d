/* model.c — the atom list shared by the PDB and mmCIF readers: growth, filtering,
 * alternate-location resolution, element table, file reading (zlib reads plain and gzip
 * alike) with format sniffing, and PDB output (used to write Q-scores into the B column). */
#include "cryolvm/mem.h"
#include "cryolvm/model.h"
#include "model_priv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

void cryo_model_opts_default(struct cryo_model_opts *o)
{
    o->hydrogens = 0;
    o->waters = 0;
    o->ligands = 1;
}

void cryo_model_init(struct cryo_model *m) { memset(m, 0, sizeof *m); }

void cryo_model_free(struct cryo_model *m)
{
    free(m->atoms);
    cryo_model_init(m);
}

int cryo_model_push(struct cryo_model *m, const struct cryo_atom *a, struct cryo_error *err)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024, bytes;
        CRYO_TRY(cryo_mul_size(cap, sizeof *m->atoms, &bytes, err));
        struct cryo_atom *p = realloc(m->atoms, bytes);
        if (!p)
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory for %zu atoms", cap);
        m->atoms = p;
        m->cap = cap;
    }
    m->atoms[m->n++] = *a;
    return CRYO_OK;
}

/* Periodic table up to Lr: index = atomic number. */
static const char *const elements[] = {
    "",   "H",  "HE", "LI", "BE", "B",  "C",  "N",  "O",  "F",  "NE", "NA", "MG", "AL", "SI",
    "P",  "S",  "CL", "AR", "K",  "CA", "SC", "TI", "V",  "CR", "MN", "FE", "CO", "NI", "CU",
    "ZN", "GA", "GE", "AS", "SE", "BR", "KR", "RB", "SR", "Y",  "ZR", "NB", "MO", "TC", "RU",
    "RH", "PD", "AG", "CD", "IN", "SN", "SB", "TE", "I",  "XE", "CS", "BA", "LA", "CE", "PR",
    "ND", "PM", "SM", "EU", "GD", "TB", "DY", "HO", "ER", "TM", "YB", "LU", "HF", "TA", "W",
    "RE", "OS", "IR", "PT", "AU", "HG", "TL", "PB", "BI", "PO", "AT", "RN", "FR", "RA", "AC",
    "TH", "PA", "U",  "NP", "PU", "AM", "CM", "BK", "CF", "ES", "FM", "MD", "NO", "LR"};

int cryo_element_z(const char *symbol)
{
    char up[4] = {0};
    size_t k = 0;
    for (const char *p = symbol; *p && k < 3; p++)
        if (!isspace((unsigned char)*p))
            up[k++] = (char)toupper((unsigned char)*p);
    if (k == 0 || k > 2)
        return 0;
    if (strcmp(up, "D") == 0) /* deuterium scatters as hydrogen */
        return 1;
    for (int z = 1; z < (int)(sizeof elements / sizeof *elements); z++)
        if (strcmp(up, elements[z]) == 0)
            return z;
    return 0;
}

int cryo_resname_is_water(const char *r)
{
    return strcmp(r, "HOH") == 0 || strcmp(r, "WAT") == 0 || strcmp(r, "DOD") == 0 ||
           strcmp(r, "H2O") == 0 || strcmp(r, "TIP") == 0 || strcmp(r, "TIP3") == 0;
}

int cryo_model_parse_int(const char *s, size_t n, long lo, long hi, long *v)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    long x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (x > (LONG_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    if (neg)
        x = -x;
    if (x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* An atom of a residue, for grouping its sites: name, then file order. */
struct site_key {
    const char *name;
    size_t index;
};

static int site_key_cmp(const void *pa, const void *pb)
{
    const struct site_key *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

static int same_residue(const struct cryo_atom *a, const struct cryo_atom *b)
{
    return a->resseq == b->resseq && a->icode == b->icode && strcmp(a->chain, b->chain) == 0;
}

void cryo_model_filter(struct cryo_model *m, const struct cryo_model_opts *o)
{
    size_t n = m->n;
    /* drop[] marks atoms to remove; reuse a small heap buffer. */
    unsigned char *drop = calloc(n ? n : 1, 1);
    struct site_key *order = malloc((n ? n : 1) * sizeof *order);
    if (!drop || !order) {
        free(drop);
        free(order);
        return; /* filtering is best effort without memory; atoms stay */
    }
    for (size_t i = 0; i < n; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        int water = cryo_resname_is_water(a->resname);
        if (!o->hydrogens && a->z == 1)
            drop[i] = 1;
        else if (!o->waters && water)
            drop[i] = 1;
        else if (!o->ligands && a->het && !water)
            drop[i] = 1;
    }
    /* Alternate locations: within one residue (atoms of a residue are contiguous in both
     * formats, so the work is residue-local), the atoms of one site (same name) are put
     * next to each other by sorting (name, file order): n log n even for one huge residue,
     * where comparing every pair was quadratic. A site with any altloc keeps one atom, the
     * highest occupancy, the first in the file on ties. */
    size_t start = 0;
    while (start < n) {
        size_t end = start + 1;
        while (end < n && same_residue(&m->atoms[end], &m->atoms[start]))
            end++;
        size_t nk = 0;
        for (size_t i = start; i < end; i++)
            if (!drop[i])
                order[nk++] = (struct site_key){m->atoms[i].name, i};
        qsort(order, nk, sizeof *order, site_key_cmp);
        for (size_t g = 0; g < nk;) {
            size_t h = g + 1, best = order[g].index;
            int alt = m->atoms[best].altloc != ' ';
            while (h < nk && strcmp(order[h].name, order[g].name) == 0) {
                size_t i = order[h].index;
                alt |= m->atoms[i].altloc != ' ';
                if (m->atoms[i].occ > m->atoms[best].occ)
                    best = i;
                h++;
            }
            if (alt)
                for (size_t q = g; q < h; q++)
                    drop[order[q].index] = order[q].index != best;
            g = h;
        }
        start = end;
    }
    free(order);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop[i])
            m->atoms[k++] = m->atoms[i];
    m->n = k;
    free(drop);
}

int cryo_model_bounds(const struct cryo_model *m, double lo[3], double hi[3], struct cryo_error *err)
{
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "model has no atoms");
    for (int d = 0; d < 3; d++)
        lo[d] = hi[d] = m->atoms[0].xyz[d];
    for (size_t i = 1; i < m->n; i++)
        for (int d = 0; d < 3; d++) {
            double x = m->atoms[i].xyz[d];
            if (x < lo[d])
                lo[d] = x;
            if (x > hi[d])
                hi[d] = x;
        }
    return CRYO_OK;
}

/* Reading a model file. zlib reads plain and gzip alike. The first block (1 MiB) decides
 * the format (looks_like_cif). A PDB file is then parsed a block of whole lines at a time
 * as it is inflated: a bad record fails at once, memory holds the atoms and one block, and
 * reading stops after the first model. mmCIF's tokenizer needs the whole text. Either is
 * refused beyond MODEL_MAX_TEXT (the largest entries of the PDB archive are a few hundred
 * MB of mmCIF), so a small gzip bomb cannot make us hold or parse gigabytes. Any NUL byte means
 * binary data, not a model. */
#define MODEL_BLOCK ((size_t)1 << 20)
#define MODEL_MAX_TEXT ((size_t)1 << 30)

struct model_in {
    gzFile g;
    const char *name;
    char *buf;
    size_t len, cap;
    int eof;
};

/* Append up to `want` more bytes to in->buf (growing it); sets eof at the end of input. */
static int model_fill(struct model_in *in, size_t want, struct cryo_error *err)
{
    if (in->cap - in->len < want + 1) {
        size_t cap = in->len + want + 1;
        char *p = realloc(in->buf, cap);
        if (!p)
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", in->name);
        in->buf = p;
        in->cap = cap;
    }
    size_t got = 0;
    while (got < want && !in->eof) {
        unsigned k = want - got > (1u << 30) ? (1u << 30) : (unsigned)(want - got);
        int r = gzread(in->g, in->buf + in->len + got, k);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(in->g, &zerr);
            return cryo_fail(err, zerr == Z_ERRNO ? CRYO_E_IO : CRYO_E_TRUNCATED, "%s: read failed: %s",
                             in->name, zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0) {
            /* gzread returns 0 at a cut gzip member too: ask zlib whether it ended cleanly. */
            int zerr;
            gzerror(in->g, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END)
                return cryo_fail(err, CRYO_E_TRUNCATED, "%s: gzip data is truncated or corrupt", in->name);
            in->eof = 1;
        }
        got += (size_t)r;
    }
    if (memchr(in->buf + in->len, '\0', got))
        return cryo_fail(err, CRYO_E_FORMAT, "%s: binary data, not a PDB or mmCIF text file", in->name);
    in->len += got;
    in->buf[in->len] = '\0';
    return CRYO_OK;
}

static int read_pdb_streamed(struct cryo_model *m, struct model_in *in, const struct cryo_model_opts *o,
                             struct cryo_error *err)
{
    struct pdb_parse ps = {0, 0, 0};
    size_t total = 0;
    cryo_model_free(m);
    for (;;) {
        /* whole lines only, unless the input has ended */
        char *nl = in->len ? memrchr(in->buf, '\n', in->len) : NULL;
        size_t take = in->eof ? in->len : nl ? (size_t)(nl - in->buf) + 1 : 0;
        if (!in->eof && take == 0 && in->len >= MODEL_BLOCK)
            return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: line longer than %zu bytes (not a PDB file?)",
                             in->name, ps.lineno + 1, MODEL_BLOCK);
        CRYO_TRY(pdb_parse_lines(m, &ps, in->buf, take, in->name, err));
        total += take;
        if (total > MODEL_MAX_TEXT && !ps.done)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: more than %zu MiB of PDB text (refusing absurd size)",
                             in->name, MODEL_MAX_TEXT >> 20);
        memmove(in->buf, in->buf + take, in->len - take);
        in->len -= take;
        if (ps.done || (in->eof && in->len == 0))
            break;
        CRYO_TRY(model_fill(in, MODEL_BLOCK, err));
    }
    return pdb_parse_finish(m, in->name, o, err);
}
/* mmCIF if a line starts with "data_" or "_atom_site." before any ATOM/HETATM record. */
static int looks_like_cif(const char *t, size_t len)
{
    const char *p = t, *end = t + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 5 && strncmp(p, "data_", 5) == 0)
            return 1;
        if (end - p >= 11 && strncmp(p, "_atom_site.", 11) == 0)
            return 1;
        if (end - p >= 6 && (strncmp(p, "ATOM  ", 6) == 0 || strncmp(p, "HETATM", 6) == 0))
            return 0;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

int cryo_model_read(struct cryo_model *m, const char *path, const struct cryo_model_opts *o,
                    struct cryo_error *err)
{
    struct cryo_model_opts def;
    if (!o) {
        cryo_model_opts_default(&def);
        o = &def;
    }
    int is_stdin = strcmp(path, "-") == 0;
    struct model_in in = {NULL, is_stdin ? "stdin" : path, NULL, 0, 0, 0};
    errno = 0;
    in.g = is_stdin ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(path, "rb");
    if (!in.g)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot open: %s", in.name, errno ? strerror(errno) : "out of memory");
    int s = model_fill(&in, MODEL_BLOCK, err);
    if (s == CRYO_OK && looks_like_cif(in.buf, in.len)) {
        while (s == CRYO_OK && !in.eof) {
            if (in.len >= MODEL_MAX_TEXT)
                s = cryo_fail(err, CRYO_E_FORMAT, "%s: more than %zu MiB of mmCIF text (refusing absurd size)",
                              in.name, MODEL_MAX_TEXT >> 20);
            else
                s = model_fill(&in, in.len < MODEL_MAX_TEXT - in.len ? in.len : MODEL_MAX_TEXT - in.len, err);
        }
        if (s == CRYO_OK)
            s = cryo_model_parse_cif(m, in.buf, in.len, in.name, o, err);
    } else if (s == CRYO_OK) {
        s = read_pdb_streamed(m, &in, o, err);
    }
    if (s < 0)
        cryo_model_free(m);
    gzclose(in.g);
    free(in.buf);
    return s;
}

int cryo_model_write_pdb(FILE *f, const struct cryo_model *m, const double *bfac, const char *name,
                         struct cryo_error *err)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        /* PDB convention: 4-character names start in column 13, shorter ones in 14
         * unless the element has two letters. */
        char nm[8];
        if (strlen(a->name) >= 4 || strlen(a->element) == 2)
            snprintf(nm, sizeof nm, "%-4.4s", a->name);
        else
            snprintf(nm, sizeof nm, " %-3.3s", a->name);
        double b = bfac ? bfac[i] : a->b;
        if (fprintf(f, "%-6s%5d %4s%c%3.3s %c%4d%c   %8.3f%8.3f%8.3f%6.2f%6.2f          %2.2s\n",
                    a->het ? "HETATM" : "ATOM", (a->serial % 100000 + 100000) % 100000, nm,
                    a->altloc, a->resname, a->chain[0] ? a->chain[0] : ' ', a->resseq % 10000,
                    a->icode, a->xyz[0], a->xyz[1], a->xyz[2], a->occ, b, a->element) < 0)
            return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno));
    }
    if (fprintf(f, "END\n") < 0 || fflush(f) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno));
    return CRYO_OK;
}
