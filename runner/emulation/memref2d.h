/* What both emulation drivers share: MLIR's 2-D memref descriptor, a row-major view, a checked read. */
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    void *allocated;
    void *aligned;
    long offset;
    long sizes[2];
    long strides[2];
} memref2d;

static memref2d view(void *data, long rows, long cols, long stride) {
    memref2d m = {data, data, 0, {rows, cols}, {stride, 1}};
    return m;
}

static void check(size_t done, size_t wanted, const char *what) {
    if (done != wanted) {
        fprintf(stderr, "driver: short %s\n", what);
        exit(3);
    }
}
