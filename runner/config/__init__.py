"""Experiment configs (TOML) read into validated Experiments; every problem is one line."""
