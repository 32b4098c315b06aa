/* The SME support routines of the AArch64 procedure call standard that LLVM calls from a function with
 * a fresh ZA (__arm_new("za")): on entry, if TPIDR2_EL0 says a caller left ZA to be saved lazily, it calls
 * __arm_tpidr2_save. Debian's GCC 12 libgcc predates SME, so a static link needs it from here.
 * Nothing in an emulated run ever sets up a lazy save (the driver does not use ZA, and TPIDR2_EL0 starts
 * at zero), so reaching this is a bug in the harness: it says so and stops rather than guessing. */
#include <stdio.h>
#include <stdlib.h>

void __arm_tpidr2_save(void) {
    fputs("sme_abi: __arm_tpidr2_save called, but no lazy ZA save was ever set up\n", stderr);
    abort();
}
