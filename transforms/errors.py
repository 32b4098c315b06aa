"""Errors raised while building or applying a strategy."""


class StrategyError(ValueError):
    """A strategy that cannot be built: unknown step, bad field, steps in an impossible order.

    Raised before any IR is touched; the message names the step and field.
    """


class StepFailed(RuntimeError):
    """A step ran but did not produce the IR it promises (upstream transforms can fail silently)."""
