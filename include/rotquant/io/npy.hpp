// SPDX-License-Identifier: Apache-2.0
// npy.hpp: strict, bounded reader and writer for NumPy .npy files (format versions 1, 2, 3).
//
// Accepted: little-endian or byte-order-free descr for f2/f4/f8/i1/u1/i4/i8 ('<f4', '|u1', ...),
// fortran_order False, any shape (including () and zero-sized dimensions). Everything else is
// rejected with rotquant::io::io_error naming the problem: bad magic, unknown version, header
// past the end of the file or above 100 MB, a header that is not the exact three-key dict,
// object/big-endian/unknown dtypes, fortran order, negative or overflowing shapes, and a data
// section whose length is not numel * itemsize.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "rotquant/io/tensor.hpp"

namespace rotquant {
namespace io {
namespace detail {

inline dtype npy_descr_to_dtype(const std::string& d, const std::string& what) {
  if (d.size() != 3) throw io_error(what + ": unsupported dtype descr '" + d + "'");
  const char order = d[0];
  const std::string kind = d.substr(1);
  if (order == '>') throw io_error(what + ": big-endian dtype '" + d + "' is not supported");
  const bool one_byte = kind == "i1" || kind == "u1";
  if (!(order == '<' || (order == '|' && one_byte) || (order == '=' && !one_byte)))
    throw io_error(what + ": unsupported byte order in dtype '" + d + "'");
  if (kind == "f4") return dtype::f32;
  if (kind == "f8") return dtype::f64;
  if (kind == "f2") return dtype::f16;
  if (kind == "i1") return dtype::i8;
  if (kind == "u1") return dtype::u8;
  if (kind == "i4") return dtype::i32;
  if (kind == "i8") return dtype::i64;
  throw io_error(what + ": unsupported dtype descr '" + d +
                 "' (object and other dtypes are rejected)");
}

inline std::string dtype_to_npy_descr(dtype t) {
  switch (t) {
    case dtype::f32:
      return "<f4";
    case dtype::f64:
      return "<f8";
    case dtype::f16:
      return "<f2";
    case dtype::i8:
      return "|i1";
    case dtype::u8:
      return "|u1";
    case dtype::i32:
      return "<i4";
    case dtype::i64:
      return "<i8";
    case dtype::bf16:
      break;
  }
  throw io_error("npy: NumPy has no bfloat16 dtype; convert to f32 or use safetensors");
}

// A tiny parser for the Python-literal header dict: {'descr': '<f4', 'fortran_order': False,
// 'shape': (2, 3), }
class npy_header_parser {
 public:
  npy_header_parser(const std::string& text, std::string what) : s_(text), what_(std::move(what)) {}

  void parse(std::string& descr, bool& fortran, std::vector<std::int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip();
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = quoted();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        if (have_descr) fail("duplicate key 'descr'");
        descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_fortran) fail("duplicate key 'fortran_order'");
        if (s_.compare(i_, 4, "True") == 0) {
          fortran = true;
          i_ += 4;
        } else if (s_.compare(i_, 5, "False") == 0) {
          fortran = false;
          i_ += 5;
        } else {
          fail("fortran_order is not True or False");
        }
        have_fortran = true;
      } else if (key == "shape") {
        if (have_shape) fail("duplicate key 'shape'");
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    skip();
    if (i_ != s_.size()) fail("trailing characters after the header dict");
    if (!have_descr || !have_fortran || !have_shape)
      fail("header dict lacks one of 'descr', 'fortran_order', 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    throw io_error(what_ + ": malformed header (" + why + ") at offset " + std::to_string(i_));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++i_;
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) fail("unterminated string");
    return s_.substr(start, i_++ - start);
  }
  std::vector<std::int64_t> tuple() {
    std::vector<std::int64_t> out;
    expect('(');
    for (;;) {
      skip();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("shape entry is not a non-negative integer");
      std::int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("shape entry overflows");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 long suffix
      out.push_back(v);
      skip();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in shape");
      }
    }
  }

  const std::string& s_;
  std::string what_;
  std::size_t i_ = 0;
};

}  // namespace detail

/// Parses a whole .npy file image. `what` names the source in error messages.
inline tensor parse_npy(const std::uint8_t* data, std::size_t size,
                        const std::string& what = "npy") {
  static const std::uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10) throw io_error(what + ": file shorter than the 10-byte .npy preamble");
  if (std::memcmp(data, magic, 6) != 0) throw io_error(what + ": bad magic (not a .npy file)");
  const int major = data[6];
  std::size_t header_len = 0, preamble = 0;
  if (major == 1) {
    header_len = static_cast<std::size_t>(data[8]) | (static_cast<std::size_t>(data[9]) << 8);
    preamble = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw io_error(what + ": file shorter than the 12-byte .npy v2 preamble");
    header_len = static_cast<std::size_t>(detail::load_le<std::uint32_t>(data + 8));
    preamble = 12;
  } else {
    throw io_error(what + ": unknown .npy format version " + std::to_string(major) + "." +
                   std::to_string(data[7]));
  }
  if (header_len > 100u * 1024u * 1024u) throw io_error(what + ": header larger than 100 MB");
  if (header_len > size - preamble) throw io_error(what + ": header runs past the end of the file");
  std::string header(reinterpret_cast<const char*>(data + preamble), header_len);
  for (char c : header)
    if (static_cast<unsigned char>(c) >= 0x80 && major < 3)
      throw io_error(what + ": non-ASCII byte in a version 1/2 header");
  std::string descr;
  bool fortran = false;
  tensor t;
  detail::npy_header_parser(header, what).parse(descr, fortran, t.shape);
  if (fortran) throw io_error(what + ": fortran_order True is not supported (save C-ordered)");
  t.type = detail::npy_descr_to_dtype(descr, what);
  const std::uint64_t nbytes = detail::checked_nbytes(t.shape, t.type, what);
  const std::size_t offset = preamble + header_len;
  if (nbytes != size - offset)
    throw io_error(what + ": data section has " + std::to_string(size - offset) +
                   " bytes, shape and dtype need " + std::to_string(nbytes));
  t.bytes.assign(data + offset, data + size);
  return t;
}

/// Reads a .npy file. Throws io_error (a rotquant::error) on any problem.
inline tensor read_npy(const std::string& path) {
  const auto bytes = detail::read_file(path);
  return parse_npy(bytes.data(), bytes.size(), path);
}

/// Serialises a tensor as .npy: version 1.0, or 2.0 (4-byte header length) when the header
/// does not fit in 65535 bytes, as NumPy does; the header is padded so data starts on 64 bytes.
inline std::vector<std::uint8_t> serialize_npy(const tensor& t) {
  const std::uint64_t nbytes = detail::checked_nbytes(t.shape, t.type, "npy");
  ROTQUANT_CHECK(nbytes == t.bytes.size(), "serialize_npy: tensor holds "
                                               << t.bytes.size()
                                               << " bytes, its shape and dtype need " << nbytes);
  std::string header =
      "{'descr': '" + detail::dtype_to_npy_descr(t.type) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    header += std::to_string(t.shape[i]);
    if (t.shape.size() == 1 || i + 1 < t.shape.size()) header += ",";
    if (i + 1 < t.shape.size()) header += " ";
  }
  header += "), }";
  auto padded = [&header](std::size_t preamble) {
    std::string h = header;
    h.append((64 - (preamble + h.size() + 1) % 64) % 64, ' ');
    return h + '\n';
  };
  std::size_t preamble = 10;
  std::string text = padded(preamble);
  if (text.size() > 65535) {
    preamble = 12;
    text = padded(preamble);
    ROTQUANT_CHECK(text.size() <= 0xFFFFFFFFu, "serialize_npy: header longer than 4 GiB");
  }
  static const std::uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  std::vector<std::uint8_t> out(preamble + text.size() + t.bytes.size());
  std::memcpy(out.data(), magic, 6);
  out[6] = preamble == 10 ? 1 : 2;
  out[7] = 0;
  for (std::size_t i = 0; i + 8 < preamble; ++i)
    out[8 + i] = static_cast<std::uint8_t>(text.size() >> (8 * i));
  std::memcpy(out.data() + preamble, text.data(), text.size());
  if (!t.bytes.empty())
    std::memcpy(out.data() + preamble + text.size(), t.bytes.data(), t.bytes.size());
  return out;
}

/// Writes a tensor as a .npy file.
inline void write_npy(const std::string& path, const tensor& t) {
  detail::write_file(path, serialize_npy(t));
}

}  // namespace io
}  // namespace rotquant
