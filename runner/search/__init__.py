"""Sweeps: search spaces over the declared knobs, candidate sources, isolated workers."""
