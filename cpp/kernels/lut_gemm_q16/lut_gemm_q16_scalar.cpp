#include <cmath>
#include <limits>

#include "kernels/fp16.h"
#include "kernels/lut_gemm_q16/lut_gemm_q16.h"
#include "kernels/lut_matvec/lut_requantize.h"

namespace sqllm {
namespace kernels {

bool q16_supported(const LutMatrixView &w) {
    return w.bits >= 2 && w.bits <= 6 && w.cols > 0 && (w.group_size >= w.cols || w.group_size % kQ16Chunk == 0);
}

void q16_requantize_lut(const LutMatrixView &w, int16_t *levels, float *lo, float *step) {
    requantize_lut(w, kQ16Levels - 1, levels, lo, step);
}

void q16_quantize(const float *x, int64_t n, int64_t cols, int64_t t_begin, int64_t t_end, int16_t *q, float *scales,
                  double *prefix) {
    const int64_t padded = q16_padded(cols), chunks = padded / kQ16Chunk, blocks = q16_blocks(cols);
    const int64_t per_block = kQ16Block / kQ16Chunk;
    // Adding and subtracting 1.5 * 2^23 rounds |v| < 2^22 to the nearest integer, ties to even (the
    // default rounding mode), as nearbyint does, in a loop the compiler vectorizes.
    const float magic = 12582912.0f;
    for (int64_t t = t_begin; t < t_end; t++) {
        const float *xt = x + t * cols;
        double *pt = prefix + t * (chunks + 1);
        pt[0] = 0.0;
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t j0 = b * kQ16Block, j1 = j0 + kQ16Block < cols ? j0 + kQ16Block : cols;
            float max = 0.0f;
            int bad = 0;  // a NaN or an infinity: the block's scale is NaN, so the products are too
            for (int64_t j = j0; j < j1; j++) {
                const float m = std::fabs(xt[j]);
                max = m > max ? m : max;
                bad |= !(m <= std::numeric_limits<float>::max());
            }
            const float scale = bad ? std::numeric_limits<float>::quiet_NaN() : max / float(kQ16Max);
            const float inverse = !bad && max > 0.0f ? float(kQ16Max) / max : 0.0f;
            scales[t * blocks + b] = scale;
            for (int64_t c = b * per_block; c < (b + 1) * per_block && c < chunks; c++) {
                int16_t *qc = q + (c * n + t) * kQ16Chunk;
                const int64_t j0 = c * kQ16Chunk, valid = cols - j0 < kQ16Chunk ? cols - j0 : kQ16Chunk;
                int32_t sum = 0;
                for (int64_t k = 0; k < valid; k++) {
                    // |x * inverse| <= 8191 up to float rounding, which the rounding and the clamp absorb.
                    float v = bad ? 0.0f : (xt[j0 + k] * inverse + magic) - magic;
                    v = v > float(kQ16Max) ? float(kQ16Max) : v < -float(kQ16Max) ? -float(kQ16Max) : v;
                    qc[k] = int16_t(v);
                    sum += qc[k];
                }
                for (int64_t k = valid; k < kQ16Chunk; k++) qc[k] = 0;
                pt[c + 1] = pt[c] + double(scale) * double(sum);
            }
        }
    }
}

void lut_gemm_q16_scalar(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y,
                         int64_t row_begin, int64_t row_end) {
    const int64_t groups = w.groups(), entries = int64_t(1) << w.bits, chunks = a.padded / kQ16Chunk;
    const int64_t blocks = (a.padded + kQ16Block - 1) / kQ16Block;
    const int64_t group_chunks = w.group_size < w.cols ? w.group_size / kQ16Chunk : chunks;
    for (int64_t n = 0; n < a.n; n++) {
        const double *prefix = a.prefix + n * (chunks + 1);
        const float *scales = a.scales + n * blocks;
        for (int64_t i = row_begin; i < row_end; i++) {
            const uint8_t *codes = w.codes + i * w.row_bytes();
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t table = i * groups + g;
                const int16_t *levels = t.levels + table * entries;
                const int64_t c0 = g * group_chunks, c1 = g + 1 < groups ? c0 + group_chunks : chunks;
                double scaled = 0.0;
                for (int64_t c = c0; c < c1; c++) {
                    int64_t u = 0;
                    for (int64_t j = c * kQ16Chunk; j < (c + 1) * kQ16Chunk && j < w.cols; j++)
                        u += int64_t(levels[lut_code_at(codes, j, w.bits)]) * a.q[(c * a.n + n) * kQ16Chunk + j % kQ16Chunk];
                    scaled += double(scales[c * kQ16Chunk / kQ16Block]) * double(u);
                }
                sum += double(t.lo[table]) * (prefix[c1] - prefix[c0]) + double(t.step[table]) * scaled;
            }
            y[n * w.rows + i] = float(sum);
        }
    }
}

}  // namespace kernels
}  // namespace sqllm
