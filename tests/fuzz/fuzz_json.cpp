// SPDX-License-Identifier: Apache-2.0
// fuzz_json.cpp: libFuzzer target for io::parse_json (the reader behind safetensors headers).
// Any input may be rejected with a rotquant::error. An accepted document is written back with
// a writer local to this file and must re-read to the same value, and json_quote of the raw
// input bytes must always parse back to exactly those bytes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "fuzz_check.hpp"
#include "rotquant/io/json.hpp"

namespace {

using rotquant::io::json_value;

// A literal that re-reads to the same double and the same is_integer / integer fields.
std::string number_literal(const json_value& v) {
  if (v.is_integer)
    return v.integer == 0 && std::signbit(v.number) ? "-0" : std::to_string(v.integer);
  if (std::isinf(v.number)) return v.number < 0 ? "-1e999" : "1e999";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v.number);
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";  // keep it a non-integer literal
  return s;
}

void write(const json_value& v, std::string& out) {
  switch (v.type) {
    case json_value::kind::null:
      out += "null";
      break;
    case json_value::kind::boolean:
      out += v.boolean ? "true" : "false";
      break;
    case json_value::kind::number:
      out += number_literal(v);
      break;
    case json_value::kind::string:
      out += rotquant::io::json_quote(v.string);
      break;
    case json_value::kind::array:
      out += '[';
      for (std::size_t i = 0; i < v.array.size(); ++i) {
        if (i) out += ',';
        write(v.array[i], out);
      }
      out += ']';
      break;
    case json_value::kind::object:
      out += '{';
      for (std::size_t i = 0; i < v.object.size(); ++i) {
        if (i) out += ',';
        out += rotquant::io::json_quote(v.object[i].first);
        out += ':';
        write(v.object[i].second, out);
      }
      out += '}';
      break;
  }
}

bool same(const json_value& a, const json_value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case json_value::kind::null:
      return true;
    case json_value::kind::boolean:
      return a.boolean == b.boolean;
    case json_value::kind::number:
      return std::memcmp(&a.number, &b.number, sizeof(double)) == 0 &&
             a.is_integer == b.is_integer && (!a.is_integer || a.integer == b.integer);
    case json_value::kind::string:
      return a.string == b.string;
    case json_value::kind::array:
      if (a.array.size() != b.array.size()) return false;
      for (std::size_t i = 0; i < a.array.size(); ++i)
        if (!same(a.array[i], b.array[i])) return false;
      return true;
    case json_value::kind::object:
      if (a.object.size() != b.object.size()) return false;
      for (std::size_t i = 0; i < a.object.size(); ++i)
        if (a.object[i].first != b.object[i].first || !same(a.object[i].second, b.object[i].second))
          return false;
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = rotquant::io;
  const std::string text(reinterpret_cast<const char*>(data), size);

  // json_quote and the string reader are inverses for every byte string.
  const json_value quoted = io::parse_json(io::json_quote(text), "quote");
  ROTQUANT_FUZZ_CHECK(quoted.type == json_value::kind::string && quoted.string == text);

  json_value v;
  try {
    v = io::parse_json(text, "fuzz");
  } catch (const rotquant::error&) {
    return 0;
  }
  std::string image;
  write(v, image);
  const json_value back = io::parse_json(image, "round trip");
  ROTQUANT_FUZZ_CHECK(same(v, back));
  std::string again;
  write(back, again);
  ROTQUANT_FUZZ_CHECK(again == image);
  return 0;
}
