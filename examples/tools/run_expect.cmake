# SPDX-License-Identifier: Apache-2.0
# cmake -P run_expect.cmake -- COMMAND [ARGS...]
# Runs COMMAND, prints its stdout and stderr followed by "[exit code N]": a test's
# PASS_REGULAR_EXPRESSION can then check the message and the exact exit status together.
set(command)
set(after_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(after_separator TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "usage: cmake -P run_expect.cmake -- COMMAND [ARGS...]")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}[exit code ${rc}]")
