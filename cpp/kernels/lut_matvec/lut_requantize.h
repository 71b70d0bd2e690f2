// Requantizing a matrix's fp16 LUTs to evenly spaced integer levels, for the integer paths
// (lut_matvec_q8.h: 255 levels in bytes; lut_gemm_q16.h: 2048 levels in int16).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/fp16.h"
#include "kernels/lut_matvec/lut_matvec.h"

namespace sqllm {
namespace kernels {

// For every (row, group) table of w: lo = min, step = (max - min) / top and level k =
// round((lut[k] - lo) / step), clamped to [0, top] (0 when all entries are equal).
template <typename Level>
void requantize_lut(const LutMatrixView &w, int top, Level *levels, float *lo, float *step) {
    const int64_t entries = int64_t(1) << w.bits, tables = w.rows * w.groups();
    const float highest = float(top);
    for (int64_t t = 0; t < tables; t++) {
        const uint16_t *lut = w.lut + t * entries;
        float min = fp16_to_fp32(lut[0]), max = min;
        for (int64_t k = 1; k < entries; k++) {
            const float v = fp16_to_fp32(lut[k]);
            min = v < min ? v : min;
            max = v > max ? v : max;
        }
        const float s = (max - min) / highest;
        lo[t] = min;
        step[t] = s;
        for (int64_t k = 0; k < entries; k++) {
            const float level = s > 0.0f ? std::nearbyint((fp16_to_fp32(lut[k]) - min) / s) : 0.0f;
            levels[t * entries + k] = Level(level < 0.0f ? 0.0f : level > highest ? highest : level);
        }
    }
}

}  // namespace kernels
}  // namespace sqllm
