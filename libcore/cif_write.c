/* cif_write.c — an atomic model as an mmCIF `_atom_site` loop (definition in model.h).
 * Large models do not fit PDB's fixed columns (atom serials, chain ids longer than one
 * character), so Q-scores of real models also go out as mmCIF. */
#include "cryolvm/model.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* One CIF value: "." for an empty string, quoted when it holds white space or starts
 * with a character CIF reserves (or is a reserved word). */
static int put_value(FILE *f, const char *s)
{
    if (!s[0])
        return fputs(". ", f) < 0 ? -1 : 0;
    int quote = strchr("_#$'\"[];", s[0]) != NULL || strpbrk(s, " \t") != NULL ||
                strcasecmp(s, "loop_") == 0 || strcasecmp(s, "stop_") == 0 || strcasecmp(s, "global_") == 0 ||
                strncasecmp(s, "data_", 5) == 0 || strncasecmp(s, "save_", 5) == 0 ||
                ((s[0] == '.' || s[0] == '?') && s[1] == 0);
    if (!quote)
        return fprintf(f, "%s ", s) < 0 ? -1 : 0;
    /* a quote character ends a quoted value only when white space follows it, so names
     * such as O5' fit inside double quotes */
    char q = strstr(s, "\" ") || strstr(s, "\"\t") ? '\'' : '"';
    return fprintf(f, "%c%s%c ", q, s, q) < 0 ? -1 : 0;
}

static const char *const columns[] = {
    "group_PDB", "id", "type_symbol", "label_atom_id", "label_alt_id", "label_comp_id", "label_asym_id",
    "label_seq_id", "pdbx_PDB_ins_code", "Cartn_x", "Cartn_y", "Cartn_z", "occupancy", "B_iso_or_equiv",
    "auth_seq_id", "auth_comp_id", "auth_asym_id", "auth_atom_id", "pdbx_PDB_model_num"};

int cryo_model_write_cif(FILE *f, const struct cryo_model *m, const double *bfac, const char *block,
                         const char *name, struct cryo_error *err)
{
    char blk[64];
    size_t k = 0;
    for (const char *c = block ? block : "model"; *c && k + 1 < sizeof blk; c++)
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')
            blk[k++] = *c;
    blk[k] = 0;
    int bad = fprintf(f, "data_%s\n#\nloop_\n", k ? blk : "model") < 0;
    for (size_t c = 0; c < sizeof columns / sizeof *columns && !bad; c++)
        bad = fprintf(f, "_atom_site.%s\n", columns[c]) < 0;
    for (size_t i = 0; i < m->n && !bad; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        char alt[2] = {a->altloc == ' ' ? 0 : a->altloc, 0}, ic[2] = {a->icode == ' ' ? 0 : a->icode, 0};
        double b = bfac ? bfac[i] : a->b;
        bad = fprintf(f, "%s %d ", a->het ? "HETATM" : "ATOM", a->serial) < 0 || put_value(f, a->element) ||
              put_value(f, a->name) || put_value(f, alt) || put_value(f, a->resname) || put_value(f, a->chain);
        if (!bad)
            bad = (a->het ? fprintf(f, ". ") : fprintf(f, "%d ", a->resseq)) < 0 || put_value(f, ic);
        if (!bad)
            bad = fprintf(f, "%.3f %.3f %.3f %.2f ", a->xyz[0], a->xyz[1], a->xyz[2], a->occ) < 0 ||
                  (isfinite(b) ? fprintf(f, "%.4f ", b) : fprintf(f, "? ")) < 0 ||
                  fprintf(f, "%d ", a->resseq) < 0 || put_value(f, a->resname) || put_value(f, a->chain) ||
                  put_value(f, a->name) || fprintf(f, "1\n") < 0;
    }
    if (bad || fprintf(f, "#\n") < 0 || fflush(f) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno));
    return CRYO_OK;
}
