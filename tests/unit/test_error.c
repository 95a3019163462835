/* SPDX-License-Identifier: MIT */
/* The status table: every code has a distinct name and a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utxocache/utxocache.h"

static void names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(uc_err_name(UC_OK), "UC_OK");
    assert_string_equal(uc_err_name(UC_ECONNREFUSED), "UC_ECONNREFUSED");
    assert_string_equal(uc_strerror(UC_MISS), "not in the cache");
    assert_string_equal(uc_strerror(12345), "unknown status");
    assert_string_equal(uc_err_name(-999), "UC_UNKNOWN");
    assert_string_equal(uc_version(), UC_VERSION_STRING);
}

static void codes_are_distinct(void **state)
{
    static const int codes[] = {
#define X(name, value, msg) UC_##name,
        UC_ERRNO_MAP(X)
#undef X
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    (void)state;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(uc_err_name(codes[i]),
                                    uc_err_name(codes[j]));
        }
        if (codes[i] < 0) {
            assert_true(strlen(uc_strerror(codes[i])) > 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_messages),
        cmocka_unit_test(codes_are_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
