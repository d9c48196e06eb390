# Fuzz targets for dist's parsers of outside bytes: the handshake and the frame/control decoder.
foreach(t dist-handshake dist-ctl)
  girder_fuzz_target(${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-${t}.c)
  target_include_directories(fuzz-${t} PRIVATE ${CMAKE_SOURCE_DIR}/dist/src)
  target_link_libraries(fuzz-${t} PRIVATE girder_dist)
endforeach()
