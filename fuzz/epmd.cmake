# libFuzzer target for epmd: request framing, parsing and handling, and the client's answer decoders.
girder_fuzz_target(epmd-request ${CMAKE_CURRENT_LIST_DIR}/fuzz-epmd-request.c)
target_include_directories(fuzz-epmd-request PRIVATE ${CMAKE_SOURCE_DIR}/epmd/src)
target_link_libraries(fuzz-epmd-request PRIVATE girder_epmd)
