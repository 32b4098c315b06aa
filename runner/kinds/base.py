"""The problem-kind seam: what a kind of problem (micro-kernel, GEMM, a plugin's) tells the harness.

The lifecycle, `ukl run`, sweeps and their workers, reproducers, the store, the CLI and the report
never test for a concrete kind: they look the problem's kind up here and ask it. A kind is one
module that subclasses ProblemKind and registers an instance (`register`); a plugin kind is such
a module named in $UKL_PLUGINS (transforms.steps.load_plugins imports it, in sweep workers
and replays too).

What a kind declares, in one place: its config section and how it is read, how a strategy (and a
sweep point's problem knobs) becomes problems, its problems' JSON form, candidate key and label,
how a problem is compiled, how its code is called, its baselines, its knobs beyond the kernel's,
and what its records add to a table.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from kernels_mlir.names import KERNEL
from kernels_mlir.operands import Operands
from kernels_mlir.problem import Problem
from pipelines.codegen import MachineCode
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.knobs import Knob, Point
from transforms.strategy import Strategy

from runner.cli.output import results_table
from runner.config.fields import check_threads
from runner.measure.baselines import Baseline
from runner.measure.native import NativeFunction
from runner.measure.parallel import Team
from runner.measure.record import Record


@dataclass(frozen=True)
class Compiled:
    """A problem's code as its kind compiled it: machine code and the width of its FMAs (its peak is
    measured at that width); the lifecycle times the build around it."""

    code: MachineCode
    vector_bits: int
    stages: dict[str, str] = field(default_factory=dict)


class ProblemKind:
    """Base of every problem kind; subclasses set `name` and override what differs."""

    name: ClassVar[str]
    #: The config section its settings are read from (None: it has none).
    section: ClassVar[str | None] = None
    #: Knobs of the problem beyond the strategy's (a [space] may list them; see problem_knobs).
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: The report's plots for its results, by name (runner.report.report.PLOTS).
    plots: ClassVar[tuple[str, ...]] = ("fraction", "knob_effects", "optuna")
    #: Its figures are read per call (ns), not only per flop: small problems, where the call is the cost.
    per_call: ClassVar[bool] = False
    #: Its code can be verified under qemu (its entry is a micro-kernel's, or takes A, B, C and a share).
    emulated: ClassVar[bool] = True

    # --- configs ---
    def read_section(self, table: dict[str, Any], strategies: tuple[Strategy, ...]) -> Any:
        """The validated settings of its config section (`table`, {} when absent); StrategyError naming
        the field otherwise. Every strategy's problems are checked here, before any work."""
        if table:
            raise StrategyError(f"{self.section}: this kind takes no settings")
        return None

    def bind_target(self, settings: Any, target: str) -> Any:
        """The settings for a config whose target is `target` (a name): where a setting depends on the
        machine (the analytical model's "auto" blocking), it is resolved for this target."""
        return settings

    def check_space(self, choices: dict[str, tuple[Any, ...]]) -> None:
        """What this machine must have for a [space]'s values of the kind's knobs (their domains are the
        knobs' own checks): StrategyError naming the knob otherwise."""

    def problems(self, settings: Any, strategy: Strategy, point: Point | None = None) -> list[Problem]:
        """The problems a strategy is run on (a sweep point may set the kind's knobs)."""
        raise NotImplementedError

    def problems_per_strategy(self, settings: Any) -> int:
        return 1

    # --- identity ---
    def to_dict(self, problem: Problem) -> dict[str, Any]:
        """The problem's full JSON form (what and how): from_dict's inverse."""
        raise NotImplementedError

    def from_dict(self, data: dict[str, Any]) -> Problem:
        """The problem from its JSON form (a reproducer's problem.json, a stored record); SpecError
        or StrategyError naming the field when it is not one."""
        raise NotImplementedError

    def key(self, strategy: Strategy, problem: Problem) -> str:
        """What identifies the candidate's code and problem in the store."""
        body = json.dumps({"kernel": strategy.hash, self.name: self.to_dict(problem)}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def label(self, strategy: Strategy, problem: Problem) -> str:
        """The name its records carry."""
        return strategy.name

    def strategy_name(self, label: str) -> str:
        """The strategy's own name in a label (label's inverse: a stored row carries the label)."""
        return label

    def variant(self, strategy: Strategy, problem: Problem) -> str:
        """What `ukl compare` names one side by, the same across workloads: the strategy's name, and
        anything else of the problem's that is how rather than what."""
        return strategy.name

    def identity(self, strategy: Strategy, problem: Problem) -> dict[str, Any]:
        """Fields its records carry beyond kind and problem (workload): the candidate key (a record
        without one is its strategy's: record_key) and what from_record reads the problem back from."""
        return {"candidate_key": self.key(strategy, problem), self.name: self.to_dict(problem)}

    def from_record(self, record: dict[str, Any]) -> Problem:
        """The problem a stored record (its JSON) was about."""
        return self.from_dict(record[self.name])

    def knob_values(self, record: dict[str, Any]) -> dict[str, Any]:
        """Its knobs' values in a stored record (for the report's knob effects and Optuna's plots)."""
        spec = record.get(self.name) or {}
        return {k.name: spec.get(k.name, k.default) for k in self.knobs}

    def report_columns(self, records: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
        """Columns its records add to the report's table after the strategy's name: (header, the cell
        from a record's JSON), for these records."""
        return []

    def report_summaries(self, records: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
        """Small tables the report adds under the kind's own, from its verified records (best first):
        (title, headers, rows)."""
        return []

    def report_group(self, record: dict[str, Any]) -> str:
        """Records of one group are ranked together in the report (leader_group's stored form)."""
        return json.dumps(record.get("problem"), sort_keys=True)

    def leader_group(self, problem: Problem) -> str:
        """Candidates with the same group compete for a sweep's leader places: the same workload."""
        return json.dumps(problem.workload(), sort_keys=True)

    # --- building and running ---
    def build(self, strategy: Strategy, problem: Problem, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        raise NotImplementedError

    def threads(self, problem: Problem) -> int:
        return 1

    def hot_function(self, problem: Problem) -> str:
        """The function whose hottest loop is the problem's (what `ukl mca` predicts): the micro-kernel."""
        return KERNEL

    def launch(self, code: MachineCode, problem: Problem, ops: Operands, bench: bool) -> Callable[..., None]:
        """The problem's entry (`f()`) or bench loop (`f(n)`) over `ops`: every operand, in order."""
        arrays = [g.view for g in ops.guarded.values()]
        return NativeFunction(code, problem.bench if bench else problem.entry, arrays, n_scalars=int(bench))

    def shares(self, problem: Problem) -> list[tuple[int, int]] | None:
        """The [lo, hi) each thread passes to the entry after A, B and C (what emulated verification calls
        in turn), or None for an entry taking its operands only (a micro-kernel: its own driver)."""
        return None

    def vector_lengths(self, problem: Problem, target: Target) -> tuple[int | None, ...]:
        """The SVE/SME vector lengths (bits) emulated verification runs the problem's code at, each in
        turn; (None,) for fixed-width code."""
        return (None,)

    def at_length(self, problem: Problem, bits: int | None) -> Problem:
        """The problem as one run at `bits` computes it (its operands and reference are this one's)."""
        return problem

    def baselines(self, problem: Problem, ops: Operands) -> list[Baseline]:
        """Libraries timed in the same alternation as ours, on the same operands."""
        return []

    def table(self, records: list[Record]) -> str:
        """Its records as the terminal table `ukl run` and `ukl sweep` print."""
        return results_table(records)

    def bytes_needed(self, problem: Problem) -> int:
        """Memory one measurement takes: the problem's own count (its baselines' buffers included), made
        before anything is allocated."""
        return problem.bytes_needed


class SharedEntryKind(ProblemKind):
    """A kind whose entry takes A, B, C and a share [lo, hi) of the work: each of the problem's
    `threads` calls it on its share (`problem.partition()`), in parallel natively, in turn under
    emulation."""

    def threads(self, problem: Problem) -> int:
        return problem.threads

    def check_space(self, choices: dict[str, tuple[Any, ...]]) -> None:
        """A thread count this machine can run."""
        for value in choices.get("threads", ()):
            check_threads(value, "space.threads")

    def shares(self, problem: Problem) -> list[tuple[int, int]]:
        return problem.partition()

    def launch(self, code: MachineCode, problem: Problem, ops: Operands, bench: bool) -> Callable[..., None]:
        fn = NativeFunction(code, problem.bench if bench else problem.entry, [ops.a, ops.b, ops.c],
                            n_scalars=2 + int(bench))
        shares = self.shares(problem)
        team = Team(len(shares))

        def run(*n: int) -> None:
            team.run([lambda lo=lo, hi=hi: fn(lo, hi, *n) for lo, hi in shares])
        return run


def scalable_length(strategy: Strategy, target: Target) -> int | None:
    """The vector length a problem around a scalable kernel (a GEMM, a convolution's GEMM routes) is built
    for: its core's (None for a fixed-width kernel); an architecture level leaves it to the implementation,
    so nothing can be built for it."""
    kind = strategy.kernel.scalable
    if kind is None:
        return None
    bits = target.scalable_bits(kind)
    if bits is None:
        raise StrategyError(f"scalable: a GEMM around a {kind} kernel is built for one vector length, which "
                            f"{target.label} does not fix (target a core, e.g. apple-m4 or neoverse-v1)")
    return bits


def ratio_cell(record: dict[str, Any], name: str) -> str:
    """Our ratio to baseline `name` in a stored record, with its 95% interval ("-" when absent)."""
    b = next((b for b in record.get("baselines") or [] if b.get("name") == name), None)
    if b is None or b.get("ratio") is None:
        return "-"
    low, high = b.get("ratio_ci") or (None, None)
    return f"{b['ratio']:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{b['ratio']:.3f}"


#: Every registered kind by name, built-ins first.
KINDS: dict[str, ProblemKind] = {}


class UnknownKind(StrategyError):
    pass


def register(kind: ProblemKind) -> ProblemKind:
    """Add a kind (a plugin module calls this at import); its name and section must be new."""
    if kind.name in KINDS and type(KINDS[kind.name]) is not type(kind):
        raise StrategyError(f"problem kind {kind.name!r} is registered twice")
    taken = {k.section for k in KINDS.values() if k.name != kind.name}
    if kind.section is not None and kind.section in taken:
        raise StrategyError(f"problem kind {kind.name!r}: config section [{kind.section}] is another kind's")
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> ProblemKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown problem kind {name!r} (known: {', '.join(KINDS)}; a plugin's kind needs "
                          "its module in $UKL_PLUGINS)") from None


def kind_of(problem: Problem) -> ProblemKind:
    return kind_named(problem.kind)


def kind_knobs() -> dict[str, list[ProblemKind]]:
    """Each problem knob's name -> the kinds that declare it (a GEMM's and a convolution's mc, nc,
    threads and pack_bytes share their names, each kind with its own domain)."""
    owners: dict[str, list[ProblemKind]] = {}
    for kind in KINDS.values():
        for knob in kind.knobs:
            owners.setdefault(knob.name, []).append(kind)
    return owners


def problem_knobs(point: Point, kind: ProblemKind) -> dict[str, Any]:
    """The values a sweep point gives the kind's own knobs."""
    return {k.name: point[k.name] for k in kind.knobs if k.name in point}


def launch(code: MachineCode, problem: Problem, ops: Operands, bench: bool = False) -> Callable[..., None]:
    """The problem's entry (`f()`) or bench loop (`f(n)`) over `ops`, as its kind calls it."""
    return kind_of(problem).launch(code, problem, ops, bench)


def section_names() -> set[str]:
    return {k.section for k in KINDS.values() if k.section is not None}
