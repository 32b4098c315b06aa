"""Problem kinds (runner.kinds.base); the built-in ones register on import."""
from runner.kinds.base import (KINDS, Compiled, ProblemKind, UnknownKind, kind_knobs, kind_named, kind_of,
                               launch, problem_knobs, register, section_names)
from runner.kinds import conv2d, gemm, microkernel, small_gemm  # noqa: F401  (registration)

__all__ = ["KINDS", "Compiled", "ProblemKind", "UnknownKind", "kind_knobs", "kind_named", "kind_of", "launch", "problem_knobs",
           "register", "section_names"]
