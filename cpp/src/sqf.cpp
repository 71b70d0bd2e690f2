// Parsing and validation of .sqf files (formats/SPEC.md). Nothing in the file is trusted:
// every count, length, offset and size is checked against the bytes that remain, with
// arithmetic that cannot overflow, before anything is read through it.
#include "sqf.h"

#include "mapguard.h"
#include "kernels/fp16.h"
#include "utf8.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

namespace sqllm {
namespace {

using namespace format;

size_t value_size(uint32_t type) {
    switch (type) {
        case VT_UINT8: case VT_INT8: case VT_BOOL: return 1;
        case VT_UINT16: case VT_INT16: return 2;
        case VT_UINT32: case VT_INT32: case VT_FLOAT32: return 4;
        case VT_UINT64: case VT_INT64: case VT_FLOAT64: return 8;
        default: return 0;  // STRING and ARRAY have no fixed size
    }
}

size_t element_size(uint32_t type) {
    switch (type) {
        case TYPE_F32: case TYPE_I32: return 4;
        case TYPE_F16: return 2;
        case TYPE_I8: return 1;
        default: return 0;
    }
}

const char *tensor_type_name(uint32_t type) {
    switch (type) {
        case TYPE_F32: return "F32";
        case TYPE_F16: return "F16";
        case TYPE_I8: return "I8";
        case TYPE_I32: return "I32";
        default: return "?";
    }
}

template <typename T>
T load(const uint8_t *p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80)) out += (c >= 32 && c < 127) ? c : '?';
    if (s.size() > 80) out += "...";
    return out;
}

std::string shape_string(const uint64_t *shape, uint32_t n) {
    std::string s = "[";
    for (uint32_t i = 0; i < n; i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A bounds-checked reader over the header.
class Cursor {
public:
    Cursor(const uint8_t *base, uint64_t size, const std::string &path) : base_(base), size_(size), path_(path) {}
    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    const uint8_t *take(uint64_t n, const char *what) {
        if (n > remaining())
            throw Error(SQLLM_ERR_FORMAT, path_ + ": truncated: " + what + " needs " + std::to_string(n) +
                                              " bytes at offset " + std::to_string(pos_) + ", file has " +
                                              std::to_string(remaining()) + " left");
        const uint8_t *p = base_ + pos_;
        pos_ += n;
        return p;
    }
    template <typename T>
    T read(const char *what) { return load<T>(take(sizeof(T), what)); }

    std::string_view string(const char *what) {
        uint64_t n = read<uint64_t>(what);
        return {reinterpret_cast<const char *>(take(n, what)), static_cast<size_t>(n)};
    }

private:
    const uint8_t *base_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string &path_;
};

int64_t mtime_ns(const struct stat &st) { return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

bool mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

}  // namespace

[[noreturn]] void SqfFile::fail(sqllm_status status, const std::string &what) const {
    throw Error(status, path_ + ": " + what);
}

std::unique_ptr<SqfFile> SqfFile::open(const std::string &path, bool verify, bool guard) {
    std::unique_ptr<SqfFile> f(new SqfFile());
    f->path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) f->fail(SQLLM_ERR_IO, std::string("cannot open: ") + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        f->fail(SQLLM_ERR_IO, "not a regular file");
    }
    f->fd_ = fd;
    f->size_ = static_cast<uint64_t>(st.st_size);
    f->mtime_ns_ = mtime_ns(st);
    if (f->size_ < 24)
        f->fail(SQLLM_ERR_FORMAT, "truncated: " + std::to_string(f->size_) + " bytes is too small for a GGUF header");
    void *p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) f->fail(SQLLM_ERR_IO, std::string("cannot map: ") + std::strerror(errno));
    f->base_ = static_cast<const uint8_t *>(p);
    if (guard) f->guarded_ = guard_mapping(p, f->size_);
    f->parse();
    f->validate_config();
    f->validate_linears();
    f->validate_kv();
    if (verify) f->verify_checksums();
    f->check_unchanged();
    return f;
}

SqfFile::~SqfFile() {
    if (base_) {
        if (guarded_) unguard_mapping(base_);
        munmap(const_cast<uint8_t *>(base_), size_);
    }
    if (fd_ >= 0) ::close(fd_);
}

void SqfFile::check_unchanged() const {
    struct stat st;
    const bool same = fstat(fd_, &st) == 0 && uint64_t(st.st_size) == size_ && mtime_ns(st) == mtime_ns_;
    if (!same || (guarded_ && mapping_damaged(base_)))
        fail(SQLLM_ERR_IO, "the file was changed in place while in use (truncated or overwritten); what was read from "
                           "it since is not valid: load it again");
}

void SqfFile::parse() {
    Cursor c(base_, size_, path_);
    if (std::memcmp(c.take(4, "magic"), GGUF_MAGIC, 4) != 0) fail(SQLLM_ERR_FORMAT, "not a GGUF file (bad magic)");
    uint32_t version = c.read<uint32_t>("version");
    if (version != GGUF_VERSION)
        fail(SQLLM_ERR_UNSUPPORTED, "GGUF version " + std::to_string(version) + "; this reader supports version 3");
    uint64_t n_tensors = c.read<uint64_t>("tensor count");
    uint64_t n_kv = c.read<uint64_t>("key/value count");
    // Each pair needs >= 13 bytes (8 length + 1 key byte + 4 type), each tensor info >= 29.
    if (n_kv > c.remaining() / 13) fail(SQLLM_ERR_FORMAT, "key/value count " + std::to_string(n_kv) + " exceeds the file");
    if (n_tensors > c.remaining() / 29) fail(SQLLM_ERR_FORMAT, "tensor count " + std::to_string(n_tensors) + " exceeds the file");

    meta_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        MetaEntry e{};
        std::string_view key = c.string("metadata key");
        if (key.empty() || key.size() > 65535) fail(SQLLM_ERR_FORMAT, "metadata key #" + std::to_string(i) + " has an invalid length");
        for (char ch : key)
            if (ch < 32 || ch > 126) fail(SQLLM_ERR_FORMAT, "metadata key #" + std::to_string(i) + " '" + printable(key) + "' is not printable ASCII");
        e.key = std::string(key);
        uint32_t type = c.read<uint32_t>("value type");
        if (type >= VALUE_TYPE_COUNT) fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": unknown value type " + std::to_string(type));
        e.type = static_cast<ValueType>(type);
        e.count = 1;
        auto utf8 = [&](std::string_view v) {
            if (!is_valid_utf8(v)) fail(SQLLM_ERR_FORMAT, "key " + e.key + ": string is not valid UTF-8");
            return v;
        };
        if (type == VT_STRING) {
            e.strings.push_back(utf8(c.string(e.key.c_str())));
        } else if (type == VT_ARRAY) {
            uint32_t item = c.read<uint32_t>("array item type");
            if (item >= VALUE_TYPE_COUNT || item == VT_ARRAY)
                fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": invalid array item type " + std::to_string(item));
            e.item_type = static_cast<ValueType>(item);
            e.count = c.read<uint64_t>("array length");
            if (item == VT_STRING) {
                if (e.count > c.remaining() / 8) fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": array length exceeds the file");
                e.strings.reserve(e.count);
                const bool bytes = is_byte_string_array(e.key);
                for (uint64_t k = 0; k < e.count; k++) {
                    std::string_view v = c.string(e.key.c_str());
                    if (!bytes && !is_valid_utf8(v))
                        fail(SQLLM_ERR_FORMAT, "key " + e.key + ": item " + std::to_string(k) + " is not valid UTF-8");
                    e.strings.push_back(v);
                }
            } else {
                size_t sz = value_size(item);
                if (e.count > c.remaining() / sz) fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": array length exceeds the file");
                e.raw = c.take(e.count * sz, e.key.c_str());
                if (item == VT_BOOL)
                    for (uint64_t k = 0; k < e.count; k++)
                        if (e.raw[k] > 1) fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": boolean item is not 0 or 1");
            }
        } else {
            e.raw = c.take(value_size(type), e.key.c_str());
            if (type == VT_BOOL && e.raw[0] > 1) fail(SQLLM_ERR_FORMAT, "key " + printable(key) + ": boolean is not 0 or 1");
        }
        meta_.push_back(std::move(e));
    }
    for (size_t i = 0; i < meta_.size(); i++)
        if (!meta_index_.emplace(meta_[i].key, i).second) fail(SQLLM_ERR_FORMAT, "duplicate key " + printable(meta_[i].key));

    // The keys that decide how to read the rest.
    const MetaEntry *arch = find_meta(KEY_ARCHITECTURE);
    if (!arch || arch->type != VT_STRING) fail(SQLLM_ERR_FORMAT, "missing string key general.architecture");
    if (arch->strings[0] != ARCHITECTURE)
        fail(SQLLM_ERR_UNSUPPORTED, "general.architecture is '" + printable(arch->strings[0]) + "', not 'sqllm': not an .sqf file");
    const MetaEntry *ver = find_meta(KEY_FORMAT_VERSION);
    if (!ver || ver->type != VT_UINT32) fail(SQLLM_ERR_FORMAT, "missing UINT32 key sqllm.format_version");
    uint32_t fv = load<uint32_t>(ver->raw);
    if (fv == 0 || fv > FORMAT_VERSION)
        fail(SQLLM_ERR_UNSUPPORTED, "file is format version " + std::to_string(fv) + "; this reader supports up to " +
                                        std::to_string(FORMAT_VERSION) + ": upgrade sqllm");
    const MetaEntry *al = find_meta(KEY_ALIGNMENT);
    if (!al || al->type != VT_UINT32) fail(SQLLM_ERR_FORMAT, "missing UINT32 key general.alignment");
    uint32_t alignment = load<uint32_t>(al->raw);
    if (alignment < MIN_ALIGNMENT || alignment > MAX_ALIGNMENT || (alignment & (alignment - 1)))
        fail(SQLLM_ERR_FORMAT, "general.alignment " + std::to_string(alignment) + " is not a power of two in [64, 2^20]");

    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        TensorInfo t{};
        std::string_view name = c.string("tensor name");
        if (name.empty() || name.size() > 255) fail(SQLLM_ERR_FORMAT, "tensor #" + std::to_string(i) + " has an invalid name length");
        if (!is_valid_utf8(name)) fail(SQLLM_ERR_FORMAT, "tensor #" + std::to_string(i) + ": name '" + printable(name) + "' is not valid UTF-8");
        t.name = std::string(name);
        t.n_dims = c.read<uint32_t>("tensor n_dims");
        if (t.n_dims < 1 || t.n_dims > 4) fail(SQLLM_ERR_FORMAT, "tensor " + printable(name) + ": n_dims " + std::to_string(t.n_dims) + " not in 1..4");
        uint64_t ne[4];
        t.n_elements = 1;
        for (uint32_t d = 0; d < t.n_dims; d++) {
            ne[d] = c.read<uint64_t>("tensor extent");
            if (ne[d] == 0 || mul_overflows(t.n_elements, ne[d], &t.n_elements) || t.n_elements > size_)
                fail(SQLLM_ERR_FORMAT, "tensor " + printable(name) + ": extent " + std::to_string(ne[d]) + " is invalid or exceeds the file");
        }
        for (uint32_t d = 0; d < t.n_dims; d++) t.shape[d] = ne[t.n_dims - 1 - d];
        uint32_t type = c.read<uint32_t>("tensor type");
        size_t es = element_size(type);
        if (es == 0) fail(SQLLM_ERR_FORMAT, "tensor " + printable(name) + ": type " + std::to_string(type) + " is not allowed in .sqf");
        t.type = static_cast<TensorType>(type);
        t.n_bytes = t.n_elements * es;  // n_elements <= size_, so no overflow
        t.file_offset = c.read<uint64_t>("tensor offset");
        tensors_.push_back(std::move(t));
    }
    for (size_t i = 0; i < tensors_.size(); i++)
        if (!tensor_index_.emplace(tensors_[i].name, i).second) fail(SQLLM_ERR_FORMAT, "duplicate tensor " + printable(tensors_[i].name));

    data_start_ = (c.pos() + alignment - 1) / alignment * alignment;
    if (data_start_ > size_) fail(SQLLM_ERR_FORMAT, "truncated: no data section");
    std::vector<const TensorInfo *> by_offset;
    for (TensorInfo &t : tensors_) {
        uint64_t rel = t.file_offset;
        if (rel % alignment) fail(SQLLM_ERR_FORMAT, "tensor " + printable(t.name) + ": offset " + std::to_string(rel) + " is not aligned to " + std::to_string(alignment));
        if (rel > size_ - data_start_ || t.n_bytes > size_ - data_start_ - rel)
            fail(SQLLM_ERR_FORMAT, "tensor " + printable(t.name) + ": data at offset " + std::to_string(rel) + " (" + std::to_string(t.n_bytes) + " bytes) lies past the end of the file");
        t.file_offset = data_start_ + rel;
        t.data = base_ + t.file_offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](auto *a, auto *b) { return a->file_offset < b->file_offset; });
    for (size_t i = 1; i < by_offset.size(); i++)
        if (by_offset[i - 1]->file_offset + by_offset[i - 1]->n_bytes > by_offset[i]->file_offset)
            fail(SQLLM_ERR_FORMAT, "tensors " + printable(by_offset[i - 1]->name) + " and " + printable(by_offset[i]->name) + " overlap");

    const MetaEntry *crc = find_meta(KEY_TENSOR_CRC32);
    if (!crc || crc->type != VT_ARRAY || crc->item_type != VT_UINT32 || crc->count != tensors_.size())
        fail(SQLLM_ERR_FORMAT, "sqllm.tensor_crc32 must be a UINT32 array with one entry per tensor");
}

const MetaEntry *SqfFile::find_meta(std::string_view key) const {
    auto it = meta_index_.find(key);
    return it == meta_index_.end() ? nullptr : &meta_[it->second];
}

const TensorInfo *SqfFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const LinearInfo *SqfFile::find_linear(std::string_view name) const {
    auto it = linear_index_.find(name);
    return it == linear_index_.end() ? nullptr : &linears_[it->second];
}

int64_t SqfFile::meta_int(std::string_view key) const {
    const MetaEntry *e = find_meta(key);
    if (!e) fail(SQLLM_ERR_NOT_FOUND, "missing key " + std::string(key));
    switch (e->type) {
        case VT_UINT8: case VT_BOOL: return load<uint8_t>(e->raw);
        case VT_INT8: return load<int8_t>(e->raw);
        case VT_UINT16: return load<uint16_t>(e->raw);
        case VT_INT16: return load<int16_t>(e->raw);
        case VT_UINT32: return load<uint32_t>(e->raw);
        case VT_INT32: return load<int32_t>(e->raw);
        case VT_INT64: return load<int64_t>(e->raw);
        case VT_UINT64: {
            uint64_t v = load<uint64_t>(e->raw);
            if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(SQLLM_ERR_FORMAT, "key " + std::string(key) + " is out of range");
            return static_cast<int64_t>(v);
        }
        default: fail(SQLLM_ERR_TYPE, "key " + std::string(key) + " is not an integer");
    }
}

double SqfFile::meta_float(std::string_view key) const {
    const MetaEntry *e = find_meta(key);
    if (!e) fail(SQLLM_ERR_NOT_FOUND, "missing key " + std::string(key));
    if (e->type == VT_FLOAT32) return load<float>(e->raw);
    if (e->type == VT_FLOAT64) return load<double>(e->raw);
    fail(SQLLM_ERR_TYPE, "key " + std::string(key) + " is not a float");
}

std::string_view SqfFile::meta_string(std::string_view key) const {
    const MetaEntry *e = find_meta(key);
    if (!e) fail(SQLLM_ERR_NOT_FOUND, "missing key " + std::string(key));
    if (e->type != VT_STRING) fail(SQLLM_ERR_TYPE, "key " + std::string(key) + " is not a string");
    return e->strings[0];
}

std::vector<uint32_t> SqfFile::meta_u32_array(std::string_view key) const {
    const MetaEntry *e = find_meta(key);
    if (!e) fail(SQLLM_ERR_NOT_FOUND, "missing key " + std::string(key));
    if (e->type != VT_ARRAY || e->item_type != VT_UINT32) fail(SQLLM_ERR_TYPE, "key " + std::string(key) + " is not a UINT32 array");
    std::vector<uint32_t> out(e->count);
    if (e->count) std::memcpy(out.data(), e->raw, e->count * 4);
    return out;
}

void SqfFile::validate_config() {
    ModelConfig &c = config_;
    auto u32 = [&](const char *key, uint32_t lo, uint32_t hi) {
        const MetaEntry *e = find_meta(key);
        if (!e) fail(SQLLM_ERR_FORMAT, std::string("missing key ") + key);
        if (e->type != VT_UINT32) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " must be UINT32");
        uint32_t v = load<uint32_t>(e->raw);
        if (v < lo || v > hi) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        return v;
    };
    auto f32 = [&](const char *key, float lo, float hi) {
        const MetaEntry *e = find_meta(key);
        if (!e) fail(SQLLM_ERR_FORMAT, std::string("missing key ") + key);
        if (e->type != VT_FLOAT32) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " must be FLOAT32");
        float v = load<float>(e->raw);
        if (!(v >= lo && v <= hi)) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " = " + std::to_string(v) + " is out of range");
        return v;
    };
    auto boolean = [&](const char *key) {
        const MetaEntry *e = find_meta(key);
        if (!e) fail(SQLLM_ERR_FORMAT, std::string("missing key ") + key);
        if (e->type != VT_BOOL) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " must be BOOL");
        return e->raw[0] != 0;
    };
    auto str = [&](const char *key, const auto &allowed) {
        const MetaEntry *e = find_meta(key);
        if (!e) fail(SQLLM_ERR_FORMAT, std::string("missing key ") + key);
        if (e->type != VT_STRING) fail(SQLLM_ERR_FORMAT, std::string("key ") + key + " must be STRING");
        for (const char *a : allowed)
            if (e->strings[0] == a) return std::string(a);
        fail(SQLLM_ERR_UNSUPPORTED, std::string("key ") + key + " = '" + printable(e->strings[0]) + "' is not supported");
    };
    const uint32_t big = 1u << 24;
    c.family = str(KEY_FAMILY, FAMILIES);
    c.vocab_size = u32(KEY_VOCAB_SIZE, 1, big);
    c.hidden_size = u32(KEY_HIDDEN_SIZE, 1, 1u << 17);
    c.intermediate_size = u32(KEY_INTERMEDIATE_SIZE, 1, 1u << 19);
    c.num_layers = u32(KEY_NUM_LAYERS, 1, 1024);
    c.num_heads = u32(KEY_NUM_HEADS, 1, 4096);
    c.num_kv_heads = u32(KEY_NUM_KV_HEADS, 1, c.num_heads);
    if (c.num_heads % c.num_kv_heads) fail(SQLLM_ERR_FORMAT, "num_heads is not a multiple of num_kv_heads");
    c.head_dim = u32(KEY_HEAD_DIM, 2, 4096);
    if (c.head_dim % 2) fail(SQLLM_ERR_FORMAT, "head_dim must be even");
    c.context_length = u32(KEY_CONTEXT_LENGTH, 1, big);
    c.norm_eps = f32(KEY_NORM_EPS, 0.0f, 1.0f);
    c.rope_theta = f32(KEY_ROPE_THETA, 1e-3f, 1e12f);
    c.rope_scaling_type = str(KEY_ROPE_SCALING_TYPE, ROPE_SCALING_TYPES);
    c.rope_scaling_factor = f32(KEY_ROPE_SCALING_FACTOR, 1e-3f, 1e6f);
    c.rope_original_context_length = u32(KEY_ROPE_SCALING_ORIG_CTX, 0, big);
    c.rope_low_freq_factor = f32(KEY_ROPE_SCALING_LOW_FREQ, 0.0f, 1e6f);
    c.rope_high_freq_factor = f32(KEY_ROPE_SCALING_HIGH_FREQ, 0.0f, 1e6f);
    c.tie_embeddings = boolean(KEY_TIE_EMBEDDINGS);
    c.attention_bias = boolean(KEY_ATTENTION_BIAS);
    c.sliding_window = u32(KEY_SLIDING_WINDOW, 0, big);
    if (c.rope_scaling_type == ROPE_SCALING_LLAMA3 && (c.rope_original_context_length == 0 || c.rope_high_freq_factor <= c.rope_low_freq_factor))
        fail(SQLLM_ERR_FORMAT, "llama3 rope scaling needs original_context_length and high_freq_factor > low_freq_factor");
}

void SqfFile::validate_linears() {
    const MetaEntry *names = find_meta(KEY_LINEAR_NAMES);
    if (names) {
        if (names->type != VT_ARRAY || names->item_type != VT_STRING) fail(SQLLM_ERR_FORMAT, "sqllm.linear.names must be a STRING array");
        std::vector<uint32_t> bits = meta_u32_array(KEY_LINEAR_BITS);
        std::vector<uint32_t> gsize = meta_u32_array(KEY_LINEAR_GROUP_SIZE);
        std::vector<uint32_t> cols = meta_u32_array(KEY_LINEAR_COLS);
        size_t n = names->count;
        if (bits.size() != n || gsize.size() != n || cols.size() != n)
            fail(SQLLM_ERR_FORMAT, "the sqllm.linear.* arrays differ in length");
        linears_.reserve(n);
        for (size_t i = 0; i < n; i++) {
            LinearInfo L{};
            L.name = std::string(names->strings[i]);
            std::string what = "quantized linear " + printable(L.name);
            L.bits = bits[i];
            L.group_size = gsize[i];
            L.cols = cols[i];
            if (!linear_bits_allowed(L.bits)) fail(SQLLM_ERR_FORMAT, what + ": bits " + std::to_string(L.bits) + " is not an allowed width (SPEC §4)");
            if (L.cols == 0) fail(SQLLM_ERR_FORMAT, what + ": cols is 0");
            if (L.group_size == 0 || (L.group_size != L.cols && L.group_size % CODE_BLOCK))
                fail(SQLLM_ERR_FORMAT, what + ": group size " + std::to_string(L.group_size) + " is neither cols nor a multiple of 32");
            L.groups = (L.cols + L.group_size - 1) / L.group_size;
            if (find_tensor(L.name)) fail(SQLLM_ERR_FORMAT, what + " is also stored unquantized");
            auto need = [&](const char *suffix, uint32_t type, bool optional) -> const TensorInfo * {
                const TensorInfo *t = find_tensor(L.name + suffix);
                if (!t) {
                    if (optional) return nullptr;
                    fail(SQLLM_ERR_FORMAT, what + ": tensor " + printable(L.name + suffix) + " is missing");
                }
                if (t->type != type) fail(SQLLM_ERR_FORMAT, "tensor " + printable(t->name) + " has type " + tensor_type_name(t->type) + ", expected " + tensor_type_name(type));
                return t;
            };
            auto check_shape = [&](const TensorInfo *t, std::initializer_list<uint64_t> shape) {
                bool ok = t->n_dims == shape.size();
                uint32_t d = 0;
                for (uint64_t s : shape) ok = ok && t->shape[d++] == s;
                if (!ok) {
                    std::vector<uint64_t> v(shape);
                    fail(SQLLM_ERR_FORMAT, "tensor " + printable(t->name) + " has shape " + shape_string(t->shape, t->n_dims) + ", expected " + shape_string(v.data(), uint32_t(v.size())));
                }
            };
            L.codes = need(SUFFIX_CODES, TYPE_I8, false);
            const TensorInfo *lut = find_tensor(L.name + SUFFIX_LUT);  // fp16 values or 8-bit levels
            L.lut = need(SUFFIX_LUT, lut && lut->type == TYPE_I8 ? TYPE_I8 : TYPE_F16, false);
            if (L.codes->n_dims != 2) fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.codes->name) + " must be two-dimensional");
            L.rows = L.codes->shape[0];
            check_shape(L.codes, {L.rows, row_bytes(L.cols, L.bits)});
            check_shape(L.lut, {L.rows, L.groups, uint64_t(1) << L.bits});
            L.lut_scale = need(SUFFIX_LUT_SCALE, TYPE_F16, L.lut->type == TYPE_F16);
            if (L.lut->type == TYPE_F16) {
                if (L.lut_scale) fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.lut_scale->name) + " is only allowed beside an 8-bit (I8) LUT");
                for (uint64_t k = 0; k < L.lut->n_elements; k++)
                    if ((load<uint16_t>(L.lut->data + 2 * k) & 0x7C00) == 0x7C00)
                        fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.lut->name) + " holds a NaN or infinity");
                L.lut16 = reinterpret_cast<const uint16_t *>(L.lut->data);
            } else {
                // An 8-bit LUT: entry = fp16(lo + step * level), exact in double, rounded once.
                check_shape(L.lut_scale, {L.rows, L.groups, 2});
                const uint64_t entries = uint64_t(1) << L.bits, tables = L.rows * L.groups;
                auto decoded = std::make_unique<uint16_t[]>(tables * entries);
                const uint8_t *levels = L.lut->data, *scale = L.lut_scale->data;
                for (uint64_t t = 0; t < tables; t++) {
                    const uint16_t lo = load<uint16_t>(scale + 4 * t), step = load<uint16_t>(scale + 4 * t + 2);
                    if ((lo & 0x7C00) == 0x7C00 || (step & 0x7C00) == 0x7C00)
                        fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.lut_scale->name) + " holds a NaN or infinity");
                    const double lo_d = kernels::fp16_to_fp32(lo), step_d = kernels::fp16_to_fp32(step);
                    for (uint64_t e = 0; e < entries; e++) {
                        const uint16_t h = kernels::fp64_to_fp16(lo_d + step_d * double(levels[t * entries + e]));
                        if ((h & 0x7C00) == 0x7C00)
                            fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.lut->name) + " decodes to infinity at table " + std::to_string(t));
                        decoded[t * entries + e] = h;
                    }
                }
                L.lut16 = decoded.get();
                decoded_luts_.push_back(std::move(decoded));
            }
            L.rowptr = need(SUFFIX_ROWPTR, TYPE_I32, true);
            L.colidx = need(SUFFIX_COLS, TYPE_I32, true);
            L.vals = need(SUFFIX_VALS, TYPE_F16, true);
            if (L.rowptr || L.colidx || L.vals) {
                if (!(L.rowptr && L.colidx && L.vals)) fail(SQLLM_ERR_FORMAT, what + ": the sparse part needs all of .csr.rowptr, .csr.cols and .csr.vals");
                check_shape(L.rowptr, {L.rows + 1});
                L.nnz = L.colidx->n_elements;
                check_shape(L.colidx, {L.nnz});
                check_shape(L.vals, {L.nnz});
                const uint8_t *rp = L.rowptr->data, *ci = L.colidx->data, *cv = L.vals->data;
                if (load<int32_t>(rp) != 0) fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.rowptr->name) + ": rowptr[0] is not 0");
                for (uint64_t r = 0; r < L.rows; r++) {
                    int32_t b = load<int32_t>(rp + 4 * r), e = load<int32_t>(rp + 4 * (r + 1));
                    if (e < b || uint64_t(e) > L.nnz)
                        fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.rowptr->name) + ": row pointers are not monotone within [0, nnz] at row " + std::to_string(r));
                    int64_t prev = -1;
                    for (int32_t k = b; k < e; k++) {
                        int32_t col = load<int32_t>(ci + 4 * uint64_t(k));
                        if (col <= prev || uint64_t(col) >= L.cols)
                            fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.colidx->name) + ": column index " + std::to_string(col) + " at row " + std::to_string(r) + " is out of range or out of order");
                        prev = col;
                        if ((load<uint16_t>(cv + 2 * uint64_t(k)) & 0x7C00) == 0x7C00)
                            fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.vals->name) + " holds a NaN or infinity");
                    }
                }
                if (uint64_t(load<int32_t>(rp + 4 * L.rows)) != L.nnz)
                    fail(SQLLM_ERR_FORMAT, "tensor " + printable(L.rowptr->name) + ": rowptr[rows] is not nnz");
            }
            linears_.push_back(std::move(L));
        }
        for (size_t i = 0; i < linears_.size(); i++)
            if (!linear_index_.emplace(linears_[i].name, i).second) fail(SQLLM_ERR_FORMAT, "quantized linear " + printable(linears_[i].name) + " listed twice");
    } else if (find_meta(KEY_LINEAR_BITS) || find_meta(KEY_LINEAR_GROUP_SIZE) || find_meta(KEY_LINEAR_COLS)) {
        fail(SQLLM_ERR_FORMAT, "sqllm.linear.* arrays without sqllm.linear.names");
    }

    // Every tensor the model needs (SPEC §3.1), quantized or not, with its shape.
    const ModelConfig &c = config_;
    const uint64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
    const uint64_t Q = uint64_t(c.num_heads) * D, KV = uint64_t(c.num_kv_heads) * D;
    auto expect = [&](const std::string &name, uint64_t rows, uint64_t cols) {
        if (const LinearInfo *L = find_linear(name)) {
            if (L->rows != rows || L->cols != cols)
                fail(SQLLM_ERR_FORMAT, "quantized linear " + name + " is " + std::to_string(L->rows) + "x" + std::to_string(L->cols) + ", the config needs " + std::to_string(rows) + "x" + std::to_string(cols));
            return;
        }
        const TensorInfo *t = find_tensor(name);
        if (!t) fail(SQLLM_ERR_FORMAT, "tensor " + name + " is missing");
        if (t->type != TYPE_F32 && t->type != TYPE_F16) fail(SQLLM_ERR_FORMAT, "tensor " + name + " must be F32 or F16");
        bool ok = cols ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols) : (t->n_dims == 1 && t->shape[0] == rows);
        if (!ok) {
            uint64_t want[2] = {rows, cols};
            fail(SQLLM_ERR_FORMAT, "tensor " + name + " has shape " + shape_string(t->shape, t->n_dims) + ", the config needs " + shape_string(want, cols ? 2 : 1));
        }
    };
    expect(TENSOR_EMBED, V, H);
    expect(TENSOR_FINAL_NORM, H, 0);
    if (!c.tie_embeddings) expect(TENSOR_LM_HEAD, V, H);
    for (uint32_t l = 0; l < c.num_layers; l++) {
        std::string p = LAYER_PREFIX + std::to_string(l) + ".";
        expect(p + LAYER_ATTN_NORM, H, 0);
        expect(p + LAYER_FFN_NORM, H, 0);
        expect(p + LAYER_Q, Q, H);
        expect(p + LAYER_K, KV, H);
        expect(p + LAYER_V, KV, H);
        expect(p + LAYER_O, H, Q);
        if (c.attention_bias) {
            expect(p + LAYER_Q_BIAS, Q, 0);
            expect(p + LAYER_K_BIAS, KV, 0);
            expect(p + LAYER_V_BIAS, KV, 0);
        }
        expect(p + LAYER_GATE, I, H);
        expect(p + LAYER_UP, I, H);
        expect(p + LAYER_DOWN, H, I);
    }
}

void SqfFile::validate_kv() {
    bool any = false;
    for (const MetaEntry &e : meta_) {
        if (e.key.rfind(KV_NAMESPACE, 0) != 0) continue;
        any = true;
        if (e.key != KEY_KV_BITS && e.key != KEY_KV_OUTLIERS && e.key != KEY_KV_SINK && e.key != KEY_KV_CALIBRATION)
            fail(SQLLM_ERR_UNSUPPORTED, "key " + printable(e.key) + ": unknown KV-cache quantization data (a newer format?)");
    }
    size_t kv_tensors = 0;
    for (const TensorInfo &t : tensors_) kv_tensors += t.name.rfind(KV_TENSOR_PREFIX, 0) == 0;
    if (!any && !kv_tensors) return;
    const MetaEntry *bits = find_meta(KEY_KV_BITS), *outl = find_meta(KEY_KV_OUTLIERS), *sink = find_meta(KEY_KV_SINK);
    if (!bits || bits->type != VT_UINT32 || !outl || outl->type != VT_FLOAT32 || !sink || sink->type != VT_UINT32)
        fail(SQLLM_ERR_FORMAT, "KV-cache data needs sqllm.kv.bits (UINT32), sqllm.kv.outliers (FLOAT32) and sqllm.kv.sink (UINT32)");
    kv_.bits = load<uint32_t>(bits->raw);
    kv_.outliers = load<float>(outl->raw);
    kv_.sink = load<uint32_t>(sink->raw);
    if (kv_.bits < 2 || kv_.bits > 4) fail(SQLLM_ERR_FORMAT, "sqllm.kv.bits = " + std::to_string(kv_.bits) + " is not 2, 3 or 4");
    if (!(kv_.outliers >= 0.0f && kv_.outliers < 50.0f)) fail(SQLLM_ERR_FORMAT, "sqllm.kv.outliers is not a percent in [0, 50)");
    if (kv_.sink > config_.context_length) fail(SQLLM_ERR_FORMAT, "sqllm.kv.sink exceeds the context length");
    if (const MetaEntry *cal = find_meta(KEY_KV_CALIBRATION); cal && cal->type != VT_STRING)
        fail(SQLLM_ERR_FORMAT, "key sqllm.kv.calibration must be STRING");
    const uint64_t channels = uint64_t(config_.num_kv_heads) * config_.head_dim;
    size_t used = 0;
    auto floats = [&](const std::string &name, uint64_t rows, uint64_t cols) {
        const TensorInfo *t = find_tensor(name);
        if (!t) fail(SQLLM_ERR_FORMAT, "KV-cache tensor " + name + " is missing");
        if (t->type != TYPE_F32) fail(SQLLM_ERR_FORMAT, "tensor " + name + " must be F32");
        uint64_t want[2] = {rows, cols};
        bool ok = rows ? t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols : t->n_dims == 1 && t->shape[0] == cols;
        if (!ok) fail(SQLLM_ERR_FORMAT, "tensor " + name + " has shape " + shape_string(t->shape, t->n_dims) + ", expected " + (rows ? shape_string(want, 2) : shape_string(want + 1, 1)));
        std::vector<float> v(t->n_elements);
        std::memcpy(v.data(), t->data, t->n_bytes);
        for (float x : v)
            if (!std::isfinite(x)) fail(SQLLM_ERR_FORMAT, "tensor " + name + " holds a NaN or infinity");
        used++;
        return v;
    };
    auto centroids = [&](const std::string &name, uint32_t b) {
        std::vector<float> c = floats(name, 0, uint64_t(1) << b);
        for (size_t i = 0; i < c.size(); i++)
            if (c[i] < -1.0f || c[i] > 1.0f || (i && c[i] < c[i - 1]))
                fail(SQLLM_ERR_FORMAT, "tensor " + name + ": centroids must be ascending within [-1, 1]");
        return c;
    };
    kv_.layers.resize(config_.num_layers);
    for (uint32_t l = 0; l < config_.num_layers; l++) {
        std::string p = std::string(KV_TENSOR_PREFIX) + std::to_string(l) + ".";
        KvLayerCalibration &L = kv_.layers[l];
        std::vector<float> range = floats(p + "key_range", 2, channels);
        L.key_lo.assign(range.begin(), range.begin() + long(channels));
        L.key_hi.assign(range.begin() + long(channels), range.end());
        for (uint64_t ch = 0; ch < channels; ch++)
            if (!(L.key_lo[ch] <= L.key_hi[ch])) fail(SQLLM_ERR_FORMAT, "tensor " + p + "key_range: lo > hi at channel " + std::to_string(ch));
        for (uint32_t b = 2; b <= 4; b++) {
            L.key_centroids[b - 2] = centroids(p + "key_centroids." + std::to_string(b), b);
            L.value_centroids[b - 2] = centroids(p + "value_centroids." + std::to_string(b), b);
        }
    }
    if (used != kv_tensors) fail(SQLLM_ERR_FORMAT, "the file holds kv.* tensors that SPEC §7 does not define");
    kv_.present = true;
}

void SqfFile::verify_checksums() const {
    std::vector<uint32_t> crcs = meta_u32_array(KEY_TENSOR_CRC32);
    for (size_t i = 0; i < tensors_.size(); i++) {
        const TensorInfo &t = tensors_[i];
        uint32_t got = crc32(t.data, t.n_bytes);
        if (got != crcs[i])
            fail(SQLLM_ERR_CHECKSUM, "tensor " + printable(t.name) + ": CRC-32 mismatch (stored " + std::to_string(crcs[i]) + ", computed " + std::to_string(got) + ")");
    }
}

}  // namespace sqllm
