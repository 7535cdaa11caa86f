// SPDX-License-Identifier: Apache-2.0
// fuzz_safetensors.cpp: libFuzzer target for io::parse_safetensors. Any input may be rejected
// with a rotquant::error; an accepted one must hold consistent tensors that together copy no
// more than the input's bytes, and must survive serialize_safetensors -> parse_safetensors
// unchanged (names in order, dtypes, shapes, bytes, metadata).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "rotquant/io/safetensors.hpp"

namespace {

bool same(const rotquant::io::safetensors_file& a, const rotquant::io::safetensors_file& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    if (x.first != y.first || x.second.type != y.second.type || x.second.shape != y.second.shape ||
        x.second.bytes != y.second.bytes)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = rotquant::io;
  io::safetensors_file f;
  try {
    f = io::parse_safetensors(data, size, "fuzz");
  } catch (const rotquant::error&) {
    return 0;
  }
  std::uint64_t copied = 0;
  for (const auto& kv : f.tensors) {
    const io::tensor& t = kv.second;
    ROTQUANT_FUZZ_CHECK(kv.first != "__metadata__");
    ROTQUANT_FUZZ_CHECK(io::detail::checked_nbytes(t.shape, t.type, "fuzz") == t.bytes.size());
    ROTQUANT_FUZZ_CHECK(t.numel() >= 0);
    ROTQUANT_FUZZ_CHECK(f.contains(kv.first) && &f.at(kv.first) == &t);  // names are unique
    copied += t.bytes.size();
  }
  ROTQUANT_FUZZ_CHECK(copied <= size);  // the tensors tile the data section: one copy of it

  const std::vector<std::uint8_t> image = io::serialize_safetensors(f);
  ROTQUANT_FUZZ_CHECK(io::detail::load_le<std::uint64_t>(image.data()) % 8 == 0);
  const io::safetensors_file back = io::parse_safetensors(image.data(), image.size(), "round trip");
  ROTQUANT_FUZZ_CHECK(same(f, back));
  ROTQUANT_FUZZ_CHECK(io::serialize_safetensors(back) == image);
  return 0;
}
