"""Studies over several candidates: running an experiment, comparing two, finding a crossover."""
