# Text parser fuzz target: parse, and on success print (~w, ~p, explicit), re-parse and compare.
girder_fuzz_target(text-parse ${CMAKE_SOURCE_DIR}/fuzz/fuzz-text-parse.c)
target_link_libraries(fuzz-text-parse PRIVATE girder_term)
