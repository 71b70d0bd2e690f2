// Tokenization as Hugging Face `tokenizers` does it. `Tokenizer::encode` follows the HF
// pipeline: split out added tokens in the raw text, normalize each piece between them, split
// out the normalized added tokens, pre-tokenize, BPE each word by merge rank.
#include "tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <queue>
#include <utility>

#include "json.h"
#include "tokenizer_regex.h"
#include "tokenizer_unicode.h"

namespace sqllm {
namespace {

using unicode::utf8_decode;

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

std::string quoted(std::string_view s) { return "'" + std::string(s.substr(0, 80)) + "'"; }

// A JSON string literal of `s`.
std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (uint8_t(c) < 0x20) {
            static const char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[uint8_t(c) >> 4];
            out += hex[uint8_t(c) & 15];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// The Split patterns of the pre-tokenizer names that files without a pipeline carry.
constexpr const char *kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char *kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char *kSpaceMark = "\xE2\x96\x81";  // U+2581 "▁"

std::string byte_level_split(const char *pattern) {
    return R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": )" + json_quote(pattern) +
           R"(}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
}

// The pipeline a file without sqllm.tokenizer.pipeline means by its model and pre names, with
// its added tokens taken from the token types. Checks what only such files can get wrong.
bool legacy_pipeline(const TokenizerData &d, std::string &json, std::string &error) {
    const size_t n = d.tokens.size();
    std::string normalizer = "null", pre = "null", decoder, model;
    if (d.model == "llama") {
        if (!d.pre.empty() && d.pre != "default")
            return error = "pre-tokenizer " + quoted(d.pre) + " is not supported with the llama tokenizer", false;
        const std::string replace = std::string(R"({"type": "Replace", "pattern": {"String": " "}, "content": ")") + kSpaceMark + "\"}";
        normalizer = d.add_space_prefix
                         ? std::string(R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": ")") + kSpaceMark + "\"}, " + replace + "]}"
                         : replace;
        decoder = std::string(R"({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": ")") + kSpaceMark +
                  R"("}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"})" +
                  (d.add_space_prefix ? R"(, {"type": "Strip", "content": " ", "start": 1, "stop": 0})" : "") + "]}";
        bool has_byte[256] = {};
        for (size_t i = 0; i < n; i++) {
            if (d.types[i] != TOKEN_BYTE) continue;
            const std::string &t = d.tokens[i];
            unsigned value = 0;
            if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>' || std::sscanf(t.c_str() + 3, "%2X", &value) != 1)
                return error = "byte token " + std::to_string(i) + " is " + quoted(t) + ", not <0xXX>", false;
            has_byte[value] = true;
        }
        if (!std::all_of(std::begin(has_byte), std::end(has_byte), [](bool b) { return b; }) && d.unk_id < 0)
            return error = "byte fallback needs all 256 <0xXX> tokens, or an unknown token for what they cannot spell", false;
        if (d.merges.empty() && d.scores.empty()) return error = "a llama tokenizer needs merges or scores", false;
        model = R"({"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": )" +
                (d.unk_id >= 0 ? json_quote(d.tokens[size_t(d.unk_id)]) : std::string("null")) + "}";
    } else if (d.model == "gpt2") {
        if (d.pre == "gpt2") pre = R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";
        else if (d.pre == "llama-bpe") pre = byte_level_split(kLlama3Pattern);
        else if (d.pre == "qwen2") pre = byte_level_split(kQwen2Pattern), normalizer = R"({"type": "NFC"})";
        else return error = "unknown pre-tokenizer " + quoted(d.pre) + " (gpt2, llama-bpe and qwen2 are known)", false;
        if (d.merges.empty()) return error = "a gpt2 tokenizer needs merges", false;
        decoder = R"({"type": "ByteLevel"})";
        model = std::string(R"({"type": "BPE", "ignore_merges": )") + (d.pre == "llama-bpe" ? "true" : "false") + "}";
    } else {
        return error = "unknown tokenizer model " + quoted(d.model) + " (llama and gpt2 are known)", false;
    }
    std::string added;
    for (size_t i = 0; i < n; i++) {
        const int32_t type = d.types[i];
        if (d.tokens[i].empty() || (type != TOKEN_CONTROL && type != TOKEN_UNKNOWN && type != TOKEN_USER_DEFINED)) continue;
        added += (added.empty() ? "" : ", ") + std::string(R"({"id": )") + std::to_string(i) + R"(, "content": )" + json_quote(d.tokens[i]) +
                 R"(, "special": )" + (type == TOKEN_USER_DEFINED ? "false" : "true") + R"(, "normalized": false})";
    }
    json = R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre + R"(, "model": )" + model + R"(, "added_tokens": [)" + added +
           R"(], "decoder": )" + decoder + "}";
    return true;
}

bool read_flag(const Json &object, const char *key, bool &out, std::string &error) {
    const Json *v = object.find(key);
    if (!v || v->is_null()) return out = false, true;
    if (!v->is_bool()) return error = std::string(key) + " is not true or false", false;
    return out = v->as_bool(), true;
}

// \w of the Rust regex crate, which HF's single_word test uses.
bool is_word_character(std::string_view character) {
    static const std::unique_ptr<Regex> word = [] {
        std::string error;
        return Regex::compile(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", error);
    }();
    return word && !word->find_all(character).empty();
}

// The last / first character of `text` (empty if none); a stray byte is a character.
std::string_view last_character(std::string_view text) {
    if (text.empty()) return text;
    uint32_t cp;
    for (size_t back = 4; back >= 2; back--)
        if (back <= text.size() && utf8_decode(text, text.size() - back, cp) == back && cp < unicode::kRawByte)
            return text.substr(text.size() - back);
    return text.substr(text.size() - 1);
}

std::string_view first_character(std::string_view text) {
    if (text.empty()) return text;
    uint32_t cp;
    return text.substr(0, utf8_decode(text, 0, cp));
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;

// ---- building ---------------------------------------------------------------------------------

bool Tokenizer::build(TokenizerData data, Tokenizer &out, std::string &error) {
    Tokenizer t;
    const size_t n = data.tokens.size();
    if (n == 0) return error = "there are no tokens", false;
    if (n > size_t(INT32_MAX)) return error = "too many tokens", false;
    if (!data.scores.empty() && data.scores.size() != n)
        return error = std::to_string(data.scores.size()) + " scores for " + std::to_string(n) + " tokens", false;
    for (size_t i = 0; i < data.scores.size(); i++)
        if (std::isnan(data.scores[i])) return error = "the score of token " + std::to_string(i) + " is NaN", false;
    if (data.types.empty()) data.types.assign(n, TOKEN_NORMAL);
    if (data.types.size() != n)
        return error = std::to_string(data.types.size()) + " token types for " + std::to_string(n) + " tokens", false;
    for (size_t i = 0; i < n; i++)
        if (data.types[i] < TOKEN_NORMAL || data.types[i] > TOKEN_BYTE)
            return error = "token " + std::to_string(i) + " has the unknown type " + std::to_string(data.types[i]), false;
    for (auto [name, id] : {std::pair{"bos", data.bos_id}, {"eos", data.eos_id}, {"unknown", data.unk_id}, {"padding", data.pad_id}})
        if (id < -1 || id >= int32_t(n))
            return error = std::string(name) + " token id " + std::to_string(id) + " is outside the " + std::to_string(n) + " tokens", false;

    std::string pipeline = data.pipeline;
    if (pipeline.empty() && !legacy_pipeline(data, pipeline, error)) return false;

    t.tokens_ = std::move(data.tokens);
    t.types_ = std::move(data.types);
    t.bos_id_ = data.bos_id;
    t.eos_id_ = data.eos_id;
    t.unk_id_ = data.unk_id;
    t.pad_id_ = data.pad_id;
    t.add_bos_ = data.add_bos;
    t.add_eos_ = data.add_eos;
    if (!t.build_pipeline(pipeline, error)) return false;

    t.byte_tokens_.fill(-1);
    for (int b = 0; b < 256; b++) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        t.byte_tokens_[size_t(b)] = t.find_token(name);
    }

    if (!data.merges.empty()) {
        t.merges_.reserve(data.merges.size());
        for (size_t i = 0; i < data.merges.size(); i++) {
            const std::string &m = data.merges[i];
            const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (space == std::string::npos)
                return error = "merge " + std::to_string(i) + " " + quoted(m) + " is not 'left right'", false;
            const std::string_view left = std::string_view(m).substr(0, space), right = std::string_view(m).substr(space + 1);
            const int32_t left_id = t.find_token(left), right_id = t.find_token(right);
            const int32_t result = t.find_token(std::string(left) + std::string(right));
            if (left_id < 0 || right_id < 0 || result < 0)
                return error = "merge " + std::to_string(i) + " " + quoted(m) + " names a token that is not in the vocabulary", false;
            // A repeated pair keeps its last rank, as in HF's BPE (a map built in merge order).
            t.merges_[pair_key(left_id, right_id)] = Merge{int32_t(i), result};
        }
    } else if (!data.scores.empty()) {
        // SentencePiece BPE merges the adjacent pair whose union is the normal token with the
        // highest score. As merge ranks: every split of every normal token into two tokens,
        // ranked by the token's score (equal scores, equal rank; ties go to the leftmost pair).
        std::vector<float> distinct = data.scores;
        std::sort(distinct.begin(), distinct.end(), std::greater<float>());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        for (size_t i = 0; i < n; i++) {
            if (t.types_[i] != TOKEN_NORMAL) continue;
            const std::string &text = t.tokens_[i];
            const int32_t rank = int32_t(std::lower_bound(distinct.begin(), distinct.end(), data.scores[i], std::greater<float>()) - distinct.begin());
            uint32_t cp;
            for (size_t split = utf8_decode(text, 0, cp); split < text.size(); split += utf8_decode(text, split, cp)) {
                const int32_t left = t.find_token(std::string_view(text).substr(0, split));
                const int32_t right = t.find_token(std::string_view(text).substr(split));
                if (left >= 0 && right >= 0) t.merges_.emplace(pair_key(left, right), Merge{rank, int32_t(i)});
            }
        }
    }
    out = std::move(t);
    return true;
}

// The pipeline object: normalizer, pre_tokenizer, model options, added_tokens and decoder, as
// tokenizer.json spells them (formats/SPEC.md §5).
bool Tokenizer::build_pipeline(const std::string &text, std::string &error) {
    Json spec;
    if (!Json::parse(text, spec, error)) return error = "the pipeline is not JSON: " + error, false;
    if (!spec.is_object()) return error = "the pipeline is not a JSON object", false;
    static const Json null;
    const auto member = [&](const char *key) -> const Json & {
        const Json *v = spec.find(key);
        return v ? *v : null;
    };
    normalizer_ = pipeline::make_normalizer(member("normalizer"), error);
    if (!normalizer_ && !error.empty()) return false;
    pre_tokenizer_ = pipeline::make_pre_tokenizer(member("pre_tokenizer"), error);
    if (!pre_tokenizer_ && !error.empty()) return false;
    decoder_ = pipeline::make_decoder(member("decoder"), error);
    if (!decoder_ && !error.empty()) return false;

    const Json &model = member("model");
    if (!model.is_object()) return error = "the pipeline has no model", false;
    const Json *type = model.find("type");
    if (!type || !type->is_string() || type->as_string() != "BPE")
        return error = "model " + (type && type->is_string() ? quoted(type->as_string()) : std::string("(no type)")) + " is not supported (BPE is)", false;
    if (!read_flag(model, "byte_fallback", byte_fallback_, error) || !read_flag(model, "ignore_merges", ignore_merges_, error) ||
        !read_flag(model, "fuse_unk", fuse_unk_, error))
        return error = "model: " + error, false;

    // Added tokens; those not in the model's vocabulary stay out of the BPE's lookups.
    const size_t n = tokens_.size();
    special_.assign(n, false);
    std::vector<bool> model_vocab(n, true);
    const Json &added = member("added_tokens");
    if (!added.is_null() && !added.is_array()) return error = "added_tokens is not a list", false;
    for (const Json &a : added.items()) {
        const Json *id = a.find("id"), *content = a.find("content");
        if (!id || !id->is_number() || id->as_number() < 0 || id->as_number() >= double(n) || id->as_number() != std::floor(id->as_number()))
            return error = "an added token has no id among the " + std::to_string(n) + " tokens", false;
        AddedToken token{int32_t(id->as_number()), std::string(), false, false, false, false, false};
        if (!content || !content->is_string() || content->as_string() != tokens_[size_t(token.id)])
            return error = "added token " + std::to_string(token.id) + " does not have that token's text", false;
        bool in_model_vocab = true;
        if (!read_flag(a, "special", token.special, error) || !read_flag(a, "lstrip", token.lstrip, error) ||
            !read_flag(a, "rstrip", token.rstrip, error) || !read_flag(a, "single_word", token.single_word, error) ||
            !read_flag(a, "normalized", token.normalized, error))
            return error = "added token " + std::to_string(token.id) + ": " + error, false;
        if (const Json *v = a.find("in_model_vocab"); v && v->is_bool()) in_model_vocab = v->as_bool();
        model_vocab[size_t(token.id)] = in_model_vocab;
        special_[size_t(token.id)] = token.special;
        token.match = content->as_string();
        if (token.normalized && normalizer_) normalizer_->normalize(token.match);
        if (token.match != content->as_string()) normalized_texts_[token.id] = token.match;
        if (!token.match.empty()) added_.push_back(std::move(token));
    }
    for (size_t i = 0; i < added_.size(); i++) {
        auto &by_byte = added_[i].normalized ? normalized_added_by_byte_ : raw_added_by_byte_;
        by_byte[uint8_t(added_[i].match[0])].push_back(int32_t(i));
    }
    for (auto *table : {&raw_added_by_byte_, &normalized_added_by_byte_})
        for (auto &list : *table)
            std::stable_sort(list.begin(), list.end(), [&](int32_t a, int32_t b) { return added_[size_t(a)].match.size() > added_[size_t(b)].match.size(); });

    vocab_.reserve(n);
    for (size_t i = 0; i < n; i++)
        if (types_[i] != TOKEN_UNUSED && model_vocab[i]) vocab_.emplace(tokens_[i], int32_t(i));
    if (const Json *unk = model.find("unk_token"); unk && !unk->is_null()) {
        if (!unk->is_string() || (model_unk_id_ = find_token(unk->as_string())) < 0)
            return error = "model: unk_token is not in the vocabulary", false;
    }
    return true;
}

int32_t Tokenizer::find_token(std::string_view text) const {
    auto it = vocab_.find(std::string(text));
    return it == vocab_.end() ? -1 : it->second;
}

// ---- encoding ---------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
    std::vector<Segment> raw, normalized_segments;
    split_added(text, false, parse_special, true, raw);
    for (const Segment &s : raw) {
        if (s.id >= 0) {
            out.push_back(s.id);
            continue;
        }
        std::string normalized(s.text);
        if (normalizer_) normalizer_->normalize(normalized);
        normalized_segments.clear();
        split_added(normalized, true, parse_special, s.at_start, normalized_segments);
        for (const Segment &n : normalized_segments) {
            if (n.id >= 0) out.push_back(n.id);
            else encode_text(n.text, n.at_start, out);
        }
    }
    return out;
}

// HF's AddedVocabulary::find_matches: leftmost-longest matches of the added tokens of one kind
// (raw or normalized); a match that is skipped (a special token without parse_special, a
// single_word token inside a word) still ends the search there. lstrip / rstrip take the
// whitespace next to a token into it.
void Tokenizer::split_added(std::string_view text, bool normalized, bool parse_special, bool at_start, std::vector<Segment> &out) const {
    const auto &by_byte = normalized ? normalized_added_by_byte_ : raw_added_by_byte_;
    size_t start_offset = 0;
    for (size_t pos = 0; pos < text.size();) {
        const AddedToken *found = nullptr;
        for (int32_t i : by_byte[uint8_t(text[pos])]) {
            const AddedToken &a = added_[size_t(i)];
            if (text.compare(pos, a.match.size(), a.match) == 0) {
                found = &a;
                break;
            }
        }
        if (!found) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + found->match.size();
        pos = stop;
        if (found->special && !parse_special) continue;
        if (found->single_word) {
            const bool start_space = start == 0 || !is_word_character(last_character(text.substr(0, start)));
            const bool stop_space = stop == text.size() || !is_word_character(first_character(text.substr(stop)));
            if (!start_space || !stop_space) continue;
        }
        uint32_t cp;
        if (found->lstrip) {
            size_t new_start = start;
            while (new_start > 0) {
                const std::string_view last = last_character(text.substr(0, new_start));
                utf8_decode(last, 0, cp);
                if (!unicode::is_whitespace(cp)) break;
                new_start -= last.size();
            }
            start = std::max(new_start, start_offset);
        }
        if (found->rstrip) {
            for (size_t length; stop < text.size(); stop += length) {
                length = utf8_decode(text, stop, cp);
                if (!unicode::is_whitespace(cp)) break;
            }
        }
        if (start_offset < start) out.push_back({text.substr(start_offset, start - start_offset), -1, at_start && start_offset == 0});
        out.push_back({text.substr(start, stop - start), found->id, false});
        start_offset = stop;
    }
    if (start_offset < text.size() || text.empty()) out.push_back({text.substr(std::min(start_offset, text.size())), -1, at_start && start_offset == 0});
}

void Tokenizer::encode_text(std::string_view text, bool at_start, std::vector<int32_t> &out) const {
    if (text.empty()) return;
    std::vector<pipeline::Piece> pieces{{std::string(text), at_start}};
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    for (const pipeline::Piece &p : pieces) encode_word(p.text, out);
}

// HF's BPE::merge_word: one symbol per character, or its <0xXX> bytes with byte_fallback, or
// the unk token (runs of them fused with fuse_unk); a character none of these spell is dropped.
void Tokenizer::encode_word(std::string_view word, std::vector<int32_t> &out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        if (const int32_t id = find_token(word); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    std::vector<int32_t> symbols;
    symbols.reserve(word.size());
    bool unk_pending = false;
    uint32_t cp;
    for (size_t pos = 0, length; pos < word.size(); pos += length) {
        length = utf8_decode(word, pos, cp);
        const std::string_view ch = word.substr(pos, length);
        if (const int32_t id = find_token(ch); id >= 0) {
            if (unk_pending) symbols.push_back(model_unk_id_), unk_pending = false;
            symbols.push_back(id);
            continue;
        }
        if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char b) { return byte_tokens_[uint8_t(b)] >= 0; })) {
            for (char b : ch) symbols.push_back(byte_tokens_[uint8_t(b)]);
            continue;
        }
        if (model_unk_id_ >= 0) {
            if (unk_pending && !fuse_unk_) symbols.push_back(model_unk_id_);
            unk_pending = true;
        }
    }
    if (unk_pending) symbols.push_back(model_unk_id_);
    apply_merges(symbols);
    out.insert(out.end(), symbols.begin(), symbols.end());
}

// BPE as HF's Word::merge_all: repeatedly merge the adjacent pair of lowest rank, the leftmost
// among equals, with a priority queue of candidate pairs. Entries whose symbols have changed
// since they were queued are skipped when they come up.
void Tokenizer::apply_merges(std::vector<int32_t> &symbols) const {
    if (symbols.size() < 2) return;
    const int32_t n = int32_t(symbols.size());
    // Symbols form a linked list by position; a merged-away symbol is set to -1.
    std::vector<int32_t> next(symbols.size()), prev(symbols.size());
    for (int32_t i = 0; i < n; i++) {
        next[size_t(i)] = i + 1 < n ? i + 1 : -1;
        prev[size_t(i)] = i - 1;
    }
    struct Candidate {
        int32_t rank, pos, left, right;
    };
    const auto later = [](const Candidate &a, const Candidate &b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
    const auto consider = [&](int32_t pos) {
        const int32_t right = next[size_t(pos)];
        if (right < 0) return;
        auto it = merges_.find(pair_key(symbols[size_t(pos)], symbols[size_t(right)]));
        if (it != merges_.end()) queue.push(Candidate{it->second.rank, pos, symbols[size_t(pos)], symbols[size_t(right)]});
    };
    for (int32_t i = 0; i + 1 < n; i++) consider(i);
    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        const int32_t right = next[size_t(c.pos)];
        // A token's text fixes its length, so the same ids at the same position mean the same pair.
        if (symbols[size_t(c.pos)] != c.left || right < 0 || symbols[size_t(right)] != c.right) continue;
        symbols[size_t(c.pos)] = merges_.at(pair_key(c.left, c.right)).result;
        symbols[size_t(right)] = -1;
        next[size_t(c.pos)] = next[size_t(right)];
        if (next[size_t(right)] >= 0) prev[size_t(next[size_t(right)])] = c.pos;
        if (prev[size_t(c.pos)] >= 0) consider(prev[size_t(c.pos)]);
        consider(c.pos);
    }
    symbols.erase(std::remove(symbols.begin(), symbols.end(), -1), symbols.end());
}

// ---- decoding ---------------------------------------------------------------------------------

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
    if (id < 0 || id >= vocab_size() || types_[size_t(id)] == TOKEN_UNUSED) return {};
    if (special_[size_t(id)] && !special) return {};
    std::string text = decoder_text(id);
    if (decoder_) decoder_->piece(text);
    return text;
}

// The text the decoder gets for a token: an added token as it is matched, normalized.
const std::string &Tokenizer::decoder_text(int32_t id) const {
    auto it = normalized_texts_.find(id);
    return it == normalized_texts_.end() ? tokens_[size_t(id)] : it->second;
}

// HF's Tokenizer::decode: the texts of the known ids (less special tokens with skip_special)
// through the decoder, joined; without a decoder, joined by spaces.
std::string Tokenizer::decode(const std::vector<int32_t> &ids, bool skip_special) const {
    std::vector<std::string> texts;
    texts.reserve(ids.size());
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size() || types_[size_t(id)] == TOKEN_UNUSED) continue;
        if (skip_special && special_[size_t(id)]) continue;
        texts.push_back(decoder_text(id));
    }
    if (decoder_) decoder_->decode_chain(texts);
    std::string out;
    for (size_t i = 0; i < texts.size(); i++) {
        if (i && !decoder_) out += ' ';
        out += texts[i];
    }
    return unicode::utf8_lossy(out);
}

}  // namespace sqllm
