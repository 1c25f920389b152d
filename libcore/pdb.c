/* pdb.c — PDB format reader: ATOM/HETATM fixed columns (wwPDB format v3.3), first MODEL.
 * Numbers are parsed from their exact column ranges so a malformed coordinate is an
 * error with its line number, never a silent zero. The element comes from columns 77-78
 * when present, else from the atom name as the format defines its alignment. */
#include "cryolvm/model.h"
#include "model_priv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copy columns [a,b] (1-based, inclusive) of a line of length n, trimmed. */
static void field(const char *line, size_t n, int a, int b, char *out, size_t cap)
{
    size_t k = 0;
    for (int c = a; c <= b && (size_t)c <= n; c++)
        if (k + 1 < cap)
            out[k++] = line[c - 1];
    out[k] = '\0';
    char *s = out;
    while (*s == ' ')
        s++;
    memmove(out, s, strlen(s) + 1);
    size_t l = strlen(out);
    while (l > 0 && (out[l - 1] == ' ' || out[l - 1] == '\r'))
        out[--l] = '\0';
}

static int parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(x))
        return -1;
    *v = x;
    return 0;
}

/* Hybrid-36 (used by large structures when a 4-column residue number or 5-column serial
 * overflows): "A000".."ZZZZ" continue after 9999, "a000".."zzzz" after those. Returns -1
 * if `s` is not a hybrid-36 number of `width` characters. */
static long hybrid36(const char *s, int width)
{
    if ((int)strlen(s) != width)
        return -1;
    int upper = isupper((unsigned char)s[0]), lower = islower((unsigned char)s[0]);
    if (!upper && !lower)
        return -1;
    long v = 0, first = 10, span = 1;
    for (int i = 0; i < width; i++) {
        int c = (unsigned char)s[i], d;
        if (isdigit(c))
            d = c - '0';
        else if (upper && isupper(c))
            d = c - 'A' + 10;
        else if (lower && islower(c))
            d = c - 'a' + 10;
        else
            return -1;
        v = v * 36 + d;
        if (i > 0)
            span *= 36;
    }
    long pow10 = width == 4 ? 10000 : 100000;
    v -= first * span; /* "A000" is the first value after the decimal range */
    return pow10 + v + (lower ? 26 * span : 0);
}

/* Element from the 4-column atom name field (columns 13-16): the symbol is right-aligned
 * in columns 13-14, so " CA " is carbon and "FE  " iron; ATOM names starting in column 13
 * with a letter are hydrogens like "HD21". */
static void element_from_name(const char *raw4, int het, char *el)
{
    char c0 = raw4[0], c1 = raw4[1];
    el[0] = el[1] = el[2] = '\0';
    if (c0 == ' ' || isdigit((unsigned char)c0)) {
        el[0] = (char)toupper((unsigned char)c1);
        return;
    }
    if (het && isalpha((unsigned char)c1)) {
        char two[3] = {(char)toupper((unsigned char)c0), (char)toupper((unsigned char)c1), 0};
        if (cryo_element_z(two) > 0) {
            memcpy(el, two, 3);
            return;
        }
    }
    el[0] = (char)toupper((unsigned char)c0);
}

int pdb_parse_lines(struct cryo_model *m, struct pdb_parse *ps, const char *text, size_t len,
                    const char *name, struct cryo_error *err)
{
    const char *p = text, *end = text + len;
    long lineno = ps->lineno;
    int models_seen = ps->models_seen;
    while (p < end && !ps->done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl ? nl + 1 : end;
        lineno++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n >= 5 && strncmp(line, "MODEL", 5) == 0) {
            if (++models_seen > 1)
                ps->done = 1;
            continue;
        }
        if (n >= 6 && strncmp(line, "ENDMDL", 6) == 0) {
            ps->done = 1;
            continue;
        }
        int het = n >= 6 && strncmp(line, "HETATM", 6) == 0;
        if (!het && !(n >= 6 && strncmp(line, "ATOM  ", 6) == 0) &&
            !(n == 4 && strncmp(line, "ATOM", 4) == 0))
            continue;
        if (n < 54) {
            cryo_model_free(m);
            return cryo_fail(err, CRYO_E_FORMAT,
                             "%s:%ld: %s record is %zu characters, needs coordinates in columns 31-54",
                             name, lineno, het ? "HETATM" : "ATOM", n);
        }
        struct cryo_atom a;
        memset(&a, 0, sizeof a);
        char buf[16];
        double v;
        for (int d = 0; d < 3; d++) {
            field(line, n, 31 + 8 * d, 38 + 8 * d, buf, sizeof buf);
            if (parse_num(buf, &v) < 0) {
                cryo_model_free(m);
                return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: %c coordinate '%s' is not a number",
                                 name, lineno, "xyz"[d], buf);
            }
            a.xyz[d] = v;
        }
        a.occ = 1.0f;
        field(line, n, 55, 60, buf, sizeof buf);
        if (buf[0]) {
            if (parse_num(buf, &v) < 0) {
                cryo_model_free(m);
                return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: occupancy '%s' is not a number", name,
                                 lineno, buf);
            }
            a.occ = (float)v;
        }
        field(line, n, 61, 66, buf, sizeof buf);
        if (buf[0]) {
            if (parse_num(buf, &v) < 0) {
                cryo_model_free(m);
                return cryo_fail(err, CRYO_E_FORMAT, "%s:%ld: B-factor '%s' is not a number", name,
                                 lineno, buf);
            }
            a.b = (float)v;
        }
        /* Serial (columns 7-11) and residue number (23-26): decimal, or hybrid-36 past
         * 99999 / 9999; anything else is an error, never a cast of some double. */
        field(line, n, 7, 11, buf, sizeof buf);
        long iv;
        if (!buf[0])
            a.serial = (int)m->n + 1;
        else if (cryo_model_parse_int(buf, strlen(buf), -9999, 99999, &iv) == 0 ||
                 (iv = hybrid36(buf, 5)) >= 0)
            a.serial = (int)iv;
        else {
            cryo_model_free(m);
            return cryo_fail(err, CRYO_E_FORMAT,
                             "%s:%ld: atom serial number '%s' is not an integer (or hybrid-36)", name,
                             lineno, buf);
        }
        field(line, n, 13, 16, a.name, sizeof a.name);
        a.altloc = n >= 17 ? line[16] : ' ';
        field(line, n, 18, 20, a.resname, sizeof a.resname);
        a.chain[0] = n >= 22 ? line[21] : ' ';
        if (a.chain[0] == ' ')
            a.chain[0] = '\0';
        field(line, n, 23, 26, buf, sizeof buf);
        if (!buf[0])
            a.resseq = 0;
        else if (cryo_model_parse_int(buf, strlen(buf), -999, 9999, &iv) == 0 ||
                 (iv = hybrid36(buf, 4)) >= 0)
            a.resseq = (int)iv;
        else {
            cryo_model_free(m);
            return cryo_fail(err, CRYO_E_FORMAT,
                             "%s:%ld: residue number '%s' is not an integer (or hybrid-36)", name,
                             lineno, buf);
        }
        a.icode = n >= 27 ? line[26] : ' ';
        a.het = het;
        field(line, n, 77, 78, buf, sizeof buf);
        /* Columns 77-78 hold other text in some files (EMBOSS's test entries put a line number
         * there): only a known element symbol counts, else the name decides, as in gemmi. */
        if (buf[0] && cryo_element_z(buf) > 0) {
            for (char *c = buf; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            memcpy(a.element, buf, 3); /* field() of 2 columns: at most 2 chars + NUL */
            a.element[3] = '\0';
        } else {
            char raw[5] = "    ";
            for (int c = 0; c < 4 && (size_t)(12 + c) < n; c++)
                raw[c] = line[12 + c];
            element_from_name(raw, het, a.element);
        }
        a.z = cryo_element_z(a.element);
        int s = cryo_model_push(m, &a, err);
        if (s < 0) {
            cryo_model_free(m);
            return s;
        }
    }
    ps->lineno = lineno;
    ps->models_seen = models_seen;
    return CRYO_OK;
}

int pdb_parse_finish(struct cryo_model *m, const char *name, const struct cryo_model_opts *o,
                     struct cryo_error *err)
{
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no ATOM/HETATM records (not a PDB file?)", name);
    cryo_model_filter(m, o);
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no atoms left after filtering (hydrogens, waters, ligands)",
                         name);
    return CRYO_OK;
}

int cryo_model_parse_pdb(struct cryo_model *m, const char *text, size_t len, const char *name,
                         const struct cryo_model_opts *o, struct cryo_error *err)
{
    struct pdb_parse ps = {0, 0, 0};
    cryo_model_free(m);
    CRYO_TRY(pdb_parse_lines(m, &ps, text, len, name, err));
    return pdb_parse_finish(m, name, o, err);
}
