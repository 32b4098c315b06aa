"""Running AArch64 kernels under qemu-aarch64 to verify them."""
