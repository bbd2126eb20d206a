# Module boundaries (ADR 0010), run by the build before any of our code compiles:
#   cmake -DROOT=<source dir> -DMODULES=a,b -DSTAMP=<file> -P platform/boundaries.cmake
#
# - modules/<m>/ may include its own files, the platform's public headers (cleave/...)
#   and other modules' public headers (<other>/<other>.h) — nothing else of theirs;
# - app/ may include its own files and public headers only;
# - platform/ may include no module header at all.
# A violation stops the build with the file, the line and what it may use instead.

cmake_minimum_required(VERSION 3.25)
string(REPLACE "," ";" MODULES "${MODULES}")
set(errors "")

function(check_file file area own_dir)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  get_filename_component(dir "${file}" DIRECTORY)
  file(RELATIVE_PATH rel "${ROOT}" "${file}")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*$" "\\1" inc "${line}")
    set(ok FALSE)
    if(EXISTS "${dir}/${inc}")
      # A path relative to the including file: it must stay inside the owner's folder.
      get_filename_component(target "${dir}/${inc}" REALPATH)
      string(FIND "${target}/" "${own_dir}/" pos)
      if(pos EQUAL 0)
        set(ok TRUE)
      endif()
    elseif(inc MATCHES "^cleave/[a-z_]+\\.h$" AND EXISTS "${ROOT}/platform/include/${inc}")
      set(ok TRUE)
    elseif(inc MATCHES "^([a-z_]+)/([a-z_]+)\\.h$")
      # <module>/<module>.h: a public header. The platform may not use any module.
      if(CMAKE_MATCH_1 STREQUAL CMAKE_MATCH_2 AND CMAKE_MATCH_1 IN_LIST MODULES
         AND NOT area STREQUAL "platform")
        set(ok TRUE)
      endif()
    elseif(area STREQUAL "tests")
      set(ok TRUE)
    endif()
    if(NOT ok)
      set(errors "${errors}\n  ${rel}: #include \"${inc}\" crosses a module boundary; use only cleave/*.h and <module>/<module>.h" PARENT_SCOPE)
    endif()
  endforeach()
endfunction()

foreach(m IN LISTS MODULES)
  file(GLOB_RECURSE files "${ROOT}/modules/${m}/*.c" "${ROOT}/modules/${m}/*.h")
  get_filename_component(own "${ROOT}/modules/${m}" REALPATH)
  foreach(f IN LISTS files)
    if(f MATCHES "/modules/${m}/tests/")
      # A module's own tests may look inside it, but still not inside other modules.
      check_file("${f}" tests "${own}")
    else()
      check_file("${f}" module "${own}")
    endif()
  endforeach()
endforeach()
file(GLOB app_files "${ROOT}/app/*.c" "${ROOT}/app/*.h")
get_filename_component(app_dir "${ROOT}/app" REALPATH)
foreach(f IN LISTS app_files)
  check_file("${f}" app "${app_dir}")
endforeach()
file(GLOB_RECURSE platform_files "${ROOT}/platform/*.c" "${ROOT}/platform/*.h")
get_filename_component(platform_dir "${ROOT}/platform" REALPATH)
foreach(f IN LISTS platform_files)
  check_file("${f}" platform "${platform_dir}")
endforeach()

if(errors)
  message(FATAL_ERROR "module boundary violations:${errors}")
endif()
file(WRITE "${STAMP}" "ok\n")
