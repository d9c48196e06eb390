# dist integration tests: girderd against real Erlang/OTP (and Elixir) nodes on loopback.
# sanitizer builds run several times slower: timing bounds in the scripts widen with this
if(GIRDER_ASAN OR GIRDER_TSAN)
  set(DIST_SANITIZED 1)
else()
  set(DIST_SANITIZED 0)
endif()
# ThreadSanitizer keeps state for every process context that ever ran: memory bounds do not hold
set(DIST_TSAN 0)
if(GIRDER_TSAN)
  set(DIST_TSAN 1)
endif()
set(DIST_SAN_ENV "DIST_SANITIZED=${DIST_SANITIZED};DIST_TSAN=${DIST_TSAN}")
set(DIST_INT_TESTS basic nodedown ticks mesh interleave global aliases atom_cache dynamic spawnmon
    nonblocking restart global_join reconnect drain)
girder_needs(DIST_INT_ERL "dist-int-* (girderd with Erlang nodes)" erl erlc)
girder_needs(DIST_INT_ELIXIR "dist-int-elixir" elixir)
if(NOT DIST_INT_ERL)
  set(DIST_INT_TESTS "")
elseif(DIST_INT_ELIXIR)
  list(APPEND DIST_INT_TESTS elixir)
endif()
foreach(t ${DIST_INT_TESTS})
  add_test(NAME dist-int-${t} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.sh)
  set_tests_properties(dist-int-${t} PROPERTIES
    TIMEOUT 120
    LABELS "dist;integration"
    ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};${DIST_SAN_ENV}")
endforeach()

add_executable(dist-probe ${CMAKE_CURRENT_LIST_DIR}/dist/dist-probe.c)
target_include_directories(dist-probe PRIVATE ${CMAKE_SOURCE_DIR}/dist/src)
target_link_libraries(dist-probe PRIVATE girder_dist)
target_link_libraries(dist-probe PRIVATE ZLIB::ZLIB)
if(DIST_INT_ERL)
  foreach(t hostile bomb soak atoms frags busy handshake_flood)
    add_test(NAME dist-int-${t} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.sh)
    set_tests_properties(dist-int-${t} PROPERTIES
      TIMEOUT 120
      LABELS "dist;integration"
      ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};DIST_PROBE=$<TARGET_FILE:dist-probe>;${DIST_SAN_ENV}")
  endforeach()
  # Girder nodes built on libnode + dist, each driven by its script with a real erl:
  # rxqueue counts what erl sends it (decoder queue bound); schedpoll echoes erl's round trips
  # and reports which threads read them. The script finds its program in $RXQUEUE / $SCHEDPOLL.
  foreach(t rxqueue schedpoll)
    string(TOUPPER ${t} _var)
    add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.c)
    target_link_libraries(${t} PRIVATE girder_dist girder_node)
    set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME dist-int-${t} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.sh)
    set_tests_properties(dist-int-${t} PROPERTIES
      TIMEOUT 120
      LABELS "dist;integration"
      ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};${_var}=$<TARGET_FILE:${t}>;${DIST_SAN_ENV}")
  endforeach()
  # one minute of soak here; `make soak` runs thirty (scripts/run-soak.sh)
  set_tests_properties(dist-int-soak PROPERTIES TIMEOUT 300)
  if(GIRDER_TSAN)
    # Under ThreadSanitizer a girderd reads its hostile peers' 256 MiB of fragments ten times
    # slower; with another test on the second core that took 12 s of its loop, past the churn
    # peer's 7 s net_setuptime (two failures in two tries beside term_roundtrip; it passes alone).
    # dist-int-frags is the same attack: in a full make tsan its honest peer's 5 s call timed out.
    set_tests_properties(dist-int-soak dist-int-frags PROPERTIES RUN_SERIAL TRUE)
  endif()
endif()
