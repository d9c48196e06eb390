# Observability tools: the control API's metrics.get and trace.*, girder top, girder trace and
# its timeline page (tests/integration/obs/).
pkg_check_modules(OBS_TEST_MSGPACK REQUIRED IMPORTED_TARGET msgpack)
set(OBS_TEST_DIR ${CMAKE_CURRENT_LIST_DIR}/obs)
add_executable(test-obs-control ${OBS_TEST_DIR}/control_obs_test.c
                                ${CMAKE_CURRENT_LIST_DIR}/daemon/ctlclient.c)
target_include_directories(test-obs-control PRIVATE ${CMAKE_CURRENT_LIST_DIR}/daemon)
target_link_libraries(test-obs-control PRIVATE term_codec PkgConfig::OBS_TEST_MSGPACK)
set_target_properties(test-obs-control PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_dependencies(test-obs-control girderd girder-epmd)
add_test(NAME obs-control COMMAND test-obs-control)
set_tests_properties(obs-control PROPERTIES TIMEOUT 120 LABELS "obs;integration"
  ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>")

# girder top against girderd and erl (needs erl)
if(COMMAND girder_needs)
  girder_needs(OBS_INT_ERL "obs-top (girder top against an Erlang node)" erl)
else()
  set(OBS_INT_ERL TRUE)
endif()
if(OBS_INT_ERL)
  add_test(NAME obs-top COMMAND sh ${OBS_TEST_DIR}/top.sh)
  set_tests_properties(obs-top PROPERTIES TIMEOUT 180 LABELS "obs;cli;integration"
    ENVIRONMENT "GIRDER=$<TARGET_FILE:girder>;GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE}")
endif()

# obswork: the scripted workload girder trace is tested with (a token round a ring)
girder_module(testmod_obswork obswork ${OBS_TEST_DIR}/obswork.c)
set_target_properties(testmod_obswork PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/modules)
find_program(CHROMIUM_EXECUTABLE NAMES chromium chromium-browser)
add_dependencies(girder testmod_obswork)
# girder trace on the workload; its HTML page in headless Chromium when installed (else that part
# says it is skipped); an Erlang node, when erl is there, is refused with a clear message
add_test(NAME obs-trace COMMAND sh ${OBS_TEST_DIR}/trace.sh)
set_tests_properties(obs-trace PROPERTIES TIMEOUT 180 LABELS "obs;cli;integration"
  ENVIRONMENT "GIRDER=$<TARGET_FILE:girder>;GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};OBSWORK=$<TARGET_FILE:testmod_obswork>;CHROMIUM=${CHROMIUM_EXECUTABLE}")
