/* cif.c — mmCIF reader: the `_atom_site` loop, first model only.
 * A small CIF 1.1 tokenizer (whitespace-separated values, '...' and "..." quotes that
 * close only before whitespace, ;-delimited text fields, # comments) feeds the loop's
 * rows; columns are found by tag name so any column order works. auth_* identifiers are
 * preferred over label_* (they are what PDB files and most programs show). */
#include "cryolvm/model.h"
#include "model_priv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tok {
    const char *s;  /* token text (not NUL-terminated) */
    size_t n;
    int quoted;     /* quoted values are never keywords or tags */
    long line;
};

struct lexer {
    const char *start, *p, *end;
    long line;
};

/* Next token; 0 at end of text. */
static int next_tok(struct lexer *lx, struct tok *t)
{
    for (;;) {
        while (lx->p < lx->end && isspace((unsigned char)*lx->p)) {
            if (*lx->p == '\n')
                lx->line++;
            lx->p++;
        }
        if (lx->p >= lx->end)
            return 0;
        if (*lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
            continue;
        }
        break;
    }
    const char *p = lx->p;
    t->line = lx->line;
    t->quoted = 0;
    if (*p == ';' && (p == lx->start || p[-1] == '\n')) {
        /* text field: up to a line starting with ';' */
        const char *q = p + 1;
        const char *stop = NULL;
        long lines = 0;
        for (const char *r = q; r < lx->end; r++) {
            if (*r == '\n') {
                lines++;
                if (r + 1 < lx->end && r[1] == ';') {
                    stop = r + 1;
                    break;
                }
            }
        }
        if (!stop)
            return -1;
        t->s = q;
        t->n = (size_t)(stop - q);
        t->quoted = 1;
        lx->line += lines;
        lx->p = stop + 1;
        return 1;
    }
    if (*p == '\'' || *p == '"') {
        char qc = *p;
        const char *q = p + 1;
        while (q < lx->end && *q != '\n') {
            if (*q == qc && (q + 1 == lx->end || isspace((unsigned char)q[1])))
                break;
            q++;
        }
        if (q >= lx->end || *q != qc)
            return -1;
        t->s = p + 1;
        t->n = (size_t)(q - p - 1);
        t->quoted = 1;
        lx->p = q + 1;
        return 1;
    }
    const char *q = p;
    while (q < lx->end && !isspace((unsigned char)*q))
        q++;
    t->s = p;
    t->n = (size_t)(q - p);
    lx->p = q;
    return 1;
}

static int tok_is(const struct tok *t, const char *kw)
{
    size_t n = strlen(kw);
    if (t->quoted || t->n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->s[i]) != tolower((unsigned char)kw[i]))
            return 0;
    return 1;
}

static int tok_starts(const struct tok *t, const char *prefix)
{
    size_t n = strlen(prefix);
    if (t->quoted || t->n < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->s[i]) != tolower((unsigned char)prefix[i]))
            return 0;
    return 1;
}

static int tok_missing(const struct tok *t)
{
    return !t->quoted && t->n == 1 && (t->s[0] == '.' || t->s[0] == '?');
}

static void tok_copy(const struct tok *t, char *out, size_t cap)
{
    if (tok_missing(t)) {
        out[0] = '\0';
        return;
    }
    size_t n = t->n < cap - 1 ? t->n : cap - 1;
    memcpy(out, t->s, n);
    out[n] = '\0';
}

static int tok_num(const struct tok *t, double *v)
{
    char buf[64];
    if (tok_missing(t) || t->n >= sizeof buf)
        return -1;
    memcpy(buf, t->s, t->n);
    buf[t->n] = '\0';
    /* CIF numbers may carry a standard uncertainty: "12.345(6)" */
    char *paren = strchr(buf, '(');
    if (paren)
        *paren = '\0';
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno == ERANGE || !isfinite(x))
        return -1;
    *v = x;
    return 0;
}

/* An integer item: '?' and '.' are absent (0 returned, *present = 0); otherwise it must be
 * a decimal integer that fits an int, else a "file:LINE: TAG 'text' is not an integer" error. */
static int tok_int(const struct tok *t, const char *tag, int *v, int *present, const char *name,
                   struct cryo_error *err)
{
    *present = 0;
    if (tok_missing(t))
        return 0;
    long x;
    if (cryo_model_parse_int(t->s, t->n, INT_MIN, INT_MAX, &x) < 0) {
        char buf[32];
        tok_copy(t, buf, sizeof buf);
        return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: %s '%s%s' is not an integer", name, t->line,
                         tag, buf, t->n >= sizeof buf ? "..." : "");
    }
    *v = (int)x;
    *present = 1;
    return 0;
}

enum col {
    C_GROUP, C_ID, C_TYPE, C_LATOM, C_AATOM, C_ALT, C_LCOMP, C_ACOMP, C_LASYM, C_AASYM,
    C_LSEQ, C_ASEQ, C_INS, C_X, C_Y, C_Z, C_OCC, C_B, C_MODEL, C_NCOL
};
static const char *const col_tags[C_NCOL] = {
    "group_pdb", "id", "type_symbol", "label_atom_id", "auth_atom_id", "label_alt_id",
    "label_comp_id", "auth_comp_id", "label_asym_id", "auth_asym_id", "label_seq_id",
    "auth_seq_id", "pdbx_pdb_ins_code", "cartn_x", "cartn_y", "cartn_z", "occupancy",
    "b_iso_or_equiv", "pdbx_pdb_model_num"};

static int pick(const int *col, enum col a, enum col b) { return col[a] >= 0 ? col[a] : col[b]; }

/* Fill one atom from a row of tokens; returns 1 to keep, 0 to skip (other model),
 * -1 on error. */
static int row_to_atom(const struct tok *row, const int *col, int *first_model,
                       int *first_model_seen, struct cryo_atom *a,
                       const char *name, struct cryo_error *err)
{
    char buf[32];
    double v;
    int iv, have;
    memset(a, 0, sizeof *a);
    if (col[C_MODEL] >= 0) {
        CRYO_TRY(tok_int(&row[col[C_MODEL]], "pdbx_PDB_model_num", &iv, &have, name, err));
        if (have && !*first_model_seen) {
            *first_model = iv;
            *first_model_seen = 1;
        }
        if (have && iv != *first_model)
            return 0;
    }
    static const enum col xyz[3] = {C_X, C_Y, C_Z};
    for (int d = 0; d < 3; d++) {
        const struct tok *t = &row[col[xyz[d]]];
        if (tok_num(t, &v) < 0) {
            tok_copy(t, buf, sizeof buf);
            return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: Cartn_%c '%s' is not a number", name,
                             t->line, "xyz"[d], buf);
        }
        a->xyz[d] = v;
    }
    a->occ = 1.0f;
    if (col[C_OCC] >= 0 && !tok_missing(&row[col[C_OCC]])) {
        if (tok_num(&row[col[C_OCC]], &v) < 0)
            return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: occupancy is not a number", name,
                             row[col[C_OCC]].line);
        a->occ = (float)v;
    }
    if (col[C_B] >= 0 && !tok_missing(&row[col[C_B]])) {
        if (tok_num(&row[col[C_B]], &v) < 0)
            return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: B_iso_or_equiv is not a number", name,
                             row[col[C_B]].line);
        a->b = (float)v;
    }
    if (col[C_GROUP] >= 0)
        a->het = tok_is(&row[col[C_GROUP]], "HETATM");
    if (col[C_ID] >= 0) {
        CRYO_TRY(tok_int(&row[col[C_ID]], "id", &iv, &have, name, err));
        if (have)
            a->serial = iv;
    }
    int c;
    if ((c = pick(col, C_AATOM, C_LATOM)) >= 0)
        tok_copy(&row[c], a->name, sizeof a->name);
    if ((c = pick(col, C_ACOMP, C_LCOMP)) >= 0)
        tok_copy(&row[c], a->resname, sizeof a->resname);
    if ((c = pick(col, C_AASYM, C_LASYM)) >= 0)
        tok_copy(&row[c], a->chain, sizeof a->chain);
    a->resseq = 0;
    have = 0;
    if ((c = col[C_ASEQ]) >= 0)
        CRYO_TRY(tok_int(&row[c], "auth_seq_id", &iv, &have, name, err));
    if (!have && (c = col[C_LSEQ]) >= 0)
        CRYO_TRY(tok_int(&row[c], "label_seq_id", &iv, &have, name, err));
    if (have)
        a->resseq = iv;
    a->altloc = ' ';
    if (col[C_ALT] >= 0 && !tok_missing(&row[col[C_ALT]]) && row[col[C_ALT]].n > 0)
        a->altloc = row[col[C_ALT]].s[0];
    a->icode = ' ';
    if (col[C_INS] >= 0 && !tok_missing(&row[col[C_INS]]) && row[col[C_INS]].n > 0)
        a->icode = row[col[C_INS]].s[0];
    if (col[C_TYPE] >= 0) {
        tok_copy(&row[col[C_TYPE]], buf, sizeof buf);
        for (char *q = buf; *q; q++)
            *q = (char)toupper((unsigned char)*q);
        buf[3] = '\0';
        memcpy(a->element, buf, 4);
    }
    if (!a->element[0] && a->name[0]) { /* no type_symbol: first letter of the name */
        a->element[0] = (char)toupper((unsigned char)a->name[0]);
    }
    a->z = cryo_element_z(a->element);
    return 1;
}

int cryo_model_parse_cif(struct cryo_model *m, const char *text, size_t len, const char *name,
                         const struct cryo_model_opts *o, struct cryo_error *err)
{
    cryo_model_free(m);
    struct lexer lx = {text, text, text + len, 1};
    struct tok t;
    int r;
    int found = 0;
    /* Find "loop_" followed by _atom_site.* tags. */
    while ((r = next_tok(&lx, &t)) > 0) {
        if (!tok_is(&t, "loop_"))
            continue;
        struct lexer save = lx;
        struct tok t2;
        if (next_tok(&lx, &t2) > 0 && tok_starts(&t2, "_atom_site.")) {
            lx = save;
            found = 1;
            break;
        }
        lx = save;
    }
    if (r < 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: unterminated quoted value or text field", name,
                         lx.line);
    if (!found)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no _atom_site loop (not an mmCIF coordinate file?)",
                         name);
    int col[C_NCOL];
    for (int i = 0; i < C_NCOL; i++)
        col[i] = -1;
    int ntags = 0;
    long loop_line = lx.line;
    struct lexer before;
    for (;;) {
        before = lx;
        r = next_tok(&lx, &t);
        if (r <= 0 || !tok_starts(&t, "_atom_site."))
            break;
        for (int i = 0; i < C_NCOL; i++) {
            size_t n = strlen(col_tags[i]);
            if (t.n == 11 + n && tok_starts(&t, "_atom_site.") &&
                strncasecmp(t.s + 11, col_tags[i], n) == 0)
                col[i] = ntags;
        }
        ntags++;
    }
    lx = before;
    if (col[C_X] < 0 || col[C_Y] < 0 || col[C_Z] < 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: _atom_site loop has no Cartn_x/y/z columns", name,
                         loop_line);
    struct tok *row = calloc((size_t)ntags, sizeof *row);
    if (!row)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
    int k = 0, first_model = 0, first_model_seen = 0, s = CRYO_OK;
    for (;;) {
        r = next_tok(&lx, &t);
        if (r < 0) {
            s = cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: unterminated quoted value or text field", name,
                          lx.line);
            break;
        }
        int stop = r == 0 || (!t.quoted && (t.s[0] == '_' || tok_is(&t, "loop_") ||
                                            tok_starts(&t, "data_") || tok_starts(&t, "save_") ||
                                            tok_is(&t, "stop_") || tok_is(&t, "global_")));
        if (stop) {
            if (k != 0)
                s = cryo_fail(err, CRYO_E_FORMAT,
                              "%s:%ld: _atom_site row has %d values, the loop has %d columns", name,
                              row[0].line, k, ntags);
            break;
        }
        row[k++] = t;
        if (k < ntags)
            continue;
        k = 0;
        struct cryo_atom a;
        int keep = row_to_atom(row, col, &first_model, &first_model_seen, &a, name, err);
        if (keep < 0) {
            s = keep;
            break;
        }
        if (keep && (s = cryo_model_push(m, &a, err)) < 0)
            break;
    }
    free(row);
    if (s < 0) {
        cryo_model_free(m);
        return s;
    }
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: the _atom_site loop has no atoms", name);
    for (size_t i = 0; i < m->n; i++)
        if (m->atoms[i].serial == 0)
            m->atoms[i].serial = (int)i + 1;
    cryo_model_filter(m, o);
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no atoms left after filtering (hydrogens, waters, ligands)",
                         name);
    return CRYO_OK;
}
