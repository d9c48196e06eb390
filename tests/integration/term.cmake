# term_codec against real Erlang: random terms round-trip through the girder CLI, and through
# term-foreign-roundtrip with every new atom foreign.
add_executable(term-foreign-roundtrip ${CMAKE_CURRENT_SOURCE_DIR}/term/foreign_roundtrip.c)
target_link_libraries(term-foreign-roundtrip PRIVATE term_codec)
girder_needs(TERM_INT_ERL "integration/term_roundtrip" erl erlc)
if(TERM_INT_ERL)
  # four CLI runs per term: a sanitizer build's start-up cost (~0.1 s each) makes 2000 terms
  # take longer than the test may, so it checks fewer there (the codec's own tests run in full)
  if(GIRDER_ASAN OR GIRDER_TSAN)
    set(TERM_ROUNDTRIP_COUNT 400)
  else()
    set(TERM_ROUNDTRIP_COUNT 2000)
  endif()
  add_test(NAME integration/term_roundtrip
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder>
                   ${TERM_ROUNDTRIP_COUNT} 42)
  set_tests_properties(integration/term_roundtrip PROPERTIES TIMEOUT 600 LABELS integration)
  add_test(NAME integration/term_roundtrip_foreign
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder>
                   ${TERM_ROUNDTRIP_COUNT} 42 $<TARGET_FILE:term-foreign-roundtrip>)
  set_tests_properties(integration/term_roundtrip_foreign PROPERTIES TIMEOUT 600 LABELS integration)
endif()
