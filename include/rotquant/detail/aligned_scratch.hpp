// SPDX-License-Identifier: Apache-2.0
// detail/aligned_scratch.hpp: a reusable scratch buffer aligned to the 64-byte cache line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {

/// A growable scratch buffer whose storage starts on a 64-byte line (kernels keep one per thread
/// and reuse it): a 64-byte load or a tile row that straddles two lines costs two L1 accesses.
template <class T>
class aligned_scratch {
 public:
  T* reserve(index_t n) {
    const std::size_t need = static_cast<std::size_t>(n) * sizeof(T) + 64;
    if (raw_.size() < need) raw_.resize(need);
    const auto p = reinterpret_cast<std::uintptr_t>(raw_.data());
    return reinterpret_cast<T*>(raw_.data() + ((64 - p % 64) % 64));
  }

 private:
  std::vector<unsigned char> raw_;
};

}  // namespace detail
}  // namespace rotquant
