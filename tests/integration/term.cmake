# term_codec against real Erlang: random terms round-trip through the girder CLI.
girder_needs(TERM_INT_ERL "integration/term_roundtrip" erl erlc)
if(TERM_INT_ERL)
  add_test(NAME integration/term_roundtrip
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder> 2000 42)
  set_tests_properties(integration/term_roundtrip PROPERTIES TIMEOUT 600 LABELS integration)
endif()
