/* cpu_math.h — exp and erfc written so that GCC vectorises loops that call them (libm's
 * expf/erff are opaque calls that keep a loop scalar: 15 % of window attention and most of
 * GELU were spent there).
 *
 * exp: x = k·ln2 + r with k = round(x/ln2) (the 1.5·2²³ rounding trick, no libm call) and
 * |r| ≤ ln2/2; e^r by its degree-7 Taylor polynomial (truncation < 1e-8 relative there);
 * 2^k assembled in the exponent bits. x is clamped to [−87, 88], so e^x never overflows,
 * and tiny results are ~1e-38 rather than denormal; callers that need an exact 0 (masked
 * attention entries) select it themselves.
 * erfc: the Chebyshev fit of Numerical Recipes (Press et al., §6.2, "erfcc"), fractional
 * error < 1.2e-7 for all z, evaluated in float (≈ 3e-7).
 */
#ifndef CRYOLVM_CPU_MATH_H
#define CRYOLVM_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#pragma omp declare simd notinbranch
static inline float cpu_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float kf = (x * log2e + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = (x - kf * ln2_hi) - kf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#pragma omp declare simd notinbranch
static inline float cpu_erfcf(float z)
{
    float a = z < 0.0f ? -z : z;
    float t = 1.0f / (1.0f + 0.5f * a);
    float q = 0.17087277f;
    q = q * t - 0.82215223f;
    q = q * t + 1.48851587f;
    q = q * t - 1.13520398f;
    q = q * t + 0.27886807f;
    q = q * t - 0.18628806f;
    q = q * t + 0.09678418f;
    q = q * t + 0.37409196f;
    q = q * t + 1.00002368f;
    q = q * t - 1.26551223f;
    float r = t * cpu_expf(-a * a + q);
    return z >= 0.0f ? r : 2.0f - r;
}

#endif
