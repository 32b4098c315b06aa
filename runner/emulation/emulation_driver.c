/* Runs one micro-kernel call for emulated verification (built with -DELT=float or double).
 *
 * usage: driver MR NR KC LDC IN OUT
 * IN holds A (KC x MR), B (KC x NR) and C (MR x LDC), row-major, native byte order.
 * The kernel updates the MR x NR block of C in place; OUT receives the whole C buffer,
 * so the harness can also check that nothing beyond NR columns was written.
 */
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    ELT *allocated;
    ELT *aligned;
    long offset;
    long sizes[2];
    long strides[2];
} memref2d;

void _mlir_ciface_ukernel(memref2d *a, memref2d *b, memref2d *c);

static memref2d view(ELT *data, long rows, long cols, long stride) {
    memref2d m = {data, data, 0, {rows, cols}, {stride, 1}};
    return m;
}

static void check(size_t done, size_t wanted, const char *what) {
    if (done != wanted) {
        fprintf(stderr, "driver: short %s\n", what);
        exit(3);
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MR NR KC LDC IN OUT\n", argv[0]);
        return 2;
    }
    long mr = atol(argv[1]), nr = atol(argv[2]), kc = atol(argv[3]), ldc = atol(argv[4]);
    ELT *a = malloc(sizeof(ELT) * kc * mr), *b = malloc(sizeof(ELT) * kc * nr), *c = malloc(sizeof(ELT) * mr * ldc);
    FILE *in = fopen(argv[5], "rb");
    if (!a || !b || !c || !in) {
        fprintf(stderr, "driver: cannot allocate or open %s\n", argv[5]);
        return 3;
    }
    check(fread(a, sizeof(ELT), kc * mr, in), kc * mr, "read of A");
    check(fread(b, sizeof(ELT), kc * nr, in), kc * nr, "read of B");
    check(fread(c, sizeof(ELT), mr * ldc, in), mr * ldc, "read of C");
    fclose(in);

    memref2d ma = view(a, kc, mr, mr), mb = view(b, kc, nr, nr), mc = view(c, mr, nr, ldc);
    _mlir_ciface_ukernel(&ma, &mb, &mc);

    FILE *out = fopen(argv[6], "wb");
    if (!out) {
        fprintf(stderr, "driver: cannot open %s\n", argv[6]);
        return 3;
    }
    check(fwrite(c, sizeof(ELT), mr * ldc, out), mr * ldc, "write of C");
    return fclose(out) == 0 ? 0 : 3;
}
