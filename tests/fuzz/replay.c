/*
 * The standalone driver: runs a fuzz target's LLVMFuzzerTestOneInput over files, so that
 * the test build (its own compiler and sanitizers, no libFuzzer) replays the committed
 * corpus and the regression inputs. Each argument is a file or a directory of files
 * (not recursive). An argument that cannot be read fails the run, and so does a run
 * that found no input at all: a test that replayed nothing proves nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* The largest input replayed: libFuzzer's default -max_len is far below this. */
#define REPLAY_MAX_BYTES ((size_t)1024 * 1024)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(REPLAY_MAX_BYTES + 1);
    if (buf == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        goto out;
    }
    n = fread(buf, 1, REPLAY_MAX_BYTES + 1, f);
    if (ferror(f) || n > REPLAY_MAX_BYTES) {
        fprintf(stderr, "replay: cannot read %s, or it is over %zu bytes\n", path,
                REPLAY_MAX_BYTES);
        goto out;
    }
    /* A copy of exactly n bytes, so that reading past the input is a sanitizer report. */
    uint8_t *input = malloc(n > 0 ? n : 1);
    if (input == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        goto out;
    }
    memcpy(input, buf, n);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(input, n);
    free(input);
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while (rc == 0) {
        char path[4096];
        struct stat st;

        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            break;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        rc = replay_file(path);
        (*count)++;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        int rc;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: cannot find %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = replay_dir(argv[i], &count);
        } else {
            rc = replay_file(argv[i]);
            count++;
        }
        if (rc != 0) {
            return 1;
        }
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    fprintf(stderr, "replay: %zu inputs, no crash\n", count);
    return 0;
}
