# girderd as a program: options and config file, control socket, modules and apps, signals.
pkg_check_modules(DAEMON_TEST_MSGPACK REQUIRED IMPORTED_TARGET msgpack)
set(DAEMON_TEST_DIR ${CMAKE_CURRENT_LIST_DIR}/daemon)
set(DAEMON_TEST_MODULES ${CMAKE_BINARY_DIR}/tests/modules)

# A control-socket client for the shell tests, and the control-socket test itself.
add_executable(daemon-ctl ${DAEMON_TEST_DIR}/daemon-ctl.c ${DAEMON_TEST_DIR}/ctlclient.c)
target_link_libraries(daemon-ctl PRIVATE term_codec PkgConfig::DAEMON_TEST_MSGPACK)
add_executable(test-daemon-control ${DAEMON_TEST_DIR}/control_test.c ${DAEMON_TEST_DIR}/ctlclient.c)
target_link_libraries(test-daemon-control PRIVATE term_codec PkgConfig::DAEMON_TEST_MSGPACK
                      Threads::Threads)
set_target_properties(daemon-ctl test-daemon-control PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

# Test modules, built like any module (public headers; shared libraries where the tree has
# them), into build/tests/modules.
foreach(m failapp badabi missing hang)
  girder_module(testmod_${m} ${m} ${DAEMON_TEST_DIR}/modules/${m}.c)
endforeach()
foreach(m order_a order_b)
  girder_module(testmod_${m} ${m} ${DAEMON_TEST_DIR}/modules/testapp.c)
  target_compile_definitions(testmod_${m} PRIVATE TESTAPP_NAME="${m}")
endforeach()
target_compile_definitions(testmod_order_b PRIVATE TESTAPP_STRATEGY=ND_ONE_FOR_ALL)
girder_module(testmod_slowstop slowstop ${DAEMON_TEST_DIR}/modules/hang.c)
target_compile_definitions(testmod_slowstop PRIVATE HANG_NAME="slowstop" HANG_SHUTDOWN=800)
# the example module, built in tree too (its out-of-tree build is tested against an installation)
girder_module(testmod_hello hello ${CMAKE_SOURCE_DIR}/daemon/examples/hello/hello.c)
foreach(m failapp badabi missing hang slowstop order_a order_b hello)
  set_target_properties(testmod_${m} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${DAEMON_TEST_MODULES})
  add_dependencies(test-daemon-control testmod_${m})
endforeach()

set(DAEMON_TEST_ENV
  "GIRDERD=$<TARGET_FILE:girderd>;GIRDER=$<TARGET_FILE:girder>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;DAEMON_CTL=$<TARGET_FILE:daemon-ctl>;TEST_MODULE_DIR=${DAEMON_TEST_MODULES};ERL=${ERL_EXECUTABLE};SRC=${CMAKE_SOURCE_DIR}")

add_test(NAME integration/daemon_epmd_autostart
         COMMAND ${DAEMON_TEST_DIR}/epmd_autostart.sh ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(integration/daemon_epmd_autostart PROPERTIES TIMEOUT 60 LABELS integration)

add_test(NAME daemon-int-control COMMAND test-daemon-control)
set_tests_properties(daemon-int-control PROPERTIES TIMEOUT 180 LABELS "daemon;integration"
                     ENVIRONMENT "${DAEMON_TEST_ENV}")

# The rest runs real erl nodes (config.sh: erl reads --check-config's output back).
if(COMMAND girder_needs)
  girder_needs(DAEMON_INT_ERL "daemon-int-config, -modules, -ops, -hello (girderd with Erlang nodes)"
               erl erlc)
else()
  find_program(ERLC_EXECUTABLE erlc REQUIRED)
  set(DAEMON_INT_ERL TRUE)
endif()
if(DAEMON_INT_ERL)
  foreach(t config modules ops)
    add_test(NAME daemon-int-${t} COMMAND sh ${DAEMON_TEST_DIR}/${t}.sh)
    set_tests_properties(daemon-int-${t} PROPERTIES TIMEOUT 180 LABELS "daemon;integration"
                         ENVIRONMENT "${DAEMON_TEST_ENV}")
  endforeach()
endif()
# daemon/examples/hello built out of tree against an installation of this tree: needs the
# library package (shared libraries, cmake --install, girder.pc)
if(DAEMON_INT_ERL AND TARGET girder_dist_shared)
  set(DAEMON_SAN_FLAGS "")
  if(GIRDER_ASAN)
    set(DAEMON_SAN_FLAGS "-fsanitize=address,undefined")
  elseif(GIRDER_TSAN)
    set(DAEMON_SAN_FLAGS "-fsanitize=thread")
  endif()
  add_test(NAME daemon-int-hello COMMAND sh ${DAEMON_TEST_DIR}/hello.sh)
  set_tests_properties(daemon-int-hello PROPERTIES TIMEOUT 300 LABELS "daemon;integration"
    ENVIRONMENT "${DAEMON_TEST_ENV};BUILD_DIR=${CMAKE_BINARY_DIR};CC=${CMAKE_C_COMPILER};SAN_FLAGS=${DAEMON_SAN_FLAGS}")
elseif(NOT TARGET girder_dist_shared)
  message(STATUS "daemon-int-hello not registered: the tree has no shared libraries to install")
endif()
