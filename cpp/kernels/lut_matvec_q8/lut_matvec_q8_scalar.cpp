#include <cmath>
#include <limits>

#include "kernels/fp16.h"
#include "kernels/lut_matvec_q8/lut_matvec_q8.h"
#include "kernels/lut_matvec/lut_requantize.h"

namespace sqllm {
namespace kernels {

bool q8_supported(const LutMatrixView &w, int max_bits) {
    const bool bits_ok = w.bits >= 2 && w.bits <= 6 && w.bits <= max_bits;
    return bits_ok && w.cols > 0 && (w.group_size >= w.cols || w.group_size % kQ8Chunk == 0);
}

void q8_requantize_lut(const LutMatrixView &w, uint8_t *levels, float *lo, float *step) {
    requantize_lut(w, kQ8Levels - 1, levels, lo, step);
}

void q8_quantize(const float *x, int64_t n, int64_t cols, const uint8_t *order, int8_t *q, float *scales,
                 double *prefix) {
    const int64_t padded = q8_padded(cols), blocks = padded / kQ8Block;
    int64_t position[64];  // where column c of a 64-column chunk goes
    for (int64_t p = 0; p < 64; p++) position[order ? order[p] : p] = p;
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        int8_t *qt = q + t * padded;
        float *st = scales + t * blocks * 8;
        double *pt = prefix + t * (blocks + 1);
        pt[0] = 0.0;
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t j0 = b * kQ8Block;
            const int64_t j1 = j0 + kQ8Block < cols ? j0 + kQ8Block : cols;
            float max = 0.0f;
            bool bad = false;  // a NaN or an infinity: the block's scale is NaN, so the products are too
            for (int64_t j = j0; j < j1; j++) {
                const float m = std::fabs(xt[j]);
                max = m > max ? m : max;
                bad = bad || !(m <= std::numeric_limits<float>::max());
            }
            const float scale = bad ? std::numeric_limits<float>::quiet_NaN() : max / 127.0f;
            const float inverse = !bad && max > 0.0f ? 127.0f / max : 0.0f;
            int64_t sum = 0;
            for (int64_t j = j0; j < j0 + kQ8Block; j++) {
                const int8_t a = j < j1 && !bad ? int8_t(std::nearbyint(xt[j] * inverse)) : int8_t(0);
                qt[j / 64 * 64 + position[j % 64]] = a;
                sum += a;
            }
            for (int k = 0; k < 8; k++) st[b * 8 + k] = scale;
            pt[b + 1] = pt[b] + double(scale) * double(sum);
        }
    }
}

const uint8_t *q8_order_natural(int) { return nullptr; }

void lut_matmat_q8_scalar(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                          int64_t row_begin, int64_t row_end) {
    const int64_t groups = w.groups(), entries = int64_t(1) << w.bits, blocks = a.padded / kQ8Block;
    const int64_t group_cols = w.group_size < w.cols ? w.group_size : a.padded;
    for (int64_t n = 0; n < a.n; n++) {
        const int8_t *q = a.q + n * a.padded;
        const float *scales = a.scales + n * blocks * 8;
        const double *prefix = a.prefix + n * (blocks + 1);
        for (int64_t i = row_begin; i < row_end; i++) {
            const uint8_t *codes = w.codes + i * w.row_bytes();
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t table = i * groups + g;
                const uint8_t *levels = t.levels + table * entries;
                const int64_t b0 = g * group_cols / kQ8Block;
                const int64_t b1 = g + 1 < groups ? (g + 1) * group_cols / kQ8Block : blocks;
                double scaled = 0.0;
                for (int64_t b = b0; b < b1; b++) {
                    int64_t u = 0;
                    for (int64_t j = b * kQ8Block; j < (b + 1) * kQ8Block && j < w.cols; j++)
                        u += int64_t(levels[lut_code_at(codes, j, w.bits)]) * q[j];
                    scaled += double(scales[b * 8]) * double(u);
                }
                sum += double(t.lo[table]) * (prefix[b1] - prefix[b0]) + double(t.step[table]) * scaled;
            }
            y[n * w.rows + i] = float(sum);
        }
    }
}

}  // namespace kernels
}  // namespace sqllm
