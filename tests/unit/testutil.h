/* testutil.h — a tiny unit-test harness: TEST functions, CHECK macros, a main that runs them.
 *
 *   TEST(meta_roundtrip) { CHECK(x == 1); CHECK_CLOSE(a, b, 1e-6); }
 *   int main(void) { return RUN_TESTS(meta_roundtrip, other_test); }
 *
 * CHECK_CLOSE passes only when |a − b| <= tol·max(1, |b|) and both are finite: NaN never
 * passes. CHECK_REL_ERR compares arrays by ‖a − b‖ / ‖b‖. main prints one line per failed
 * check, then "N passed, N failed" and returns non-zero if anything failed.
 */
#ifndef CRYOLVM_TESTUTIL_H
#define CRYOLVM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

extern int tu_failures_in_test;

void tu_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int tu_close(double a, double b, double tol);
double tu_rel_err(const float *a, const float *b, size_t n);
double tu_rel_err_d(const double *a, const double *b, size_t n);
/* Deterministic uniform [-1,1) generator (xorshift), for reproducible random inputs. */
double tu_rand(uint64_t *state);
/* A fresh temporary directory for the test process (removed at exit); paths built inside. */
const char *tu_tmpdir(void);

#define TEST(name) static void test_##name(void)
#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond))                                                    \
            tu_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);     \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                       \
    do {                                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                                      \
        if (a_ != b_)                                                                            \
            tu_fail(__FILE__, __LINE__, "%s == %s failed: %lld vs %lld", #a, #b, a_, b_);        \
    } while (0)
#define CHECK_CLOSE(a, b, tol)                                                                   \
    do {                                                                                         \
        double a_ = (a), b_ = (b);                                                               \
        if (!tu_close(a_, b_, (tol)))                                                            \
            tu_fail(__FILE__, __LINE__, "%s ~ %s failed: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, \
                    (double)(tol));                                                              \
    } while (0)
#define CHECK_REL_ERR(a, b, n, tol)                                                              \
    do {                                                                                         \
        double e_ = tu_rel_err((a), (b), (n));                                                   \
        if (!(e_ <= (tol)))                                                                      \
            tu_fail(__FILE__, __LINE__, "rel err of %s vs %s = %.3g > %g", #a, #b, e_, (double)(tol)); \
    } while (0)

struct tu_case { const char *name; void (*fn)(void); };
int tu_run(const char *prog, const struct tu_case *cases, size_t n);

#define TU_CASE(name) {#name, test_##name}
#define TU_CASES_1(a) TU_CASE(a)
/* RUN_TESTS(a, b, c): list the test names; builds the table and runs it. */
#define RUN_TESTS(...) tu_run_list(__FILE__, #__VA_ARGS__, (void (*[])(void)){TU_MAP(__VA_ARGS__)}, \
                                   sizeof((void (*[])(void)){TU_MAP(__VA_ARGS__)}) / sizeof(void (*)(void)))
int tu_run_list(const char *file, const char *names, void (*fns[])(void), size_t n);

/* TU_MAP(a, b, ...) -> test_a, test_b, ... (up to 64 names) */
#define TU_P(x) test_##x
#define TU_MAP(...) TU_MAP_N(TU_NARG(__VA_ARGS__), __VA_ARGS__)
#define TU_MAP_N(n, ...) TU_CAT(TU_MAP_, n)(__VA_ARGS__)
#define TU_CAT(a, b) TU_CAT_(a, b)
#define TU_CAT_(a, b) a##b
#define TU_NARG(...) TU_NARG_(__VA_ARGS__, TU_RSEQ())
#define TU_NARG_(...) TU_ARG_N(__VA_ARGS__)
#define TU_ARG_N(_1,_2,_3,_4,_5,_6,_7,_8,_9,_10,_11,_12,_13,_14,_15,_16,_17,_18,_19,_20,_21,_22,_23,_24,_25,_26,_27,_28,_29,_30,_31,_32,_33,_34,_35,_36,_37,_38,_39,_40,_41,_42,_43,_44,_45,_46,_47,_48,N,...) N
#define TU_RSEQ() 48,47,46,45,44,43,42,41,40,39,38,37,36,35,34,33,32,31,30,29,28,27,26,25,24,23,22,21,20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1,0
#define TU_MAP_1(a) TU_P(a)
#define TU_MAP_2(a, ...) TU_P(a), TU_MAP_1(__VA_ARGS__)
#define TU_MAP_3(a, ...) TU_P(a), TU_MAP_2(__VA_ARGS__)
#define TU_MAP_4(a, ...) TU_P(a), TU_MAP_3(__VA_ARGS__)
#define TU_MAP_5(a, ...) TU_P(a), TU_MAP_4(__VA_ARGS__)
#define TU_MAP_6(a, ...) TU_P(a), TU_MAP_5(__VA_ARGS__)
#define TU_MAP_7(a, ...) TU_P(a), TU_MAP_6(__VA_ARGS__)
#define TU_MAP_8(a, ...) TU_P(a), TU_MAP_7(__VA_ARGS__)
#define TU_MAP_9(a, ...) TU_P(a), TU_MAP_8(__VA_ARGS__)
#define TU_MAP_10(a, ...) TU_P(a), TU_MAP_9(__VA_ARGS__)
#define TU_MAP_11(a, ...) TU_P(a), TU_MAP_10(__VA_ARGS__)
#define TU_MAP_12(a, ...) TU_P(a), TU_MAP_11(__VA_ARGS__)
#define TU_MAP_13(a, ...) TU_P(a), TU_MAP_12(__VA_ARGS__)
#define TU_MAP_14(a, ...) TU_P(a), TU_MAP_13(__VA_ARGS__)
#define TU_MAP_15(a, ...) TU_P(a), TU_MAP_14(__VA_ARGS__)
#define TU_MAP_16(a, ...) TU_P(a), TU_MAP_15(__VA_ARGS__)
#define TU_MAP_17(a, ...) TU_P(a), TU_MAP_16(__VA_ARGS__)
#define TU_MAP_18(a, ...) TU_P(a), TU_MAP_17(__VA_ARGS__)
#define TU_MAP_19(a, ...) TU_P(a), TU_MAP_18(__VA_ARGS__)
#define TU_MAP_20(a, ...) TU_P(a), TU_MAP_19(__VA_ARGS__)
#define TU_MAP_21(a, ...) TU_P(a), TU_MAP_20(__VA_ARGS__)
#define TU_MAP_22(a, ...) TU_P(a), TU_MAP_21(__VA_ARGS__)
#define TU_MAP_23(a, ...) TU_P(a), TU_MAP_22(__VA_ARGS__)
#define TU_MAP_24(a, ...) TU_P(a), TU_MAP_23(__VA_ARGS__)
#define TU_MAP_25(a, ...) TU_P(a), TU_MAP_24(__VA_ARGS__)
#define TU_MAP_26(a, ...) TU_P(a), TU_MAP_25(__VA_ARGS__)
#define TU_MAP_27(a, ...) TU_P(a), TU_MAP_26(__VA_ARGS__)
#define TU_MAP_28(a, ...) TU_P(a), TU_MAP_27(__VA_ARGS__)
#define TU_MAP_29(a, ...) TU_P(a), TU_MAP_28(__VA_ARGS__)
#define TU_MAP_30(a, ...) TU_P(a), TU_MAP_29(__VA_ARGS__)
#define TU_MAP_31(a, ...) TU_P(a), TU_MAP_30(__VA_ARGS__)
#define TU_MAP_32(a, ...) TU_P(a), TU_MAP_31(__VA_ARGS__)
#define TU_MAP_33(a, ...) TU_P(a), TU_MAP_32(__VA_ARGS__)
#define TU_MAP_34(a, ...) TU_P(a), TU_MAP_33(__VA_ARGS__)
#define TU_MAP_35(a, ...) TU_P(a), TU_MAP_34(__VA_ARGS__)
#define TU_MAP_36(a, ...) TU_P(a), TU_MAP_35(__VA_ARGS__)
#define TU_MAP_37(a, ...) TU_P(a), TU_MAP_36(__VA_ARGS__)
#define TU_MAP_38(a, ...) TU_P(a), TU_MAP_37(__VA_ARGS__)
#define TU_MAP_39(a, ...) TU_P(a), TU_MAP_38(__VA_ARGS__)
#define TU_MAP_40(a, ...) TU_P(a), TU_MAP_39(__VA_ARGS__)
#define TU_MAP_41(a, ...) TU_P(a), TU_MAP_40(__VA_ARGS__)
#define TU_MAP_42(a, ...) TU_P(a), TU_MAP_41(__VA_ARGS__)
#define TU_MAP_43(a, ...) TU_P(a), TU_MAP_42(__VA_ARGS__)
#define TU_MAP_44(a, ...) TU_P(a), TU_MAP_43(__VA_ARGS__)
#define TU_MAP_45(a, ...) TU_P(a), TU_MAP_44(__VA_ARGS__)
#define TU_MAP_46(a, ...) TU_P(a), TU_MAP_45(__VA_ARGS__)
#define TU_MAP_47(a, ...) TU_P(a), TU_MAP_46(__VA_ARGS__)
#define TU_MAP_48(a, ...) TU_P(a), TU_MAP_47(__VA_ARGS__)

#endif
