#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# pkg_config_consumer.sh PCDIR VERSION CXX OUTDIR CONSUMER_CPP (ctest consume.pkg_config)
# Builds consumer.cpp against an installed rotquant the way a Makefile would, with
#   PKG_CONFIG_PATH=PCDIR c++ $(pkg-config --cflags rotquant) -std=c++17 -O2 consumer.cpp
# after checking that rotquant.pc has the project's version and forces no -std flag, then runs
# it. Exit status 77 (ctest SKIP_RETURN_CODE) when pkg-config is not installed.
set -eu
pcdir=$1
version=$2
cxx=$3
out=$4
src=$5
if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIPPED: pkg-config not found (Debian: apt-get install pkg-config)"
  exit 77
fi
PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
got=$(pkg-config --modversion rotquant)
if [ "$got" != "$version" ]; then
  echo "pkg-config --modversion rotquant is '$got', expected '$version'"
  exit 1
fi
cflags=$(pkg-config --cflags rotquant)
case "$cflags" in
  *-std=*)
    echo "rotquant.pc forces a language standard: $cflags"
    exit 1
    ;;
esac
mkdir -p "$out"
echo "$cxx $cflags -std=c++17 -O2 $src -o $out/consumer"
# shellcheck disable=SC2086  # the flags are a word list
"$cxx" $cflags -std=c++17 -O2 "$src" -o "$out/consumer"
"$out/consumer"
