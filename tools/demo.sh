#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh: build and run the main demo (README's first command): the shipped LLaMA-architecture
# model quantized to W4A4 by every preset, with perplexity and speed. Arguments are passed to
# rotquant-llama-eval (e.g. --full for three seeds on the whole text).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
rq_ensure_packages g++ cmake make libeigen3-dev libgtest-dev googletest
cmake --preset dev >/dev/null
cmake --build --preset dev --target rotquant-llama-eval rotquant_demo
./build/dev/examples/rotquant_demo
echo
./build/dev/examples/rotquant-llama-eval "$@"
