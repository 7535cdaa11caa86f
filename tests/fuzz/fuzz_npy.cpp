// SPDX-License-Identifier: Apache-2.0
// fuzz_npy.cpp: libFuzzer target for io::parse_npy. Any input may be rejected with a
// rotquant::error; an accepted one must be self-consistent and survive serialize_npy ->
// parse_npy unchanged. Anything else (another exception, a sanitizer report, a trap) is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "rotquant/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = rotquant::io;
  io::tensor t;
  try {
    t = io::parse_npy(data, size, "fuzz");
  } catch (const rotquant::error&) {
    return 0;
  }
  // The data section was checked against the shape before it was copied.
  const std::uint64_t nbytes = io::detail::checked_nbytes(t.shape, t.type, "fuzz");
  ROTQUANT_FUZZ_CHECK(nbytes == t.bytes.size() && nbytes <= size);
  const std::int64_t numel = t.numel();
  ROTQUANT_FUZZ_CHECK(numel >= 0 &&
                      static_cast<std::uint64_t>(numel) * io::dtype_size(t.type) == nbytes);
  // Every element decodes from inside the buffer (ASan watches the reads).
  ROTQUANT_FUZZ_CHECK(t.to_vector<double>().size() == static_cast<std::size_t>(numel));

  // Round trip: what was accepted is written back (data aligned to 64 bytes) and re-read
  // identically; writing the re-read tensor gives the same image.
  const std::vector<std::uint8_t> image = io::serialize_npy(t);
  ROTQUANT_FUZZ_CHECK((image.size() - nbytes) % 64 == 0);
  const io::tensor back = io::parse_npy(image.data(), image.size(), "round trip");
  ROTQUANT_FUZZ_CHECK(back.type == t.type);
  ROTQUANT_FUZZ_CHECK(back.shape == t.shape);
  ROTQUANT_FUZZ_CHECK(back.bytes == t.bytes);
  ROTQUANT_FUZZ_CHECK(io::serialize_npy(back) == image);
  return 0;
}
