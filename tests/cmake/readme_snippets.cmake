# SPDX-License-Identifier: Apache-2.0
# cmake -DREADME=<README.md> -DOUT=<generated .cpp> -P readme_snippets.cmake
# Writes every ```cpp block of README.md, verbatim, into one C++ file: each block's #include
# lines go to the top, the rest becomes the body of readme_snippet_<i>::run(), which sees the
# names README's snippets use (x_calib, w, x; see tests/readme/readme_context.hpp). The program
# built from it runs every snippet, so README's code is compiled and executed by the tests.
file(READ "${README}" text)
# CMake lists split on ';' and treat '[' ']' specially: protect them while splitting lines.
string(REPLACE ";" "@RQ_SEMI@" text "${text}")
string(REPLACE "[" "@RQ_LB@" text "${text}")
string(REPLACE "]" "@RQ_RB@" text "${text}")
string(REPLACE "\n" ";" lines "${text}")
set(includes "")
set(bodies "")
set(count 0)
set(in_block FALSE)
set(lineno 0)
foreach(line IN LISTS lines)
  math(EXPR lineno "${lineno} + 1")
  if(NOT in_block AND line MATCHES "^```cpp$")
    set(in_block TRUE)
    math(EXPR count "${count} + 1")
    math(EXPR first "${lineno} + 1")
    string(APPEND bodies "namespace readme_snippet_${count} {\n"
                         "void run(RQ_README_ARGS) {\n#line ${first} \"README.md\"\n")
  elseif(in_block AND line MATCHES "^```$")
    set(in_block FALSE)
    string(APPEND bodies "}\n}  // namespace readme_snippet_${count}\n\n")
  elseif(in_block)
    if(line MATCHES "^#include ")
      string(APPEND includes "${line}\n")
      string(APPEND bodies "\n")  # keeps the #line numbering
    else()
      string(APPEND bodies "${line}\n")
    endif()
  endif()
endforeach()
if(count EQUAL 0 OR in_block)
  message(FATAL_ERROR "${README}: ${count} ```cpp blocks found (or one left open)")
endif()
set(calls "")
foreach(i RANGE 1 ${count})
  string(APPEND calls "  rq_run_snippet(${i}, readme_snippet_${i}::run);\n")
endforeach()
string(CONCAT out "// Generated from README.md by tests/cmake/readme_snippets.cmake (${count} cpp blocks).\n"
        "${includes}\n#include \"readme_context.hpp\"\n\n${bodies}"
        "int main() {\n${calls}  return rq_snippet_failures();\n}\n")
string(REPLACE "@RQ_SEMI@" ";" out "${out}")
string(REPLACE "@RQ_LB@" "[" out "${out}")
string(REPLACE "@RQ_RB@" "]" out "${out}")
# Rewrite only on change, so the build does not recompile the snippets for nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${out}")
