# `cmake --install`: the platform as a package (ADR 0019). It installs
#   include/cleave/*.h                    the public headers
#   include/cleave-host/host.h            the host's header (for generated bindings)
#   lib/libcleave_<subsystem>.a           core, http, db, postgres, bus, nats, redis, rpc, otlp, auth,
#                                         host
#   lib/cleave/libcleave-compat-*.so      what civetweb needs for TLS with OpenSSL 3, found by
#                                         the binaries relative to their own bin/ folder
#   lib/cmake/Cleave/                     find_package(Cleave): Cleave::<subsystem>,
#                                         cleave_module(), cleave_wire(), cleave_add_host()
#   lib/pkgconfig/cleave-platform.pc      pkg-config: every platform library
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(CLEAVE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Cleave)

# A sanitized build's libraries need the sanitizers' runtime wherever they are linked.
if(CLEAVE_SANITIZE)
  set(CLEAVE_SANITIZE_LINK -fsanitize=address,undefined)
  target_link_options(cleave_core INTERFACE $<INSTALL_INTERFACE:${CLEAVE_SANITIZE_LINK}>)
endif()

install(DIRECTORY ${CMAKE_SOURCE_DIR}/platform/include/cleave
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${CMAKE_SOURCE_DIR}/app/host.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cleave-host)
install(TARGETS ${CLEAVE_PLATFORM_LIBRARIES} cleave_platform cleave_host EXPORT CleaveTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS ${CLEAVE_TLS_COMPAT_LIBRARIES}
        LIBRARY DESTINATION ${CLEAVE_TLS_COMPAT_DIR})
install(EXPORT CleaveTargets NAMESPACE Cleave:: DESTINATION ${CLEAVE_INSTALL_CMAKEDIR})

configure_file(${CMAKE_SOURCE_DIR}/cmake/CleaveConfig.cmake.in
               ${CMAKE_BINARY_DIR}/CleaveConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/CleaveConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/CleaveConfig.cmake ${CMAKE_BINARY_DIR}/CleaveConfigVersion.cmake
              ${CMAKE_SOURCE_DIR}/cmake/CleaveModule.cmake
              ${CMAKE_SOURCE_DIR}/app/bindings.c.in ${CMAKE_SOURCE_DIR}/app/main.c
        DESTINATION ${CLEAVE_INSTALL_CMAKEDIR})

# The .pc file finds the prefix from its own place, so that --prefix at install time works.
file(RELATIVE_PATH CLEAVE_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
# Libraries before the ones they use, for static linking.
set(CLEAVE_PC_LIBS "")
foreach(lib auth otlp rpc redis nats bus postgres db http core)
  string(APPEND CLEAVE_PC_LIBS " -lcleave_${lib}")
endforeach()
configure_file(${CMAKE_SOURCE_DIR}/cmake/cleave-platform.pc.in
               ${CMAKE_BINARY_DIR}/cleave-platform.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cleave-platform.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
