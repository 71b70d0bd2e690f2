// The Unicode the tokenizer needs: UTF-8 that keeps invalid bytes, the character properties the
// Hugging Face `tokenizers` components test (Rust's char::is_whitespace, is_numeric,
// is_punctuation), the four normalization forms and per-character lowercasing. Tables come
// from tools/gen_unicode_tables.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sqllm::unicode {

// A byte that is not part of well-formed UTF-8 travels through normalization and
// pre-tokenization as this pseudo-codepoint (kRawByte + byte) and comes out as the same byte:
// the tokenizer keeps arbitrary input bytes rather than replacing them.
constexpr uint32_t kRawByte = 0x110000;
constexpr const char *kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// The character at `pos` (< text.size()) and its length in bytes; a byte that does not start a
// well-formed sequence is one character, kRawByte + byte.
size_t utf8_decode(std::string_view text, size_t pos, uint32_t &cp);
void utf8_append(std::string &out, uint32_t cp);
bool is_valid_utf8(std::string_view text);
// Rust's String::from_utf8_lossy: each ill-formed sequence (as much of it as was valid, or one
// stray byte) becomes one U+FFFD.
std::string utf8_lossy(std::string_view text);

bool is_whitespace(uint32_t cp);   // White_Space
bool is_numeric(uint32_t cp);      // general category N*
bool is_punctuation(uint32_t cp);  // general category P*, or ASCII punctuation

enum class NormalForm { nfc, nfd, nfkc, nfkd };
std::string normalize(std::string_view text, NormalForm form);
std::string lowercase(std::string_view text);

}  // namespace sqllm::unicode
