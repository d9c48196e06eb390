# Fuzz targets for dist's parsers of outside bytes: the handshake, the frame/control decoder, the TLS optfile.
foreach(t dist-handshake dist-ctl dist-tlsconf)
  girder_fuzz_target(${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-${t}.c)
  target_include_directories(fuzz-${t} PRIVATE ${CMAKE_SOURCE_DIR}/dist/src)
  target_link_libraries(fuzz-${t} PRIVATE girder_dist)
endforeach()
