// The KV cache of a context, one interface with one implementation per kind:
//   Fp16KvCache / Fp32KvCache: keys (after RoPE) and values as they are, in fp16 or fp32;
//   QuantKvCache: KVQuant (SPEC §7): keys quantized per channel before RoPE, values per token,
//     each entry coded as the nearest of 2^bits centroids of its normalized value; outliers kept
//     exactly in fp16 as a per-token sparse list; the first `sink` positions kept whole in fp16.
//     converter/kvquant.py holds the numpy reference this must agree with.
//
// The uniform method also runs on a file without calibration: the key ranges then come from
// the sequence itself (SPEC §7, "online key ranges"): the keys of the first kRangeTokens
// positions past the sink are held in fp16 until the last of them arrives, then each channel's
// range is set from their quantiles and they are quantized like every later key.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rope.h"
#include "sqf.h"
#include "sqllm/sqllm.h"

namespace sqllm {

enum class KvMethod { Nuq, Uniform };

class KvCache {
public:
    virtual ~KvCache() = default;
    // Stores n tokens' keys (before RoPE) and values, [n][kv_heads * head_dim] each, at
    // positions pos0 .. pos0 + n - 1, pos0 at most the number of positions stored since the
    // last rewrite from an earlier one (positions come in order). `rope` covers them.
    virtual void store(int layer, int32_t pos0, int32_t n, const float *k, const float *v, const Rope &rope) = 0;
    // Rows [m][head_dim] for kv head `head` and positions b0 .. b0 + m - 1: the keys after RoPE,
    // or the values.
    virtual void read_keys(int layer, int head, int32_t b0, int32_t m, const Rope &rope, float *out) const = 0;
    virtual void read_values(int layer, int head, int32_t b0, int32_t m, float *out) const = 0;
    // Bytes the cache holds for positions [0, n_tokens).
    virtual uint64_t bytes_used(int32_t n_tokens) const = 0;
    // Bits per entry when quantized, else 0.
    virtual int bits() const { return 0; }
};

// The cache the parameters ask for (kv_bits -1: as the file says). Throws Error.
std::unique_ptr<KvCache> make_kv_cache(const SqfFile &file, int32_t n_ctx, const sqllm_context_params &params);

// Entries as they are, [layer][position][kv_heads * head_dim], of type Entry (uint16_t: fp16, or float).
template <typename Entry>
class DenseKvCache final : public KvCache {
public:
    DenseKvCache(const ModelConfig &config, int32_t n_ctx);
    void store(int layer, int32_t pos0, int32_t n, const float *k, const float *v, const Rope &rope) override;
    void read_keys(int layer, int head, int32_t b0, int32_t m, const Rope &rope, float *out) const override;
    void read_values(int layer, int head, int32_t b0, int32_t m, float *out) const override;
    uint64_t bytes_used(int32_t n_tokens) const override;

private:
    size_t offset(int layer, int32_t pos) const { return (size_t(layer) * size_t(n_ctx_) + size_t(pos)) * row_; }
    void read(const std::vector<Entry> &from, int layer, int head, int32_t b0, int32_t m, float *out) const;
    int32_t n_ctx_;
    int64_t D_;
    size_t row_, layers_;
    std::vector<Entry> k_, v_;
    std::vector<float> rotated_;  // one token's keys after RoPE
};

using Fp16KvCache = DenseKvCache<uint16_t>;
using Fp32KvCache = DenseKvCache<float>;

class QuantKvCache final : public KvCache {
public:
    static constexpr int64_t kMaxHeadDim = 1024;
    static constexpr int32_t kRangeTokens = 64;
    // Without calibration (uniform only): the sink and the outlier percentage.
    static constexpr int32_t kOnlineSink = 1;
    static constexpr float kOnlineOutliers = 1.0f;
    // Throws Error when the model cannot use the cache, or the file has no calibration and the
    // method is nuq.
    QuantKvCache(const SqfFile &file, int32_t n_ctx, int bits, KvMethod method);

    int bits() const override { return bits_; }
    bool online_ranges() const { return online_; }
    int32_t sink() const { return sink_; }
    int64_t channels() const { return C_; }
    int64_t head_dim() const { return D_; }
    int n_layers() const { return int(layers_.size()); }
    int32_t n_ctx() const { return n_ctx_; }

    // Quantizes n tokens' keys (pre-RoPE) and values, [n][channels], into positions pos0 ...;
    // pos0 is at most the number stored (a rewrite from an earlier position drops the later
    // ones), else Error(INVALID_ARGUMENT).
    void store(int layer, int32_t pos0, int32_t n, const float *k, const float *v);
    void store(int layer, int32_t pos0, int32_t n, const float *k, const float *v, const Rope &) override {
        store(layer, pos0, n, k, v);
    }
    // Dequantizes channels [head*D, head*D + D) of position pos into out[D] (keys before RoPE).
    void key(int layer, int32_t pos, int head, float *out) const;
    void value(int layer, int32_t pos, int head, float *out) const;
    // Keys are rotated as they are read.
    void read_keys(int layer, int head, int32_t b0, int32_t m, const Rope &rope, float *out) const override;
    void read_values(int layer, int head, int32_t b0, int32_t m, float *out) const override;
    // Bytes the cache holds for positions [0, n_tokens): codes, scales, outliers, sink.
    uint64_t bytes_used(int32_t n_tokens) const override;

private:
    struct Layer {
        std::vector<float> key_lo, key_hi, key_zero, key_scale;  // per channel
        std::vector<float> kcent, vcent, kmid, vmid;  // centroids and the midpoints between them
        // [kv head][n_ctx][head_bytes]: a head's positions lie one after another, so that
        // attention streams through them.
        std::vector<uint8_t> kcodes, vcodes;
        std::vector<uint16_t> vrange;            // [n_ctx][2]: fp16 zero, scale of each token's values
        std::vector<uint32_t> koff, voff;        // [n_ctx + 1]: outliers of position p are [off[p], off[p+1])
        std::vector<uint16_t> kidx, kval, vidx, vval;
        std::vector<uint16_t> ksink, vsink;      // [sink][channels] fp16
        // Online key ranges: the fp16 keys of the positions [sink, sink + kRangeTokens) while
        // the ranges are not set (ranges_set false), [kRangeTokens][channels].
        std::vector<uint16_t> kwarm;
        bool ranges_set = true;
        // Positions [0, stored) hold what was stored last: storing a position drops the ones
        // after it (their outliers are gone), which then read as zeros.
        int32_t stored = 0;
    };
    void set_key_ranges(Layer &L, const float *lo, const float *hi);
    void set_ranges_from_warm(Layer &L);
    template <class Byte>
    Byte *codes_at(Byte *codes, int32_t pos, int64_t head) const {
        return codes + (size_t(head) * size_t(n_ctx_) + size_t(pos)) * size_t(head_bytes_);
    }
    void clear_codes(uint8_t *codes, int32_t pos) const;
    void store_key(Layer &L, int32_t pos, const float *k);
    void store_value(Layer &L, int32_t pos, const float *v);
    // What keys and values share: the sink rows in fp16, otherwise zero + scale * level of
    // each channel's code (zero and scale per channel when step is 1, one pair when 0), then
    // the outliers of the position (kept in channel order).
    struct Stream {
        const uint16_t *sink;
        const uint8_t *codes;
        const uint32_t *off;
        const uint16_t *idx, *val;
        const float *levels, *zero, *scale;
        int64_t step;
    };
    void decode(const Stream &s, int32_t pos, int head, float *out) const;

    int bits_;
    bool online_ = false;
    int32_t n_ctx_, sink_;
    float outliers_;  // percent
    int64_t C_, D_, head_bytes_, n_value_outliers_;
    std::vector<Layer> layers_;
    std::vector<int32_t> order_;                      // scratch for the value outliers
};

}  // namespace sqllm
