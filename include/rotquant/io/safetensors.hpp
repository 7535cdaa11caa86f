// SPDX-License-Identifier: Apache-2.0
// safetensors.hpp: strict, bounded reader and writer for the safetensors format.
//
// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data section.
// The reader rejects (io_error naming the problem and the tensor): files under 8 bytes, N
// above 100 MB or past the end of the file, a header that is not valid UTF-8 or not a JSON
// object, duplicate names, entries lacking dtype/shape/data_offsets or with extra keys, unknown
// dtypes, negative or non-integer shapes, element counts that overflow, offsets with
// begin > end, spans that differ from numel * itemsize, overlaps, holes, and a data section
// whose size differs from the last offset; `__metadata__` must be a string-to-string map.
// The writer pads the header with spaces to a multiple of 8 bytes, as the reference writer does,
// and stores tensors in the order given.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/io/json.hpp"
#include "rotquant/io/tensor.hpp"

namespace rotquant {
namespace io {

/// The contents of a safetensors file: named tensors in file order plus string metadata.
struct safetensors_file {
  std::vector<std::pair<std::string, tensor>> tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`; throws io_error listing a few available names if absent.
  const tensor& at(const std::string& name) const {
    for (const auto& kv : tensors)
      if (kv.first == name) return kv.second;
    std::string some;
    for (std::size_t i = 0; i < tensors.size() && i < 5; ++i) some += " " + tensors[i].first;
    throw io_error("no tensor named '" + name + "' (file has " + std::to_string(tensors.size()) +
                   " tensors:" + some + (tensors.size() > 5 ? " ...)" : ")"));
  }
  bool contains(const std::string& name) const {
    for (const auto& kv : tensors)
      if (kv.first == name) return true;
    return false;
  }
  void add(const std::string& name, tensor t) {
    ROTQUANT_CHECK(!contains(name),
                   "safetensors_file::add: duplicate tensor name '" << name << "'");
    tensors.emplace_back(name, std::move(t));
  }
};

namespace detail {

inline bool safetensors_dtype(const std::string& s, dtype& out) {
  static const std::pair<const char*, dtype> table[] = {
      {"F32", dtype::f32}, {"F64", dtype::f64}, {"F16", dtype::f16}, {"BF16", dtype::bf16},
      {"I8", dtype::i8},   {"U8", dtype::u8},   {"I32", dtype::i32}, {"I64", dtype::i64}};
  for (const auto& e : table)
    if (s == e.first) {
      out = e.second;
      return true;
    }
  return false;
}

inline bool valid_utf8(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = p[i];
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

}  // namespace detail

/// Parses a whole safetensors file image. `what` names the source in error messages.
inline safetensors_file parse_safetensors(const std::uint8_t* data, std::size_t size,
                                          const std::string& what = "safetensors") {
  if (size < 8) throw io_error(what + ": file shorter than the 8-byte header length");
  const std::uint64_t n = detail::load_le<std::uint64_t>(data);
  if (n > 100ull * 1024 * 1024)
    throw io_error(what + ": header length " + std::to_string(n) + " exceeds 100 MB");
  if (n > size - 8)
    throw io_error(what + ": header length " + std::to_string(n) +
                   " runs past the end of the file");
  if (n < 2 || data[8] != '{') throw io_error(what + ": header does not start with '{'");
  if (!detail::valid_utf8(data + 8, static_cast<std::size_t>(n)))
    throw io_error(what + ": header is not valid UTF-8");
  const json_value root = parse_json(
      std::string(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(n)), what);
  if (root.type != json_value::kind::object) throw io_error(what + ": header is not a JSON object");

  const std::uint64_t data_size = size - 8 - n;
  const std::uint8_t* base = data + 8 + n;
  safetensors_file out;
  // Every entry is validated and the spans are checked to tile the data section before any
  // tensor bytes are copied: entries may claim overlapping spans, and copying each one first
  // would let a small file allocate (number of entries) x (data size) bytes.
  struct span {
    std::uint64_t begin, end;
    std::size_t index;  // into out.tensors
  };
  std::vector<span> spans;
  for (const auto& kv : root.object) {
    const std::string& name = kv.first;
    const json_value& e = kv.second;
    if (name == "__metadata__") {
      if (e.type != json_value::kind::object)
        throw io_error(what + ": __metadata__ is not an object");
      for (const auto& m : e.object) {
        if (m.second.type != json_value::kind::string)
          throw io_error(what + ": __metadata__ value of '" + m.first + "' is not a string");
        out.metadata[m.first] = m.second.string;
      }
      continue;
    }
    const std::string where = what + ": tensor '" + name + "'";
    if (e.type != json_value::kind::object) throw io_error(where + " entry is not an object");
    const json_value* dt = e.find("dtype");
    const json_value* sh = e.find("shape");
    const json_value* off = e.find("data_offsets");
    if (!dt || !sh || !off) throw io_error(where + " lacks dtype, shape or data_offsets");
    if (e.object.size() != 3) throw io_error(where + " has unexpected extra keys");
    tensor t;
    if (dt->type != json_value::kind::string || !detail::safetensors_dtype(dt->string, t.type))
      throw io_error(where + " has unsupported dtype '" + dt->string + "'");
    if (sh->type != json_value::kind::array) throw io_error(where + ": shape is not an array");
    for (const auto& d : sh->array) {
      if (d.type != json_value::kind::number || !d.is_integer || d.integer < 0)
        throw io_error(where + ": shape entries must be non-negative integers");
      t.shape.push_back(d.integer);
    }
    if (off->type != json_value::kind::array || off->array.size() != 2)
      throw io_error(where + ": data_offsets is not a [begin, end] pair");
    for (const auto& d : off->array)
      if (d.type != json_value::kind::number || !d.is_integer || d.integer < 0)
        throw io_error(where + ": data_offsets entries must be non-negative integers");
    const auto begin = static_cast<std::uint64_t>(off->array[0].integer);
    const auto end = static_cast<std::uint64_t>(off->array[1].integer);
    if (begin > end) throw io_error(where + ": data_offsets begin > end");
    const std::uint64_t nbytes = detail::checked_nbytes(t.shape, t.type, where);
    if (end - begin != nbytes)
      throw io_error(where + ": byte span " + std::to_string(end - begin) +
                     " differs from numel * itemsize = " + std::to_string(nbytes));
    if (end > data_size) throw io_error(where + ": data_offsets run past the end of the file");
    spans.push_back({begin, end, out.tensors.size()});
    out.tensors.emplace_back(name, std::move(t));
  }
  std::sort(spans.begin(), spans.end(), [](const span& a, const span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t cursor = 0;
  for (const auto& s : spans) {
    const std::string& name = out.tensors[s.index].first;
    if (s.begin < cursor) throw io_error(what + ": tensor '" + name + "' overlaps another tensor");
    if (s.begin > cursor)
      throw io_error(what + ": hole in the data section before tensor '" + name + "'");
    cursor = s.end;
  }
  if (cursor != data_size)
    throw io_error(what + ": data section has " + std::to_string(data_size) +
                   " bytes but the tensors end at " + std::to_string(cursor));
  // The spans tile the data section exactly, so the copies below total data_size bytes.
  for (const auto& s : spans)
    out.tensors[s.index].second.bytes.assign(base + s.begin, base + s.end);
  return out;
}

/// Reads a safetensors file. Throws io_error (a rotquant::error) on any problem.
inline safetensors_file read_safetensors(const std::string& path) {
  const auto bytes = detail::read_file(path);
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

/// Serialises tensors (in the given order) and metadata into a safetensors image.
inline std::vector<std::uint8_t> serialize_safetensors(const safetensors_file& file) {
  std::string header = "{";
  bool first = true;
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& m : file.metadata) {
      header += (f2 ? "" : ",") + json_quote(m.first) + ":" + json_quote(m.second);
      f2 = false;
    }
    header += "}";
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& kv : file.tensors) {
    const tensor& t = kv.second;
    ROTQUANT_CHECK(kv.first != "__metadata__", "safetensors: '__metadata__' is reserved");
    const std::uint64_t nbytes = detail::checked_nbytes(t.shape, t.type, kv.first);
    ROTQUANT_CHECK(nbytes == t.bytes.size(), "safetensors: tensor '" << kv.first << "' holds "
                                                                     << t.bytes.size()
                                                                     << " bytes, needs " << nbytes);
    header += (first ? "" : ",") + json_quote(kv.first) + ":{\"dtype\":\"" + dtype_name(t.type) +
              "\",\"shape\":[";
    for (std::size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
    first = false;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  // One allocation of the final size (length, header, data), filled by position: `offset` is
  // the sum of the tensors' byte counts, each checked above against its shape and dtype.
  const std::uint64_t n = header.size();
  std::vector<std::uint8_t> out(static_cast<std::size_t>(8 + n + offset));
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::size_t at = 8 + header.size();
  for (const auto& kv : file.tensors) {
    const std::vector<std::uint8_t>& b = kv.second.bytes;
    if (!b.empty()) std::memcpy(out.data() + at, b.data(), b.size());
    at += b.size();
  }
  return out;
}

/// Writes a safetensors file.
inline void write_safetensors(const std::string& path, const safetensors_file& file) {
  detail::write_file(path, serialize_safetensors(file));
}

}  // namespace io
}  // namespace rotquant
