// A small JSON reader for the tokenizer pipeline of formats/SPEC.md §5 (a few kilobytes of
// tokenizer.json's own spelling). Values are read into a tree; errors carry a byte offset.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sqllm {

class Json {
public:
    enum class Type { null, boolean, number, string, array, object };

    // Parses `text` as one JSON value. On error returns false with a message in `error`.
    static bool parse(std::string_view text, Json &out, std::string &error);

    bool is_null() const { return type_ == Type::null; }
    bool is_object() const { return type_ == Type::object; }
    bool is_array() const { return type_ == Type::array; }
    bool is_string() const { return type_ == Type::string; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }

    bool as_bool() const { return boolean_; }
    double as_number() const { return number_; }
    const std::string &as_string() const { return string_; }
    const std::vector<Json> &items() const { return items_; }

    // The member `key` of an object, or nullptr when absent (or this is no object).
    const Json *find(const std::string &key) const;

private:
    Type type_ = Type::null;
    bool boolean_ = false;
    double number_ = 0.0;
    std::string string_;
    std::vector<Json> items_;
    std::map<std::string, Json> members_;

    friend class JsonParser;
};

}  // namespace sqllm
