# SPDX-License-Identifier: MIT
# The committed corpora replayed in `make test`: every fuzz target once more
# as replay_<target>, its LLVMFuzzerTestOneInput linked with replay.c's
# main() instead of libFuzzer, built with this tree's compiler and flags
# (ASan+UBSan in the asan preset), and one CTest entry per target that
# feeds it tests/fuzz/corpus/<target>/. No fuzzing happens here: the seeds
# and the regress_* reproducers go through the same invariants as under
# `make fuzz`, so a fixed crash cannot come back unnoticed.
set(uc_replay_dir ${PROJECT_SOURCE_DIR}/tests/fuzz)
set(uc_replay_server ${PROJECT_SOURCE_DIR}/src/server)
pkg_check_modules(UC_REPLAY_JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(UC_REPLAY_SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)

# uc_add_replay(TARGET name [SOURCES ...] [INCLUDES ...] [LIBS ...])
function(uc_add_replay)
    cmake_parse_arguments(R "" "TARGET" "SOURCES;INCLUDES;LIBS" ${ARGN})
    set(exe replay_${R_TARGET})
    add_executable(${exe} ${uc_replay_dir}/replay.c
        ${uc_replay_dir}/${R_TARGET}.c ${uc_replay_dir}/fuzz_util.c
        ${R_SOURCES})
    target_compile_options(${exe} PRIVATE ${UC_WARNINGS})
    target_include_directories(${exe} PRIVATE ${uc_replay_dir} ${R_INCLUDES})
    target_link_libraries(${exe} PRIVATE utxocache_static ${R_LIBS})
    add_test(NAME fuzz_replay_${R_TARGET}
        COMMAND ${exe} ${uc_replay_dir}/corpus/${R_TARGET})
    set_tests_properties(fuzz_replay_${R_TARGET} PROPERTIES TIMEOUT 120
        LABELS "unit;fuzz-replay")
endfunction()

uc_add_replay(TARGET fuzz_config_url)
uc_add_replay(TARGET fuzz_keyspace)
uc_add_replay(TARGET fuzz_redis_info
    INCLUDES ${PROJECT_SOURCE_DIR}/src/lib)
uc_add_replay(TARGET fuzz_cluster
    INCLUDES ${PROJECT_SOURCE_DIR}/src/lib
    LIBS PkgConfig::HIREDIS)
uc_add_replay(TARGET fuzz_server_input
    SOURCES ${uc_replay_server}/util.c
    INCLUDES ${uc_replay_server}
    LIBS PkgConfig::UC_REPLAY_JANSSON)
uc_add_replay(TARGET fuzz_request_json
    SOURCES ${uc_replay_server}/request.c ${uc_replay_server}/util.c
    INCLUDES ${uc_replay_server}
    LIBS PkgConfig::UC_REPLAY_JANSSON m)
uc_add_replay(TARGET fuzz_db_url
    SOURCES ${uc_replay_server}/db/db.c ${uc_replay_server}/db/errors.c
        ${uc_replay_server}/db/rows.c ${uc_replay_server}/db/pool.c
        ${uc_replay_server}/db/migrate.c
        ${uc_replay_server}/db/sqlite.c
    INCLUDES ${uc_replay_server}/db
    LIBS PkgConfig::UC_REPLAY_SQLITE3 Threads::Threads)
