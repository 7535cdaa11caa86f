# SPDX-License-Identifier: Apache-2.0
# Runs one libFuzzer binary for the fuzz.<name> ctest:
#   cmake -DFUZZER=<binary> -DSEEDS=<committed corpus> -DWORK=<scratch dir>
#         "-DARGS=<space-separated libFuzzer options>"
#         -P run_fuzzer.cmake
# The committed corpus is copied into WORK first (libFuzzer adds new inputs to its corpus
# directory), crash/leak/timeout artifacts are written to WORK, and any finding fails the test.

foreach(var FUZZER SEEDS WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT IS_DIRECTORY "${SEEDS}")
  message(FATAL_ERROR "run_fuzzer.cmake: no seed corpus at ${SEEDS}")
endif()

separate_arguments(options UNIX_COMMAND "${ARGS}")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/artifacts")
file(COPY "${SEEDS}/" DESTINATION "${WORK}/corpus")

execute_process(COMMAND "${FUZZER}" ${options} "-artifact_prefix=${WORK}/artifacts/"
                        "${WORK}/corpus"
                WORKING_DIRECTORY "${WORK}"
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  file(GLOB found "${WORK}/artifacts/*")
  message(FATAL_ERROR "${FUZZER} exited with ${status}; inputs that triggered it: ${found}")
endif()
