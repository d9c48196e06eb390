# term_codec against real Erlang: random terms round-trip through the girder CLI, and through
# term-foreign-roundtrip with every new atom foreign.
add_test(NAME integration/term_roundtrip
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder> 2000 42)
set_tests_properties(integration/term_roundtrip PROPERTIES TIMEOUT 600 LABELS integration)

add_executable(term-foreign-roundtrip ${CMAKE_CURRENT_SOURCE_DIR}/term/foreign_roundtrip.c)
target_link_libraries(term-foreign-roundtrip PRIVATE term_codec)
add_test(NAME integration/term_roundtrip_foreign
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term/run_roundtrip.sh $<TARGET_FILE:girder> 2000 42
                 $<TARGET_FILE:term-foreign-roundtrip>)
set_tests_properties(integration/term_roundtrip_foreign PROPERTIES TIMEOUT 600 LABELS integration)
