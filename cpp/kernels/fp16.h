// Portable IEEE binary16 <-> binary32 conversion by bit manipulation. Exact in both
// directions (fp32 -> fp16 rounds to nearest, ties to even), independent of the FPU's
// rounding mode and of flush-to-zero / denormals-are-zero settings, so that the scalar
// reference, the converter and the runtime agree bit for bit on every platform.
#pragma once

#include <cstdint>
#include <cstring>

namespace sqllm {
namespace kernels {

inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or nan with its payload kept
    } else if (exponent != 0) {
        bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal half: every one is a normal float, so shift the leading 1 into the
        // implicit position and lower the exponent to match.
        uint32_t float_exponent = 127 - 15 + 1;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            float_exponent--;
        }
        bits = sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t fp32_to_fp16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) {
        // inf stays inf; nan stays a (quiet) nan with the top of its payload.
        if (magnitude == 0x7f800000u) return uint16_t(sign | 0x7c00u);
        return uint16_t(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    }
    if (magnitude >= (uint32_t(127 + 16) << 23)) return uint16_t(sign | 0x7c00u);  // >= 65536: inf
    if (magnitude >= (uint32_t(127 - 14) << 23)) {
        // Normal half. Adding 0xfff plus the lowest kept bit rounds to nearest even; a carry
        // out of the mantissa correctly bumps the exponent (up to inf at 65520).
        uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
        return uint16_t(sign | ((rounded - (uint32_t(127 - 15) << 23)) >> 13));
    }
    // Subnormal half or zero: value = significand * 2^(e-150); in units of 2^-24 that is
    // significand >> (126 - e), rounded to nearest even. Below 2^-25 everything rounds to 0.
    const int exponent = int(magnitude >> 23);
    const int shift = 126 - exponent;
    if (shift > 24) return sign;
    const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t q = significand >> shift;
    const uint32_t remainder = significand & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (remainder > half || (remainder == half && (q & 1u))) q++;
    return uint16_t(sign | q);  // q == 0x400 is the smallest normal, encoded correctly
}

// binary64 -> binary16, rounded once to nearest, ties to even: a value that is exact in
// double (an 8-bit LUT entry lo + step * level, SPEC §4) gets the same half as numpy's
// float64 -> float16, which a detour through float could miss by double rounding.
inline uint16_t fp64_to_fp16(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    const uint16_t sign = uint16_t((bits >> 48) & 0x8000u);
    const uint64_t magnitude = bits & 0x7fffffffffffffffull;
    if (magnitude >= 0x7ff0000000000000ull) {
        if (magnitude == 0x7ff0000000000000ull) return uint16_t(sign | 0x7c00u);
        return uint16_t(sign | 0x7e00u | ((magnitude >> 42) & 0x3ffu));
    }
    if (magnitude >= (uint64_t(1023 + 16) << 52)) return uint16_t(sign | 0x7c00u);  // >= 65536: inf
    if (magnitude >= (uint64_t(1023 - 14) << 52)) {
        const uint64_t rounded = magnitude + ((uint64_t(1) << 41) - 1u) + ((magnitude >> 42) & 1u);
        return uint16_t(sign | ((rounded - (uint64_t(1023 - 15) << 52)) >> 42));
    }
    // Subnormal half or zero: in units of 2^-24 the value is significand >> (1051 - e).
    const int exponent = int(magnitude >> 52);
    const int shift = 1051 - exponent;
    if (shift > 53) return sign;
    const uint64_t significand = (magnitude & 0xfffffffffffffull) | (uint64_t(1) << 52);
    uint64_t q = significand >> shift;
    const uint64_t remainder = significand & ((uint64_t(1) << shift) - 1u);
    const uint64_t half = uint64_t(1) << (shift - 1);
    if (remainder > half || (remainder == half && (q & 1u))) q++;
    return uint16_t(sign | q);
}

}  // namespace kernels
}  // namespace sqllm
