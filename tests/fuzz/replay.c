/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz target's committed corpus without libFuzzer: a plain main()
 * linked with one target's LLVMFuzzerTestOneInput, built with the normal
 * compiler and the build's sanitizers, so `make test` runs every seed and
 * every regress_* reproducer through the invariants on each change. A
 * broken invariant aborts, as under the fuzzer.
 *
 * usage: replay_<target> DIR_OR_FILE...   (a directory: every regular file
 * in it, in name order). Exits 0 when at least one input ran and none
 * failed, 1 when an argument could not be read or held no input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Inputs larger than this are not seeds; libFuzzer's default -max_len is
 * smaller still. */
#define REPLAY_MAX (1u << 20)

/* Feeds the file at path to the target; 0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: cannot open '%s'\n", path);
        return -1;
    }
    buf = malloc(REPLAY_MAX);
    if (buf != NULL) {
        len = fread(buf, 1, REPLAY_MAX, f);
        if (ferror(f) == 0 && (len < REPLAY_MAX || feof(f))) {
            /* A copy of exactly len bytes, so ASan sees reads past it. */
            uint8_t *in = malloc(len > 0 ? len : 1);
            if (in != NULL) {
                memcpy(in, buf, len);
                LLVMFuzzerTestOneInput(in, len);
                free(in);
                rc = 0;
            }
        } else {
            fprintf(stderr, "replay: cannot read '%s'\n", path);
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Replays every regular file in dir; returns how many, or -1. */
static long replay_dir(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    long done = 0;
    char path[4096];
    struct stat st;

    if (n < 0) {
        fprintf(stderr, "replay: cannot list '%s'\n", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (len > 0 && (size_t)len < sizeof(path) && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            if (replay_file(path) != 0) {
                done = -1;
            } else if (done >= 0) {
                done++;
            }
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    long total = 0;
    struct stat st;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        long n;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no '%s'\n", argv[i]);
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                                : (replay_file(argv[i]) == 0 ? 1 : -1);
        if (n <= 0) {
            fprintf(stderr, "replay: nothing replayed from '%s'\n", argv[i]);
            return 1;
        }
        total += n;
    }
    printf("replay: %ld inputs, no invariant broken\n", total);
    return 0;
}
