// SPDX-License-Identifier: Apache-2.0
// json.hpp: a small strict JSON reader and string escaper, enough for safetensors headers and
// transform-file metadata. Bounded: nesting depth 64; errors name the offset.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/io/tensor.hpp"

namespace rotquant {
namespace io {

/// A parsed JSON value. Objects keep their members in file order (duplicates are rejected).
struct json_value {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;   // the literal had no fraction or exponent
  std::int64_t integer = 0;  // valid when is_integer and it fits
  std::string string;
  std::vector<json_value> array;
  std::vector<std::pair<std::string, json_value>> object;

  const json_value* find(const std::string& key) const {
    for (const auto& kv : object)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
};

namespace detail {

class json_parser {
 public:
  json_parser(const char* data, std::size_t size, std::string what)
      : p_(data), n_(size), what_(std::move(what)) {}

  json_value parse_document() {
    skip();
    json_value v = value(0);
    skip();
    if (i_ != n_) fail("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw io_error(what_ + ": invalid JSON header (" + why + ") at byte " + std::to_string(i_));
  }
  char peek() const { return i_ < n_ ? p_[i_] : '\0'; }
  void skip() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\n' || p_[i_] == '\r' || p_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }

  json_value value(int depth) {
    if (depth > 64) fail("nesting deeper than 64");
    json_value v;
    const char c = peek();
    if (c == '{') {
      v.type = json_value::kind::object;
      ++i_;
      skip();
      if (peek() == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        skip();
        if (peek() != '"') fail("object key is not a string");
        std::string key = string_literal();
        for (const auto& kv : v.object)
          if (kv.first == key) fail("duplicate key '" + key + "'");
        skip();
        expect(':');
        skip();
        v.object.emplace_back(std::move(key), value(depth + 1));
        skip();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = json_value::kind::array;
      ++i_;
      skip();
      if (peek() == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        skip();
        v.array.push_back(value(depth + 1));
        skip();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = json_value::kind::string;
      v.string = string_literal();
      return v;
    }
    if (literal("true")) {
      v.type = json_value::kind::boolean;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.type = json_value::kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail("unexpected character");
  }

  bool literal(const char* word) {
    const std::size_t len = std::char_traits<char>::length(word);
    if (n_ - i_ >= len && std::char_traits<char>::compare(p_ + i_, word, len) == 0) {
      i_ += len;
      return true;
    }
    return false;
  }

  json_value number() {
    json_value v;
    v.type = json_value::kind::number;
    const std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (!(peek() >= '0' && peek() <= '9')) fail("malformed number");
    if (peek() == '0' && i_ + 1 < n_ && p_[i_ + 1] >= '0' && p_[i_ + 1] <= '9')
      fail("leading zero in number");
    while (peek() >= '0' && peek() <= '9') ++i_;
    bool integral = true;
    if (peek() == '.') {
      integral = false;
      ++i_;
      if (!(peek() >= '0' && peek() <= '9')) fail("malformed fraction");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!(peek() >= '0' && peek() <= '9')) fail("malformed exponent");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    const std::string text(p_ + start, i_ - start);
    v.number = std::strtod(text.c_str(), nullptr);
    if (integral) {
      // Exact 64-bit parse; numbers beyond int64 are kept as non-integers.
      std::int64_t acc = 0;
      bool fits = true;
      const bool neg = text[0] == '-';
      for (std::size_t k = neg ? 1 : 0; k < text.size(); ++k) {
        const int d = text[k] - '0';
        if (acc > (std::numeric_limits<std::int64_t>::max() - d) / 10) {
          fits = false;
          break;
        }
        acc = acc * 10 + d;
      }
      v.is_integer = fits;
      v.integer = neg ? -acc : acc;
    }
    return v;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::uint32_t hex4() {
    if (n_ - i_ < 4) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = p_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        fail("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string string_literal() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(p_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= n_) fail("unterminated escape");
      const char e = p_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(i_ + 1 < n_ && p_[i_] == '\\' && p_[i_ + 1] == 'u')) fail("lone surrogate");
            i_ += 2;
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail(std::string("unknown escape \\") + e);
      }
    }
  }

  const char* p_;
  std::size_t n_;
  std::string what_;
  std::size_t i_ = 0;
};

}  // namespace detail

/// Parses a JSON document; throws io_error naming `what` and the byte offset on any error.
inline json_value parse_json(const std::string& text, const std::string& what = "json") {
  return detail::json_parser(text.data(), text.size(), what).parse_document();
}

/// A JSON string literal (with quotes) for `s`: escapes quotes, backslashes and control chars.
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          static const char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace io
}  // namespace rotquant
