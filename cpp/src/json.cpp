#include "json.h"

#include <cctype>
#include <cstdlib>

#include "tokenizer_unicode.h"

namespace sqllm {

class JsonParser {
public:
    explicit JsonParser(std::string_view text) : text_(text) {}

    bool parse(Json &out, std::string &error) {
        if (!value(out, 0)) return error = error_ + " at byte " + std::to_string(pos_), false;
        skip_space();
        if (pos_ != text_.size()) return error = "trailing characters at byte " + std::to_string(pos_), false;
        return true;
    }

private:
    static constexpr int kMaxDepth = 64;
    std::string_view text_;
    size_t pos_ = 0;
    std::string error_;

    bool fail(const char *message) {
        error_ = message;
        return false;
    }
    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) pos_++;
    }
    bool literal(std::string_view word) {
        if (text_.compare(pos_, word.size(), word) != 0) return fail("unexpected character");
        pos_ += word.size();
        return true;
    }

    bool value(Json &out, int depth) {
        if (depth > kMaxDepth) return fail("nested too deeply");
        skip_space();
        if (pos_ >= text_.size()) return fail("unexpected end");
        const char c = text_[pos_];
        if (c == '{') return object(out, depth);
        if (c == '[') return array(out, depth);
        if (c == '"') {
            out.type_ = Json::Type::string;
            return string(out.string_);
        }
        if (c == 't' || c == 'f') {
            out.type_ = Json::Type::boolean;
            out.boolean_ = c == 't';
            return literal(c == 't' ? "true" : "false");
        }
        if (c == 'n') {
            out.type_ = Json::Type::null;
            return literal("null");
        }
        return number(out);
    }

    bool number(Json &out) {
        const size_t start = pos_;
        if (pos_ < text_.size() && text_[pos_] == '-') pos_++;
        while (pos_ < text_.size() && (std::isdigit(uint8_t(text_[pos_])) || text_[pos_] == '.' || text_[pos_] == 'e' ||
                                       text_[pos_] == 'E' || text_[pos_] == '+' || text_[pos_] == '-'))
            pos_++;
        const std::string digits(text_.substr(start, pos_ - start));
        if (digits.empty() || digits == "-") return fail("unexpected character");
        char *end = nullptr;
        out.type_ = Json::Type::number;
        out.number_ = std::strtod(digits.c_str(), &end);
        if (end != digits.c_str() + digits.size()) return fail("malformed number");
        return true;
    }

    bool hex4(uint32_t &value) {
        if (pos_ + 4 > text_.size()) return fail("truncated \\u escape");
        value = 0;
        for (int i = 0; i < 4; i++) {
            const char h = text_[pos_++];
            const int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (digit < 0) return fail("malformed \\u escape");
            value = value * 16 + uint32_t(digit);
        }
        return true;
    }

    bool string(std::string &out) {
        pos_++;  // the opening quote
        while (true) {
            if (pos_ >= text_.size()) return fail("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return true;
            if (uint8_t(c) < 0x20) return fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= text_.size()) return fail("unterminated string");
            const char e = text_[pos_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(cp)) return false;
                if (cp >= 0xD800 && cp < 0xDC00 && text_.compare(pos_, 2, "\\u") == 0) {
                    const size_t save = pos_;
                    pos_ += 2;
                    uint32_t low;
                    if (!hex4(low)) return false;
                    if (low >= 0xDC00 && low < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    else pos_ = save;
                }
                if (cp >= 0xD800 && cp < 0xE000) return fail("lone surrogate in a \\u escape");
                unicode::utf8_append(out, cp);
                break;
            }
            default: return fail("unknown escape");
            }
        }
    }

    bool array(Json &out, int depth) {
        out.type_ = Json::Type::array;
        pos_++;
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == ']') return pos_++, true;
        while (true) {
            out.items_.emplace_back();
            if (!value(out.items_.back(), depth + 1)) return false;
            skip_space();
            if (pos_ >= text_.size()) return fail("unterminated array");
            const char c = text_[pos_++];
            if (c == ']') return true;
            if (c != ',') return fail("expected ',' or ']'");
        }
    }

    bool object(Json &out, int depth) {
        out.type_ = Json::Type::object;
        pos_++;
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == '}') return pos_++, true;
        while (true) {
            skip_space();
            if (pos_ >= text_.size() || text_[pos_] != '"') return fail("expected a key");
            std::string key;
            if (!string(key)) return false;
            skip_space();
            if (pos_ >= text_.size() || text_[pos_++] != ':') return fail("expected ':'");
            Json item;
            if (!value(item, depth + 1)) return false;
            out.members_[key] = std::move(item);
            skip_space();
            if (pos_ >= text_.size()) return fail("unterminated object");
            const char c = text_[pos_++];
            if (c == '}') return true;
            if (c != ',') return fail("expected ',' or '}'");
        }
    }
};

bool Json::parse(std::string_view text, Json &out, std::string &error) {
    Json parsed;
    if (!JsonParser(text).parse(parsed, error)) return false;
    out = std::move(parsed);
    return true;
}

const Json *Json::find(const std::string &key) const {
    if (type_ != Type::object) return nullptr;
    auto it = members_.find(key);
    return it == members_.end() ? nullptr : &it->second;
}

}  // namespace sqllm
