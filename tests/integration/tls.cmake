# TLS distribution integration tests: girderd and real erl nodes over mutual TLS.
girder_needs(TLS_INT_ERL "tls-int-* (girderd with Erlang nodes over TLS)" erl erlc)
find_program(OPENSSL_EXECUTABLE openssl)
if(TLS_INT_ERL AND NOT OPENSSL_EXECUTABLE)
  message(STATUS "tls-int-* not registered: the openssl command is missing")
  set(TLS_INT_ERL FALSE)
endif()
if(TLS_INT_ERL)
if(GIRDER_ASAN OR GIRDER_TSAN)
  set(TLS_SANITIZED 1)
else()
  set(TLS_SANITIZED 0)
endif()
set(TLS_TEST_ENV
  "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;GIRDER=$<TARGET_FILE:girder>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};DIST_SANITIZED=${TLS_SANITIZED}")
foreach(v 12 13)
  add_test(NAME tls-int-interop-${v} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/interop.sh ${v})
  set_tests_properties(tls-int-interop-${v} PROPERTIES
    TIMEOUT 180 LABELS "dist;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
endforeach()
foreach(v 12 13)
  add_test(NAME tls-int-rekey-${v} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/rekey.sh ${v})
  set_tests_properties(tls-int-rekey-${v} PROPERTIES
    TIMEOUT 180 LABELS "dist;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
endforeach()
add_test(NAME tls-int-refusals COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/refusals.sh)
set_tests_properties(tls-int-refusals PROPERTIES
  TIMEOUT 180 LABELS "dist;tls;integration"
  ENVIRONMENT "${TLS_TEST_ENV};DAEMON_CTL=$<TARGET_FILE:daemon-ctl>")
add_test(NAME tls-int-cli COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/cli.sh)
set_tests_properties(tls-int-cli PROPERTIES
  TIMEOUT 180 LABELS "cli;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
add_test(NAME tls-int-girderd COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/girderd.sh)
set_tests_properties(tls-int-girderd PROPERTIES
  TIMEOUT 120 LABELS "daemon;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
add_test(NAME tls-int-nonblocking COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/nonblocking.sh)
set_tests_properties(tls-int-nonblocking PROPERTIES
  TIMEOUT 120 LABELS "dist;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
add_test(NAME tls-int-interleave COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tls/interleave.sh)
set_tests_properties(tls-int-interleave PROPERTIES
  TIMEOUT 180 LABELS "dist;tls;integration" ENVIRONMENT "${TLS_TEST_ENV}")
endif()
