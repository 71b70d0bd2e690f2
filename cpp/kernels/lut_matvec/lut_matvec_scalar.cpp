#include "kernels/fp16.h"
#include "kernels/lut_matvec/lut_matvec.h"

namespace sqllm {
namespace kernels {

// The code may straddle two bytes (3 bits), so read the 16-bit little-endian window that
// starts at its first byte. The second byte exists whenever the code needs it, because rows
// are padded to whole 32-code blocks.
uint32_t lut_code_at(const uint8_t *row, int64_t j, int bits) {
    const int64_t bit = j * bits;
    const int64_t byte = bit / 8;
    uint32_t window = row[byte];
    if (bit % 8 + bits > 8) window |= uint32_t(row[byte + 1]) << 8;
    return (window >> (bit % 8)) & ((1u << bits) - 1u);
}

namespace {

double dense_row_dot(const LutMatrixView &w, int64_t row, const float *x) {
    const uint8_t *codes = w.codes + row * w.row_bytes();
    const uint16_t *lut = w.lut + row * w.lut_row_entries();
    double sum = 0.0;
    for (int64_t j = 0; j < w.cols; j++) {
        const uint16_t *group_lut = lut + ((j / w.group_size) << w.bits);
        sum += double(fp16_to_fp32(group_lut[lut_code_at(codes, j, w.bits)])) * double(x[j]);
    }
    return sum;
}

}  // namespace

void lut_matvec_scalar(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) y[i] = float(dense_row_dot(w, i, x));
}

void lut_matmat_scalar(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin,
                       int64_t row_end) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = row_begin; i < row_end; i++) y[t * w.rows + i] = float(dense_row_dot(w, i, x + t * w.cols));
}

}  // namespace kernels
}  // namespace sqllm
