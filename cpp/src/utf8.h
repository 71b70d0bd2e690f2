// UTF-8 well-formedness (Unicode 15, table 3-7): no overlong forms, no surrogates, nothing past
// U+10FFFF. Every string read from a file is checked with it (formats/SPEC.md §8).
#pragma once

#include <cstdint>
#include <string_view>

namespace sqllm {

inline bool is_valid_utf8(std::string_view s) {
    const auto *p = reinterpret_cast<const uint8_t *>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        const uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int len;
        uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
        if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            len = 4;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
        if (n - i < size_t(len) || p[i + 1] < lo || p[i + 1] > hi) return false;
        for (int k = 2; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return false;
        i += size_t(len);
    }
    return true;
}

}  // namespace sqllm
