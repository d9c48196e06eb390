# cmake --install: the libraries (static and shared, by girder_library()), every public header in
# include/girder/, the executables, lib/pkgconfig/girder.pc and the CMake package Girder.
include(CMakePackageConfigHelpers)

foreach(exe girder girderd girder-epmd)
  if(TARGET ${exe})
    install(TARGETS ${exe} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

install(FILES ${GIRDER_GENERATED_INCLUDE_DIR}/girder/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/girder)
# girderd's module API (girder/module.h) is public too: its headers, in daemon/include/girder/,
# are installed with the others as soon as they exist.
if(EXISTS ${CMAKE_SOURCE_DIR}/daemon/include/girder)
  girder_install_headers(${CMAKE_SOURCE_DIR}/daemon/include/girder)
endif()

# pkg-config: one package for the four libraries. Paths are relative to the .pc file's own
# place, so that an install tree can be moved (cmake --install --prefix, DESTDIR).
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(GIRDER_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(GIRDER_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(GIRDER_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(GIRDER_PC_PREFIX "\${pcfiledir}/${up}")
endif()
configure_file(cmake/girder.pc.in ${CMAKE_BINARY_DIR}/girder.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/girder.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake: find_package(Girder) gives Girder::term, ::node, ::epmd, ::dist (shared) and the same
# names with _static.
set(GIRDER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Girder)
install(EXPORT GirderTargets NAMESPACE Girder:: DESTINATION ${GIRDER_CMAKE_DIR})
configure_package_config_file(cmake/GirderConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/GirderConfig.cmake
                              INSTALL_DESTINATION ${GIRDER_CMAKE_DIR})
# Before 1.0 a minor release may break compatibility.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/GirderConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/GirderConfig.cmake ${CMAKE_BINARY_DIR}/GirderConfigVersion.cmake
        DESTINATION ${GIRDER_CMAKE_DIR})
