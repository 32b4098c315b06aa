/* Runs one micro-kernel call for emulated verification (built with -DELT_A=, -DELT_B= and -DELT_C=
 * the C types of A's, B's and C's elements: float, double, or the bits of bf16 and the 8-bit ints).
 *
 * usage: driver MR NR KC G LDC IN OUT
 * IN holds A (KC/G x MR*G), B (KC/G x NR*G) and C (MR x LDC), row-major, native byte order: panels
 * of low-precision kernels keep G consecutive k values of each column side by side (G = 1 otherwise).
 * The kernel updates the MR x NR block of C in place; OUT receives the whole C buffer,
 * so the harness can also check that nothing beyond NR columns was written.
 */
#include "memref2d.h"

void _mlir_ciface_ukernel(memref2d *a, memref2d *b, memref2d *c);

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s MR NR KC G LDC IN OUT\n", argv[0]);
        return 2;
    }
    long mr = atol(argv[1]), nr = atol(argv[2]), kc = atol(argv[3]), g = atol(argv[4]), ldc = atol(argv[5]);
    ELT_A *a = malloc(sizeof(ELT_A) * kc * mr);
    ELT_B *b = malloc(sizeof(ELT_B) * kc * nr);
    ELT_C *c = malloc(sizeof(ELT_C) * mr * ldc);
    FILE *in = fopen(argv[6], "rb");
    if (!a || !b || !c || !in || g < 1) {
        fprintf(stderr, "driver: cannot allocate or open %s\n", argv[6]);
        return 3;
    }
    check(fread(a, sizeof(ELT_A), kc * mr, in), kc * mr, "read of A");
    check(fread(b, sizeof(ELT_B), kc * nr, in), kc * nr, "read of B");
    check(fread(c, sizeof(ELT_C), mr * ldc, in), mr * ldc, "read of C");
    fclose(in);

    memref2d ma = view(a, kc / g, mr * g, mr * g), mb = view(b, kc / g, nr * g, nr * g), mc = view(c, mr, nr, ldc);
    _mlir_ciface_ukernel(&ma, &mb, &mc);

    FILE *out = fopen(argv[7], "wb");
    if (!out) {
        fprintf(stderr, "driver: cannot open %s\n", argv[7]);
        return 3;
    }
    check(fwrite(c, sizeof(ELT_C), mr * ldc, out), mr * ldc, "write of C");
    return fclose(out) == 0 ? 0 : 3;
}
