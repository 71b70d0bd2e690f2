#include "tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <memory>
#include <new>

#include "sqf.h"
#include "tokenizer_unicode.h"

namespace sqllm {

namespace {

// Oniguruma's \s is the White_Space property; PCRE2's (with UCP) leaves out U+0085.
constexpr const char *kWhiteSpace = "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's \w is Letter | Mark | Number | Connector_Punctuation; PCRE2's (10.42) leaves out marks.
constexpr const char *kWord = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
// Oniguruma's \h is a hexadecimal digit; PCRE2's is horizontal space.
constexpr const char *kHexDigit = "0-9a-fA-F";

// The pattern rewritten for PCRE2 where Oniguruma (Ruby syntax) means something else. A
// construct PCRE2 cannot express (nested classes, class intersection) is an error.
bool translate(const std::string &pattern, std::string &out, std::string &error) {
    int class_depth = 0;  // 1 inside [...]
    for (size_t i = 0; i < pattern.size(); i++) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[++i];
            const char *set = e == 's' || e == 'S' ? kWhiteSpace : e == 'w' || e == 'W' ? kWord : e == 'h' || e == 'H' ? kHexDigit : nullptr;
            const bool negated = e == 'S' || e == 'W' || e == 'H';
            if (set && class_depth == 0) {
                out += negated ? "[^" : "[";
                out += set;
                out += ']';
            } else if (set && !negated) {
                out += set;
            } else if (set) {
                return error = std::string("\\") + e + " inside a character class is not supported", false;
            } else {
                out += c;
                out += e;
            }
            continue;
        }
        if (class_depth > 0) {
            if (c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
                const size_t close = pattern.find(":]", i + 2);
                if (close == std::string::npos) return error = "unterminated POSIX class", false;
                out.append(pattern, i, close + 2 - i);
                i = close + 1;
                continue;
            }
            if (c == '[') return error = "nested character classes are not supported", false;
            if (c == '&' && i + 1 < pattern.size() && pattern[i + 1] == '&') return error = "class intersection (&&) is not supported", false;
            if (c == ']') class_depth = 0;
            out += c;
            continue;
        }
        if (c == '[') {
            class_depth = 1;
            out += c;
            // A ']' first in a class (after an optional '^') is a literal.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
            continue;
        }
        out += c;
    }
    if (class_depth) return error = "unterminated character class", false;
    return true;
}

std::string pcre2_message(int code) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(code, buffer, sizeof buffer);
    return reinterpret_cast<const char *>(buffer);
}

std::string quote_meta(const std::string &literal) {
    std::string out;
    for (char c : literal) {
        if (!std::isalnum(uint8_t(c)) && uint8_t(c) < 0x80) out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

// Steps one match attempt may take. The patterns of real tokenizers take tens; a pattern that
// backtracks without bound (from a corrupt or hostile file) stops here with an error instead of
// hanging the tokenizer.
constexpr uint32_t kMatchLimit = 1000000;

struct Regex::Impl {
    pcre2_code *code = nullptr;
    pcre2_match_context *context = nullptr;
    ~Impl() {
        pcre2_match_context_free(context);
        pcre2_code_free(code);
    }
};

Regex::~Regex() = default;

std::unique_ptr<Regex> Regex::compile(const std::string &pattern, std::string &error) {
    std::string translated;
    if (!translate(pattern, translated, error)) return nullptr;
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_MATCH_INVALID_UTF, &code, &offset, nullptr);
    if (!compiled) {
        error = pcre2_message(code) + " at offset " + std::to_string(offset);
        return nullptr;
    }
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // where JIT is unavailable, matching is interpreted
    std::unique_ptr<Regex> regex(new Regex());
    regex->impl_ = std::make_unique<Impl>();
    regex->impl_->code = compiled;
    regex->impl_->context = pcre2_match_context_create(nullptr);
    if (!regex->impl_->context) throw std::bad_alloc();
    pcre2_set_match_limit(regex->impl_->context, kMatchLimit);
    return regex;
}

std::unique_ptr<Regex> Regex::literal(const std::string &literal, std::string &error) {
    if (!unicode::is_valid_utf8(literal)) return error = "the pattern is not UTF-8", nullptr;
    return compile(quote_meta(literal), error);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> out;
    const std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data *)> owned(
        pcre2_match_data_create_from_pattern(impl_->code, nullptr), pcre2_match_data_free);
    pcre2_match_data *match = owned.get();
    if (!match) throw std::bad_alloc();
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t search_from = 0;
    size_t last_match_end = SIZE_MAX;
    while (search_from <= text.size()) {
        int rc = pcre2_match(impl_->code, subject, text.size(), search_from, 0, match, impl_->context);
        // The JIT's stack can run out where the interpreter's heap-based frames do not.
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && rc != PCRE2_ERROR_MATCHLIMIT)
            rc = pcre2_match(impl_->code, subject, text.size(), search_from, PCRE2_NO_JIT, match, impl_->context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0)
            throw Error(SQLLM_ERR_FORMAT, "tokenizer: a pattern of the file's pipeline failed on this text (" + pcre2_message(rc) + ")");
        const PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(match);
        const size_t start = ovector[0], end = ovector[1];
        if (start == end && last_match_end == end) {
            // onig's find_iter: no empty match right after the previous match; try one character on.
            if (search_from >= text.size()) break;
            uint32_t cp;
            search_from += unicode::utf8_decode(text, search_from, cp);
            continue;
        }
        out.emplace_back(start, end);
        last_match_end = end;
        if (end == start) {
            if (end >= text.size()) break;
            uint32_t cp;
            search_from = end + unicode::utf8_decode(text, end, cp);
        } else {
            search_from = end;
        }
    }
    return out;
}

}  // namespace sqllm
