/* Runs a problem's entry point for emulated verification: ENTRY(A, B, C, lo, hi) on 2-D row-major
 * memrefs, once per share [lo, hi) in turn (what each thread would compute). Built with -DENTRY= the
 * entry's C interface and -DELT_A=, -DELT_B=, -DELT_C= the C types of the three operands' elements.
 *
 * usage: driver ROWS_A COLS_A ROWS_B COLS_B ROWS_C COLS_C IN OUT LO HI [LO HI ...]
 * IN holds A, B and C, row-major, native byte order; OUT receives C after the calls.
 */
#include "memref2d.h"

void ENTRY(memref2d *a, memref2d *b, memref2d *c, long lo, long hi);

int main(int argc, char **argv) {
    if (argc < 11 || (argc - 9) % 2) {
        fprintf(stderr, "usage: %s ROWS_A COLS_A ROWS_B COLS_B ROWS_C COLS_C IN OUT LO HI [LO HI ...]\n", argv[0]);
        return 2;
    }
    long rows[3], cols[3];
    for (int i = 0; i < 3; i++) {
        rows[i] = atol(argv[1 + 2 * i]);
        cols[i] = atol(argv[2 + 2 * i]);
    }
    ELT_A *a = malloc(sizeof(ELT_A) * rows[0] * cols[0]);
    ELT_B *b = malloc(sizeof(ELT_B) * rows[1] * cols[1]);
    ELT_C *c = malloc(sizeof(ELT_C) * rows[2] * cols[2]);
    FILE *in = fopen(argv[7], "rb");
    if (!a || !b || !c || !in) {
        fprintf(stderr, "driver: cannot allocate or open %s\n", argv[7]);
        return 3;
    }
    check(fread(a, sizeof(ELT_A), rows[0] * cols[0], in), rows[0] * cols[0], "read of A");
    check(fread(b, sizeof(ELT_B), rows[1] * cols[1], in), rows[1] * cols[1], "read of B");
    check(fread(c, sizeof(ELT_C), rows[2] * cols[2], in), rows[2] * cols[2], "read of C");
    fclose(in);

    memref2d ma = view(a, rows[0], cols[0], cols[0]), mb = view(b, rows[1], cols[1], cols[1]),
             mc = view(c, rows[2], cols[2], cols[2]);
    for (int i = 9; i < argc; i += 2)
        ENTRY(&ma, &mb, &mc, atol(argv[i]), atol(argv[i + 1]));

    FILE *out = fopen(argv[8], "wb");
    if (!out) {
        fprintf(stderr, "driver: cannot open %s\n", argv[8]);
        return 3;
    }
    check(fwrite(c, sizeof(ELT_C), rows[2] * cols[2], out), rows[2] * cols[2], "write of C");
    return fclose(out) == 0 ? 0 : 3;
}
