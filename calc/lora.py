"""LoRA trainable parameters exactly as PEFT counts them.

A LoRA adapter on a weight ``W`` (``out x in``) adds ``B`` (``out x r``) and ``A`` (``r x in``): ``r·(in+out)``
trainable elements, and the update ``ΔW = (α/r)·B·A`` (Hu et al. 2021, *LoRA*, §4.1); rsLoRA scales by
``α/√r`` instead (Kalajdzievski 2023, §3). DoRA adds a magnitude vector of ``out`` elements per adapted
matrix (Liu et al. 2024, *DoRA*, §4.1; PEFT ``tuners/lora/dora.py``).

How PEFT 0.21.2 chooses the modules (``peft/tuners/tuners_utils.py``): a name in ``target_modules`` matches
a module whose dotted path equals it or ends with ``"." + name``; ``"all-linear"`` means every
``nn.Linear``/``Conv1D`` except the output layer. Under transformers v5 PEFT rewrites some MoE names into
parameter targets (``peft/utils/transformers_weight_conversion.py``): a stacked expert parameter
``E x out x in`` gets ``A`` of ``(E·r) x in`` and ``B`` of ``out x (E·r)``, i.e. ``E·r·(in+out)``, and
fused names (Mixtral's ``w1``+``w3`` → ``gate_up_proj``) get rank ``2r`` and alpha ``2α``.
:data:`calc.families.FAMILIES` records, per family, which names are rewritten.

Units: parameter counts (elements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from calc.architecture import Architecture, LinearModule
from calc.errors import CalcError

ALL_LINEAR = "all-linear"
SHORTCUTS = ("qv", "attention", "mlp")
BIAS_MODES = ("none", "all", "lora_only")


@dataclass(frozen=True)
class LoraSpec:
    """The fields of PEFT's ``LoraConfig`` that decide parameter counts, with PEFT's names.

    ``target_modules`` is ``"all-linear"``, a calc shortcut (``"qv"``, ``"attention"``, ``"mlp"``, resolved
    per family by :func:`peft_target_modules`) or a sequence of module names. ``lora_alpha`` defaults to
    PEFT's default of 8.
    """

    r: int = 8
    lora_alpha: float = 8
    target_modules: str | tuple[str, ...] = ALL_LINEAR
    use_dora: bool = False
    use_rslora: bool = False
    modules_to_save: tuple[str, ...] = ()
    bias: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise CalcError(f"must be a positive integer, got {self.r!r}", field="r")
        if self.r > 1 << 16:
            raise CalcError(f"is absurdly large ({self.r})", field="r")
        if isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, (int, float)) \
                or not math.isfinite(self.lora_alpha) or self.lora_alpha <= 0:
            raise CalcError(f"must be a positive number, got {self.lora_alpha!r}", field="lora_alpha")
        if self.bias not in BIAS_MODES:
            raise CalcError(f"must be one of {', '.join(BIAS_MODES)}, got {self.bias!r}", field="bias")
        if not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            if not self.target_modules:
                raise CalcError("must name at least one module", field="target_modules")
        object.__setattr__(self, "modules_to_save", tuple(self.modules_to_save))

    @property
    def scaling(self) -> float:
        """``α/r``, or ``α/√r`` with rsLoRA: the factor on ``B·A`` (for a module at rank ``r``)."""
        return scaling(self.r, self.lora_alpha, self.use_rslora)


def scaling(r: int, lora_alpha: float, use_rslora: bool = False) -> float:
    """LoRA's scale ``α/r`` (Hu et al. §4.1) or rsLoRA's ``α/√r`` (Kalajdzievski 2023; PEFT ``LoraLayer.update_layer``)."""
    return lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r


@dataclass(frozen=True)
class ModuleLora:
    """LoRA on one module kind, summed over its ``count`` instances."""

    name: str
    target: str
    in_features: int
    out_features: int
    count: int
    kind: str
    experts: int
    r: int
    lora_alpha: float
    scaling: float
    lora_params: int        # A and B (and DoRA's magnitude vector), all instances
    dora_params: int        # the magnitude vectors alone (included in lora_params)
    bias_params: int        # biases made trainable by ``bias=``


@dataclass(frozen=True)
class LoraCount:
    """What ``get_peft_model(model, LoraConfig(...)).get_nb_trainable_parameters()`` reports, itemised."""

    architecture: Architecture
    spec: LoraSpec
    modules: tuple[ModuleLora, ...]
    modules_to_save: tuple[tuple[str, int], ...]
    other_bias_params: int = 0      # biases outside targeted modules (``bias="all"``: norms, untargeted linears)
    peft_target_modules: str | tuple[str, ...] = field(default=ALL_LINEAR)

    @property
    def lora_params(self) -> int:
        return sum(m.lora_params for m in self.modules)

    @property
    def bias_params(self) -> int:
        return sum(m.bias_params for m in self.modules) + self.other_bias_params

    @property
    def modules_to_save_params(self) -> int:
        return sum(n for _, n in self.modules_to_save)

    @property
    def trainable_params(self) -> int:
        """PEFT's ``trainable_params``."""
        return self.lora_params + self.bias_params + self.modules_to_save_params

    @property
    def total_params(self) -> int:
        """The base model's parameters (tied weights once)."""
        return self.architecture.total_params

    @property
    def peft_all_params(self) -> int:
        """PEFT's ``all_param``: the base model plus the new adapter and ``modules_to_save`` copies."""
        return self.total_params + self.lora_params + self.modules_to_save_params

    @property
    def trainable_percent(self) -> float:
        """``100 · trainable / all_param``, the share ``print_trainable_parameters`` prints."""
        return 100.0 * self.trainable_params / self.peft_all_params


# -- target resolution ---------------------------------------------------------------------------------
def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)


def peft_target_modules(arch: Architecture, target_modules: str | Sequence[str]) -> str | tuple[str, ...]:
    """What to pass to PEFT as ``target_modules`` for this spec: calc's shortcuts expanded per family.

    Raises :class:`CalcError` for a name the family does not have (PEFT would ignore it silently as long as
    another name matched, which hides typos).
    """
    if isinstance(target_modules, str):
        if target_modules == ALL_LINEAR:
            return ALL_LINEAR
        if target_modules in SHORTCUTS:
            known = arch.target_names
            wanted = arch.family.shortcuts.get(target_modules, ())
            names = tuple(n for n in wanted if any(_matches(m.name, n) for m in arch.modules) or n in known)
            if not names:
                raise CalcError(f"{arch.model_type} has no modules for the {target_modules!r} set",
                                field="target_modules")
            return names
        target_modules = [t.strip() for t in target_modules.split(",") if t.strip()]
    names = tuple(target_modules)
    if not names:
        raise CalcError("must name at least one module", field="target_modules")
    for name in names:
        if not isinstance(name, str) or not name:
            raise CalcError(f"module names must be non-empty strings, got {name!r}", field="target_modules")
        if name in arch.family.param_targets:
            continue
        if not any(_matches(m.name, name) for m in arch.modules if m.kind in ("linear", "conv1d")):
            choices = ", ".join(sorted(arch.target_names))
            raise CalcError(f"{arch.model_type} has no module {name!r} (choices: {choices}, or all-linear, qv, "
                            "attention, mlp)", field="target_modules")
    return names


def _resolve(arch: Architecture, peft_targets: str | tuple[str, ...]) -> tuple[set[str], dict[str, int]]:
    """Module names targeted, and parameter targets with their rank multiplier (PEFT's MoE rewrite)."""
    fam = arch.family
    linear = [m for m in arch.modules if m.kind in ("linear", "conv1d")]
    if peft_targets == ALL_LINEAR:
        if not fam.param_targets:
            return {m.name for m in linear}, {}
        names = {m.target for m in linear} | set(fam.param_targets)
    else:
        names = set(peft_targets)
    params: dict[str, int] = {}
    remaining = set()
    matched: dict[str, set[str]] = {}
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in fam.param_targets:
            path = fam.param_targets[leaf]
            params[path] = 1
            matched.setdefault(path, set()).add(leaf)
        else:
            remaining.add(name)
    for path, required in fam.fused.items():
        present = matched.get(path, set())
        if present and len(present) < len(required):
            missing = ", ".join(sorted(set(required) - present))
            raise CalcError(f"{', '.join(sorted(present))} cannot be targeted without {missing}: PEFT fuses them "
                            f"into {path.rsplit('.', 1)[-1]}", field="target_modules")
        if present:
            params[path] = len(required)
    modules = {m.name for m in linear if any(_matches(m.name, t) for t in remaining)}
    return modules, params


# -- counting ------------------------------------------------------------------------------------------
def count_lora(arch: Architecture, spec: LoraSpec) -> LoraCount:
    """Trainable parameters of ``spec`` on ``arch``, per module, as PEFT 0.21.2 counts them."""
    peft_targets = peft_target_modules(arch, spec.target_modules)
    module_names, param_targets = _resolve(arch, peft_targets)
    out = []
    for m in arch.modules:
        if m.name in module_names and m.kind in ("linear", "conv1d"):
            out.append(_linear_lora(m, spec))
        elif m.name in param_targets:
            if spec.use_dora:
                raise CalcError(f"PEFT cannot apply DoRA to the parameter target {m.name} (lora.ParamWrapper does "
                                "not work with use_dora=True); drop use_dora or the MoE targets", field="use_dora")
            out.append(_param_lora(m, spec, param_targets[m.name]))
    if not out:
        raise CalcError("matches no module of this architecture", field="target_modules")
    other_bias = 0
    if spec.bias == "all":
        targeted = {o.name for o in out}
        other_bias = sum(m.count * m.out_features for m in arch.modules if m.bias and m.name not in targeted)
        other_bias += sum(n.count * n.size for n in arch.norms + (arch.final_norm,) if n.bias)
    return LoraCount(arch, spec, tuple(out), _modules_to_save(arch, spec.modules_to_save), other_bias, peft_targets)


def _linear_lora(m: LinearModule, spec: LoraSpec) -> ModuleLora:
    dora = m.out_features if spec.use_dora else 0
    per = spec.r * (m.in_features + m.out_features) + dora
    bias = m.count * m.out_features if m.bias and spec.bias in ("all", "lora_only") else 0
    return ModuleLora(m.name, m.target, m.in_features, m.out_features, m.count, m.kind, m.experts, spec.r,
                      spec.lora_alpha, spec.scaling, m.count * per, m.count * dora, bias)


def _param_lora(m: LinearModule, spec: LoraSpec, multiplier: int) -> ModuleLora:
    r = spec.r * multiplier
    alpha = spec.lora_alpha * multiplier
    per = m.experts * r * (m.in_features + m.out_features)
    return ModuleLora(m.name, m.target, m.in_features, m.out_features, m.count, m.kind, m.experts, r, alpha,
                      scaling(r, alpha, spec.use_rslora), m.count * per, 0, 0)


def _modules_to_save(arch: Architecture, names: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """Full trainable copies (PEFT ``ModulesToSaveWrapper``); a tied output layer is copied all the same."""
    tables = {e.name.rsplit(".", 1)[-1]: e for e in arch.embeddings}
    tables[arch.lm_head.name] = arch.lm_head
    out: dict[str, int] = {}  # PEFT wraps a module once, however often it is named
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in tables:
            raise CalcError(f"calc supports the embedding and output layers here ({', '.join(sorted(tables))}), "
                            f"not {name!r}", field="modules_to_save")
        out[tables[leaf].name] = tables[leaf].params
    return tuple(out.items())
