"""The harness above the compiler: configs, measurement, search, store, reports and the command line."""
