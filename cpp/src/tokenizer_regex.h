// Regular expressions with the meaning Hugging Face `tokenizers` gives them: its Split
// pre-tokenizer and Replace normalizer/decoder run Oniguruma (Ruby syntax); this runs PCRE2
// (UTF, Unicode properties, JIT) with `^` and `$` at line boundaries as in Ruby, on the pattern
// translated where the two engines differ: \s, \w and \h (and their negations) are spelled out
// as Oniguruma means them. Not translated: \b and \B use PCRE2's word characters (letters,
// numbers, underscore), which differ from Oniguruma's on combining marks and other connector
// punctuation; nested classes and class intersection are refused.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sqllm {

class Regex {
public:
    // Compiles an Oniguruma pattern; returns nullptr and says why in `error` if it cannot.
    static std::unique_ptr<Regex> compile(const std::string &pattern, std::string &error);
    // A pattern that matches `literal` exactly.
    static std::unique_ptr<Regex> literal(const std::string &literal, std::string &error);
    ~Regex();
    Regex(const Regex &) = delete;
    Regex &operator=(const Regex &) = delete;

    // [start, end) of each match, left to right, as onig's find_iter gives them: after an empty
    // match the search resumes one character later, and an empty match right where the previous
    // match ended is skipped. Bytes that are not UTF-8 never match.
    std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

private:
    Regex() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sqllm
