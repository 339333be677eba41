# What `cmake --install` puts where (any prefix, DESTDIR respected) and the .deb CPack builds
# from it: the binary, a man page made at build time from the binary's own --help by help2man,
# the user guide, docs/ and the example migrations. Included by the top-level CMakeLists.txt
# after cli/, so the dynamorph target exists.

# The man page: help2man reads `dynamorph --help` and `--version`; cmake/man_page.cmake adds
# each subcommand's help and the guide's essentials (cmake/dynamorph.h2m.in) as include
# sections. Without help2man the build goes on, without a man page.
find_program(HELP2MAN_EXECUTABLE help2man)
find_program(GZIP_EXECUTABLE gzip)
if(HELP2MAN_EXECUTABLE AND GZIP_EXECUTABLE)
  set(DYNAMORPH_MAN_PAGE ${PROJECT_BINARY_DIR}/man/dynamorph.1)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/dynamorph.h2m.in ${PROJECT_BINARY_DIR}/man/essentials.h2m
                 @ONLY)
  add_custom_command(
    OUTPUT ${DYNAMORPH_MAN_PAGE} ${DYNAMORPH_MAN_PAGE}.gz
    COMMAND ${CMAKE_COMMAND} -DDYNAMORPH=$<TARGET_FILE:dynamorph>
            -DHELP2MAN=${HELP2MAN_EXECUTABLE} -DGZIP=${GZIP_EXECUTABLE}
            -DESSENTIALS=${PROJECT_BINARY_DIR}/man/essentials.h2m -DOUTPUT=${DYNAMORPH_MAN_PAGE}
            -P ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
    DEPENDS dynamorph ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
            ${PROJECT_BINARY_DIR}/man/essentials.h2m
    COMMENT "Generating the man page dynamorph.1 with help2man"
    VERBATIM)
  add_custom_target(dynamorph_man ALL DEPENDS ${DYNAMORPH_MAN_PAGE}.gz)
  install(FILES ${DYNAMORPH_MAN_PAGE}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found (Debian package help2man, see scripts/setup.sh): "
                 "the man page dynamorph.1 is not built or installed")
endif()

# share/doc/dynamorph: README, the guide and the other docs, the example migrations and configs.
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs DESTINATION ${CMAKE_INSTALL_DOCDIR})

# `cpack -G DEB` in the build folder (or the `package` target): dynamorph_<version>_<arch>.deb
# for /usr, its Depends computed from the binary's shared libraries by dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME dynamorph)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "dynamorph maintainers <maintainers@dynamorph.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "versioned migrations and bulk reshapes for Amazon DynamoDB")
set(CPACK_PACKAGE_DESCRIPTION
    "dynamorph runs versioned migrations against Amazon DynamoDB and anything that speaks its API
(DynamoDB Local, moto, ScyllaDB Alternator): schema changes (tables, indexes, TTL) and bulk
reshapes of tables of any size as streaming pipelines that survive crashes, resume from
checkpoints and never write an item twice. It also benchmarks scan and write throughput.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS ca-certificates)
include(CPack)
