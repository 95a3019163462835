/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the fuzz targets: line splitting of the raw input, the
 * invariant failure path, and the secret rotation that lets a target ask
 * "does this message depend on the password?" without guessing where the
 * password might show up.
 */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void uc_fuzz_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, cond);
    abort();
}

int uc_fuzz_lines_init(uc_fuzz_lines_t *l, const uint8_t *data, size_t size)
{
    size_t start = 0;

    memset(l, 0, sizeof(*l));
    l->buf = malloc(size + 1);
    if (l->buf == NULL) {
        return -1;
    }
    if (size > 0) {
        memcpy(l->buf, data, size);
    }
    l->buf[size] = '\0';
    for (size_t i = 0; i <= size; i++) {
        int last = l->n + 1 == UC_FUZZ_LINES_MAX;
        if (i < size && (l->buf[i] != '\n' || last)) {
            continue;
        }
        l->buf[i] = '\0';
        l->line[l->n] = l->buf + start;
        l->len[l->n] = i - start;
        l->n++;
        start = i + 1;
        if (last) {
            break;
        }
    }
    return 0;
}

void uc_fuzz_lines_release(uc_fuzz_lines_t *l)
{
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

size_t uc_fuzz_rotate_secret(char *s, size_t n)
{
    size_t changed = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            /* Keep the escape's two digits; the decoder reads them. */
            i += 2;
            continue;
        }
        if (c >= 'a' && c <= 'z') {
            s[i] = (char)('a' + (c - 'a' + 7) % 26);
        } else if (c >= 'A' && c <= 'Z') {
            s[i] = (char)('A' + (c - 'A' + 7) % 26);
        } else if (c >= '0' && c <= '9') {
            s[i] = (char)('0' + (c - '0' + 3) % 10);
        } else {
            continue;
        }
        changed++;
    }
    return changed;
}

char *uc_fuzz_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
