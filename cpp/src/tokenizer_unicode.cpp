#include "tokenizer_unicode.h"

#include <algorithm>
#include <iterator>
#include <unordered_map>
#include <vector>

namespace sqllm::unicode {
namespace {

#include "unicode_tables.inc"

// The UTF-8 sequence at `pos`, checked against the well-formed sequences of the Unicode
// standard (table 3-7: no overlong forms, surrogates or values above U+10FFFF). Returns its
// length and sets `cp`; for an ill-formed sequence returns minus the length of its longest
// valid beginning (at least 1 byte), which is what one U+FFFD replaces.
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

template <size_t N>
bool in_ranges(uint32_t cp, const CodepointRange (&ranges)[N]) {
    const CodepointRange *it = std::upper_bound(ranges, ranges + N, cp, [](uint32_t c, const CodepointRange &r) { return c < r.first; });
    return it != ranges && cp <= (it - 1)->last;
}

template <typename T, size_t N>
const T *find_entry(const T (&table)[N], uint32_t cp) {
    const T *it = std::lower_bound(table, table + N, cp, [](const T &e, uint32_t c) { return e.codepoint < c; });
    return it != table + N && it->codepoint == cp ? it : nullptr;
}

constexpr uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

uint8_t combining_class(uint32_t cp) {
    const auto *end = kCombiningClassRanges + std::size(kCombiningClassRanges);
    const auto *it = std::upper_bound(kCombiningClassRanges, end, cp, [](uint32_t c, const CombiningClassRange &r) { return c < r.first; });
    return it != kCombiningClassRanges && cp <= (it - 1)->last ? (it - 1)->combining_class : 0;
}

void decompose(uint32_t cp, bool compatibility, std::vector<uint32_t> &out) {
    if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
        const uint32_t s = cp - kHangulS;
        out.push_back(kHangulL + s / kHangulNCount);
        out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
        if (s % kHangulTCount) out.push_back(kHangulT + s % kHangulTCount);
        return;
    }
    if (const CanonicalDecomposition *d = find_entry(kCanonicalDecompositions, cp)) {
        decompose(d->first, compatibility, out);
        if (d->second) decompose(d->second, compatibility, out);
        return;
    }
    if (compatibility) {
        if (const CompatibilityDecomposition *d = find_entry(kCompatibilityDecompositions, cp)) {
            for (size_t i = 0; i < d->length; i++) decompose(kCompatibilityData[d->offset + i], compatibility, out);
            return;
        }
    }
    out.push_back(cp);
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

// A lead byte of 0xCC or more starts a codepoint of U+0300 or more (or is invalid); below that,
// text is NFC already. This test relies on the table's threshold being at least U+0300.
static_assert(kNfcFirstAffectedCodepoint >= 0x300, "the NFC quick check below assumes U+0300");
bool may_change(std::string_view text, NormalForm form) {
    const uint8_t threshold = form == NormalForm::nfc ? 0xCC : 0x80;
    return std::any_of(text.begin(), text.end(), [&](char c) { return uint8_t(c) >= threshold; });
}

}  // namespace

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

bool is_whitespace(uint32_t cp) { return cp < kRawByte && in_ranges(cp, kWhitespaceRanges); }
bool is_numeric(uint32_t cp) { return cp < kRawByte && in_ranges(cp, kNumberRanges); }
bool is_punctuation(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
    return cp < kRawByte && in_ranges(cp, kPunctuationRanges);
}

// UAX #15: full decomposition, canonical ordering, then (for NFC and NFKC) canonical composition.
std::string normalize(std::string_view text, NormalForm form) {
    if (!may_change(text, form)) return std::string(text);
    const bool compatibility = form == NormalForm::nfkc || form == NormalForm::nfkd;
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    uint32_t cp;
    for (size_t pos = 0; pos < text.size();) {
        pos += utf8_decode(text, pos, cp);
        decompose(cp, compatibility, cps);
    }
    // Canonical ordering: a stable sort of each run of nonzero combining classes.
    std::vector<uint8_t> classes(cps.size());
    for (size_t i = 0; i < cps.size(); i++) classes[i] = cps[i] < kRawByte ? combining_class(cps[i]) : 0;
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
    std::string out;
    out.reserve(text.size());
    if (form == NormalForm::nfd || form == NormalForm::nfkd) {
        for (uint32_t c : cps) utf8_append(out, c);
        return out;
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
    for (uint32_t c : composed) utf8_append(out, c);
    return out;
}

std::string lowercase(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    uint32_t cp;
    for (size_t pos = 0; pos < text.size();) {
        const size_t length = utf8_decode(text, pos, cp);
        if (cp >= 'A' && cp <= 'Z') {
            out += char(cp + 32);
        } else if (cp < 0x80 || cp >= kRawByte) {
            out.append(text.substr(pos, length));
        } else if (const LowercaseMapping *m = find_entry(kLowercaseMappings, cp)) {
            utf8_append(out, m->first);
            if (m->second) utf8_append(out, m->second);
        } else {
            out.append(text.substr(pos, length));
        }
        pos += length;
    }
    return out;
}

}  // namespace sqllm::unicode
