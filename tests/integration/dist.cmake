# dist integration tests: girderd against real Erlang/OTP (and Elixir) nodes on loopback.
find_program(ERLC_EXECUTABLE erlc REQUIRED)
foreach(t basic nodedown ticks mesh elixir)
  add_test(NAME dist-int-${t} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.sh)
  set_tests_properties(dist-int-${t} PROPERTIES
    TIMEOUT 120
    LABELS "dist;integration"
    ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE}")
endforeach()
