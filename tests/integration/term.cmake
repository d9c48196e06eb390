# term_codec against real Erlang: random terms round-trip through the girder CLI.
add_test(NAME integration/term_roundtrip
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder> 2000 42)
set_tests_properties(integration/term_roundtrip PROPERTIES TIMEOUT 600 LABELS integration)
