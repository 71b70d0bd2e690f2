// The .sqf loader: maps a file and validates every byte it will ever use (formats/SPEC.md §8).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format.h"
#include "sqllm/sqllm.h"

namespace sqllm {

// Every failure inside the library is an Error carrying its status code; the C API and the
// Python binding turn it into a status/exception at the boundary.
class Error : public std::runtime_error {
public:
    Error(sqllm_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    sqllm_status status() const { return status_; }

private:
    sqllm_status status_;
};

struct MetaEntry {
    std::string key;
    format::ValueType type;
    format::ValueType item_type;  // arrays only
    uint64_t count;               // array length, 1 for scalars
    const uint8_t *raw;           // scalar value or first array item, in the mapping (unaligned)
    std::vector<std::string_view> strings;  // STRING values, or items of a STRING array
};

struct TensorInfo {
    std::string name;
    format::TensorType type;
    uint32_t n_dims;
    uint64_t shape[4];  // numpy order (outermost first)
    uint64_t n_elements;
    uint64_t n_bytes;
    uint64_t file_offset;
    const uint8_t *data;
};

struct LinearInfo {
    std::string name;
    uint32_t bits;
    uint32_t group_size;
    uint64_t rows, cols, groups, nnz;
    const TensorInfo *codes, *lut, *rowptr, *colidx, *vals;  // sparse ones may be null
    const TensorInfo *lut_scale;  // an 8-bit LUT's (lo, step) per table; null for an fp16 LUT
    const uint16_t *lut16;        // the fp16 LUT [rows][groups][2^bits]: mapped, or decoded at load
};

struct ModelConfig {
    std::string family, rope_scaling_type;
    uint32_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    uint32_t context_length, rope_original_context_length, sliding_window;
    float norm_eps, rope_theta, rope_scaling_factor, rope_low_freq_factor, rope_high_freq_factor;
    bool tie_embeddings, attention_bias;
};

// KV-cache quantization data (SPEC §7), copied out of the file.
struct KvLayerCalibration {
    std::vector<float> key_lo, key_hi;         // per channel (num_kv_heads * head_dim)
    std::vector<float> key_centroids[3];       // index bits - 2: 2^bits levels, ascending
    std::vector<float> value_centroids[3];
};

struct KvCalibration {
    bool present = false;
    uint32_t bits = 0, sink = 0;
    float outliers = 0.0f;  // percent
    std::vector<KvLayerCalibration> layers;
};

class SqfFile {
public:
    // Throws Error on any failure; the message names the file and the key or tensor.
    // guard_mapping: register the mapping with mapguard.h (installs its SIGBUS handler).
    static std::unique_ptr<SqfFile> open(const std::string &path, bool verify_checksums, bool guard_mapping = false);
    ~SqfFile();
    SqfFile(const SqfFile &) = delete;
    SqfFile &operator=(const SqfFile &) = delete;

    const std::string &path() const { return path_; }
    uint64_t file_size() const { return size_; }
    const ModelConfig &config() const { return config_; }
    const std::vector<MetaEntry> &metadata() const { return meta_; }
    const std::vector<TensorInfo> &tensors() const { return tensors_; }
    const std::vector<LinearInfo> &linears() const { return linears_; }
    const KvCalibration &kv_calibration() const { return kv_; }

    const MetaEntry *find_meta(std::string_view key) const;
    const TensorInfo *find_tensor(std::string_view name) const;
    const LinearInfo *find_linear(std::string_view name) const;

    // Typed accessors; throw Error(NOT_FOUND / TYPE) naming the key.
    int64_t meta_int(std::string_view key) const;
    double meta_float(std::string_view key) const;
    std::string_view meta_string(std::string_view key) const;
    std::vector<uint32_t> meta_u32_array(std::string_view key) const;

    void verify_checksums() const;
    // Throws Error(IO) when the mapped file was changed in place since it was opened (truncated,
    // rewritten or resized; a file renamed over the path is a new file and changes nothing
    // here). With a guarded mapping, reads never crash (mapguard.h); this says when they read
    // garbage.
    void check_unchanged() const;

private:
    SqfFile() = default;
    void parse();
    void validate_config();
    void validate_linears();
    void validate_kv();
    [[noreturn]] void fail(sqllm_status status, const std::string &what) const;

    std::string path_;
    const uint8_t *base_ = nullptr;
    uint64_t size_ = 0;
    int fd_ = -1;  // kept open to see changes of the mapped file itself
    bool guarded_ = false;
    int64_t mtime_ns_ = 0;
    uint64_t data_start_ = 0;
    std::vector<MetaEntry> meta_;
    std::unordered_map<std::string_view, size_t> meta_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
    std::vector<LinearInfo> linears_;
    std::vector<std::unique_ptr<uint16_t[]>> decoded_luts_;  // the fp16 values of 8-bit LUTs
    std::unordered_map<std::string_view, size_t> linear_index_;
    ModelConfig config_{};
    KvCalibration kv_;
};

uint32_t crc32(const uint8_t *data, uint64_t n, uint32_t crc = 0);

}  // namespace sqllm
