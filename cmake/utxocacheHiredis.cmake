# SPDX-License-Identifier: MIT
# Makes sure a target hiredis::hiredis exists, whichever way this machine's
# hiredis is installed. Used by the build and, installed beside
# utxocacheConfig.cmake, by projects that link utxocache::utxocache_static.
#   1. hiredis >= 1.0 installs a CMake package with that very target;
#   2. otherwise its pkg-config file (Debian 12's hiredis 0.14 ships a
#      HiredisConfig.cmake with variables only, no target);
#   3. otherwise the header and the library found on the usual paths.
if(TARGET hiredis::hiredis)
    return()
endif()

find_package(hiredis CONFIG QUIET)
if(TARGET hiredis::hiredis)
    return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    pkg_check_modules(UC_HIREDIS QUIET IMPORTED_TARGET hiredis)
endif()
if(TARGET PkgConfig::UC_HIREDIS)
    add_library(hiredis::hiredis INTERFACE IMPORTED)
    set_target_properties(hiredis::hiredis PROPERTIES
        INTERFACE_LINK_LIBRARIES PkgConfig::UC_HIREDIS)
    return()
endif()

find_path(UC_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
find_library(UC_HIREDIS_LIBRARY hiredis)
if(UC_HIREDIS_INCLUDE_DIR AND UC_HIREDIS_LIBRARY)
    add_library(hiredis::hiredis UNKNOWN IMPORTED)
    set_target_properties(hiredis::hiredis PROPERTIES
        IMPORTED_LOCATION "${UC_HIREDIS_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${UC_HIREDIS_INCLUDE_DIR}")
endif()
