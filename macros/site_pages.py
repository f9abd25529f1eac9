"""Macros of the home page, the preset catalogue and the FAQ.

Every figure comes from one function of :mod:`calc.headline` (named in each docstring), which also does
the unit conversions; these macros only choose the digits shown and escape text from data. Sizes are in
GiB (2^30 bytes) and MiB (2^20 bytes); GPU capacities keep the vendor's "GB" wording only where the
vendor's own figure is quoted.
"""

from __future__ import annotations

from typing import Sequence

from calc.pages import common as pc, site as ps
from calc.gpus import get_gpu
from calc.lora import ALL_LINEAR
from calc.presets import get_preset
from calc.versions import label
from macros.render import code, link, md_table, text

MACROS = (
    "preset_name", "preset_count", "family_count", "total_params", "trainable_params", "trainable_share",
    "lora_scaling", "lora_default", "default_alpha", "nf4_bits", "nf4_blocksize", "nf4_level_count",
    "quantized_share", "weights_size", "adapter_size", "merged_size", "memory_required", "memory_ratio",
    "memory_conditions", "method_memory_table", "preset_catalogue", "largest_deviation", "target_choice_table",
    "rank_choice_table", "scaling_table", "gpu_marketed", "fit_question", "fit_table", "fit_summary",
    "checked_release",
)

METHOD_LABELS = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}
METHOD_STORAGE = {
    "full": "every weight trainable; gradients and AdamW states for all of them",
    "lora": "frozen 16-bit base; gradients and AdamW states for the adapter only",
    "qlora": "frozen 4-bit NF4 base; gradients and AdamW states for the adapter only",
}
PHASES = {
    "loss_backward": "start of backward (loss)",
    "lm_head_backward": "output-layer backward",
    "layer_recompute": "checkpointed layer re-run",
    "forward_dora": "DoRA forward",
    "optimizer_step": "optimizer step",
}
TARGET_LABELS = {"qv": "query and value", "attention": "all attention projections", "mlp": "MLP projections",
                 ALL_LINEAR: "every linear layer"}


def _gib(value: float) -> str:
    return f"{value:,.1f} GiB"


def _spec(r: int, lora_alpha: float | None, targets: str):
    return pc.lora_spec(r, lora_alpha, targets)


def _num(value: float) -> str:
    """A scaling factor or an α: integers without a fraction, otherwise three decimals."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.3f}"


# -- single figures for prose ---------------------------------------------------------------------------------
def preset_name(preset_id: str) -> str:
    """The preset's display name (escaped)."""
    return text(get_preset(preset_id).name)


def preset_count() -> str:
    """How many presets the catalogue holds (:func:`calc.pages.site.catalogue`)."""
    return f"{len(ps.catalogue()):,}"


def family_count() -> str:
    """How many distinct ``model_type`` values the presets cover (:func:`calc.pages.site.catalogue`)."""
    return f"{len({f.model_type for f in ps.catalogue()}):,}"


def total_params(preset_id: str) -> str:
    """The base model's parameters (:attr:`calc.architecture.Architecture.total_params`), exact."""
    return f"{get_preset(preset_id).architecture.total_params:,}"


def trainable_params(preset_id: str, r: int = 16, targets: str = ALL_LINEAR, lora_alpha: float | None = None) -> str:
    """PEFT's trainable count (:func:`calc.pages.common.lora_count`), exact."""
    return f"{pc.lora_count(preset_id, _spec(r, lora_alpha, targets)).trainable_params:,}"


def trainable_share(preset_id: str, r: int = 16, targets: str = ALL_LINEAR, lora_alpha: float | None = None) -> str:
    """The share ``print_trainable_parameters()`` prints (:attr:`calc.lora.LoraCount.trainable_percent`)."""
    return f"{pc.lora_count(preset_id, _spec(r, lora_alpha, targets)).trainable_percent:.2f} %"


def lora_scaling(r: int, lora_alpha: float | None = None, rslora: bool = False) -> str:
    """The factor on ``B·A``: ``α/r`` or, with rsLoRA, ``α/√r`` (:func:`calc.pages.site.scaling_choices`);
    ``lora_alpha`` defaults to the handbook's 2r (:func:`calc.pages.common.lora_spec`)."""
    row = ps.scaling_choices([(r, pc.lora_spec(r, lora_alpha).lora_alpha)])[0]
    return _num(row.rslora_scaling if rslora else row.lora_scaling)


def nf4_bits(preset_id: str, double_quant: bool = True) -> str:
    """Storage bits per NF4 weight at bitsandbytes' default block size (:func:`calc.pages.site.weight_storage`)."""
    ws = ps.weight_storage(preset_id)
    return f"{ws.nf4_bits if double_quant else ws.nf4_single_bits:.3f}"


def nf4_blocksize(preset_id: str, level: int = 1) -> str:
    """Weights per absmax scale (level 1) or scales per second-level scale (level 2)
    (:func:`calc.pages.site.weight_storage`)."""
    ws = ps.weight_storage(preset_id)
    return f"{ws.blocksize if level == 1 else ws.dq_blocksize}"


def quantized_share(preset_id: str) -> str:
    """Share of the parameters bitsandbytes quantizes (:func:`calc.pages.site.weight_storage`)."""
    return f"{ps.weight_storage(preset_id).quantized_share:.1%}".replace("%", " %")


def checked_release(name: str) -> str:
    """The library release calc is checked against, as inline code (:func:`calc.versions.label`:
    ``checked_release("peft")`` → ``PEFT 0.21.2``)."""
    return code(label(name))


def default_alpha(r: int) -> str:
    """The handbook's ``lora_alpha`` for rank ``r`` when a page does not give one (:func:`calc.pages.common.lora_spec`)."""
    return _num(pc.lora_spec(r).lora_alpha)


def lora_default(field: str) -> str:
    """PEFT's ``LoraConfig`` default for ``r``, ``lora_alpha``, ``bias``, ``use_dora`` or ``use_rslora``
    (the :class:`calc.lora.LoraSpec` defaults, which are PEFT's for these fields)."""
    from dataclasses import fields

    from calc.lora import LoraSpec

    if field not in ("r", "lora_alpha", "bias", "use_dora", "use_rslora"):
        raise KeyError(f"{field!r}: calc's default is not PEFT's, or calc does not model it")
    value = {f.name: f.default for f in fields(LoraSpec)}[field]
    return _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else text(value)


def nf4_level_count() -> str:
    """Number of NF4 code values (:func:`calc.pages.site.nf4_level_values`)."""
    return f"{len(ps.nf4_level_values())}"


def weights_size(preset_id: str, precision: str = "bf16") -> str:
    """The model's weights in ``bf16``, ``nf4`` or ``nf4-single`` (no double quantization), in GiB
    (:func:`calc.pages.site.weight_storage`)."""
    ws = ps.weight_storage(preset_id)
    value = {"bf16": ws.bf16_gib, "nf4": ws.nf4_gib, "nf4-single": ws.nf4_single_gib}[precision]
    return _gib(value)


def adapter_size(preset_id: str, r: int = 16, targets: str = ALL_LINEAR) -> str:
    """``adapter_model.safetensors`` as PEFT saves it (fp32), in MiB (:func:`calc.pages.site.merge_sizes`)."""
    return f"{ps.merge_sizes(preset_id, _spec(r, None, targets)).adapter_mib:,.1f} MiB"


def merged_size(preset_id: str, precision: str = "bf16") -> str:
    """The merged model's weights in bf16 or fp32, in GiB (:func:`calc.pages.site.merge_sizes`)."""
    ms = ps.merge_sizes(preset_id, _spec(16, None, ALL_LINEAR))
    return _gib(ms.merged_gib if precision == "bf16" else ms.merged_fp32_gib)


def _memory(preset_id: str, method: str, r: int, targets: str, gradient_checkpointing: bool):
    return pc.compare_methods(preset_id, _spec(r, None, targets), (method,),
                                    gradient_checkpointing=gradient_checkpointing)[0]


def memory_required(preset_id: str, method: str, r: int = 16, targets: str = ALL_LINEAR,
                    gradient_checkpointing: bool = True) -> str:
    """Modelled peak plus CUDA context in GiB (:func:`calc.pages.common.compare_methods`)."""
    return _gib(_memory(preset_id, method, r, targets, gradient_checkpointing).required_gib)


def memory_ratio(preset_id: str, larger: str = "full", smaller: str = "qlora", r: int = 16) -> str:
    """How many times one method's required memory is another's (:func:`calc.pages.common.memory_ratio`)."""
    big = _memory(preset_id, larger, r, ALL_LINEAR, True)
    small = _memory(preset_id, smaller, r, ALL_LINEAR, True)
    return f"{pc.memory_ratio(big, small):.1f}"


def memory_conditions(r: int = 16, targets: str = ALL_LINEAR, gradient_checkpointing: bool = True) -> str:
    """The conditions of the memory figures, read back from the setups calc builds
    (:func:`calc.pages.common.method_setup`)."""
    q = pc.method_setup("qlora", _spec(r, None, targets), gradient_checkpointing=gradient_checkpointing)
    spec = q.lora
    opt = {"adamw": "torch AdamW", "adamw_fused": "torch AdamW (fused)"}.get(q.optimizer, q.optimizer)
    return (
        f"one sequence of {q.seq_len:,} tokens per step (micro-batch {q.micro_batch}), gradient checkpointing "
        f"{'on' if q.gradient_checkpointing else 'off'}, {opt}, {q.attn_implementation.upper()} attention, "
        f"{q.mixed_precision.removeprefix('amp_')} autocast; LoRA and QLoRA at <code>r = {spec.r}</code>, "
        f"<code>lora_alpha = {_num(spec.lora_alpha)}</code> on <code>{text(targets)}</code> with "
        f"{q.adapter_dtype} adapter weights (PEFT's default); full fine-tuning and LoRA keep the base in "
        f"{pc.method_setup('lora').base_precision}; QLoRA stores it in {q.base_precision.upper()} with "
        f"double quantization {'on' if q.bnb_4bit_use_double_quant else 'off'} and "
        f"{q.bnb_4bit_compute_dtype} compute. Required memory is the modelled peak that "
        f"<code>torch.cuda.max_memory_allocated()</code> reports plus the CUDA context of one process"
    )


def method_memory_table(preset_id: str, r: int = 16, targets: str = ALL_LINEAR,
                        gradient_checkpointing: bool = True) -> str:
    """Full vs LoRA vs QLoRA for one preset (:func:`calc.pages.common.compare_methods`)."""
    rows = []
    for m in pc.compare_methods(preset_id, _spec(r, None, targets),
                                      gradient_checkpointing=gradient_checkpointing):
        rows.append((METHOD_LABELS[m.method], METHOD_STORAGE[m.method], f"{m.weights_gib:,.1f}",
                     f"{m.peak_gib:,.1f}", f"{m.required_gib:,.1f}", PHASES.get(m.estimate.phase, m.estimate.phase)))
    headers = ("Method", "What is kept", "Base weights (GiB)", "Peak allocated (GiB)",
               "Required with CUDA context (GiB)", "Peak reached at")
    return md_table(headers, rows, align="llrrrl")


# -- the catalogue --------------------------------------------------------------------------------------------
def _stated(f: ps.PresetFacts) -> str:
    from calc.fmt import human_count

    label = human_count(int(f.stated_params))
    return link(label, f.preset.stated_params_source)


def preset_catalogue() -> str:
    """Every preset with its resolved config values and sizes (:func:`calc.pages.site.catalogue`)."""
    rows = []
    for f in ps.catalogue():
        p = f.preset
        note = f" ({text(p.stated_params_note)})" if p.stated_params_note else ""
        rows.append((
            code(p.id), link(p.name, p.source_url), text(p.family), code(f.model_type), f"{f.hidden_size:,}",
            f"{f.num_hidden_layers:,}", f"{f.num_attention_heads:,} / {f.num_key_value_heads:,}",
            f"{f.head_dim:,}" if f.head_dim else "—", f"{f.intermediate_size:,}",
            f"{f.experts:,}" if f.experts > 1 else "—", f"{f.vocab_size:,}",
            "yes" if f.tie_word_embeddings else "no", f"{f.total_params:,}", _stated(f) + note,
            _deviation(f),
        ))
    headers = ("id", "Model (config.json)", "Family", "model_type", "hidden_size", "Layers", "Heads / KV heads",
               "head_dim", "Intermediate", "Experts", "Vocabulary", "Tied embeddings", "Parameters (calc)",
               "Stated by the publisher", "Calc vs stated")
    return md_table(headers, rows, align="llllrrrrrrrlrlr")


def _deviation(f: ps.PresetFacts) -> str:
    shown = f"{f.stated_deviation:+.1%}"
    return ("0.0%" if shown in ("+0.0%", "-0.0%") else shown).replace("%", " %")


def largest_deviation() -> str:
    """The preset furthest from its stated size and by how much (:func:`calc.pages.site.largest_stated_deviation`)."""
    f = ps.largest_stated_deviation()
    return f"{text(f.preset.name)} ({_deviation(f)})"


# -- FAQ tables -----------------------------------------------------------------------------------------------
def target_choice_table(preset_id: str, r: int = 16) -> str:
    """Trainable parameters per ``target_modules`` choice (:func:`calc.pages.site.target_choices`)."""
    rows = []
    for t in ps.target_choices(preset_id, r):
        names = t.peft_target_modules
        sent = code(names) if isinstance(names, str) else ", ".join(code(n) for n in names)
        rows.append((TARGET_LABELS.get(t.target_modules, text(t.target_modules)), code(t.target_modules), sent,
                     f"{t.trainable_params:,}", f"{t.trainable_percent:.3f} %"))
    headers = ("Adapted", "calc shortcut", "target_modules PEFT receives", "Trainable parameters", "Trainable share")
    return md_table(headers, rows, align="lllrr")


def rank_choice_table(preset_id: str, ranks: Sequence[int] = (8, 16, 32, 64), targets: str = ALL_LINEAR) -> str:
    """Trainable parameters and adapter file size per rank (:func:`calc.pages.site.rank_choices`)."""
    rows = [(f"{c.r}", _num(c.lora_alpha), f"{c.trainable_params:,}", f"{c.trainable_percent:.3f} %",
             f"{c.adapter_mib:,.1f}") for c in ps.rank_choices(preset_id, ranks, targets)]
    headers = ("r", "lora_alpha", "Trainable parameters", "Trainable share", "adapter_model.safetensors (MiB)")
    return md_table(headers, rows)


def scaling_table(pairs: Sequence[Sequence[float]]) -> str:
    """``α/r`` and ``α/√r`` for each ``[r, α]`` (:func:`calc.pages.site.scaling_choices`)."""
    rows = [(f"{s.r}", _num(s.lora_alpha), _num(s.lora_scaling), _num(s.rslora_scaling))
            for s in ps.scaling_choices([(int(r), a) for r, a in pairs])]
    return md_table(("r", "lora_alpha", "LoRA scale α/r", "rsLoRA scale α/√r"), rows)


# -- will it fit ------------------------------------------------------------------------------------------------
def gpu_marketed(gpu_id: str) -> str:
    """The vendor's memory figure for a GPU, as sold (``marketed`` in calc/data/gpus.yaml)."""
    return text(get_gpu(gpu_id).marketed)


def fit_question(preset_id: str, method: str, r: int, gpu_id: str) -> str:
    """The question as a heading text, every figure from data."""
    return (f"Will {preset_name(preset_id)} {METHOD_LABELS[method]} at r = {r} fit on a "
            f"{gpu_marketed(gpu_id)} card?")


def fit_table(preset_id: str, method: str, r: int, gpu_id: str, targets: str = ALL_LINEAR) -> str:
    """Headroom on every GPU sold with ``gpu_id``'s memory, with and without gradient checkpointing
    (:func:`calc.pages.common.fit_gpus`, :func:`calc.pages.common.gpus_like`)."""
    gpus = pc.gpus_like(gpu_id)
    on = pc.fit_gpus(_memory(preset_id, method, r, targets, True), gpus)
    off = pc.fit_gpus(_memory(preset_id, method, r, targets, False), gpus)
    rows = []
    for a, b in zip(on, off):
        rows.append((text(a.gpu.name), f"{a.usable_gib:,.2f}",
                     f"{a.required_gib:,.2f}", f"{a.headroom_gib:+,.2f}", "yes" if a.fits else "no",
                     f"{b.required_gib:,.2f}", f"{b.headroom_gib:+,.2f}", "yes" if b.fits else "no"))
    headers = ("GPU", "Usable (GiB)", "Checkpointing on: required (GiB)", "Headroom (GiB)", "Fits",
               "Checkpointing off: required (GiB)", "Headroom (GiB)", "Fits")
    return md_table(headers, rows, align="lrrrlrrl")


def fit_summary(preset_id: str, method: str, r: int, gpu_id: str, gradient_checkpointing: bool = True,
                targets: str = ALL_LINEAR) -> str:
    """"yes"/"no" and the required memory for the question (:func:`calc.pages.common.fit_gpus`)."""
    mem = _memory(preset_id, method, r, targets, gradient_checkpointing)
    fits = pc.fit_gpus(mem, pc.gpus_like(gpu_id))
    verdict = "yes, on every one of them" if all(f.fits for f in fits) else (
        "on some of them" if any(f.fits for f in fits) else "no")
    return f"{verdict}: it needs {_gib(mem.required_gib)}"
