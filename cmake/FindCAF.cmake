# FindCAF.cmake: locates CAF 0.17 (Debian's libcaf-dev ships no CMake config).
#
# Imported targets: CAF::core, CAF::io, CAF::openssl (each when found).
# Result variables: CAF_FOUND, CAF_VERSION, CAF_INCLUDE_DIR.
#
#   find_package(CAF 0.17 REQUIRED COMPONENTS core io)

set(_caf_components ${CAF_FIND_COMPONENTS})
if(NOT _caf_components)
  set(_caf_components core)
endif()

find_path(CAF_INCLUDE_DIR NAMES caf/config.hpp)

if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_ver_line
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX MATCH "[0-9]+" _caf_ver_num "${_caf_ver_line}")
  if(_caf_ver_num)
    math(EXPR _caf_major "${_caf_ver_num} / 10000")
    math(EXPR _caf_minor "(${_caf_ver_num} / 100) % 100")
    math(EXPR _caf_patch "${_caf_ver_num} % 100")
    set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
  endif()
endif()

foreach(comp IN LISTS _caf_components)
  find_library(CAF_${comp}_LIBRARY NAMES caf_${comp})
  if(CAF_${comp}_LIBRARY)
    set(CAF_${comp}_FOUND TRUE)
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)

if(CAF_FOUND)
  foreach(comp IN LISTS _caf_components)
    if(CAF_${comp}_FOUND AND NOT TARGET CAF::${comp})
      add_library(CAF::${comp} UNKNOWN IMPORTED)
      set_target_properties(CAF::${comp} PROPERTIES
        IMPORTED_LOCATION "${CAF_${comp}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
    endif()
  endforeach()
  if(TARGET CAF::io AND TARGET CAF::core)
    set_property(TARGET CAF::io APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::core)
  endif()
  if(TARGET CAF::openssl AND TARGET CAF::io)
    set_property(TARGET CAF::openssl APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::io)
  endif()
endif()
mark_as_advanced(CAF_INCLUDE_DIR)
