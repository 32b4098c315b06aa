"""Reading generated assembly: the kernel's hot loop and what its instructions are.

Handles LLVM's x86-64 (AT&T) and AArch64 output, which is all the target table produces.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from transforms.instructions import INSTRUCTIONS

_LABEL = re.compile(r"^([.\w$]+):")
#: Comments: `//` (AArch64) or `#` followed by a space (x86); AArch64 immediates are `#imm`.
_COMMENT = re.compile(r"//.*$|(?:^|\s)#(?:\s.*)?$")
_X86_VREG = re.compile(r"%([xyz]mm\d+)")
#: NEON's v/q/d/s/b and SVE's z name the same 32 registers (z0 extends v0).
_ARM_VREG = re.compile(r"\b[vqdsbz](\d+)(?:\.\w+)?\b")
#: An SVE register with its element size: z3.s.
_SVE_REG = re.compile(r"^z\d+\.([bhsd])$")
#: A ZA tile (za1.s), or one of its slices (za0h.s[w12, 0]).
_ZA = re.compile(r"\bza(\d+)[hv]?\.([bhsdq])")
_ELEMENT_BITS = {"b": 8, "h": 16, "s": 32, "d": 64, "q": 128}
#: SME outer products accumulating into a ZA tile (the widening forms sum 2 or 4 products per element).
OUTER_PRODUCTS = frozenset({"fmopa", "fmops", "bfmopa", "bfmops", "smopa", "smops", "umopa", "umops", "sumopa",
                            "usmopa"})
#: SVE's predicated FMA forms besides fmla (LLVM picks fmad when the accumulator is a multiplicand).
_SVE_FMAS = frozenset({"fmad", "fmsb", "fnmad"})


@dataclass(frozen=True)
class Instruction:
    mnemonic: str
    operands: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {', '.join(self.operands)}".strip()


def _split_operands(rest: str) -> tuple[str, ...]:
    """Split on commas that are not inside (), [] or {}."""
    parts, depth, current = [], 0, ""
    for ch in rest:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return tuple(parts)


def function_lines(assembly: str, symbol: str) -> list[str]:
    """The lines of one function, from its label to the next .Lfunc_end."""
    lines = assembly.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{symbol}:"))
    except StopIteration:
        raise LookupError(f"function {symbol!r} not found in the assembly") from None
    body = []
    for line in lines[start + 1:]:
        if line.startswith(".Lfunc_end"):
            break
        body.append(line)
    return body


def _parse(line: str) -> Instruction | None:
    code = _COMMENT.sub("", line).strip()
    if not code or code.startswith(".") or _LABEL.match(code):
        return None
    mnemonic, *rest = code.split(None, 1)
    return Instruction(mnemonic, _split_operands(rest[0]) if rest else ())


def loops(assembly: str, symbol: str) -> list[list[Instruction]]:
    """Every loop of the function: from a label to the last branch back to it (innermost first)."""
    lines = function_lines(assembly, symbol)
    labels = {}
    found = []
    for index, line in enumerate(lines):
        m = _LABEL.match(line.strip())
        if m:
            labels[m.group(1)] = index
            continue
        inst = _parse(line)
        if inst and inst.operands and inst.operands[-1] in labels and _is_branch(inst.mnemonic):
            start = labels[inst.operands[-1]]
            body = [i for i in (_parse(l) for l in lines[start + 1:index + 1]) if i is not None]
            found.append(body)
    return sorted(found, key=len)


def hot_loop(assembly: str, symbol: str) -> list[Instruction]:
    """The loop with the most FMAs (the k loop); the whole function when it has no loop."""
    candidates = loops(assembly, symbol)
    if not candidates:
        return [i for i in (_parse(l) for l in function_lines(assembly, symbol)) if i is not None]
    return max(candidates, key=lambda body: (sum(is_fma(i) for i in body), -len(body)))


def _is_branch(mnemonic: str) -> bool:
    return mnemonic.startswith("j") or mnemonic.startswith("b") or mnemonic in ("cbnz", "cbz", "tbnz", "tbz")


def is_fma(inst: Instruction) -> bool:
    """A multiply-accumulate: an FMA, a dot-product instruction (vdpbf16ps, vpdpbusd, sdot, smmla, ...) or an
    SME outer product (fmopa, bfmopa, smopa, ...)."""
    m = inst.mnemonic
    return m.startswith(("vfmadd", "vfmsub", "vfnmadd", "vfnmsub")) or m in ("fmla", "fmls", "fmadd") or \
        m in INSTRUCTIONS or m in OUTER_PRODUCTS or m in _SVE_FMAS


def is_outer_product(inst: Instruction) -> bool:
    return inst.mnemonic in OUTER_PRODUCTS


def za_tile(inst: Instruction) -> str | None:
    """The ZA tile an instruction names first (za1.s for `fmopa za1.s, ...` or `st1w {za1h.s[w12, 0]}`)."""
    for operand in inst.operands:
        found = _ZA.search(operand)
        if found:
            return f"za{found.group(1)}.{found.group(2)}"
    return None


def is_za_move(inst: Instruction) -> bool:
    """A load, store or move of ZA tile slices (not an outer product into one)."""
    return not is_outer_product(inst) and za_tile(inst) is not None


def is_streaming_switch(inst: Instruction) -> bool:
    return inst.mnemonic in ("smstart", "smstop")


_X86_REG_BYTES = {"x": 16, "y": 32, "z": 64}
_ARM_ARRANGEMENT = re.compile(r"^v\d+\.(\d+)[bhsd]$")


def fma_flops(inst: Instruction, scalable_bits: int = 128) -> int:
    """Operations of one multiply-accumulate instruction: 2 x lanes for an FMA (lanes read off its
    registers and element type); 2 x multiply-adds for a dot product (at its register width); for an
    outer product, 2 x its tile's elements x the products each sums. SVE and SME registers are
    `scalable_bits` long (the vector length the code runs at)."""
    if inst.mnemonic in INSTRUCTIONS:
        return 2 * INSTRUCTIONS[inst.mnemonic].macs(fma_bits(inst))
    if is_outer_product(inst):
        tile = _ZA.search(inst.operands[0])
        source = _SVE_REG.match(inst.operands[-1])
        element, inputs = _ELEMENT_BITS[tile.group(2)], _ELEMENT_BITS[source.group(1)]
        return 2 * (scalable_bits // element) ** 2 * (element // inputs)
    sve = _SVE_REG.match(inst.operands[0]) if inst.operands else None
    if sve:
        return 2 * scalable_bits // _ELEMENT_BITS[sve.group(1)]
    if inst.mnemonic.startswith("v"):  # x86: vfmadd231ps %ymm.. (packed) or ..ss/..sd (scalar)
        m = _X86_VREG.search(inst.operands[-1])
        suffix = inst.mnemonic[-2:]
        if suffix in ("ss", "sd") or m is None:
            return 2
        return 2 * _X86_REG_BYTES[m.group(1)[0]] // (4 if suffix == "ps" else 8)
    m = _ARM_ARRANGEMENT.match(inst.operands[0]) if inst.operands else None  # fmla v0.4s, ..
    return 2 * int(m.group(1)) if m else 2


def fma_bits(inst: Instruction, scalable_bits: int = 128) -> int:
    """Vector width of one multiply-accumulate in bits (a scalar FMA counts as the 128-bit register it uses;
    SVE and SME registers are `scalable_bits` long)."""
    if inst.mnemonic.startswith("v"):
        m = _X86_VREG.search(inst.operands[-1])
        return 8 * _X86_REG_BYTES[m.group(1)[0]] if m else 128
    if any(_SVE_REG.match(o) for o in inst.operands):
        return scalable_bits
    return 128  # NEON: every vector register is 128-bit


def widest_fma_bits(assembly: str, symbol: str | None = None) -> int | None:
    """The widest FMA in function `symbol` (default: anywhere), or None when there is no FMA."""
    lines = assembly.splitlines() if symbol is None else function_lines(assembly, symbol)
    fmas = [i for i in (_parse(line) for line in lines) if i is not None and is_fma(i)]
    return max((fma_bits(i) for i in fmas), default=None)


def streaming_switches(assembly: str, symbol: str) -> int:
    """smstart/smstop pairs one call of `symbol` executes at most: `smstart` instructions in its body
    (LLVM emits `smstart sm` and `smstart za` as a pair: one switch)."""
    lines = [i for i in (_parse(line) for line in function_lines(assembly, symbol)) if i is not None]
    return sum(1 for i in lines if i.mnemonic == "smstart" and i.operands[:1] == ("sm",))


def is_broadcast(inst: Instruction) -> bool:
    return inst.mnemonic.startswith(("vbroadcast", "vpbroadcast", "dup", "ld1r"))


def _is_memory(operand: str) -> bool:
    return "(" in operand or operand.startswith("[")


def is_load(inst: Instruction) -> bool:
    m = inst.mnemonic
    if m.startswith(("ldr", "ldp", "ldu", "ld1", "ld2", "ld3", "ld4")):
        return True
    return bool(inst.operands) and any(_is_memory(o) for o in inst.operands[:-1]) and not m.startswith("lea")


def is_store(inst: Instruction) -> bool:
    m = inst.mnemonic
    if m.startswith(("str", "stp", "stu", "st1", "st2", "st3", "st4")):
        return True
    return bool(inst.operands) and _is_memory(inst.operands[-1]) and not m.startswith(("cmp", "test"))


def is_prefetch(inst: Instruction) -> bool:
    return inst.mnemonic.startswith(("prefetch", "prfm"))


def is_vector(inst: Instruction) -> bool:
    return any(_X86_VREG.search(o) or _ARM_VREG.search(o) for o in inst.operands)


#: An instruction's class: the first test it passes, in this order (an outer product is also an FMA to
#: is_fma, a ZA slice load also a load to is_load).
_CLASSES = ((is_outer_product, "outer product"), (is_za_move, "za move"), (is_streaming_switch, "streaming switch"),
            (is_fma, "fma"), (is_broadcast, "broadcast"), (is_prefetch, "prefetch"), (is_load, "load"),
            (is_store, "store"))


def classify(inst: Instruction) -> str:
    return next((name for test, name in _CLASSES if test(inst)), "other")


def reads_memory_operand(inst: Instruction) -> bool:
    """An arithmetic instruction with a memory source (x86 folds a load or broadcast into the FMA:
    `vfmadd231ps (%rax){1to16}, %zmm1, %zmm0`): it loads as well as computes."""
    return classify(inst) in ("fma", "other") and bool(inst.operands) and any(
        _is_memory(o) for o in inst.operands[:-1]) and not inst.mnemonic.startswith("lea")


def instruction_mix(body: list[Instruction]) -> Counter:
    """Instructions per class, plus `folded load`: memory operands of FMAs and other arithmetic, which
    occupy a load port as a separate load would."""
    mix = Counter(classify(i) for i in body)
    folded = sum(reads_memory_operand(i) for i in body)
    if folded:
        mix["folded load"] = folded
    return mix


def annotated_lines(body: list[Instruction], aarch64: bool) -> list[str]:
    """The loop as a person reads it: each instruction tagged (FMA, LOAD, FMA+LOAD, BCAST, SPILL, ...),
    and each vector load with how many instructions later its register is first used."""
    distances = iter(load_use_distances(body, aarch64))
    slot = _stack_slot(body)
    lines = []
    for inst in body:
        kind = classify(inst)
        stack = _on_stack(inst, slot)
        tag = ("SPILL" if kind == "store" and stack else "RELOAD" if kind == "load" and stack else
               "FMA+LOAD" if kind == "fma" and reads_memory_operand(inst) else
               {"fma": "FMA", "load": "LOAD", "broadcast": "BCAST", "prefetch": "PREF", "store": "STORE",
                "outer product": "MOPA", "za move": "ZA", "streaming switch": inst.mnemonic.upper()}.get(kind, ""))
        note = ""
        if kind in ("load", "broadcast") and is_vector(inst):
            distance = next(distances)
            note = "  # first use: never in the loop" if distance is None else f"  # first use {distance} later"
        lines.append(f"{tag:>8}  {inst.text}{note}")
    return lines


def vector_registers(body: list[Instruction]) -> set[str]:
    """Vector registers named in `body` (x86 xmm/ymm/zmm of one number count once)."""
    return {name for inst in body for operand in inst.operands for name in _register_names(operand)}


_STACK = re.compile(r"\(%rsp\)|\(%rbp\)|\[sp\b|\[x29\b")
#: The same without the frame-pointer registers, for loops that use them as ordinary pointers.
_STACK_POINTER_ONLY = re.compile(r"\(%rsp\)|\[sp\b")


def _stack_slot(body: list[Instruction]) -> re.Pattern:
    """What addresses a stack slot in `body`: %rbp / x29 count as the frame pointer unless the loop
    writes them (frame-pointer elimination frees them as a panel pointer, stepped in the loop)."""
    written = {inst.operands[-1] for inst in body if inst.operands} | {inst.operands[0] for inst in body
                                                                       if inst.operands}
    return _STACK_POINTER_ONLY if written & {"%rbp", "x29"} else _STACK


def _on_stack(inst: Instruction, slot: re.Pattern) -> bool:
    return is_vector(inst) and any(slot.search(o) for o in inst.operands)


def _written_register(inst: Instruction, aarch64: bool) -> str | None:
    if not inst.operands:
        return None
    return inst.operands[0] if aarch64 else inst.operands[-1]


def _register_names(operand: str) -> set[str]:
    x86 = {f"v{m[3:]}" for m in _X86_VREG.findall(operand)}
    if x86 or operand.startswith("["):
        return x86
    return {f"v{n}" for n in _ARM_VREG.findall(operand)}


def spills(body: list[Instruction]) -> tuple[int, int]:
    """(stores, reloads) of vector registers to/from the stack frame inside `body`."""
    slot = _stack_slot(body)
    return sum(1 for i in body if is_store(i) and _on_stack(i, slot)), sum(1 for i in body if is_load(i) and
                                                                           _on_stack(i, slot))


def load_use_distances(body: list[Instruction], aarch64: bool) -> list[int | None]:
    """For each vector load or broadcast, instructions until the first one reading its register."""
    distances = []
    for index, inst in enumerate(body):
        if classify(inst) not in ("load", "broadcast") or not is_vector(inst):
            continue
        written = _register_names(_written_register(inst, aarch64) or "")
        distance = None
        for later, user in enumerate(body[index + 1:], start=1):
            sources = user.operands[1:] if aarch64 else user.operands[:-1]
            reads = set().union(*(_register_names(o) for o in sources)) if sources else set()
            if is_fma(user):  # an FMA also reads its accumulator (the written operand)
                reads |= _register_names(_written_register(user, aarch64) or "")
            if written & reads:
                distance = later
                break
        distances.append(distance)
    return distances


@dataclass(frozen=True)
class LoopAnnotation:
    instructions: int
    mix: dict[str, int]
    vector_registers_used: int
    vector_registers_available: int
    spill_stores: int
    spill_reloads: int
    load_use_distances: list[int | None]
    #: SME: ZA tiles the loop's outer products accumulate into, and ZA slice loads/stores/moves in the loop
    #: (C's tile belongs outside the k loop: any here is traffic the tile allocator or the lowering added).
    za_tiles_used: int = 0
    za_moves: int = 0

    @property
    def spills(self) -> int:
        """Vector stack traffic in the loop: spill stores plus reloads."""
        return self.spill_stores + self.spill_reloads

    def to_json(self) -> dict:
        """As JSON, with the load-to-use distances summarised (a total unroll has thousands)."""
        known = sorted(d for d in self.load_use_distances if d is not None)
        summary = {"count": len(self.load_use_distances), "unused": len(self.load_use_distances) - len(known),
                   "min": known[0] if known else None, "median": known[len(known) // 2] if known else None,
                   "max": known[-1] if known else None}
        return {**self.__dict__, "load_use_distances": summary, "spills": self.spills}


def annotate(body: list[Instruction], registers_available: int, aarch64: bool) -> LoopAnnotation:
    """What an experimenter reads off a loop: registers, spills, instruction mix, load placement."""
    stores, reloads = spills(body)
    tiles = {za_tile(i) for i in body if is_outer_product(i)}
    return LoopAnnotation(len(body), dict(instruction_mix(body)), len(vector_registers(body)), registers_available,
                          stores, reloads, load_use_distances(body, aarch64), len(tiles),
                          sum(is_za_move(i) for i in body))
