"""Every built-in strategy step, registered: the seam (transforms.step) and the step families.

Importing this module is what makes the built-in steps known to configs, sweeps and workers; the
names are re-exported for code that builds strategies directly.
"""
from __future__ import annotations

from .dot_product import DotProduct
from .split_accumulators import SplitAccumulators
from .step import (FACT_HINTS, PLUGINS_ENV, STEP_TYPES, PythonRewrite, Step, load_plugins, register_step,
                   step_from_config)
from .steps_loop import CAfterLoop, Pipeline, Prefetch, ScalarLoads, Schedule, UnrollK
from .steps_lowering import HoistAccumulators, LowerContraction, LowerTransfers
from .steps_structured import Legalize, TileK, Vectorize
from .sve_indexed import IndexedFma

__all__ = ["FACT_HINTS", "PLUGINS_ENV", "STEP_TYPES", "PythonRewrite", "Step", "load_plugins", "register_step",
           "step_from_config", "CAfterLoop", "Pipeline", "Prefetch", "ScalarLoads", "Schedule", "UnrollK",
           "HoistAccumulators", "LowerContraction", "LowerTransfers", "Legalize", "TileK", "Vectorize", "DotProduct",
           "SplitAccumulators", "IndexedFma"]
