# The installed package: cmake --install into a temporary prefix, then programs built outside the
# tree with pkg-config and with find_package(Girder) ping a real erl node.
girder_needs(INSTALL_INT_ERL "integration/install (its programs ping an erl node)" erl)
if(INSTALL_INT_ERL)
  set(INSTALL_SAN_FLAGS "")
  if(GIRDER_ASAN)
    set(INSTALL_SAN_FLAGS "-fsanitize=address,undefined")
  elseif(GIRDER_TSAN)
    set(INSTALL_SAN_FLAGS "-fsanitize=thread")
  endif()
  add_test(NAME integration/install
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install/install.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(integration/install PROPERTIES
    TIMEOUT 300
    LABELS integration
    ENVIRONMENT "GIRDER_VERSION=${PROJECT_VERSION};ERL=${ERL_EXECUTABLE};CC=${CMAKE_C_COMPILER};SAN_FLAGS=${INSTALL_SAN_FLAGS}")
endif()

# Configure and build the libraries and executables with Erlang hidden by a private mount
# namespace: needs root (mount) and unshare. It builds with -j2, so ctest gives it two slots.
find_program(UNSHARE_EXECUTABLE unshare)
execute_process(COMMAND id -u OUTPUT_VARIABLE GIRDER_UID OUTPUT_STRIP_TRAILING_WHITESPACE)
if(UNSHARE_EXECUTABLE AND GIRDER_UID STREQUAL "0")
  add_test(NAME integration/no-erlang
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install/no-erlang.sh ${CMAKE_SOURCE_DIR})
  set_tests_properties(integration/no-erlang PROPERTIES TIMEOUT 900 PROCESSORS 2
                       LABELS integration)
else()
  message(STATUS "integration/no-erlang not registered: it needs root and unshare")
endif()
