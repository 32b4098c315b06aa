"""Measuring one candidate: the lifecycle (build, verify, measure), timing, the trust rules, statistics."""
