// Tokenization as Hugging Face `tokenizers` does it for the models sqllm converts. The steps
// of `Tokenizer::encode` follow the HF pipeline: split out added tokens, normalize each piece
// of text between them, pre-tokenize, BPE by merge rank. Byte-level and SentencePiece details
// that matter for identical ids are noted where they are implemented.
#include "tokenizer.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <utility>

namespace sqllm {
namespace {

#include "unicode_tables.inc"

// ---- UTF-8 ----------------------------------------------------------------------------------

// A byte that is not part of valid UTF-8 travels through normalization and pre-tokenization as
// this pseudo-codepoint (kRawByte + byte) and comes out as the same byte: the tokenizer keeps
// arbitrary input bytes rather than replacing them.
constexpr uint32_t kRawByte = 0x110000;
constexpr const char *kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";         // U+2581 "▁"

// The UTF-8 sequence at `pos` (pos < text.size()), checked against the well-formed sequences
// of the Unicode standard (table 3-7: no overlong forms, surrogates or values above U+10FFFF).
// Returns its length and sets `cp`; for an ill-formed sequence returns minus the length of its
// longest valid beginning (at least 1 byte), which is what one U+FFFD replaces.
int utf8_sequence(std::string_view text, size_t pos, uint32_t &cp) {
    const auto byte = [&](size_t i) { return pos + i < text.size() ? uint8_t(text[pos + i]) : uint8_t(0); };
    const uint8_t b0 = byte(0);
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    }
    int length;
    uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        length = 3;
        if (b0 == 0xE0) low = 0xA0;
        if (b0 == 0xED) high = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        length = 4;
        if (b0 == 0xF0) low = 0x90;
        if (b0 == 0xF4) high = 0x8F;
    } else {
        return -1;
    }
    uint32_t value = b0 & (0x7F >> length);
    for (int i = 1; i < length; i++) {
        const uint8_t b = byte(size_t(i));
        if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return -i;
        value = (value << 6) | (b & 0x3F);
    }
    cp = value;
    return length;
}

// The character at `pos` and its length; a byte that does not start a well-formed sequence
// is one character, kRawByte + byte.
size_t utf8_decode(std::string_view text, size_t pos, uint32_t &cp) {
    const int length = utf8_sequence(text, pos, cp);
    if (length > 0) return size_t(length);
    cp = kRawByte + uint8_t(text[pos]);
    return 1;
}

void utf8_append(std::string &out, uint32_t cp) {
    if (cp >= kRawByte) {
        out += char(cp - kRawByte);
    } else if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

bool is_valid_utf8(std::string_view text) {
    uint32_t cp;
    for (size_t pos = 0; pos < text.size();) {
        const int length = utf8_sequence(text, pos, cp);
        if (length < 0) return false;
        pos += size_t(length);
    }
    return true;
}

// Rust's String::from_utf8_lossy, which Hugging Face decoders end with: each ill-formed
// sequence (as much of it as was valid, or one stray byte) becomes one U+FFFD.
std::string utf8_lossy(std::string_view text) {
    if (is_valid_utf8(text)) return std::string(text);
    std::string out;
    out.reserve(text.size() + 16);
    uint32_t cp;
    for (size_t pos = 0; pos < text.size();) {
        const int length = utf8_sequence(text, pos, cp);
        if (length > 0) out.append(text.substr(pos, size_t(length)));
        else out += kReplacementCharacter;
        pos += size_t(length > 0 ? length : -length);
    }
    return out;
}

// ---- Unicode properties -------------------------------------------------------------------

template <size_t N>
bool in_ranges(uint32_t cp, const CodepointRange (&ranges)[N]) {
    const CodepointRange *it = std::upper_bound(ranges, ranges + N, cp, [](uint32_t c, const CodepointRange &r) { return c < r.first; });
    return it != ranges && cp <= (it - 1)->last;
}

enum CharClass : uint8_t { CLASS_LETTER = 1, CLASS_NUMBER = 2, CLASS_WHITESPACE = 4 };

uint8_t char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLASS_LETTER;
        if (cp >= '0' && cp <= '9') return CLASS_NUMBER;
        return (cp >= 0x09 && cp <= 0x0D) || cp == ' ' ? CLASS_WHITESPACE : 0;
    }
    if (cp >= kRawByte) return 0;
    if (in_ranges(cp, kLetterRanges)) return CLASS_LETTER;
    if (in_ranges(cp, kNumberRanges)) return CLASS_NUMBER;
    return in_ranges(cp, kWhitespaceRanges) ? CLASS_WHITESPACE : 0;
}

// ---- NFC (UAX #15) --------------------------------------------------------------------------

constexpr uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

// A lead byte of 0xCC or more starts a codepoint of U+0300 or more (or is invalid); below that,
// text is NFC already. This test relies on the table's threshold being at least U+0300.
static_assert(kNfcFirstAffectedCodepoint >= 0x300, "the NFC quick check below assumes U+0300");
bool may_change_under_nfc(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return uint8_t(c) >= 0xCC; });
}

uint8_t combining_class(uint32_t cp) {
    const auto *end = kCombiningClassRanges + std::size(kCombiningClassRanges);
    const auto *it = std::upper_bound(kCombiningClassRanges, end, cp, [](uint32_t c, const CombiningClassRange &r) { return c < r.first; });
    return it != kCombiningClassRanges && cp <= (it - 1)->last ? (it - 1)->combining_class : 0;
}

const CanonicalDecomposition *find_decomposition(uint32_t cp) {
    const auto *end = kCanonicalDecompositions + std::size(kCanonicalDecompositions);
    const auto *it = std::lower_bound(kCanonicalDecompositions, end, cp, [](const CanonicalDecomposition &d, uint32_t c) { return d.codepoint < c; });
    return it != end && it->codepoint == cp ? it : nullptr;
}

void decompose(uint32_t cp, std::vector<uint32_t> &out) {
    if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
        const uint32_t s = cp - kHangulS;
        out.push_back(kHangulL + s / kHangulNCount);
        out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
        if (s % kHangulTCount) out.push_back(kHangulT + s % kHangulTCount);
        return;
    }
    const CanonicalDecomposition *d = find_decomposition(cp);
    if (!d) {
        out.push_back(cp);
        return;
    }
    decompose(d->first, out);
    if (d->second) decompose(d->second, out);
}

// The primary composite of (first, second), 0 if none.
uint32_t compose(uint32_t first, uint32_t second) {
    if (first >= kHangulL && first < kHangulL + kHangulLCount && second >= kHangulV && second < kHangulV + kHangulVCount)
        return kHangulS + ((first - kHangulL) * kHangulVCount + (second - kHangulV)) * kHangulTCount;
    if (first >= kHangulS && first < kHangulS + kHangulSCount && (first - kHangulS) % kHangulTCount == 0 &&
        second > kHangulT && second < kHangulT + kHangulTCount)
        return first + (second - kHangulT);
    static const std::unordered_map<uint64_t, uint32_t> pairs = [] {
        std::unordered_map<uint64_t, uint32_t> m;
        for (const CanonicalDecomposition &d : kCanonicalDecompositions)
            if (d.composes) m.emplace(uint64_t(d.first) << 32 | d.second, d.codepoint);
        return m;
    }();
    auto it = pairs.find(uint64_t(first) << 32 | second);
    return it == pairs.end() ? 0 : it->second;
}

std::string nfc(std::string_view text) {
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    uint32_t cp;
    for (size_t pos = 0; pos < text.size();) {
        pos += utf8_decode(text, pos, cp);
        decompose(cp, cps);
    }
    // Canonical ordering: a stable sort of each run of nonzero combining classes.
    std::vector<uint8_t> classes(cps.size());
    for (size_t i = 0; i < cps.size(); i++) classes[i] = combining_class(cps[i]);
    for (size_t i = 0; i < cps.size();) {
        if (!classes[i]) {
            i++;
            continue;
        }
        size_t end = i;
        while (end < cps.size() && classes[end]) end++;
        for (size_t a = i + 1; a < end; a++)  // insertion sort: runs are a few marks long
            for (size_t b = a; b > i && classes[b - 1] > classes[b]; b--) {
                std::swap(classes[b - 1], classes[b]);
                std::swap(cps[b - 1], cps[b]);
            }
        i = end;
    }
    // Canonical composition: a mark joins the last starter unless something between them
    // blocks it (a starter, or a mark of the same or higher class, left uncomposed).
    std::vector<uint32_t> composed;
    std::vector<uint8_t> composed_classes;
    composed.reserve(cps.size());
    size_t starter = SIZE_MAX;
    for (size_t i = 0; i < cps.size(); i++) {
        const uint8_t cls = classes[i];
        if (starter != SIZE_MAX) {
            const bool adjacent = composed.size() - 1 == starter;
            if (adjacent || composed_classes.back() < cls) {
                if (uint32_t c = compose(composed[starter], cps[i])) {
                    composed[starter] = c;
                    continue;
                }
            }
        }
        if (cls == 0) starter = composed.size();
        composed.push_back(cps[i]);
        composed_classes.push_back(cls);
    }
    std::string out;
    out.reserve(text.size());
    for (uint32_t c : composed) utf8_append(out, c);
    return out;
}

// ---- pre-tokenizer regexes, matched by hand ---------------------------------------------------

struct Chars {
    std::vector<uint32_t> cps;
    std::vector<uint8_t> classes;
    std::vector<size_t> offsets;  // byte offset of each codepoint, plus the end

    explicit Chars(std::string_view text) {
        uint32_t cp;
        for (size_t pos = 0; pos < text.size();) {
            offsets.push_back(pos);
            pos += utf8_decode(text, pos, cp);
            cps.push_back(cp);
            classes.push_back(char_class(cp));
        }
        offsets.push_back(text.size());
    }
    size_t size() const { return cps.size(); }
    bool letter(size_t i) const { return i < size() && (classes[i] & CLASS_LETTER); }
    bool number(size_t i) const { return i < size() && (classes[i] & CLASS_NUMBER); }
    bool space(size_t i) const { return i < size() && (classes[i] & CLASS_WHITESPACE); }
    bool newline(size_t i) const { return i < size() && (cps[i] == '\r' || cps[i] == '\n'); }
    // [^\s\p{L}\p{N}]
    bool other(size_t i) const { return i < size() && !classes[i]; }
};

// Length of the contraction 's 't 're 've 'm 'll 'd at i, 0 if none. Case-insensitive as
// Oniguruma's (?i) is: ASCII case, and "ſ" (U+017F), which folds to "s".
size_t contraction_length(const Chars &c, size_t i, bool ignore_case) {
    if (c.cps[i] != '\'' || i + 1 >= c.size()) return 0;
    const auto at = [&](size_t k) -> uint32_t {
        if (k >= c.size()) return 0;
        const uint32_t cp = c.cps[k];
        if (!ignore_case) return cp;
        if (cp == 0x17F) return 's';
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    };
    const uint32_t a = at(i + 1), b = at(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// End of the whitespace alternatives `\s+(?!\S)|\s+` at i (a whitespace character): the run,
// less its last character when a non-space follows and the run is longer than one.
size_t whitespace_end(const Chars &c, size_t i) {
    size_t end = i;
    while (c.space(end)) end++;
    return end < c.size() && end - i > 1 ? end - 1 : end;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const Chars &c, size_t i) {
    if (size_t n = contraction_length(c, i, false)) return i + n;
    const size_t j = c.cps[i] == ' ' ? i + 1 : i;
    size_t end = j;
    if (c.letter(j)) {
        while (c.letter(end)) end++;
        return end;
    }
    if (c.number(j)) {
        while (c.number(end)) end++;
        return end;
    }
    if (c.other(j)) {
        while (c.other(end)) end++;
        return end;
    }
    return whitespace_end(c, i);
}

// Llama-3 (max_digits 3) and Qwen2 (max_digits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
//   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(const Chars &c, size_t i, size_t max_digits) {
    if (size_t n = contraction_length(c, i, true)) return i + n;
    size_t j = !c.letter(i) && !c.number(i) && !c.newline(i) ? i + 1 : i;
    if (c.letter(j)) {
        while (c.letter(j)) j++;
        return j;
    }
    if (c.number(i)) {
        j = i;
        while (j - i < max_digits && c.number(j)) j++;
        return j;
    }
    j = c.cps[i] == ' ' ? i + 1 : i;
    if (c.other(j)) {
        while (c.other(j)) j++;
        while (c.newline(j)) j++;
        return j;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last line break, if it has one.
    size_t run_end = i, last_newline = SIZE_MAX;
    for (; c.space(run_end); run_end++)
        if (c.newline(run_end)) last_newline = run_end;
    if (last_newline != SIZE_MAX) return last_newline + 1;
    if (c.space(i)) return whitespace_end(c, i);
    return i + 1;  // unreachable: every character is a letter, number, space or other
}

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
            utf8_append(char_of_byte[b], cp);
            byte_of_char[cp] = int16_t(b);
        }
    }
};

const ByteLevelAlphabet &byte_level_alphabet() {
    static const ByteLevelAlphabet alphabet;
    return alphabet;
}

// The bytes a byte-level token stands for. As the HF ByteLevel decoder does, a token with a
// character outside the alphabet (an added token, say) stands for its own UTF-8 text.
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

// "<0xXX>" -> XX, -1 for any other text.
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

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

std::string quoted(std::string_view s) { return "'" + std::string(s.substr(0, 80)) + "'"; }

}  // namespace

// ---- building ---------------------------------------------------------------------------------

bool Tokenizer::build(TokenizerData data, Tokenizer &out, std::string &error) {
    Tokenizer t;
    const size_t n = data.tokens.size();
    if (n == 0) return error = "there are no tokens", false;
    if (n > size_t(INT32_MAX)) return error = "too many tokens", false;
    if (data.model == "llama") {
        t.kind_ = Kind::sentencepiece;
        if (!data.pre.empty() && data.pre != "default")
            return error = "pre-tokenizer " + quoted(data.pre) + " is not supported with the llama tokenizer", false;
    } else if (data.model == "gpt2") {
        t.kind_ = Kind::byte_level;
        if (data.pre == "gpt2") t.pre_ = PreTokenizer::gpt2;
        else if (data.pre == "llama-bpe") t.pre_ = PreTokenizer::llama3;
        else if (data.pre == "qwen2") t.pre_ = PreTokenizer::qwen2;
        else return error = "unknown pre-tokenizer " + quoted(data.pre) + " (gpt2, llama-bpe and qwen2 are known)", false;
    } else {
        return error = "unknown tokenizer model " + quoted(data.model) + " (llama and gpt2 are known)", false;
    }
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

    t.tokens_ = std::move(data.tokens);
    t.types_ = std::move(data.types);
    t.ids_.reserve(n);
    for (size_t i = 0; i < n; i++) t.ids_.emplace(t.tokens_[i], int32_t(i));
    t.bos_id_ = data.bos_id;
    t.eos_id_ = data.eos_id;
    t.unk_id_ = data.unk_id;
    t.pad_id_ = data.pad_id;
    t.add_bos_ = data.add_bos;
    t.add_eos_ = data.add_eos;
    t.add_space_prefix_ = data.add_space_prefix && t.kind_ == Kind::sentencepiece;

    t.byte_tokens_.fill(-1);
    if (t.kind_ == Kind::sentencepiece) {
        for (size_t i = 0; i < n; i++) {
            if (t.types_[i] != TOKEN_BYTE) continue;
            const int b = parse_byte_token(t.tokens_[i]);
            if (b < 0) return error = "byte token " + std::to_string(i) + " is " + quoted(t.tokens_[i]) + ", not <0xXX>", false;
            if (t.byte_tokens_[size_t(b)] < 0) t.byte_tokens_[size_t(b)] = int32_t(i);
        }
        const bool all_bytes = std::all_of(t.byte_tokens_.begin(), t.byte_tokens_.end(), [](int32_t id) { return id >= 0; });
        if (!all_bytes && t.unk_id_ < 0)
            return error = "byte fallback needs all 256 <0xXX> tokens, or an unknown token for what they cannot spell", false;
    } else {
        const ByteLevelAlphabet &alphabet = byte_level_alphabet();
        for (size_t b = 0; b < 256; b++) {
            t.byte_tokens_[b] = t.find_token(alphabet.char_of_byte[b]);
            if (t.byte_tokens_[b] < 0)
                return error = "the byte-level vocabulary lacks " + quoted(alphabet.char_of_byte[b]) + " (byte " + std::to_string(b) + ")", false;
        }
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
    } else if (t.kind_ == Kind::sentencepiece) {
        // SentencePiece BPE merges the adjacent pair whose union is the normal token with the
        // highest score. As merge ranks: every split of every normal token into two tokens,
        // ranked by the token's score (equal scores, equal rank; ties go to the leftmost pair).
        if (data.scores.empty()) return error = "a llama tokenizer needs merges or scores", false;
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
    } else {
        return error = "a gpt2 tokenizer needs merges", false;
    }

    for (size_t i = 0; i < n; i++) {
        const int32_t type = t.types_[i];
        if (t.tokens_[i].empty()) continue;
        if (type == TOKEN_CONTROL || type == TOKEN_UNKNOWN || type == TOKEN_USER_DEFINED) {
            t.specials_.push_back(Special{int32_t(i), type == TOKEN_USER_DEFINED});
            t.special_first_bytes_[uint8_t(t.tokens_[i][0])] = true;
        }
    }
    // Longest first, so that the first match at a position is the longest (HF matches added
    // tokens leftmost-longest).
    std::stable_sort(t.specials_.begin(), t.specials_.end(), [&](const Special &a, const Special &b) {
        return t.tokens_[size_t(a.id)].size() > t.tokens_[size_t(b.id)].size();
    });
    out = std::move(t);
    return true;
}

int32_t Tokenizer::find_token(std::string_view text) const {
    auto it = ids_.find(std::string(text));
    return it == ids_.end() ? -1 : it->second;
}

// ---- encoding ---------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
    size_t segment = 0;  // start of the text not yet encoded
    for (size_t pos = 0; pos < text.size(); pos++) {
        if (!special_first_bytes_[uint8_t(text[pos])]) continue;
        for (const Special &s : specials_) {
            const std::string &s_text = tokens_[size_t(s.id)];
            if ((s.always || parse_special) && text.compare(pos, s_text.size(), s_text) == 0) {
                encode_segment(text.substr(segment, pos - segment), out);
                out.push_back(s.id);
                pos += s_text.size() - 1;
                segment = pos + 1;
                break;
            }
        }
    }
    encode_segment(text.substr(segment), out);
    return out;
}

void Tokenizer::encode_segment(std::string_view text, std::vector<int32_t> &out) const {
    if (text.empty()) return;
    if (kind_ == Kind::sentencepiece) encode_sentencepiece(text, out);
    else encode_byte_level(text, out);
}

// HF's legacy Llama normalizer, Prepend("▁") then Replace(" ", "▁"), runs on each piece of
// text between added tokens, so each one gets its own dummy prefix. The whole piece is then
// one BPE word: there is no pre-tokenizer.
void Tokenizer::encode_sentencepiece(std::string_view text, std::vector<int32_t> &out) const {
    std::string normalized;
    normalized.reserve(text.size() + text.size() / 2 + 3);
    if (add_space_prefix_) normalized += kSpaceMark;
    for (char c : text) {
        if (c == ' ') normalized += kSpaceMark;
        else normalized += c;
    }
    std::vector<int32_t> symbols;
    symbols.reserve(normalized.size());
    uint32_t cp;
    for (size_t pos = 0, length; pos < normalized.size(); pos += length) {
        length = utf8_decode(normalized, pos, cp);
        const std::string_view ch = std::string_view(normalized).substr(pos, length);
        const int32_t id = cp < kRawByte ? find_token(ch) : -1;
        if (id >= 0) {
            symbols.push_back(id);
            continue;
        }
        const bool spellable = std::all_of(ch.begin(), ch.end(), [&](char b) { return byte_tokens_[uint8_t(b)] >= 0; });
        if (spellable) {
            for (char b : ch) symbols.push_back(byte_tokens_[uint8_t(b)]);
        } else {
            symbols.push_back(unk_id_);  // build() made sure there is one
        }
    }
    apply_merges(symbols);
    out.insert(out.end(), symbols.begin(), symbols.end());
}

void Tokenizer::encode_byte_level(std::string_view text, std::vector<int32_t> &out) const {
    std::string normalized;
    if (pre_ == PreTokenizer::qwen2 && may_change_under_nfc(text)) {
        normalized = nfc(text);
        text = normalized;
    }
    const Chars chars(text);
    const ByteLevelAlphabet &alphabet = byte_level_alphabet();
    std::vector<int32_t> symbols;
    for (size_t i = 0; i < chars.size();) {
        const size_t end = pre_ == PreTokenizer::gpt2     ? match_gpt2(chars, i)
                           : pre_ == PreTokenizer::llama3 ? match_llama3(chars, i, 3)
                                                          : match_llama3(chars, i, 1);
        const std::string_view piece = text.substr(chars.offsets[i], chars.offsets[end] - chars.offsets[i]);
        i = end;
        if (pre_ == PreTokenizer::llama3) {
            // Llama-3's BPE has ignore_merges: a piece that is a token is taken whole.
            std::string mapped;
            for (char b : piece) mapped += alphabet.char_of_byte[uint8_t(b)];
            const int32_t id = find_token(mapped);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
        }
        symbols.clear();
        for (char b : piece) symbols.push_back(byte_tokens_[uint8_t(b)]);
        apply_merges(symbols);
        out.insert(out.end(), symbols.begin(), symbols.end());
    }
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
    if (id < 0 || id >= vocab_size()) return {};
    const std::string &text = tokens_[size_t(id)];
    switch (types_[size_t(id)]) {
    case TOKEN_UNUSED:
        return {};
    case TOKEN_CONTROL:
    case TOKEN_UNKNOWN:
        if (!special) return {};
        break;
    case TOKEN_BYTE:
        if (kind_ == Kind::sentencepiece) return std::string(1, char(parse_byte_token(text)));
        break;
    default:
        break;
    }
    if (kind_ == Kind::byte_level) return byte_level_to_bytes(text);
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        if (text.compare(pos, kSpaceMark.size(), kSpaceMark) == 0) {
            out += ' ';
            pos += kSpaceMark.size();
        } else {
            out += text[pos++];
        }
    }
    return out;
}

// HF decoders: for llama, Replace("▁", " "), ByteFallback (a run of byte tokens that is not
// valid UTF-8 becomes one U+FFFD per byte), Fuse, Strip one leading space; for byte-level,
// the bytes of all tokens read as UTF-8 with from_utf8_lossy. Ids HF does not know (unused
// padding rows) give nothing.
std::string Tokenizer::decode(const std::vector<int32_t> &ids, bool skip_special) const {
    std::string out, byte_run;
    const auto flush_byte_run = [&] {
        if (is_valid_utf8(byte_run)) {
            out += byte_run;
        } else {
            for (size_t i = 0; i < byte_run.size(); i++) out += kReplacementCharacter;
        }
        byte_run.clear();
    };
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size()) continue;
        const int32_t type = types_[size_t(id)];
        if (skip_special && (type == TOKEN_CONTROL || type == TOKEN_UNKNOWN)) continue;
        if (kind_ == Kind::sentencepiece && type == TOKEN_BYTE) {
            byte_run += token_to_piece(id);
            continue;
        }
        if (!byte_run.empty()) flush_byte_run();
        out += token_to_piece(id, true);
    }
    if (!byte_run.empty()) flush_byte_run();
    if (add_space_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return utf8_lossy(out);
}

}  // namespace sqllm
