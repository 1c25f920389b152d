/* test_pdb.c — PDB and mmCIF readers: columns, elements, quoting, alternate locations,
 * filters, first model only, and errors that name the line. */
#include "cryolvm/model.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char pdb_text[] =
    "HEADER    TEST\n"
    "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N\n"
    "ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 21.50           C\n"
    "ATOM      3  CB AALA A   1      12.000   7.000  -4.000  0.40 22.00           C\n"
    "ATOM      4  CB BALA A   1      12.500   7.500  -4.500  0.60 23.00           C\n"
    "ATOM      5  H   ALA A   1      10.000   6.000  -6.000  1.00 20.00           H\n"
    "ATOM      6 HD21 ASN A   2       1.000   2.000   3.000  1.00 10.00\n"
    "ATOM      7  OD1 ASN A   2       1.500   2.500   3.500  1.00 10.00\n"
    "HETATM    8 FE   HEM A 101       5.000   5.000   5.000  1.00 30.00\n"
    "HETATM    9  O   HOH A 201       9.000   9.000   9.000  1.00 40.00           O\n"
    "END\n";

TEST(pdb_defaults)
{
    struct cryo_model m;
    struct cryo_error err = {0};
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, pdb_text, strlen(pdb_text), "t.pdb", &o, &err), 0);
    /* N, CA, CB (B wins: occ 0.6), OD1, FE; no H, no HD21, no water */
    CHECK_EQ_INT(m.n, 5);
    if (m.n == 5) {
        CHECK(strcmp(m.atoms[0].name, "N") == 0 && m.atoms[0].z == 7);
        CHECK_CLOSE(m.atoms[1].xyz[0], 11.639, 1e-12);
        CHECK_CLOSE(m.atoms[1].b, 21.5, 1e-6);
        CHECK(strcmp(m.atoms[2].name, "CB") == 0 && m.atoms[2].altloc == 'B');
        CHECK_CLOSE(m.atoms[2].xyz[2], -4.5, 1e-12);
        CHECK(strcmp(m.atoms[3].element, "O") == 0 && m.atoms[3].z == 8);
        CHECK(strcmp(m.atoms[4].element, "FE") == 0 && m.atoms[4].z == 26 && m.atoms[4].het);
        CHECK(strcmp(m.atoms[4].chain, "A") == 0 && m.atoms[4].resseq == 101);
    }
    cryo_model_free(&m);
}

TEST(pdb_filters)
{
    struct cryo_model m;
    struct cryo_model_opts o = {1, 1, 0}; /* hydrogens, waters, no ligands */
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, pdb_text, strlen(pdb_text), "t.pdb", &o, NULL), 0);
    /* N CA CB H HD21 OD1 HOH */
    CHECK_EQ_INT(m.n, 7);
    int nh = 0, nw = 0;
    for (size_t i = 0; i < m.n; i++) {
        nh += m.atoms[i].z == 1;
        nw += cryo_resname_is_water(m.atoms[i].resname);
        CHECK(!(m.atoms[i].het && !cryo_resname_is_water(m.atoms[i].resname)));
    }
    CHECK_EQ_INT(nh, 2);
    CHECK_EQ_INT(nw, 1);
    cryo_model_free(&m);
}

TEST(pdb_first_model_only)
{
    const char *t = "MODEL        1\n"
                    "ATOM      1  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C\n"
                    "ENDMDL\nMODEL        2\n"
                    "ATOM      1  CA  GLY A   1       2.000   2.000   2.000  1.00  0.00           C\n"
                    "ENDMDL\n";
    struct cryo_model m;
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, t, strlen(t), "m.pdb", &(struct cryo_model_opts){0, 0, 1}, NULL), 0);
    CHECK_EQ_INT(m.n, 1);
    cryo_model_free(&m);
}

TEST(pdb_hybrid36)
{
    const char *t = "ATOM  A0000  CA  GLY AA000       1.000   1.000   1.000  1.00  0.00           C\n"
                    "ATOM  A0001  CA  GLY Aa000       2.000   2.000   2.000  1.00  0.00           C\n";
    struct cryo_model m;
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, t, strlen(t), "h.pdb", &o, NULL), 0);
    CHECK_EQ_INT(m.n, 2);
    if (m.n == 2) {
        CHECK_EQ_INT(m.atoms[0].serial, 100000);
        CHECK_EQ_INT(m.atoms[1].serial, 100001);
        CHECK_EQ_INT(m.atoms[0].resseq, 10000);
        CHECK_EQ_INT(m.atoms[1].resseq, 10000 + 26 * 36 * 36 * 36);
    }
    cryo_model_free(&m);
}

TEST(pdb_errors_name_line)
{
    struct cryo_model m;
    struct cryo_error err = {0};
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    const char *bad = "REMARK\nATOM      1  CA  GLY A   1       1.000   x.000   1.000  1.00  0.00           C\n";
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, bad, strlen(bad), "bad.pdb", &o, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "bad.pdb:2:") != NULL);
    CHECK(strstr(err.msg, "y coordinate") != NULL);
    const char *shortl = "ATOM      1  CA  GLY A   1       1.000   1.000\n";
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, shortl, strlen(shortl), "s.pdb", &o, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "s.pdb:1:") != NULL);
    const char *none = "HEADER nothing here\n";
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, none, strlen(none), "n.pdb", &o, &err), CRYO_E_FORMAT);
    CHECK_EQ_INT(m.n, 0);
}

/* Columns shuffled, quoted names with spaces and primes, a text field before the loop,
 * two models, '?' and '.' values. */
static const char cif_text[] =
    "data_test\n"
    "_struct.title\n"
    ";A title\nover lines\n;\n"
    "#\n"
    "loop_\n"
    "_atom_site.Cartn_y\n"
    "_atom_site.group_PDB\n"
    "_atom_site.label_atom_id\n"
    "_atom_site.type_symbol\n"
    "_atom_site.Cartn_x\n"
    "_atom_site.label_alt_id\n"
    "_atom_site.label_comp_id\n"
    "_atom_site.auth_asym_id\n"
    "_atom_site.auth_seq_id\n"
    "_atom_site.Cartn_z\n"
    "_atom_site.occupancy\n"
    "_atom_site.B_iso_or_equiv\n"
    "_atom_site.pdbx_PDB_ins_code\n"
    "_atom_site.pdbx_PDB_model_num\n"
    "2.0 ATOM N N 1.0 . ALA AA 5 3.0 1.00 10.0 ? 1\n"
    "2.5 ATOM CA C 1.5 . ALA AA 5\n 3.5 1.00 11.0 ? 1\n"
    "4.0 HETATM \"O5'\" O 4.5 A 'A B' X 7 4.6 0.30 12.0 . 1\n"
    "4.1 HETATM \"O5'\" O 4.4 B 'A B' X 7 4.7 0.70 12.5 . 1\n"
    "9.0 HETATM O O 9.0 . HOH W 9 9.0 1.0 50.0 ? 1\n"
    "7.0 ATOM N N 7.0 . ALA AA 5 7.0 1.00 10.0 ? 2\n"
    "#\n"
    "loop_\n_other.x\n1\n";

TEST(cif_any_order_quotes_models)
{
    struct cryo_model m;
    struct cryo_error err = {0};
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_parse_cif(&m, cif_text, strlen(cif_text), "t.cif", &o, &err), 0);
    CHECK_EQ_INT(m.n, 3); /* N, CA, one O5' (altloc B: occ 0.7); no water; model 2 ignored */
    if (m.n == 3) {
        CHECK_CLOSE(m.atoms[0].xyz[0], 1.0, 1e-12);
        CHECK_CLOSE(m.atoms[0].xyz[1], 2.0, 1e-12);
        CHECK_CLOSE(m.atoms[0].xyz[2], 3.0, 1e-12);
        CHECK(strcmp(m.atoms[0].chain, "AA") == 0 && m.atoms[0].resseq == 5);
        CHECK_CLOSE(m.atoms[1].b, 11.0, 1e-6);
        CHECK(strcmp(m.atoms[2].name, "O5'") == 0);
        CHECK(strcmp(m.atoms[2].resname, "A B") == 0);
        CHECK(m.atoms[2].altloc == 'B' && m.atoms[2].het);
        CHECK_CLOSE(m.atoms[2].xyz[0], 4.4, 1e-12);
    }
    cryo_model_free(&m);
}

TEST(cif_errors)
{
    struct cryo_model m;
    struct cryo_error err = {0};
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    const char *bad = "data_x\nloop_\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
                      "_atom_site.Cartn_y\n_atom_site.Cartn_z\nC 1 2 3\nC 1 zz 3\n";
    CHECK_EQ_INT(cryo_model_parse_cif(&m, bad, strlen(bad), "b.cif", &o, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "b.cif:8:") != NULL);
    const char *ragged = "data_x\nloop_\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
                         "_atom_site.Cartn_y\n_atom_site.Cartn_z\nC 1 2 3\nC 1 2\n";
    CHECK_EQ_INT(cryo_model_parse_cif(&m, ragged, strlen(ragged), "r.cif", &o, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "r.cif:8:") != NULL);
    const char *quote = "data_x\nloop_\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
                        "_atom_site.Cartn_y\n_atom_site.Cartn_z\n'C 1 2 3\n";
    CHECK_EQ_INT(cryo_model_parse_cif(&m, quote, strlen(quote), "q.cif", &o, &err), CRYO_E_FORMAT);
    const char *nocoords = "data_x\nloop_\n_atom_site.type_symbol\nC\n";
    CHECK_EQ_INT(cryo_model_parse_cif(&m, nocoords, strlen(nocoords), "n.cif", &o, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "Cartn") != NULL);
    CHECK_EQ_INT(m.n, 0);
}

TEST(read_file_gzip_and_sniff)
{
    char path[512], cmd[1200];
    snprintf(path, sizeof path, "%s/m.cif", tu_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(cif_text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "gzip -k -f '%s'", path);
    CHECK(system(cmd) == 0);
    struct cryo_model m;
    struct cryo_error err = {0};
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_read(&m, path, NULL, &err), 0);
    CHECK_EQ_INT(m.n, 3);
    char gz[520];
    snprintf(gz, sizeof gz, "%s.gz", path);
    CHECK_EQ_INT(cryo_model_read(&m, gz, NULL, &err), 0);
    CHECK_EQ_INT(m.n, 3);
    /* truncated gzip is refused */
    snprintf(cmd, sizeof cmd, "head -c 60 '%s' > '%s.cut.gz'", gz, path);
    CHECK(system(cmd) == 0);
    snprintf(gz, sizeof gz, "%s.cut.gz", path);
    CHECK(cryo_model_read(&m, gz, NULL, &err) < 0);
    CHECK(strstr(err.msg, "m.cif.cut.gz") != NULL);
    CHECK(cryo_model_read(&m, "/nonexistent/x.pdb", NULL, &err) == CRYO_E_IO);
    cryo_model_free(&m);
}

TEST(write_pdb_roundtrip)
{
    struct cryo_model m, m2;
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    cryo_model_init(&m2);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, pdb_text, strlen(pdb_text), "t.pdb", &o, NULL), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    double q[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    CHECK_EQ_INT(cryo_model_write_pdb(f, &m, q, "mem", NULL), 0);
    fclose(f);
    CHECK_EQ_INT(cryo_model_parse_pdb(&m2, buf, len, "mem", &o, NULL), 0);
    CHECK_EQ_INT(m2.n, m.n);
    for (size_t i = 0; i < m.n && i < m2.n; i++) {
        CHECK(strcmp(m.atoms[i].name, m2.atoms[i].name) == 0);
        CHECK(m.atoms[i].z == m2.atoms[i].z);
        for (int d = 0; d < 3; d++)
            CHECK_CLOSE(m.atoms[i].xyz[d], m2.atoms[i].xyz[d], 1e-9);
        CHECK_CLOSE(m2.atoms[i].b, q[i], 1e-6);
    }
    free(buf);
    cryo_model_free(&m);
    cryo_model_free(&m2);
}

TEST(elements)
{
    CHECK_EQ_INT(cryo_element_z("C"), 6);
    CHECK_EQ_INT(cryo_element_z("fe"), 26);
    CHECK_EQ_INT(cryo_element_z("D"), 1);
    CHECK_EQ_INT(cryo_element_z("Xx"), 0);
    CHECK_EQ_INT(cryo_element_z(""), 0);
    CHECK_EQ_INT(cryo_element_z("U"), 92);
}

/* Issue 12: integer fields are integers with range checks, never a double cast to int. */
TEST(integers_are_integers)
{
    struct cryo_model m;
    struct cryo_error err = {0};
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    cryo_model_init(&m);
    static const char *const bad_serial[] = {" 9e99", " 0x1F", "  1.5", "  1e3", "12 34"};
    for (int i = 0; i < 5; i++) {
        char line[128];
        snprintf(line, sizeof line, "REMARK\nATOM  %.5s  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C\n",
                 bad_serial[i]);
        CHECK_EQ_INT(cryo_model_parse_pdb(&m, line, strlen(line), "i.pdb", &o, &err), CRYO_E_FORMAT);
        CHECK(strstr(err.msg, "i.pdb:2:") && strstr(err.msg, "serial"));
    }
    static const char *const bad_res[] = {"9e99", "0x1F", " 1.5", "1e3 ", "-1-2"};
    for (int i = 0; i < 5; i++) {
        char line[128];
        snprintf(line, sizeof line, "ATOM      1  CA  GLY A%.4s       1.000   1.000   1.000  1.00  0.00           C\n",
                 bad_res[i]);
        CHECK_EQ_INT(cryo_model_parse_pdb(&m, line, strlen(line), "r.pdb", &o, &err), CRYO_E_FORMAT);
        CHECK(strstr(err.msg, "r.pdb:1:") && strstr(err.msg, "residue number"));
    }
    const char *ok = "ATOM  -9999  CA  GLY A-999       1.000   1.000   1.000  1.00  0.00           C\n"
                     "ATOM  99999  CA  GLY A9999       1.000   1.000   1.000  1.00  0.00           C\n"
                     "ATOM         CA  GLY A           1.000   1.000   1.000  1.00  0.00           C\n";
    CHECK_EQ_INT(cryo_model_parse_pdb(&m, ok, strlen(ok), "ok.pdb", &o, &err), 0);
    CHECK_EQ_INT(m.n, 3);
    if (m.n == 3) {
        CHECK_EQ_INT(m.atoms[0].serial, -9999);
        CHECK_EQ_INT(m.atoms[0].resseq, -999);
        CHECK_EQ_INT(m.atoms[1].serial, 99999);
        CHECK_EQ_INT(m.atoms[1].resseq, 9999);
        CHECK_EQ_INT(m.atoms[2].serial, 3); /* blank: its index */
        CHECK_EQ_INT(m.atoms[2].resseq, 0);
    }
    /* mmCIF: id, auth_seq_id, label_seq_id and the model number */
    static const char *const cif_bad[][2] = {
        {"9e99 1 1 1", "id"}, {"1 1.5 1 1", "auth_seq_id"}, {"1 . 0x1F 1", "label_seq_id"},
        {"1 1 1 99999999999", "pdbx_PDB_model_num"}, {"1 2147483648 1 1", "auth_seq_id"}};
    for (int i = 0; i < 5; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "data_x\nloop_\n_atom_site.id\n_atom_site.auth_seq_id\n_atom_site.label_seq_id\n"
                 "_atom_site.pdbx_PDB_model_num\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
                 "_atom_site.Cartn_y\n_atom_site.Cartn_z\n1 1 1 1 C 1 2 3\n%s C 1 2 3\n", cif_bad[i][0]);
        CHECK_EQ_INT(cryo_model_parse_cif(&m, text, strlen(text), "c.cif", &o, &err), CRYO_E_FORMAT);
        CHECK(strstr(err.msg, "c.cif:12:") && strstr(err.msg, cif_bad[i][1]) && strstr(err.msg, "integer"));
    }
    const char *cif_ok = "data_x\nloop_\n_atom_site.id\n_atom_site.auth_seq_id\n_atom_site.label_seq_id\n"
                         "_atom_site.pdbx_PDB_model_num\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
                         "_atom_site.Cartn_y\n_atom_site.Cartn_z\n"
                         "-2147483648 ? 7 -1 C 1 2 3\n2147483647 -5 . -1 C 1 2 3\n3 4 5 2 C 1 2 3\n";
    CHECK_EQ_INT(cryo_model_parse_cif(&m, cif_ok, strlen(cif_ok), "ok.cif", &o, &err), 0);
    CHECK_EQ_INT(m.n, 2); /* model -1 only */
    if (m.n == 2) {
        CHECK_EQ_INT(m.atoms[0].serial, -2147483647 - 1);
        CHECK_EQ_INT(m.atoms[0].resseq, 7); /* auth absent: label */
        CHECK_EQ_INT(m.atoms[1].serial, 2147483647);
        CHECK_EQ_INT(m.atoms[1].resseq, -5);
    }
    cryo_model_free(&m);
}

/* Issue 12: alternate locations are resolved in n log n: 200k atoms in one residue (the
 * quadratic scan took minutes) finish well under a second, with the right survivors. */
TEST(altloc_one_huge_residue)
{
    const size_t n = 200000;
    struct cryo_model m;
    struct cryo_error err = {0};
    cryo_model_init(&m);
    for (size_t i = 0; i < n; i++) {
        struct cryo_atom a;
        memset(&a, 0, sizeof a);
        /* site i/2 has two altlocs, A then B; B wins on even sites, A (tie: first) on odd */
        size_t site = i / 2;
        snprintf(a.name, sizeof a.name, "%zx", site);
        a.altloc = (i % 2) ? 'B' : 'A';
        a.occ = (i % 2) ? (site % 2 ? 0.5f : 0.6f) : 0.5f;
        a.z = 6;
        a.serial = (int)i;
        strcpy(a.chain, "A");
        if (cryo_model_push(&m, &a, &err) < 0)
            break;
    }
    struct cryo_atom plain;
    memset(&plain, 0, sizeof plain);
    strcpy(plain.name, "X");
    strcpy(plain.chain, "A");
    plain.altloc = ' ';
    plain.z = 6;
    cryo_model_push(&m, &plain, &err);
    cryo_model_push(&m, &plain, &err); /* duplicates without altloc are both kept */
    struct cryo_model_opts o;
    cryo_model_opts_default(&o);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cryo_model_filter(&m, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(s < 2.0);
    CHECK_EQ_INT(m.n, n / 2 + 2);
    int right = 1;
    for (size_t k = 0; k < n / 2 && k < m.n; k++) {
        size_t want = (k % 2) ? 2 * k : 2 * k + 1;
        right &= m.atoms[k].serial == (int)want;
    }
    CHECK(right);
    cryo_model_free(&m);
}

/* Issue 12: model files are parsed as they are read: line numbers run on across blocks, a bad
 * record fails before the rest is read, reading stops after the first model, and binary
 * data is refused. */
TEST(read_streamed_blocks)
{
    char path[512];
    snprintf(path, sizeof path, "%s/big.pdb", tu_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 0; i < 50000; i++) /* 3.6 MB of remarks: several 1 MiB blocks */
        fprintf(f, "REMARK 999 %-60d\n", i);
    fputs("ATOM      1  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C\n", f);
    fputs("ATOM      2  CA  GLY A   2       2.000   2.000 zzz.000  1.00  0.00           C\n", f);
    fclose(f);
    struct cryo_model m;
    struct cryo_error err = {0};
    cryo_model_init(&m);
    CHECK_EQ_INT(cryo_model_read(&m, path, NULL, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "big.pdb:50002: z coordinate") != NULL);
    CHECK_EQ_INT(m.n, 0);
    /* first model only: what follows ENDMDL is never parsed (not even the garbage) */
    f = fopen(path, "w");
    fputs("MODEL        1\nATOM      1  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C\n"
          "ENDMDL\nATOM      2  CA  GLY A   2       2.000   2.000 zzz.000  1.00  0.00           C\n", f);
    fclose(f);
    CHECK_EQ_INT(cryo_model_read(&m, path, NULL, &err), 0);
    CHECK_EQ_INT(m.n, 1);
    /* a NUL anywhere: binary */
    f = fopen(path, "w");
    fputs("ATOM      1  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C\n", f);
    fputc(0, f);
    fclose(f);
    CHECK_EQ_INT(cryo_model_read(&m, path, NULL, &err), CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "binary data") != NULL);
    cryo_model_free(&m);
}

int main(void)
{
    return RUN_TESTS(pdb_defaults, pdb_filters, pdb_first_model_only, pdb_hybrid36, pdb_errors_name_line,
                     cif_any_order_quotes_models, cif_errors, read_file_gzip_and_sniff,
                     write_pdb_roundtrip, elements, integers_are_integers, altloc_one_huge_residue,
                     read_streamed_blocks);
}
