"""Python snippets for the pages, generated from the objects calc computes with.

A page never shows hand-written configuration code: :func:`lora_config_code` turns a
:class:`~calc.lora.LoraSpec` into the ``LoraConfig(...)`` call that trains exactly what
:func:`calc.lora.count_lora` counted, :func:`bnb_config_code` turns :class:`BnbSettings` into the
``BitsAndBytesConfig(...)`` call, and :func:`qlora_recipe_code` puts both into the QLoRA loading recipe
with the line ``print_trainable_parameters()`` will print, computed by calc.

Names follow PEFT 0.21.2 and transformers 5.23 (``from_pretrained(dtype=...)``; ``torch_dtype`` is the
deprecated spelling). ``tests/verify/test_snippets_construct.py`` executes the generated code against the
real libraries and compares the resulting objects and counts with calc.

Everything here is string building: no arithmetic beyond what :mod:`calc.lora` returns, and no I/O.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Sequence

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, LoraCount, LoraSpec, count_lora, peft_target_modules

#: ``lora_dropout`` in the generated ``LoraConfig``. It does not change any count; 0.05 is what the QLoRA
#: paper's released scripts and most recipes use (PEFT's own default is 0.0).
DEFAULT_LORA_DROPOUT = 0.05
TASK_TYPE = "CAUSAL_LM"
INDENT = "    "

#: calc's dtype names → the torch attribute a snippet writes.
TORCH_DTYPES = {"bf16": "torch.bfloat16", "fp16": "torch.float16", "fp32": "torch.float32"}
QUANT_TYPES_4BIT = ("nf4", "fp4")

_HF_CONFIG_URL = re.compile(r"^https://huggingface\.co/([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)/(?:blob|raw|resolve)/")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class BnbSettings:
    """The ``BitsAndBytesConfig`` fields a QLoRA (4-bit) or LLM.int8 (8-bit) base is loaded with.

    ``bits`` is 4 or 8. For 4 bits: ``quant_type`` (``bnb_4bit_quant_type``, ``nf4`` or ``fp4``),
    ``double_quant`` (``bnb_4bit_use_double_quant``) and ``compute_dtype`` (``bnb_4bit_compute_dtype``,
    calc's ``bf16``/``fp16``/``fp32``). The defaults are the QLoRA paper's setup (Dettmers et al. 2023, §3):
    NF4, double quantization, bf16 compute. The 4-bit fields are ignored for 8 bits.
    """

    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bf16"

    def __post_init__(self) -> None:
        if self.bits not in (4, 8) or isinstance(self.bits, bool):
            raise CalcError(f"must be 4 or 8, got {self.bits!r}", field="bits")
        if self.quant_type not in QUANT_TYPES_4BIT:
            raise CalcError(f"must be nf4 or fp4, got {self.quant_type!r}", field="quant_type")
        if not isinstance(self.double_quant, bool):
            raise CalcError(f"must be true or false, got {self.double_quant!r}", field="double_quant")
        if self.compute_dtype not in TORCH_DTYPES:
            raise CalcError(f"must be one of {', '.join(TORCH_DTYPES)}, got {self.compute_dtype!r}",
                            field="compute_dtype")

    @classmethod
    def from_setup(cls, setup) -> "BnbSettings":
        """The 4-bit settings of a :class:`calc.memory.TrainingSetup` with ``method="qlora"``."""
        if setup.method != "qlora":
            raise CalcError(f"a {setup.method} setup loads no quantized base", field="method")
        return cls(4, setup.base_precision, setup.bnb_4bit_use_double_quant, setup.bnb_4bit_compute_dtype)


# -- literals ----------------------------------------------------------------------------------------------
def py_literal(value: object) -> str:
    """A Python literal for ``value``: strings double-quoted (JSON escaping is valid Python), integral
    floats without a fraction (``32.0`` → ``32``), tuples and lists as lists."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalcError(f"cannot write {value!r} as a Python literal")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    raise CalcError(f"cannot write a {type(value).__name__} as a Python literal")


def _call(var: str, func: str, kwargs: Sequence[tuple[str, str]], comments: dict[str, str] | None = None) -> str:
    """``var = func(`` one ``key=value,`` per line ``)`` (values are already code); ``comments`` adds a
    trailing ``# ...`` to the named keywords."""
    notes = comments or {}
    lines = [f"{INDENT}{k}={v}," + (f"  # {notes[k]}" if k in notes else "") for k, v in kwargs]
    return "\n".join([f"{var} = {func}("] + lines + [")"])


# -- LoraConfig --------------------------------------------------------------------------------------------
def lora_config_kwargs(spec: LoraSpec, arch: Architecture, *,
                       lora_dropout: float = DEFAULT_LORA_DROPOUT) -> list[tuple[str, object]]:
    """The ``LoraConfig`` keyword arguments (name, Python value) for ``spec`` on ``arch``.

    ``target_modules`` is resolved per family by :func:`calc.lora.peft_target_modules` (calc's ``qv`` /
    ``attention`` / ``mlp`` shortcuts become the family's module names; ``"all-linear"`` stays a string).
    ``modules_to_save`` appears only when the spec has some. ``lora_dropout`` is 0 when the spec reaches
    MoE expert or router weights: PEFT wraps those parameters in ``lora.ParamWrapper``, which raises for
    any other dropout (:func:`uses_parameter_targets`).
    """
    targets = peft_target_modules(arch, spec.target_modules)
    if uses_parameter_targets(arch, spec):
        lora_dropout = 0.0
    kwargs: list[tuple[str, object]] = [
        ("r", spec.r),
        ("lora_alpha", spec.lora_alpha),
        ("target_modules", targets if targets == ALL_LINEAR else list(targets)),
        ("use_dora", spec.use_dora),
        ("use_rslora", spec.use_rslora),
        ("lora_dropout", lora_dropout),
        ("bias", spec.bias),
        ("task_type", TASK_TYPE),
    ]
    if spec.modules_to_save:
        kwargs.append(("modules_to_save", list(spec.modules_to_save)))
    return kwargs


def uses_parameter_targets(arch: Architecture, spec: LoraSpec) -> bool:
    """Whether PEFT adapts MoE parameters (stacked experts, routers) for ``spec`` on ``arch``
    (:func:`calc.lora.count_lora` reports them with a kind other than ``linear``/``conv1d``)."""
    return any(m.kind not in ("linear", "conv1d") for m in count_lora(arch, spec).modules)


def lora_config_call(spec: LoraSpec, arch: Architecture, *, var: str = "lora_config",
                     lora_dropout: float = DEFAULT_LORA_DROPOUT) -> str:
    """Only the ``lora_config = LoraConfig(...)`` statement."""
    _check_name(var)
    kwargs = [(k, repr(float(v)) if k == "lora_dropout" else py_literal(v))
              for k, v in lora_config_kwargs(spec, arch, lora_dropout=lora_dropout)]
    notes = {"lora_dropout": "PEFT refuses dropout on MoE expert weights"} if uses_parameter_targets(arch, spec) else {}
    return _call(var, "LoraConfig", kwargs, notes)


def lora_config_code(spec: LoraSpec, arch: Architecture, *, lora_dropout: float = DEFAULT_LORA_DROPOUT) -> str:
    """A complete snippet: the import and the ``LoraConfig`` for ``spec`` on ``arch``."""
    return "from peft import LoraConfig\n\n" + lora_config_call(spec, arch, lora_dropout=lora_dropout) + "\n"


# -- BitsAndBytesConfig ------------------------------------------------------------------------------------
def bnb_config_kwargs(settings: BnbSettings) -> list[tuple[str, str]]:
    """The ``BitsAndBytesConfig`` keyword arguments as (name, code) pairs."""
    if settings.bits == 8:
        return [("load_in_8bit", "True")]
    return [
        ("load_in_4bit", "True"),
        ("bnb_4bit_quant_type", py_literal(settings.quant_type)),
        ("bnb_4bit_use_double_quant", py_literal(settings.double_quant)),
        ("bnb_4bit_compute_dtype", TORCH_DTYPES[settings.compute_dtype]),
    ]


def bnb_config_call(settings: BnbSettings, *, var: str = "bnb_config") -> str:
    """Only the ``bnb_config = BitsAndBytesConfig(...)`` statement."""
    _check_name(var)
    return _call(var, "BitsAndBytesConfig", bnb_config_kwargs(settings))


def bnb_config_code(settings: BnbSettings = BnbSettings()) -> str:
    """A complete snippet: imports and the ``BitsAndBytesConfig`` (``import torch`` only when a dtype is named)."""
    head = "import torch\n" if settings.bits == 4 else ""
    return f"{head}from transformers import BitsAndBytesConfig\n\n{bnb_config_call(settings)}\n"


# -- the QLoRA recipe --------------------------------------------------------------------------------------
def trainable_parameters_line(count: LoraCount) -> str:
    """The line ``PeftModel.print_trainable_parameters()`` prints for ``count`` (PEFT 0.21.2
    ``peft_model.py``: ``trainable params: {:,d} || all params: {:,d} || trainable%: {:.4f}``). For a 4-bit
    base PEFT counts each packed weight as its logical element count, so the line is the same as for a
    16-bit base."""
    return (f"trainable params: {count.trainable_params:,d} || all params: {count.peft_all_params:,d} || "
            f"trainable%: {count.trainable_percent:.4f}")


def hf_repo_id(url: str) -> str | None:
    """``https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json`` → ``meta-llama/Llama-3.1-8B``;
    ``None`` for any other URL."""
    m = _HF_CONFIG_URL.match(url)
    return m.group(1) if m else None


def qlora_recipe_code(arch: Architecture, spec: LoraSpec, model_id: str, bnb: BnbSettings = BnbSettings(), *,
                      device_map: str = "auto", lora_dropout: float = DEFAULT_LORA_DROPOUT) -> str:
    """The QLoRA loading recipe for ``arch`` (published as ``model_id`` on the Hugging Face Hub, or a local
    directory): quantized load, ``prepare_model_for_kbit_training`` (freezes the base, upcasts the
    non-quantized parameters to fp32, turns on gradient checkpointing), ``get_peft_model`` and
    ``print_trainable_parameters`` with the line it prints, computed by :func:`calc.lora.count_lora`.

    The non-quantized parameters are loaded in the compute dtype (``dtype=``), as in the QLoRA paper.
    """
    if not isinstance(model_id, str) or not (_REPO_ID.match(model_id) or model_id.startswith(("/", "./"))):
        raise CalcError(f"must be a Hub repo id (owner/name) or a local path, got {model_id!r}", field="model_id")
    if bnb.bits != 4:
        raise CalcError("QLoRA loads a 4-bit base; use BnbSettings(bits=4)", field="bits")
    count = count_lora(arch, spec)
    load = "\n".join([
        "model = AutoModelForCausalLM.from_pretrained(",
        f"{INDENT}{py_literal(model_id)},",
        f"{INDENT}quantization_config=bnb_config,",
        f"{INDENT}dtype={TORCH_DTYPES[bnb.compute_dtype]},",
        f"{INDENT}device_map={py_literal(device_map)},",
        ")",
    ])
    return "\n".join([
        "import torch",
        "from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training",
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig",
        "",
        bnb_config_call(bnb),
        "",
        load,
        "# freezes the base, upcasts the weights left in 16-bit to fp32, turns on gradient checkpointing",
        "model = prepare_model_for_kbit_training(model)",
        "",
        lora_config_call(spec, arch, lora_dropout=lora_dropout),
        "model = get_peft_model(model, lora_config)",
        "model.print_trainable_parameters()",
        f"# {trainable_parameters_line(count)}",
        "",
    ])


def _check_name(var: str) -> None:
    if not _NAME.match(var) or "." in var:
        raise CalcError(f"must be a Python identifier, got {var!r}", field="var")
