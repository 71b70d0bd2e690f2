#include "tokenizer_pipeline.h"

#include <algorithm>
#include <array>
#include <functional>

#include "tokenizer_regex.h"
#include "tokenizer_unicode.h"

namespace sqllm::pipeline {
namespace {

using unicode::utf8_decode;

// ---- reading component objects ----------------------------------------------------------------

std::string type_of(const Json &spec) {
    const Json *type = spec.find("type");
    return type && type->is_string() ? type->as_string() : std::string();
}

// Field readers: a missing (or null) field takes its default; a field of the wrong type is an error.
bool read_bool(const Json &spec, const char *key, bool fallback, bool &out, std::string &error) {
    const Json *v = spec.find(key);
    if (!v || v->is_null()) return out = fallback, true;
    if (!v->is_bool()) return error = std::string(key) + " is not true or false", false;
    return out = v->as_bool(), true;
}

bool read_string(const Json &spec, const char *key, std::string &out, std::string &error) {
    const Json *v = spec.find(key);
    if (!v || !v->is_string()) return error = std::string(key) + " is missing or not a string", false;
    return out = v->as_string(), true;
}

bool read_count(const Json &spec, const char *key, size_t &out, std::string &error) {
    const Json *v = spec.find(key);
    if (!v || !v->is_number() || v->as_number() < 0 || v->as_number() > 1e6 || v->as_number() != double(size_t(v->as_number())))
        return error = std::string(key) + " is missing or not a count", false;
    return out = size_t(v->as_number()), true;
}

// One character, as Metaspace's replacement and Strip's content are.
bool read_char(const Json &spec, const char *key, std::string &out, std::string &error) {
    if (!read_string(spec, key, out, error)) return false;
    uint32_t cp;
    if (out.empty() || utf8_decode(out, 0, cp) != out.size() || cp >= unicode::kRawByte)
        return error = std::string(key) + " is not one character", false;
    return true;
}

// {"String": s} or {"Regex": r}, as Split and Replace spell their pattern.
std::unique_ptr<Regex> read_pattern(const Json &spec, std::string &error) {
    const Json *pattern = spec.find("pattern");
    if (!pattern || !pattern->is_object()) return error = "pattern is missing", nullptr;
    std::unique_ptr<Regex> regex;
    if (const Json *s = pattern->find("String"); s && s->is_string()) {
        if (s->as_string().empty()) return error = "the pattern is an empty string", nullptr;
        regex = Regex::literal(s->as_string(), error);
    } else if (const Json *r = pattern->find("Regex"); r && r->is_string()) {
        regex = Regex::compile(r->as_string(), error);
    } else {
        return error = "pattern is neither {\"String\": ...} nor {\"Regex\": ...}", nullptr;
    }
    if (!regex) error = "pattern: " + error;
    return regex;
}

// ---- splitting --------------------------------------------------------------------------------

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

bool read_behavior(const Json &spec, Behavior fallback, Behavior &out, std::string &error) {
    const Json *v = spec.find("behavior");
    if (!v || v->is_null()) return out = fallback, true;
    static const std::pair<const char *, Behavior> names[] = {
        {"Removed", Behavior::removed}, {"Isolated", Behavior::isolated}, {"MergedWithPrevious", Behavior::merged_with_previous},
        {"MergedWithNext", Behavior::merged_with_next}, {"Contiguous", Behavior::contiguous}};
    for (const auto &[name, b] : names)
        if (v->is_string() && v->as_string() == name) return out = b, true;
    return error = "unknown behavior " + (v->is_string() ? "'" + v->as_string() + "'" : std::string("(not a string)")), false;
}

struct Span {
    size_t start, end;
    bool is_match;
};

// HF's Pattern::find_matches for a regex: the whole text as alternating non-matches and matches.
std::vector<Span> regex_spans(const Regex &regex, const std::string &text) {
    std::vector<Span> spans;
    if (text.empty()) return {{0, 0, false}};
    size_t prev = 0;
    for (auto [start, end] : regex.find_all(text)) {
        if (prev != start) spans.push_back({prev, start, false});
        spans.push_back({start, end, true});
        prev = end;
    }
    if (prev != text.size()) spans.push_back({prev, text.size(), false});
    return spans;
}

// ... for a character predicate: each matching character is a match of its own.
std::vector<Span> char_spans(const std::string &text, const std::function<bool(uint32_t)> &predicate) {
    std::vector<Span> spans;
    if (text.empty()) return {{0, 0, false}};
    size_t last = 0;
    uint32_t cp;
    for (size_t pos = 0, length; pos < text.size(); pos += length) {
        length = utf8_decode(text, pos, cp);
        if (!predicate(cp)) continue;
        if (last < pos) spans.push_back({last, pos, false});
        spans.push_back({pos, pos + length, true});
        last = pos + length;
    }
    if (last < text.size()) spans.push_back({last, text.size(), false});
    return spans;
}

// NormalizedString::split: spans -> pieces by behavior, with `invert` flipping what matched.
void split_piece(const Piece &piece, std::vector<Span> spans, Behavior behavior, bool invert, std::vector<Piece> &out) {
    if (invert)
        for (Span &s : spans) s.is_match = !s.is_match;
    struct Part {
        size_t start, end;
        bool removed;
    };
    std::vector<Part> parts;
    bool previous_match = false;
    switch (behavior) {
    case Behavior::isolated:
        for (const Span &s : spans) parts.push_back({s.start, s.end, false});
        break;
    case Behavior::removed:
        for (const Span &s : spans) parts.push_back({s.start, s.end, s.is_match});
        break;
    case Behavior::contiguous:
        for (const Span &s : spans) {
            if (s.is_match == previous_match && !parts.empty()) parts.back().end = s.end;
            else parts.push_back({s.start, s.end, false});
            previous_match = s.is_match;
        }
        break;
    case Behavior::merged_with_previous:
        for (const Span &s : spans) {
            if (s.is_match && !previous_match && !parts.empty()) parts.back().end = s.end;
            else parts.push_back({s.start, s.end, false});
            previous_match = s.is_match;
        }
        break;
    case Behavior::merged_with_next:
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->is_match && !previous_match && !parts.empty()) parts.back().start = it->start;
            else parts.push_back({it->start, it->end, false});
            previous_match = it->is_match;
        }
        std::reverse(parts.begin(), parts.end());
        break;
    }
    for (const Part &p : parts)
        if (!p.removed && p.end > p.start) out.push_back({piece.text.substr(p.start, p.end - p.start), piece.at_start && p.start == 0});
}

template <typename SplitOne>
void split_all(std::vector<Piece> &pieces, SplitOne split_one) {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (const Piece &p : pieces) split_one(p, out);
    pieces = std::move(out);
}

// ---- normalizers ------------------------------------------------------------------------------

class UnicodeNormalizer : public Normalizer {
public:
    explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
    void normalize(std::string &text) const override { text = unicode::normalize(text, form_); }

private:
    unicode::NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
public:
    void normalize(std::string &text) const override { text = unicode::lowercase(text); }
};

class StripNormalizer : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    void normalize(std::string &text) const override {
        size_t start = 0, end = text.size();
        uint32_t cp;
        if (left_)
            for (size_t length; start < end && unicode::is_whitespace(cp_at(text, start, cp, length)); start += length) {}
        if (right_)
            while (end > start) {
                size_t begin = end - 1;  // back to the start of the last character
                while (begin > start && (uint8_t(text[begin]) & 0xC0) == 0x80) begin--;
                size_t length;
                if (cp_at(text, begin, cp, length), begin + length != end || !unicode::is_whitespace(cp)) break;
                end = begin;
            }
        text = text.substr(start, end - start);
    }

private:
    static uint32_t cp_at(const std::string &text, size_t pos, uint32_t &cp, size_t &length) {
        length = utf8_decode(text, pos, cp);
        return cp;
    }
    bool left_, right_;
};

class ReplaceNormalizer : public Normalizer {
public:
    ReplaceNormalizer(std::unique_ptr<Regex> regex, std::string content) : regex_(std::move(regex)), content_(std::move(content)) {}
    void normalize(std::string &text) const override { text = replace(text); }
    std::string replace(const std::string &text) const {
        std::string out;
        size_t prev = 0;
        for (auto [start, end] : regex_->find_all(text)) {
            out.append(text, prev, start - prev);
            out += content_;
            prev = end;
        }
        out.append(text, prev, std::string::npos);
        return out;
    }

private:
    std::unique_ptr<Regex> regex_;
    std::string content_;
};

class PrependNormalizer : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    void normalize(std::string &text) const override {
        if (!text.empty()) text.insert(0, prefix_);
    }

private:
    std::string prefix_;
};

class NormalizerSequence : public Normalizer {
public:
    explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
    void normalize(std::string &text) const override {
        for (const auto &s : steps_) s->normalize(text);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> steps_;
};

// ---- pre-tokenizers ---------------------------------------------------------------------------

// The GPT-2 bytes_to_unicode table: printable bytes stand for themselves, the others for
// U+0100 onwards, in byte order.
struct ByteLevelAlphabet {
    std::array<std::string, 256> char_of_byte;
    std::array<int16_t, 0x144> byte_of_char;  // -1 where a codepoint is not in the alphabet

    ByteLevelAlphabet() {
        byte_of_char.fill(-1);
        uint32_t next_extra = 0x100;
        for (uint32_t b = 0; b < 256; b++) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const uint32_t cp = printable ? b : next_extra++;
            unicode::utf8_append(char_of_byte[b], cp);
            byte_of_char[cp] = int16_t(b);
        }
    }
};

const ByteLevelAlphabet &byte_level_alphabet() {
    static const ByteLevelAlphabet alphabet;
    return alphabet;
}

// The bytes a byte-level token stands for; a token with a character outside the alphabet (an
// added token, say) stands for its own text, as in HF's ByteLevel decoder.
std::string byte_level_to_bytes(const std::string &token) {
    const ByteLevelAlphabet &alphabet = byte_level_alphabet();
    std::string out;
    uint32_t cp;
    for (size_t pos = 0; pos < token.size();) {
        pos += utf8_decode(token, pos, cp);
        if (cp >= alphabet.byte_of_char.size() || alphabet.byte_of_char[cp] < 0) return token;
        out += char(alphabet.byte_of_char[cp]);
    }
    return out;
}

constexpr const char *kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex) : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
    void pre_tokenize(std::vector<Piece> &pieces) const override {
        const ByteLevelAlphabet &alphabet = byte_level_alphabet();
        split_all(pieces, [&](const Piece &p, std::vector<Piece> &out) {
            Piece prefixed = p;
            if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') prefixed.text.insert(0, " ");
            std::vector<Piece> parts;
            if (regex_) split_piece(prefixed, regex_spans(*regex_, prefixed.text), Behavior::isolated, false, parts);
            else if (!prefixed.text.empty()) parts.push_back(prefixed);
            for (Piece &part : parts) {
                std::string mapped;
                mapped.reserve(part.text.size() * 2);
                for (char b : part.text) mapped += alphabet.char_of_byte[uint8_t(b)];
                out.push_back({std::move(mapped), part.at_start});
            }
        });
    }

private:
    bool add_prefix_space_;
    std::unique_ptr<Regex> regex_;  // null without use_regex
};

class SplitPreTokenizer : public PreTokenizer {
public:
    SplitPreTokenizer(std::unique_ptr<Regex> regex, Behavior behavior, bool invert)
        : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
    void pre_tokenize(std::vector<Piece> &pieces) const override {
        split_all(pieces, [&](const Piece &p, std::vector<Piece> &out) { split_piece(p, regex_spans(*regex_, p.text), behavior_, invert_, out); });
    }

private:
    std::unique_ptr<Regex> regex_;
    Behavior behavior_;
    bool invert_;
};

// Digits, WhitespaceSplit and Punctuation: a split on a character property.
class CharSplitPreTokenizer : public PreTokenizer {
public:
    CharSplitPreTokenizer(bool (*predicate)(uint32_t), Behavior behavior) : predicate_(predicate), behavior_(behavior) {}
    void pre_tokenize(std::vector<Piece> &pieces) const override {
        split_all(pieces, [&](const Piece &p, std::vector<Piece> &out) { split_piece(p, char_spans(p.text, predicate_), behavior_, false, out); });
    }

private:
    bool (*predicate_)(uint32_t);
    Behavior behavior_;
};

enum class PrependScheme { always, first, never };

bool read_prepend_scheme(const Json &spec, PrependScheme &out, std::string &error) {
    out = PrependScheme::always;
    if (const Json *v = spec.find("prepend_scheme"); v && !v->is_null()) {
        if (!v->is_string()) return error = "prepend_scheme is not a string", false;
        if (v->as_string() == "always") out = PrependScheme::always;
        else if (v->as_string() == "first") out = PrependScheme::first;
        else if (v->as_string() == "never") out = PrependScheme::never;
        else return error = "unknown prepend_scheme '" + v->as_string() + "'", false;
    }
    bool add_prefix_space;  // the older spelling: false means never
    if (!read_bool(spec, "add_prefix_space", true, add_prefix_space, error)) return false;
    if (!add_prefix_space) out = PrependScheme::never;
    return true;
}

class MetaspacePreTokenizer : public PreTokenizer {
public:
    MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
        : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {
        unicode::utf8_decode(replacement_, 0, replacement_cp_);
    }
    void pre_tokenize(std::vector<Piece> &pieces) const override {
        split_all(pieces, [&](const Piece &p, std::vector<Piece> &out) {
            Piece replaced{std::string(), p.at_start};
            replaced.text.reserve(p.text.size() + replacement_.size());
            for (char c : p.text) {
                if (c == ' ') replaced.text += replacement_;
                else replaced.text += c;
            }
            const bool prepend = scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && p.at_start);
            if (prepend && !replaced.text.empty() && replaced.text.compare(0, replacement_.size(), replacement_) != 0)
                replaced.text.insert(0, replacement_);
            if (!split_) {
                if (!replaced.text.empty()) out.push_back(std::move(replaced));
                return;
            }
            const uint32_t r = replacement_cp_;
            split_piece(replaced, char_spans(replaced.text, [r](uint32_t cp) { return cp == r; }), Behavior::merged_with_next, false, out);
        });
    }

private:
    std::string replacement_;
    uint32_t replacement_cp_ = 0;
    PrependScheme scheme_;
    bool split_;
};

class PreTokenizerSequence : public PreTokenizer {
public:
    explicit PreTokenizerSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
    void pre_tokenize(std::vector<Piece> &pieces) const override {
        for (const auto &s : steps_) s->pre_tokenize(pieces);
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// ---- decoders ---------------------------------------------------------------------------------

class ByteLevelDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::string bytes;
        for (const std::string &t : tokens) bytes += byte_level_to_bytes(t);
        tokens.assign(1, unicode::utf8_lossy(bytes));
    }
    void piece(std::string &token) const override { token = byte_level_to_bytes(token); }
};

// "<0xXX>" -> XX, -1 for any other text (HF accepts either case of hex digit).
int parse_byte_token(const std::string &text) {
    if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
    int value = 0;
    for (size_t i = 3; i < 5; i++) {
        const char h = text[i];
        const int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'A' && h <= 'F' ? h - 'A' + 10 : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

class ByteFallbackDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::vector<std::string> out;
        std::string run;
        const auto flush = [&] {
            if (run.empty()) return;
            if (unicode::is_valid_utf8(run)) out.push_back(run);
            else
                for (size_t i = 0; i < run.size(); i++) out.emplace_back(unicode::kReplacementCharacter);
            run.clear();
        };
        for (std::string &t : tokens) {
            const int b = parse_byte_token(t);
            if (b >= 0) {
                run += char(b);
                continue;
            }
            flush();
            out.push_back(std::move(t));
        }
        flush();
        tokens = std::move(out);
    }
    void piece(std::string &token) const override {
        const int b = parse_byte_token(token);
        if (b >= 0) token.assign(1, char(b));
    }
};

class FuseDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::string joined;
        for (const std::string &t : tokens) joined += t;
        tokens.assign(1, std::move(joined));
    }
    void piece(std::string &) const override {}
};

class StripDecoder : public Decoder {
public:
    StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (std::string &t : tokens) {
            std::vector<size_t> offsets;  // of each character, plus the end
            uint32_t cp;
            for (size_t pos = 0; pos < t.size(); pos += utf8_decode(t, pos, cp)) offsets.push_back(pos);
            offsets.push_back(t.size());
            const size_t n = offsets.size() - 1;
            const auto is_content = [&](size_t i) { return t.compare(offsets[i], offsets[i + 1] - offsets[i], content_) == 0; };
            size_t start_cut = 0, stop_cut = n;
            for (size_t i = 0; i < start_ && i < n && is_content(i); i++) start_cut = i + 1;
            for (size_t i = 0; i < stop_ && i < n && is_content(n - i - 1); i++) stop_cut = n - i - 1;
            t = stop_cut > start_cut ? t.substr(offsets[start_cut], offsets[stop_cut] - offsets[start_cut]) : std::string();
        }
    }
    void piece(std::string &) const override {}

private:
    std::string content_;
    size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
public:
    explicit ReplaceDecoder(std::unique_ptr<ReplaceNormalizer> replace) : replace_(std::move(replace)) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (std::string &t : tokens) t = replace_->replace(t);
    }
    void piece(std::string &token) const override { token = replace_->replace(token); }

private:
    std::unique_ptr<ReplaceNormalizer> replace_;
};

class MetaspaceDecoder : public Decoder {
public:
    MetaspaceDecoder(std::string replacement, PrependScheme scheme) : replacement_(std::move(replacement)), scheme_(scheme) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (size_t i = 0; i < tokens.size(); i++) tokens[i] = replaced(tokens[i], i == 0 && scheme_ != PrependScheme::never);
    }
    void piece(std::string &token) const override { token = replaced(token, false); }

private:
    std::string replaced(const std::string &token, bool drop) const {
        std::string out;
        for (size_t pos = 0; pos < token.size();) {
            if (token.compare(pos, replacement_.size(), replacement_) == 0) {
                if (!drop) out += ' ';
                pos += replacement_.size();
            } else {
                out += token[pos++];
            }
        }
        return out;
    }
    std::string replacement_;
    PrependScheme scheme_;
};

class DecoderSequence : public Decoder {
public:
    explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (const auto &s : steps_) s->decode_chain(tokens);
    }
    void piece(std::string &token) const override {
        for (const auto &s : steps_) s->piece(token);
    }

private:
    std::vector<std::unique_ptr<Decoder>> steps_;
};

// ---- building ---------------------------------------------------------------------------------

// Builds each item of spec[key] with make(); an error names the item.
template <typename T, typename Make>
bool make_steps(const Json &spec, const char *key, Make make, std::vector<std::unique_ptr<T>> &steps, std::string &error) {
    const Json *items = spec.find(key);
    if (!items || !items->is_array()) return error = std::string(key) + " is missing or not a list", false;
    for (const Json &item : items->items()) {
        std::unique_ptr<T> step = make(item, error);
        if (!step) {
            if (error.empty()) error = "a null item";
            return false;
        }
        steps.push_back(std::move(step));
    }
    return true;
}

std::string component_name(const char *kind, const Json &spec) {
    const std::string type = type_of(spec);
    return std::string(kind) + " " + (type.empty() ? "(no type)" : "'" + type + "'");
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json &spec, std::string &error) {
    error.clear();
    if (spec.is_null()) return nullptr;
    const std::string type = type_of(spec);
    std::unique_ptr<Normalizer> made;
    std::string why;
    if (type == "NFC") made = std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfc);
    else if (type == "NFD") made = std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfd);
    else if (type == "NFKC") made = std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfkc);
    else if (type == "NFKD") made = std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfkd);
    else if (type == "Lowercase") made = std::make_unique<LowercaseNormalizer>();
    else if (type == "Strip") {
        bool left, right;
        if (read_bool(spec, "strip_left", true, left, why) && read_bool(spec, "strip_right", true, right, why))
            made = std::make_unique<StripNormalizer>(left, right);
    } else if (type == "Replace") {
        std::string content;
        if (auto regex = read_pattern(spec, why); regex && read_string(spec, "content", content, why))
            made = std::make_unique<ReplaceNormalizer>(std::move(regex), content);
    } else if (type == "Prepend") {
        std::string prefix;
        if (read_string(spec, "prepend", prefix, why)) made = std::make_unique<PrependNormalizer>(prefix);
    } else if (type == "Sequence") {
        std::vector<std::unique_ptr<Normalizer>> steps;
        if (make_steps(spec, "normalizers", make_normalizer, steps, why)) made = std::make_unique<NormalizerSequence>(std::move(steps));
    } else {
        error = component_name("normalizer", spec) + " is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend and Sequence are)";
        return nullptr;
    }
    if (!made) error = component_name("normalizer", spec) + ": " + why;
    return made;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json &spec, std::string &error) {
    error.clear();
    if (spec.is_null()) return nullptr;
    const std::string type = type_of(spec);
    std::unique_ptr<PreTokenizer> made;
    std::string why;
    if (type == "ByteLevel") {
        bool add_prefix_space, use_regex;
        if (read_bool(spec, "add_prefix_space", true, add_prefix_space, why) && read_bool(spec, "use_regex", true, use_regex, why)) {
            std::unique_ptr<Regex> regex;
            if (use_regex) regex = Regex::compile(kGpt2Pattern, why);
            if (regex || !use_regex) made = std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
        }
    } else if (type == "Split") {
        Behavior behavior;
        bool invert;
        if (auto regex = read_pattern(spec, why);
            regex && read_behavior(spec, Behavior::isolated, behavior, why) && read_bool(spec, "invert", false, invert, why))
            made = std::make_unique<SplitPreTokenizer>(std::move(regex), behavior, invert);
    } else if (type == "Digits") {
        bool individual;
        if (read_bool(spec, "individual_digits", false, individual, why))
            made = std::make_unique<CharSplitPreTokenizer>(unicode::is_numeric, individual ? Behavior::isolated : Behavior::contiguous);
    } else if (type == "WhitespaceSplit") {
        made = std::make_unique<CharSplitPreTokenizer>(unicode::is_whitespace, Behavior::removed);
    } else if (type == "Punctuation") {
        Behavior behavior;
        if (read_behavior(spec, Behavior::isolated, behavior, why)) made = std::make_unique<CharSplitPreTokenizer>(unicode::is_punctuation, behavior);
    } else if (type == "Whitespace") {
        // HF: Regex(\w+|[^\w\s]+) inverted, Removed; \w and \s as the Rust regex crate has them.
        auto regex = Regex::compile(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s]+)", why);
        if (regex) made = std::make_unique<SplitPreTokenizer>(std::move(regex), Behavior::removed, true);
    } else if (type == "Metaspace") {
        std::string replacement;
        PrependScheme scheme;
        bool split;
        if (read_char(spec, "replacement", replacement, why) && read_prepend_scheme(spec, scheme, why) && read_bool(spec, "split", true, split, why))
            made = std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
    } else if (type == "Sequence") {
        std::vector<std::unique_ptr<PreTokenizer>> steps;
        if (make_steps(spec, "pretokenizers", make_pre_tokenizer, steps, why)) made = std::make_unique<PreTokenizerSequence>(std::move(steps));
    } else {
        error = component_name("pre-tokenizer", spec) +
                " is not supported (ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation and Sequence are)";
        return nullptr;
    }
    if (!made) error = component_name("pre-tokenizer", spec) + ": " + why;
    return made;
}

std::unique_ptr<Decoder> make_decoder(const Json &spec, std::string &error) {
    error.clear();
    if (spec.is_null()) return nullptr;
    const std::string type = type_of(spec);
    std::unique_ptr<Decoder> made;
    std::string why;
    if (type == "ByteLevel") made = std::make_unique<ByteLevelDecoder>();
    else if (type == "ByteFallback") made = std::make_unique<ByteFallbackDecoder>();
    else if (type == "Fuse") made = std::make_unique<FuseDecoder>();
    else if (type == "Strip") {
        std::string content;
        size_t start, stop;
        if (read_char(spec, "content", content, why) && read_count(spec, "start", start, why) && read_count(spec, "stop", stop, why))
            made = std::make_unique<StripDecoder>(content, start, stop);
    } else if (type == "Replace") {
        std::string content;
        if (auto regex = read_pattern(spec, why); regex && read_string(spec, "content", content, why))
            made = std::make_unique<ReplaceDecoder>(std::make_unique<ReplaceNormalizer>(std::move(regex), content));
    } else if (type == "Metaspace") {
        std::string replacement;
        PrependScheme scheme;
        if (read_char(spec, "replacement", replacement, why) && read_prepend_scheme(spec, scheme, why))
            made = std::make_unique<MetaspaceDecoder>(replacement, scheme);
    } else if (type == "Sequence") {
        std::vector<std::unique_ptr<Decoder>> steps;
        if (make_steps(spec, "decoders", make_decoder, steps, why)) made = std::make_unique<DecoderSequence>(std::move(steps));
    } else {
        error = component_name("decoder", spec) + " is not supported (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace and Sequence are)";
        return nullptr;
    }
    if (!made) error = component_name("decoder", spec) + ": " + why;
    return made;
}

}  // namespace sqllm::pipeline
