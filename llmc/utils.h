/*
 utils.h: small host-side helpers shared by every binary (CPU trainer, GPU trainer, tools, tests).

 Error policy: bad input (missing/corrupt/truncated file, impossible flag value, ...) is reported with ONE
 line on stderr that starts with "error: " and says what to do, then the process exits with code 1.
 Nothing here ever calls abort() on user error.
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <sys/stat.h>

// print "error: <message>" on one line and exit(1)
#ifdef __GNUC__
__attribute__((noreturn, format(printf, 1, 2)))
#endif
static inline void fail(const char* fmt, ...) {
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static inline FILE* fopen_or_fail(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) {
        if (mode[0] == 'r') fail("cannot open %s for reading (%s)", path, strerror(errno));
        fail("cannot open %s for writing (%s)", path, strerror(errno));
    }
    return f;
}

// read exactly n items or fail with a "truncated" message naming the file
static inline void fread_or_fail(void* dst, size_t size, size_t n, FILE* f, const char* path) {
    size_t got = fread(dst, size, n, f);
    if (got != n) fail("%s is truncated or unreadable (wanted %zu items of %zu bytes, got %zu)", path, n, size, got);
}

static inline void fwrite_or_fail(const void* src, size_t size, size_t n, FILE* f, const char* path) {
    size_t put = fwrite(src, size, n, f);
    if (put != n) fail("could not write %s (disk full?)", path);
}

static inline void fseek_or_fail(FILE* f, long off, int whence, const char* path) {
    if (fseek(f, off, whence) != 0) fail("cannot seek in %s", path);
}

static inline void* malloc_or_fail(size_t bytes) {
    void* p = malloc(bytes == 0 ? 1 : bytes);
    if (p == NULL) fail("out of host memory (asked for %zu bytes)", bytes);
    return p;
}

static inline void* calloc_or_fail(size_t n, size_t size) {
    void* p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) fail("out of host memory (asked for %zu x %zu bytes)", n, size);
    return p;
}

static inline long file_size_or_fail(const char* path) {
    struct stat st;
    if (stat(path, &st) != 0) fail("cannot open %s (%s)", path, strerror(errno));
    return (long)st.st_size;
}

static inline int file_exists(const char* path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static inline void make_dir_if_missing(const char* dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) fail("%s exists and is not a directory", dir);
        return;
    }
    if (mkdir(dir, 0755) != 0) fail("cannot create directory %s (%s)", dir, strerror(errno));
}

// Atomic file writes: write to "<path>.tmp", then fsync-free rename over <path>.
// A crash in the middle leaves at most a *.tmp file, never a half-written <path>.
static inline void atomic_commit(FILE* f, const char* tmp_path, const char* final_path) {
    if (fflush(f) != 0 || ferror(f)) { fclose(f); remove(tmp_path); fail("could not write %s (disk full?)", final_path); }
    if (fclose(f) != 0) { remove(tmp_path); fail("could not write %s (disk full?)", final_path); }
    if (rename(tmp_path, final_path) != 0) { remove(tmp_path); fail("could not rename %s to %s (%s)", tmp_path, final_path, strerror(errno)); }
}
