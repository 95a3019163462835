/* SPDX-License-Identifier: MIT */
/*
 * An id as the original web-api's clients read it: a lower-case version 4
 * UUID (RFC 9562 variant). Include after cmocka.h.
 */
#ifndef UC_TEST_ASSERT_UUID_H
#define UC_TEST_ASSERT_UUID_H

#include <string.h>

static inline void assert_uuid4(const char *id)
{
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(id[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", id[i]));
        }
    }
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
}

#endif
