/* backend_cuda.c — finds and loads the CUDA backend plugin (libcryolvm-cuda.so).
 *
 * Why a plugin rather than dlopen'ing libcudart/cuBLAS/cuDNN one symbol at a time: the
 * backend's own kernels are compiled by nvcc and call the CUDA runtime directly; putting
 * them and their three libraries behind one dlopen keeps every other binary free of any
 * CUDA dependency (ldd shows none) and the loading code to one file. A missing plugin or a
 * missing CUDA library is CRYO_E_UNSUPPORTED with the loader's own words ("libcudnn.so.9:
 * cannot open shared object file"); a plugin that loads but finds no GPU or driver is the
 * plugin's CRYO_E_DEVICE at context creation.
 *
 * Where: $CRYO_NN_CUDA_PLUGIN if set (only there), else next to the object that holds
 * libcore (libcryolvm.so in build/, or a tool in bin/: ../build/, ../lib/, .. and ../..
 * are tried), else the dynamic loader's search path.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cryolvm/nn_layers.h"
#include "nn/backend_impl.h"
#include "nn/wmsa_plan.h"

#define PLUGIN_NAME "libcryolvm-cuda.so"

static int host_fail(struct cryo_error *err, int status, const char *msg)
{
    return cryo_fail(err, status, "%s", msg);
}

static const struct cryo_nn_plugin_host host = {
    CRYO_NN_PLUGIN_ABI, sizeof(struct cryo_nn_ops), sizeof(struct cryo_nn_ctx),
    host_fail, cryo_nn_workspace, cryo_nn_wmsa_plan,
};

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct cryo_nn_ops *loaded;
static char load_error[600];

/* dlopen `path` and take its ops; on failure leave the reason in load_error. */
static const struct cryo_nn_ops *try_plugin(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(load_error, sizeof load_error, "%s", e ? e : path);
        return NULL;
    }
    cryo_nn_plugin_entry entry;
    *(void **)&entry = dlsym(h, CRYO_NN_CUDA_ENTRY);
    if (!entry) {
        snprintf(load_error, sizeof load_error, "%s: no symbol %s", path, CRYO_NN_CUDA_ENTRY);
        dlclose(h);
        return NULL;
    }
    char why[256] = "";
    const struct cryo_nn_ops *ops = entry(&host, why, sizeof why);
    if (!ops) {
        snprintf(load_error, sizeof load_error, "%s: %s", path, why);
        dlclose(h);
        return NULL;
    }
    return ops; /* the handle stays open for the life of the process */
}

static const struct cryo_nn_ops *find_plugin(void)
{
    const char *env = getenv("CRYO_NN_CUDA_PLUGIN");
    if (env && *env)
        return try_plugin(env);
    Dl_info info;
    char dir[PATH_MAX] = "";
    if (dladdr((void *)&cryo_nn_cuda_ops, &info) && info.dli_fname) {
        char real[PATH_MAX];
        /* a tool (libcore linked in) started through $PATH: glibc names it by argv[0] */
        const char *self = strchr(info.dli_fname, '/') ? info.dli_fname : "/proc/self/exe";
        if (realpath(self, real)) {
            char *slash = strrchr(real, '/');
            if (slash) {
                *slash = '\0';
                snprintf(dir, sizeof dir, "%s", real);
            }
        }
    }
    if (dir[0]) {
        /* "/../..": build/tests/gpu/test_gpu finds build/libcryolvm-cuda.so */
        static const char *const rel[] = {"", "/../build", "/../lib", "/..", "/../.."};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s%s/" PLUGIN_NAME, dir, rel[i]);
            if (access(path, R_OK) == 0)
                return try_plugin(path); /* it is there: its error is the one to report */
        }
    }
    const struct cryo_nn_ops *ops = try_plugin(PLUGIN_NAME);
    if (!ops)
        snprintf(load_error, sizeof load_error,
                 PLUGIN_NAME " not found (build it with make CUDA=1, or set CRYO_NN_CUDA_PLUGIN)");
    return ops;
}

int cryo_nn_cuda_ops(const struct cryo_nn_ops **ops, struct cryo_error *err)
{
    pthread_mutex_lock(&load_lock);
    if (!loaded)
        loaded = find_plugin();
    *ops = loaded;
    int status = loaded ? CRYO_OK
                        : cryo_fail(err, CRYO_E_UNSUPPORTED, "nn context: cuda backend unavailable: %s",
                                    load_error);
    pthread_mutex_unlock(&load_lock);
    return status;
}
