# SPDX-License-Identifier: Apache-2.0
# cmake -DEXE=<test executable> -DFILTER=<the union of its ctests' --gtest_filter> [-DEMULATOR=..]
#       -P check_filters.cmake
# Fails when a test of EXE is run by none of its ctests (a suite the per-file filters missed).
foreach(mode all covered)
  set(args --gtest_list_tests)
  if(mode STREQUAL "covered")
    list(APPEND args "--gtest_filter=${FILTER}")
  endif()
  execute_process(COMMAND ${EMULATOR} ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXE} --gtest_list_tests failed (exit ${rc})")
  endif()
  # Test lines are indented by two spaces; suite lines are not.
  string(REGEX MATCHALL "\n  [^\n]+" tests_${mode} "\n${out}")
  list(LENGTH tests_${mode} n_${mode})
endforeach()
if(NOT n_all EQUAL n_covered OR n_all EQUAL 0)
  message(FATAL_ERROR "${EXE}: ${n_all} tests, only ${n_covered} run by the per-file ctests; "
                      "a TEST/TEST_F/TEST_P/TYPED_TEST line tests/CMakeLists.txt does not parse?")
endif()
message(STATUS "${EXE}: all ${n_all} tests run by the per-file ctests")
