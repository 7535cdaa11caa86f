// SPDX-License-Identifier: Apache-2.0
// fuzz_check.hpp: the invariant check the libFuzzer targets share. A failed check names itself
// on stderr and traps, which libFuzzer reports as a crash and saves the input as an artifact.
#pragma once

#include <cstdio>

#define ROTQUANT_FUZZ_CHECK(cond)                                                        \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                  \
    }                                                                                    \
  } while (0)
