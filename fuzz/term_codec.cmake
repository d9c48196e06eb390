# Fuzz targets for term_codec's parsers of outside bytes.
girder_fuzz_target(etf-decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-etf-decode.c)
target_link_libraries(fuzz-etf-decode PRIVATE girder_term)
