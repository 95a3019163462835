/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer targets: the entry point's prototype, a
 * splitter that turns the fuzzer's bytes into NUL-terminated lines, the
 * check macro that turns a broken invariant into a crash libFuzzer records,
 * and the "rotate a secret" transform used by the differential password
 * checks. Lines returned by the splitter belong to the uc_fuzz_lines_t and
 * are freed with uc_fuzz_lines_release().
 */
#ifndef UC_FUZZ_UTIL_H
#define UC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point; declared so -Wmissing-prototypes stays quiet. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A broken invariant aborts, which libFuzzer reports as a crash and saves the
 * input as a reproducer. Kept as a macro so the report names the line.
 */
#define UC_FUZZ_CHECK(cond)                                                    \
    do {                                                                       \
        if (!(cond)) {                                                         \
            uc_fuzz_fail(__FILE__, __LINE__, #cond);                           \
        }                                                                      \
    } while (0)

/* Prints the failed condition to stderr and aborts. */
_Noreturn void uc_fuzz_fail(const char *file, int line, const char *cond);

#define UC_FUZZ_LINES_MAX 64

/*
 * The input cut at '\n' into at most UC_FUZZ_LINES_MAX lines (the rest stays
 * in the last one). Each line is NUL-terminated; `len[i]` is its length in
 * bytes, which may be more than strlen() when the input held NUL bytes.
 */
typedef struct {
    char *buf; /* one heap copy of the input, lines point into it */
    size_t n;
    char *line[UC_FUZZ_LINES_MAX];
    size_t len[UC_FUZZ_LINES_MAX];
} uc_fuzz_lines_t;

/* Splits data[0..size). Returns 0, or -1 when out of memory. */
int uc_fuzz_lines_init(uc_fuzz_lines_t *l, const uint8_t *data, size_t size);

/* Frees the lines. Accepts a zeroed struct. */
void uc_fuzz_lines_release(uc_fuzz_lines_t *l);

/*
 * Replaces every letter and digit of s[0..n) by another one of the same kind,
 * except the two bytes after each '%' (so a percent-escape decodes exactly as
 * well or as badly as before). Nothing else changes: no byte becomes a
 * control byte, a separator or an escape. Returns how many bytes changed.
 */
size_t uc_fuzz_rotate_secret(char *s, size_t n);

/* Heap copy of s[0..n) plus a NUL; NULL when out of memory. */
char *uc_fuzz_strndup(const char *s, size_t n);

#endif
