/* test_outfile.c — the one output path (libcore/outfile.c): regular files replaced by
 * rename with the umask or the old mode, links followed and kept, devices and FIFOs written
 * in place, write errors on a device caught, an aborted write leaving the old file as it was. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cryolvm/outfile.h"
#include "testutil.h"

static char *path_in(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/%s", tu_tmpdir(), name);
    return p;
}

static int put_text(void *ctx, FILE *f) { return fputs((const char *)ctx, f) < 0 ? CRYO_E_IO : CRYO_OK; }

static int fill_text(FILE *f, void *ctx, const char *name, struct cryo_error *err)
{
    (void)name;
    (void)err;
    return put_text(ctx, f);
}

static int fill_fails(FILE *f, void *ctx, const char *name, struct cryo_error *err)
{
    fputs((const char *)ctx, f);
    return cryo_fail(err, CRYO_E_INVALID, "%s: refused half-way", name);
}

static char *slurp(const char *p)
{
    static char buf[4096];
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Files in the test directory whose name contains ".tmp" (left-over temporaries). */
static int leftovers(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '\\.tmp$'", tu_tmpdir());
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void write_text(const char *p, const char *text)
{
    struct cryo_error err = {0};
    int st = cryo_outfile_write(p, fill_text, (void *)text, NULL, &err);
    if (st != 0)
        tu_fail(__FILE__, __LINE__, "%s", err.msg);
}

TEST(new_file_gets_the_umask_and_replaced_file_keeps_its_mode)
{
    const char *p = path_in("new.tsv");
    mode_t old = umask(077);
    write_text(p, "a\n");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
    unlink(p);
    umask(022);
    write_text(p, "b\n");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0644);
    CHECK(chmod(p, 0640) == 0);
    ino_t before = st.st_ino;
    write_text(p, "c\n");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);
    CHECK(st.st_ino != before); /* renamed over, not rewritten in place */
    CHECK(strcmp(slurp(p), "c\n") == 0);
    umask(old);
    CHECK_EQ_INT(leftovers(), 0);
}

TEST(failure_leaves_the_old_file_and_no_temporary)
{
    const char *p = path_in("keep.txt");
    write_text(p, "old\n");
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_outfile_write(p, fill_fails, "half", NULL, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "refused half-way") != NULL);
    CHECK(strcmp(slurp(p), "old\n") == 0);
    /* opened, written, never committed */
    struct cryo_outfile *o = NULL;
    CHECK(cryo_outfile_open(&o, p, NULL, &err) == 0);
    fputs("new\n", cryo_outfile_file(o));
    CHECK(cryo_outfile_tmp_path(o) != NULL && !cryo_outfile_is_direct(o));
    cryo_outfile_free(o);
    CHECK(strcmp(slurp(p), "old\n") == 0);
    CHECK_EQ_INT(leftovers(), 0);
}

TEST(symlink_is_kept_and_its_target_replaced)
{
    const char *t = path_in("real.txt"), *l = path_in("link.txt"), *l2 = path_in("link2.txt");
    write_text(t, "old\n");
    CHECK(symlink("real.txt", l) == 0);   /* relative to the link's directory */
    CHECK(symlink(l, l2) == 0);           /* a chain */
    write_text(l2, "new\n");
    struct stat st;
    CHECK(lstat(l, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(lstat(l2, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(strcmp(slurp(t), "new\n") == 0);
    /* a dangling link: the file appears where it points */
    const char *d = path_in("dangling.txt"), *dt = path_in("later.txt");
    CHECK(symlink("later.txt", d) == 0);
    write_text(d, "made\n");
    CHECK(lstat(d, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(slurp(dt) && strcmp(slurp(dt), "made\n") == 0);
    /* a loop is an error naming the path */
    const char *a = path_in("loop_a"), *b = path_in("loop_b");
    CHECK(symlink("loop_b", a) == 0 && symlink("loop_a", b) == 0);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_outfile_write(a, fill_text, "x", NULL, &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "loop_a") != NULL);
    CHECK_EQ_INT(leftovers(), 0);
}

TEST(device_written_in_place_and_enospc_reported)
{
    struct cryo_error err = {0};
    struct stat st;
    CHECK(cryo_outfile_write("/dev/null", fill_text, "to nowhere\n", NULL, &err) == 0);
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    if (stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
        struct cryo_outfile_opts o;
        cryo_outfile_opts_default(&o);
        for (int spool = 0; spool < 2; spool++) {
            o.spool = spool;
            cryo_error_clear(&err);
            CHECK_EQ_INT(cryo_outfile_write("/dev/full", fill_text, "bytes\n", &o, &err), CRYO_E_IO);
            CHECK(strstr(err.msg, "/dev/full: write failed") != NULL);
            CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode));
        }
    }
    /* a link to a device: written in place too, the link stays */
    const char *l = path_in("null_link");
    CHECK(symlink("/dev/null", l) == 0);
    CHECK(cryo_outfile_write(l, fill_text, "x\n", NULL, &err) == 0);
    CHECK(lstat(l, &st) == 0 && S_ISLNK(st.st_mode));
    /* a directory is refused */
    CHECK_EQ_INT(cryo_outfile_write(tu_tmpdir(), fill_text, "x", NULL, &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "is a directory") != NULL);
}

TEST(fifo_gets_the_bytes)
{
    const char *p = path_in("fifo");
    CHECK(mkfifo(p, 0600) == 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t kid = fork();
    if (kid == 0) { /* the reader: copy the FIFO into the pipe */
        close(fds[0]);
        int fd = open(p, O_RDONLY);
        char buf[256];
        ssize_t k;
        while (fd >= 0 && (k = read(fd, buf, sizeof buf)) > 0)
            if (write(fds[1], buf, (size_t)k) != k)
                break;
        _exit(0);
    }
    close(fds[1]);
    struct cryo_error err = {0};
    CHECK(cryo_outfile_write(p, fill_text, "through the fifo\n", NULL, &err) == 0);
    char got[256] = {0};
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], got + n, sizeof got - 1 - n)) > 0)
        n += (size_t)k;
    close(fds[0]);
    waitpid(kid, NULL, 0);
    CHECK(strcmp(got, "through the fifo\n") == 0);
    struct stat st;
    CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
}

TEST(own_descriptors_written_directly)
{
    /* /dev/fd/N for a file opened here: written at its offset, not renamed over */
    const char *p = path_in("fd.txt");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "head\n", 5) == 5);
    char name[64];
    snprintf(name, sizeof name, "/dev/fd/%d", fd);
    struct stat before, after;
    CHECK(stat(p, &before) == 0);
    struct cryo_error err = {0};
    CHECK(cryo_outfile_write(name, fill_text, "tail\n", NULL, &err) == 0);
    close(fd);
    CHECK(stat(p, &after) == 0 && after.st_ino == before.st_ino);
    CHECK(strcmp(slurp(p), "head\ntail\n") == 0);
    CHECK_EQ_INT(cryo_outfile_write("/dev/fd/999", fill_text, "x", NULL, &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "/dev/fd/999: not an open file descriptor") != NULL);
    CHECK_EQ_INT(cryo_outfile_write("", fill_text, "x", NULL, &err), CRYO_E_INVALID);
    CHECK_EQ_INT(leftovers(), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return RUN_TESTS(new_file_gets_the_umask_and_replaced_file_keeps_its_mode,
                     failure_leaves_the_old_file_and_no_temporary, symlink_is_kept_and_its_target_replaced,
                     device_written_in_place_and_enospc_reported, fifo_gets_the_bytes,
                     own_descriptors_written_directly);
}
