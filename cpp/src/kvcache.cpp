#include "kvcache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/fp16.h"

namespace sqllm {
namespace {

std::vector<float> midpoints(const std::vector<float> &c) {
    std::vector<float> m(c.size() - 1);
    for (size_t i = 0; i + 1 < c.size(); i++) m[i] = 0.5f * (c[i] + c[i + 1]);
    return m;
}

// The nearest centroid of u: how many midpoints lie strictly below it (a tie goes to the lower).
inline uint32_t nearest(float u, const std::vector<float> &mid) {
    uint32_t code = 0;
    for (float m : mid) code += u > m;
    return code;
}

inline void put_code(uint8_t *row, int64_t c, int bits, uint32_t code) {
    uint64_t bit = uint64_t(c) * uint64_t(bits);
    uint32_t shifted = code << (bit % 8);
    row[bit / 8] |= uint8_t(shifted);
    if (shifted >> 8) row[bit / 8 + 1] |= uint8_t(shifted >> 8);
}


}  // namespace

std::unique_ptr<KvCache> make_kv_cache(const SqfFile &file, int32_t n_ctx, const sqllm_context_params &params) {
    const KvCalibration &cal = file.kv_calibration();
    const KvMethod method = params.kv_method == SQLLM_KV_UNIFORM ? KvMethod::Uniform : KvMethod::Nuq;
    const int bits = params.kv_bits == -1 ? (cal.present ? int(cal.bits) : 0) : params.kv_bits;
    if (params.kv_bits == -1 && !cal.present && method == KvMethod::Uniform)
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, file.path() + ": the file has no KV-cache calibration, so the "
                                               "uniform KV cache needs its width given (kv_bits 2, 3 or 4)");
    if (bits) return std::make_unique<QuantKvCache>(file, n_ctx, bits, method);
    if (params.kv_fp32) return std::make_unique<Fp32KvCache>(file.config(), n_ctx);
    return std::make_unique<Fp16KvCache>(file.config(), n_ctx);
}

// ---- fp16 / fp32 --------------------------------------------------------------------------------

namespace {

void to_entries(const float *x, uint16_t *out, int64_t n) { kernels::fp32_to_fp16_array(x, out, n); }
void to_entries(const float *x, float *out, int64_t n) { std::copy_n(x, n, out); }
void from_entries(const uint16_t *x, float *out, int64_t n) { kernels::active_kernels().fp16_to_fp32(x, out, n); }
void from_entries(const float *x, float *out, int64_t n) { std::copy_n(x, n, out); }

}  // namespace

template <typename Entry>
DenseKvCache<Entry>::DenseKvCache(const ModelConfig &c, int32_t n_ctx)
    : n_ctx_(n_ctx), D_(c.head_dim), row_(size_t(c.num_kv_heads) * c.head_dim), layers_(c.num_layers) {
    k_.resize(layers_ * size_t(n_ctx) * row_);
    v_.resize(k_.size());
    rotated_.resize(row_);
}

template <typename Entry>
void DenseKvCache<Entry>::store(int layer, int32_t pos0, int32_t n, const float *k, const float *v, const Rope &rope) {
    const int heads = int(row_ / size_t(D_));
    for (int32_t t = 0; t < n; t++) {
        const float *kt = k + size_t(t) * row_;
        for (int h = 0; h < heads; h++) rope.rotate(kt + size_t(h) * size_t(D_), rotated_.data() + size_t(h) * size_t(D_), pos0 + t);
        to_entries(rotated_.data(), k_.data() + offset(layer, pos0 + t), int64_t(row_));
    }
    to_entries(v, v_.data() + offset(layer, pos0), int64_t(size_t(n) * row_));
}

template <typename Entry>
void DenseKvCache<Entry>::read(const std::vector<Entry> &from, int layer, int head, int32_t b0, int32_t m, float *out) const {
    for (int32_t j = 0; j < m; j++)
        from_entries(from.data() + offset(layer, b0 + j) + size_t(head) * size_t(D_), out + size_t(j) * size_t(D_), D_);
}

template <typename Entry>
void DenseKvCache<Entry>::read_keys(int layer, int head, int32_t b0, int32_t m, const Rope &, float *out) const {
    read(k_, layer, head, b0, m, out);
}

template <typename Entry>
void DenseKvCache<Entry>::read_values(int layer, int head, int32_t b0, int32_t m, float *out) const {
    read(v_, layer, head, b0, m, out);
}

template <typename Entry>
uint64_t DenseKvCache<Entry>::bytes_used(int32_t n_tokens) const {
    return uint64_t(std::max(0, n_tokens)) * layers_ * row_ * 2 * sizeof(Entry);
}

template class DenseKvCache<uint16_t>;
template class DenseKvCache<float>;

// ---- KVQuant ------------------------------------------------------------------------------------

QuantKvCache::QuantKvCache(const SqfFile &file, int32_t n_ctx, int bits, KvMethod method) : bits_(bits), n_ctx_(n_ctx) {
    const ModelConfig &c = file.config();
    const KvCalibration &cal = file.kv_calibration();
    if (!cal.present && method == KvMethod::Nuq)
        throw Error(SQLLM_ERR_UNSUPPORTED, file.path() + ": the file has no KV-cache calibration "
                                           "(convert with sqconvert --kv-bits N --calib-data TEXT, or use the uniform "
                                           "method, which needs none)");
    if (bits < 2 || bits > 4) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "KV-cache bits must be 2, 3 or 4, got " + std::to_string(bits));
    C_ = int64_t(c.num_kv_heads) * c.head_dim;
    D_ = c.head_dim;
    if (D_ > kMaxHeadDim) throw Error(SQLLM_ERR_UNSUPPORTED, file.path() + ": head_dim above " + std::to_string(kMaxHeadDim) + " with a quantized KV cache");
    if (C_ > 65536) throw Error(SQLLM_ERR_UNSUPPORTED, file.path() + ": more than 65536 KV channels per token");
    online_ = !cal.present;
    outliers_ = online_ ? kOnlineOutliers : cal.outliers;
    sink_ = int32_t(std::min<uint32_t>(online_ ? uint32_t(kOnlineSink) : cal.sink, uint32_t(n_ctx)));
    head_bytes_ = (D_ * bits + 7) / 8;
    n_value_outliers_ = int64_t(std::floor(double(outliers_) * double(C_) / 100.0 + 0.5));
    std::vector<float> uniform(size_t(1) << bits);
    for (size_t i = 0; i < uniform.size(); i++) uniform[i] = float(-1.0 + 2.0 * double(i) / double(uniform.size() - 1));
    layers_.resize(c.num_layers);
    for (uint32_t l = 0; l < c.num_layers; l++) {
        Layer &L = layers_[l];
        L.kcent = method == KvMethod::Nuq ? cal.layers[l].key_centroids[bits - 2] : uniform;
        L.vcent = method == KvMethod::Nuq ? cal.layers[l].value_centroids[bits - 2] : uniform;
        L.kmid = midpoints(L.kcent);
        L.vmid = midpoints(L.vcent);
        if (online_) {
            L.kwarm.resize(size_t(kRangeTokens) * size_t(C_));
            L.ranges_set = false;
        } else {
            set_key_ranges(L, cal.layers[l].key_lo.data(), cal.layers[l].key_hi.data());
        }
        L.kcodes.resize(size_t(C_ / D_) * size_t(n_ctx) * size_t(head_bytes_));
        L.vcodes.resize(size_t(C_ / D_) * size_t(n_ctx) * size_t(head_bytes_));
        L.vrange.resize(size_t(n_ctx) * 2);
        L.koff.assign(size_t(n_ctx) + 1, 0);
        L.voff.assign(size_t(n_ctx) + 1, 0);
        L.ksink.resize(size_t(sink_) * size_t(C_));
        L.vsink.resize(size_t(sink_) * size_t(C_));
    }
    order_.resize(size_t(C_));
}

void QuantKvCache::set_key_ranges(Layer &L, const float *lo, const float *hi) {
    L.key_lo.assign(lo, lo + C_);
    L.key_hi.assign(hi, hi + C_);
    L.key_zero.resize(size_t(C_));
    L.key_scale.resize(size_t(C_));
    for (int64_t ch = 0; ch < C_; ch++) {
        L.key_zero[size_t(ch)] = 0.5f * (lo[ch] + hi[ch]);
        L.key_scale[size_t(ch)] = 0.5f * (hi[ch] - lo[ch]);
    }
    L.ranges_set = true;
}

// Each channel's range from the warm-up keys: the p/2 % and (100 - p/2) % quantiles with
// linear interpolation between order statistics (numpy's default), as calibration sets them.
void QuantKvCache::set_ranges_from_warm(Layer &L) {
    const int n = kRangeTokens;
    const double q = double(outliers_) / 200.0;
    std::vector<float> lo(static_cast<size_t>(C_)), hi(static_cast<size_t>(C_));
    std::vector<double> x(static_cast<size_t>(n));
    auto quantile = [&](double p) {
        const double h = p * double(n - 1);
        const int j = std::min(int(std::floor(h)), n - 2);
        const double t = h - double(j), a = x[size_t(j)], b = x[size_t(j) + 1];
        return float(t < 0.5 ? a + (b - a) * t : b - (b - a) * (1.0 - t));
    };
    for (int64_t ch = 0; ch < C_; ch++) {
        for (int i = 0; i < n; i++) x[size_t(i)] = kernels::fp16_to_fp32(L.kwarm[size_t(i) * size_t(C_) + size_t(ch)]);
        std::sort(x.begin(), x.end());
        lo[size_t(ch)] = quantile(q);
        hi[size_t(ch)] = quantile(1.0 - q);
    }
    set_key_ranges(L, lo.data(), hi.data());
}

void QuantKvCache::store(int layer, int32_t pos0, int32_t n, const float *k, const float *v) {
    Layer &L = layers_[size_t(layer)];
    if (pos0 > L.stored)
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, "KV cache: positions are stored in order; position " + std::to_string(pos0) +
                                                    " comes after " + std::to_string(L.stored - 1));
    for (int32_t t = 0; t < n; t++) {
        const int32_t pos = pos0 + t;
        const float *kt = k + size_t(t) * size_t(C_), *vt = v + size_t(t) * size_t(C_);
        // Outlier lists are appended in position order; rewriting a position drops what followed.
        L.kidx.resize(L.koff[size_t(pos)]);
        L.kval.resize(L.koff[size_t(pos)]);
        L.vidx.resize(L.voff[size_t(pos)]);
        L.vval.resize(L.voff[size_t(pos)]);
        const int32_t warm = pos - sink_;  // index in the warm-up window of online ranges
        if (pos < sink_) {
            kernels::fp32_to_fp16_array(kt, L.ksink.data() + size_t(pos) * size_t(C_), C_);
            kernels::fp32_to_fp16_array(vt, L.vsink.data() + size_t(pos) * size_t(C_), C_);
        } else if (online_ && warm < kRangeTokens) {
            // A new warm-up window (also when a reset context rewrites it): the ranges wait
            // for its last key.
            L.ranges_set = false;
            kernels::fp32_to_fp16_array(kt, L.kwarm.data() + size_t(warm) * size_t(C_), C_);
            store_value(L, pos, vt);
        } else {
            store_key(L, pos, kt);
            store_value(L, pos, vt);
        }
        L.koff[size_t(pos) + 1] = uint32_t(L.kidx.size());
        L.voff[size_t(pos) + 1] = uint32_t(L.vidx.size());
        L.stored = pos + 1;
        if (online_ && warm == kRangeTokens - 1) {
            // The window is complete and holds the last positions stored: quantize its keys
            // (from their fp16 values) with the new ranges, outliers appended in order.
            set_ranges_from_warm(L);
            L.kidx.resize(L.koff[size_t(sink_)]);
            L.kval.resize(L.koff[size_t(sink_)]);
            std::vector<float> key(static_cast<size_t>(C_));
            for (int32_t i = 0; i < kRangeTokens; i++) {
                kernels::fp16_to_fp32_array(L.kwarm.data() + size_t(i) * size_t(C_), key.data(), C_);
                store_key(L, sink_ + i, key.data());
                L.koff[size_t(sink_ + i) + 1] = uint32_t(L.kidx.size());
            }
        }
    }
}

void QuantKvCache::clear_codes(uint8_t *codes, int32_t pos) const {
    for (int64_t head = 0; head < C_ / D_; head++) std::memset(codes_at(codes, pos, head), 0, size_t(head_bytes_));
}

void QuantKvCache::store_key(Layer &L, int32_t pos, const float *k) {
    clear_codes(L.kcodes.data(), pos);
    for (int64_t ch = 0; ch < C_; ch++) {
        const float x = k[ch], scale = L.key_scale[size_t(ch)];
        const float u = scale > 0.0f ? (x - L.key_zero[size_t(ch)]) / scale : 0.0f;
        put_code(codes_at(L.kcodes.data(), pos, ch / D_), ch % D_, bits_, nearest(u, L.kmid));
        if (!(x >= L.key_lo[size_t(ch)] && x <= L.key_hi[size_t(ch)])) {
            L.kidx.push_back(uint16_t(ch));
            L.kval.push_back(kernels::fp32_to_fp16(x));
        }
    }
}

void QuantKvCache::store_value(Layer &L, int32_t pos, const float *v) {
    // Outliers: the n largest magnitudes, of equal ones the lower index first.
    const int64_t n_out = n_value_outliers_;
    for (int64_t i = 0; i < C_; i++) order_[size_t(i)] = int32_t(i);
    auto larger = [&](int32_t a, int32_t b) {
        float fa = std::fabs(v[a]), fb = std::fabs(v[b]);
        return fa > fb || (fa == fb && a < b);
    };
    std::partial_sort(order_.begin(), order_.begin() + n_out, order_.end(), larger);
    std::sort(order_.begin(), order_.begin() + n_out);
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = n_out; i < C_; i++) {
        float x = v[order_[size_t(i)]];
        lo = std::min(lo, x);
        hi = std::max(hi, x);
    }
    if (n_out == C_) lo = hi = 0.0f;
    const uint16_t zero16 = kernels::fp32_to_fp16(0.5f * (lo + hi)), scale16 = kernels::fp32_to_fp16(0.5f * (hi - lo));
    const float zero = kernels::fp16_to_fp32(zero16), scale = kernels::fp16_to_fp32(scale16);
    L.vrange[size_t(pos) * 2] = zero16;
    L.vrange[size_t(pos) * 2 + 1] = scale16;
    clear_codes(L.vcodes.data(), pos);
    for (int64_t ch = 0; ch < C_; ch++) {
        const float u = scale > 0.0f ? (v[ch] - zero) / scale : 0.0f;
        put_code(codes_at(L.vcodes.data(), pos, ch / D_), ch % D_, bits_, nearest(u, L.vmid));
    }
    for (int64_t i = 0; i < n_out; i++) {
        int32_t ch = order_[size_t(i)];
        L.vidx.push_back(uint16_t(ch));
        L.vval.push_back(kernels::fp32_to_fp16(v[ch]));
    }
}

void QuantKvCache::key(int layer, int32_t pos, int head, float *out) const {
    const Layer &L = layers_[size_t(layer)];
    if (pos >= L.stored) return std::fill(out, out + D_, 0.0f);
    if (!L.ranges_set && pos >= sink_) {
        if (pos - sink_ < kRangeTokens)  // the warm-up window of online ranges, in fp16
            kernels::fp16_to_fp32_array(L.kwarm.data() + size_t(pos - sink_) * size_t(C_) + size_t(head) * size_t(D_), out, D_);
        else  // not stored since the window was last rewritten
            std::fill(out, out + D_, 0.0f);
        return;
    }
    const size_t c0 = size_t(head) * size_t(D_);
    decode({L.ksink.data(), L.kcodes.data(), L.koff.data(), L.kidx.data(), L.kval.data(), L.kcent.data(),
            L.key_zero.data() + c0, L.key_scale.data() + c0, 1},
           pos, head, out);
}

void QuantKvCache::value(int layer, int32_t pos, int head, float *out) const {
    const Layer &L = layers_[size_t(layer)];
    if (pos >= L.stored) return std::fill(out, out + D_, 0.0f);
    const float zero = kernels::fp16_to_fp32(L.vrange[size_t(pos) * 2]), scale = kernels::fp16_to_fp32(L.vrange[size_t(pos) * 2 + 1]);
    decode({L.vsink.data(), L.vcodes.data(), L.voff.data(), L.vidx.data(), L.vval.data(), L.vcent.data(), &zero, &scale, 0},
           pos, head, out);
}

void QuantKvCache::read_keys(int layer, int head, int32_t b0, int32_t m, const Rope &rope, float *out) const {
    for (int32_t j = 0; j < m; j++) {
        float *row = out + size_t(j) * size_t(D_);
        key(layer, b0 + j, head, row);
        rope.rotate(row, row, b0 + j);  // keys are kept before RoPE
    }
}

void QuantKvCache::read_values(int layer, int head, int32_t b0, int32_t m, float *out) const {
    for (int32_t j = 0; j < m; j++) value(layer, b0 + j, head, out + size_t(j) * size_t(D_));
}

void QuantKvCache::decode(const Stream &s, int32_t pos, int head, float *out) const {
    const int64_t c0 = int64_t(head) * D_;
    if (pos < sink_) {
        kernels::fp16_to_fp32_array(s.sink + size_t(pos) * size_t(C_) + size_t(c0), out, D_);
        return;
    }
    kernels::active_kernels().kv_dequant(codes_at(s.codes, pos, head), 0, D_, bits_, s.levels, s.zero,
                                         s.scale, s.step, out);
    // The head's outliers: a branch-free binary search (the lists are in channel order) for
    // the first one at or past c0.
    const uint16_t *first = s.idx + s.off[size_t(pos)], *end = s.idx + s.off[size_t(pos) + 1];
    for (size_t len = size_t(end - first); len > 1;) {
        const size_t half = len / 2;
        first = first[half - 1] < c0 ? first + half : first;
        len -= half;
    }
    if (first < end && *first < c0) first++;
    for (const uint16_t *i = first; i < end && *i < c0 + D_; i++) out[*i - c0] = kernels::fp16_to_fp32(s.val[i - s.idx]);
}

uint64_t QuantKvCache::bytes_used(int32_t n_tokens) const {
    const uint64_t n = uint64_t(std::max(0, std::min(n_tokens, n_ctx_)));
    const uint64_t sink = std::min<uint64_t>(n, uint64_t(sink_)), rest = n - sink;
    const uint64_t packed = uint64_t(C_ / D_) * uint64_t(head_bytes_);  // one token's codes, all heads
    uint64_t total = 0;
    for (const Layer &L : layers_) {
        total += sink * uint64_t(C_) * 2 * 2;                      // fp16 keys and values
        total += rest * (2 * packed + 2 * 2);                      // codes, value zero and scale
        if (!L.ranges_set) {
            // Warm-up keys are held in fp16, not yet as codes.
            total += uint64_t(L.kwarm.size()) * 2;
            total -= std::min<uint64_t>(rest, uint64_t(kRangeTokens)) * packed;
        }
        total += n * 2 * 4;                                        // outlier offsets
        total += (uint64_t(L.koff[n]) + uint64_t(L.voff[n])) * 4;  // outliers: index and fp16 value
    }
    return total;
}

}  // namespace sqllm
