#include "kernels/lut_matvec_w8a16/lut_matvec_w8a16.h"

#include "kernels/lut_matvec/lut_requantize.h"

namespace sqllm {
namespace kernels {

void w8a16_requantize_lut(const LutMatrixView &w, uint8_t *levels, float *lo, float *step) {
    requantize_lut(w, kW8Levels - 1, levels, lo, step);
}

W8A16Activations w8a16_split(const Q16Activations &a, int8_t *hi, int8_t *lo) {
    const int64_t chunks = a.padded / kQ16Chunk;
    for (int64_t t = 0; t < a.n; t++)
        for (int64_t c = 0; c < chunks; c++) {
            const int16_t *q = a.q + (c * a.n + t) * kQ16Chunk;
            const int64_t at = t * a.padded + c * kQ16Chunk;
            for (int64_t k = 0; k < kQ16Chunk; k++) {
                hi[at + k] = int8_t(q[k] >> 7);  // arithmetic shift: floor(a / 128)
                lo[at + k] = int8_t(q[k] & 127);
            }
        }
    W8A16Activations s;
    s.hi = hi;
    s.lo = lo;
    s.scales = a.scales;
    s.prefix = a.prefix;
    s.n = a.n;
    s.cols = a.cols;
    s.padded = a.padded;
    return s;
}

void lut_matvec_w8a16_scalar(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, float *y,
                             int64_t row_begin, int64_t row_end) {
    const int64_t groups = w.groups(), entries = int64_t(1) << w.bits, chunks = a.padded / kQ16Chunk;
    const int64_t blocks = (a.padded + kQ16Block - 1) / kQ16Block;
    const int64_t group_chunks = w.group_size < w.cols ? w.group_size / kQ16Chunk : chunks;
    for (int64_t n = 0; n < a.n; n++) {
        const double *prefix = a.prefix + n * (chunks + 1);
        const float *scales = a.scales + n * blocks;
        const int8_t *hi = a.hi + n * a.padded, *lo = a.lo + n * a.padded;
        for (int64_t i = row_begin; i < row_end; i++) {
            const uint8_t *codes = w.codes + i * w.row_bytes();
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t table = i * groups + g;
                const uint8_t *levels = t.levels + table * entries;
                const int64_t c0 = g * group_chunks, c1 = g + 1 < groups ? c0 + group_chunks : chunks;
                double scaled = 0.0;
                for (int64_t c = c0; c < c1; c++) {
                    int64_t u = 0;
                    for (int64_t j = c * kQ16Chunk; j < (c + 1) * kQ16Chunk && j < w.cols; j++)
                        u += int64_t(levels[lut_code_at(codes, j, w.bits)]) * (128 * int64_t(hi[j]) + int64_t(lo[j]));
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
