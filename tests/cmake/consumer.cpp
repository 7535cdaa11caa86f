// SPDX-License-Identifier: Apache-2.0
// consumer.cpp: the program every consumption test builds against an installed or embedded
// rotquant; it exits non-zero unless the library computes what it should.
#include <rotquant/rotquant.hpp>

#include <cstdio>

int main() {
  rotquant::rng gen(42);
  const double draw = gen.normal();
  const float data[5] = {1.0f, -7.5f, 3.0f, 0.25f, -2.0f};
  const float m = rotquant::absmax(data, 5);
  std::printf("rotquant %s: absmax = %g on path %s, first normal(42) = %.17g\n",
              rotquant::version.string, static_cast<double>(m),
              rotquant::to_string(rotquant::active_isa()), draw);
  bool threw = false;
  try {
    rotquant::rng(1).uniform_int(0);
  } catch (const rotquant::error&) {
    threw = true;
  }
  return (m == 7.5f && threw && draw == draw) ? 0 : 1;
}
