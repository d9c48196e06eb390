# libnode: re-run the exit-rule scenarios in real Erlang and check the recorded results still hold.
find_program(ESCRIPT_EXECUTABLE escript)
if(ESCRIPT_EXECUTABLE)
  add_test(NAME libnode/exit-rules-erlang
    COMMAND sh -c "'${ESCRIPT_EXECUTABLE}' '${CMAKE_CURRENT_SOURCE_DIR}/libnode/exit_rules.escript' | diff -u '${CMAKE_CURRENT_SOURCE_DIR}/libnode/exit_rules.expected' -")
  set_tests_properties(libnode/exit-rules-erlang PROPERTIES TIMEOUT 120 LABELS integration)
endif()
