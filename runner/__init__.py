"""The harness above the compiler: configs, measurement, search, store, reports and the command line."""
import os

# OpenBLAS's worker threads keep spinning for about 2^28 cycles after each call (its default
# THREAD_TIMEOUT), which in an alternated multi-thread measurement takes a core from whatever is
# timed next (BLIS's threads fell from 221 to 22 GFLOP/s). 2^4 cycles makes them sleep at once. It
# must be set before OpenBLAS loads (NumPy's import), hence here, first; a value the user set stays.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
