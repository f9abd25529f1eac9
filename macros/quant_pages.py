"""Macros for the QLoRA and NF4 pages (qlora.md, nf4.md), and the value accessor every page of this group uses.

Every number comes from one function of :mod:`calc.pages_data` (named in each docstring), which does the unit
conversions, ratios and shares; these macros only choose what to show, format digits and escape text from
data. :func:`pd_value` is the generic inline accessor: ``{{ pd_value("bits_at", "bits", 64, True, fmt="fixed:3") }}``
prints one field of one calc function's result. Rule-of-thumb tables are registered with
:func:`macros.rot.rule_of_thumb`; charts go through :func:`macros.charts.figure`.
"""

from __future__ import annotations

from typing import Any

import altair as alt

from calc.pages import common as pc, memory as pm, quant as pq
from calc.versions import label as release, version
from macros.charts import figure
from macros.render import code, md_table, number, text
from macros.rot import Column, RotTable, rule_of_thumb

MACROS = (
    "pd_value", "nf4_level_table", "code_book_table", "block_example_table", "weight_storage_tabs",
    "qlora_module_table", "kbit_prepare_table", "optimizer_table", "chart_nf4_levels", "chart_qlora_methods",
)

CHART_WIDTH = 560
CHART_HEIGHT = 300


# -- formatting (no arithmetic) --------------------------------------------------------------------------------
def show(value: Any, spec: str | None = None) -> str:
    """:func:`macros.render.number` (this page family's spelling, shared with memory_pages)."""
    return number(value, spec)


#: The calc functions :func:`pd_value` may call (all pure lookups in :mod:`calc.pages_data`).
VALUE_FUNCTIONS = (
    "nf4_levels", "nf4_offset", "nf4_outer_quantile", "nf4_sides", "code_books", "blockwise_example", "bits_rows",
    "bits_at", "dq_saving_bits", "weight_breakdown", "quantization_errors", "qlora_storage_row",
    "module_storage_rows", "double_quant_saving", "dequant_transient", "kbit_prepare", "optimizer_rows",
    "paged_min_numel", "method_points", "cuda_context_mib", "cuda_workspace_mib", "precision_rows",
    "param_bytes_rows", "activation_rows", "loss_terms", "breakdown", "phase_rows", "vram_rows", "fit_matrix",
    "fit_columns", "sharding_rows", "adapter_size_rows", "adapter_layout", "merge_rows", "serving_rows",
    "adapter_memory_mib", "validation_summary", "validation_rows", "unmodelled_rows", "measurement_files",
    "reserved_ratios",
    "method_memory_view", "model_name",
)
#: Constants of :mod:`calc.pages_data` :func:`pd_value` may print (the conditions of the build-time examples).
VALUE_CONSTANTS = ("EXAMPLE_SEED", "EXAMPLE_BLOCKSIZE", "EXAMPLE_SHOWN", "ERROR_SEED", "ERROR_SAMPLES",
                   "ERROR_BLOCKSIZE", "INT8_EXAMPLE_IN_FEATURES", "EXAMPLE_RANK")


def _step(obj: Any, part: str) -> Any:
    """One step of a field path: a list index, ``key=value`` (first element whose attribute equals it), a field."""
    if isinstance(obj, (tuple, list)):
        if part.lstrip("-").isdigit():
            return obj[int(part)]
        if "=" in part:
            key, _, want = part.partition("=")
            for item in obj:
                if str(getattr(item, key)) == want:
                    return item
            raise KeyError(f"no element with {key}={want!r}")
    if not hasattr(obj, part):
        raise AttributeError(f"{type(obj).__name__} has no field {part!r}")
    return getattr(obj, part)


def _owner(name: str):
    """The :mod:`calc.pages` module that defines ``name`` (the page group's own, or the shared one)."""
    for module in (pq, pm, pc):
        if hasattr(module, name) and getattr(getattr(module, name), "__module__", module.__name__) == module.__name__:
            return module
    for module in (pq, pm, pc):  # constants carry no __module__: the first module that has them
        if hasattr(module, name):
            return module
    raise KeyError(name)


def lookup(function: str, path: str = "", *args: Any, **kwargs: Any) -> Any:
    """The raw value :func:`pd_value` prints: ``function(*args, **kwargs)`` then the ``/``-separated ``path``."""
    if function in VALUE_CONSTANTS:
        obj = getattr(_owner(function), function)
    elif function in VALUE_FUNCTIONS:
        obj = getattr(_owner(function), function)(*args, **kwargs)
    else:
        raise KeyError(f"pd_value cannot call {function!r}; allowed: {', '.join(VALUE_FUNCTIONS + VALUE_CONSTANTS)}")
    for part in (p for p in path.split("/") if p):
        obj = _step(obj, part)
    return obj


def pd_value(function: str, path: str = "", *args: Any, fmt: str | None = None, **kwargs: Any) -> str:
    """One field of one :mod:`calc.pages_data` function's result, formatted (``fmt`` as in :func:`show`).

    ``path`` walks the result: ``"kbit_prepare", "weights_extra_gib"``; ``"optimizer_rows",
    "optimizer=paged_adamw_8bit/paged_mib"``; ``"blockwise_example", "values/0/x"``.
    """
    return show(lookup(function, path, *args, **kwargs), fmt)


# -- helpers ------------------------------------------------------------------------------------------------------
def _spec(chart: alt.TopLevelMixin, description: str) -> dict[str, Any]:
    spec = chart.properties(description=description).to_dict()
    spec.setdefault("config", {})["aria"] = True
    return spec


def _legend_pick(name: str, field: str) -> alt.Parameter:
    return alt.selection_point(name=name, fields=[field], bind="legend")


# == NF4 page ======================================================================================================
def nf4_level_table() -> str:
    """The 16 NF4 levels with the probability and quantile each comes from (:func:`calc.pages.quant.nf4_levels`)."""
    rows = []
    for lv in pq.nf4_levels():
        rows.append((show(lv.code), code(lv.bits), text(lv.side), show(lv.probability, "fixed:7"),
                     show(lv.quantile, "fixed:4"), show(lv.value, "fixed:7")))
    return md_table(("Code", "Bits", "Side", "Probability p", "Quantile Φ⁻¹(p) (σ)", "NF4 level"), rows,
                    align="rllrrr")


def code_book_table() -> str:
    """What each 4-bit code book spends its codes on (:func:`calc.pages.quant.code_books`)."""
    rows = [(text(c.label), show(c.distinct_count), show(c.zero_codes), show(c.inner_levels), show(c.min_gap, "fixed:4"),
             show(c.max_gap, "fixed:4")) for c in pq.code_books()]
    return md_table(("Code book", "Distinct levels", "Codes meaning zero", "Levels in [−0.5, 0.5]",
                     "Smallest gap", "Largest gap"), rows)


def block_example_table() -> str:
    """The worked blockwise example (:func:`calc.pages.quant.blockwise_example`): the first values of the block and
    the one that sets its absmax."""
    ex = pq.blockwise_example()
    rows = []
    for v in ex.shown:
        mark = " (absmax)" if v.index == ex.absmax_index else ""
        rows.append((show(v.index) + mark, show(v.x, "fixed:4"), show(v.scaled, "fixed:4"), show(v.code),
                     code(v.bits), show(v.level, "fixed:4"), show(v.dequantized, "fixed:4"), show(v.error, "sign:4")))
    return md_table(("Index", "Weight x", "x / absmax", "Code", "Bits", "NF4 level", "Dequantized", "Error"), rows,
                    align="lrrrlrrr")


def weight_storage_tabs(out_features: int = 4096, in_features: int = 4096) -> str:
    """Material tabs, one per storage, each itemising the tensors of one ``out × in`` weight
    (:func:`calc.pages.quant.weight_breakdown`). Call at the top level of a page."""
    variants = (("NF4 + double quantization", "nf4", True), ("NF4 without double quantization", "nf4", False),
                ("bf16", "bf16", False))
    blocks = []
    for title, precision, dq in variants:
        w = pq.weight_breakdown(out_features, in_features, precision, dq)
        rows = [(code(t.name), code(t.dtype), show(t.numel), show(t.nbytes)) for t in w.tensors]
        rows.append(("**Total**", "", "", f"**{show(w.total_bytes)}**"))
        rows.append(("Allocated by the CUDA caching allocator (512-byte blocks)", "", "", show(w.allocated_bytes)))
        table = md_table(("Tensor", "dtype", "Elements", "Bytes"), rows, align="llrr")
        summary = (f"{show(w.total_mib, 'fixed:2')} MiB in all, {show(w.bits_per_weight, 'fixed:4')} bits per weight, "
                   f"{show(w.percent_of_bf16, 'pct:1')} of the bf16 weight.")
        body = indent(table + "\n\n" + summary, 4)
        blocks.append(f'=== "{title}"\n\n{body}\n')
    return "\n".join(blocks)


def chart_nf4_levels() -> str:
    """The 16 levels of NF4, FP4 and int4 on one axis (:func:`calc.pages.quant.code_books`)."""
    books = pq.code_books()
    order = [b.label for b in books]
    values, rows = [], []
    for b in books:
        for i, v in enumerate(b.levels):
            values.append({"code": b.label, "index": i, "bits": format(i, "04b"), "level": v})
            rows.append((text(b.label), show(i), code(format(i, "04b")), show(v, "fixed:4")))
    pick = _legend_pick("pick_code", "code")
    base = alt.Chart(alt.Data(values=values))
    ticks = base.mark_tick(thickness=2, size=28).encode(
        x=alt.X("level:Q", title="Level (fraction of the block's absmax)", scale=alt.Scale(domain=[-1, 1])),
        y=alt.Y("code:N", sort=order, title=None),
        color=alt.Color("code:N", sort=order, title="Code book", legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.25)),
        tooltip=[alt.Tooltip("code:N", title="Code book"), alt.Tooltip("index:Q", title="4-bit code"),
                 alt.Tooltip("bits:N", title="Bits"), alt.Tooltip("level:Q", title="Level", format=".4f")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=180)
    nf4, fp4, int4 = books
    desc = (f"Strip chart: the levels of three 4-bit code books between -1 and 1. NF4 has {nf4.distinct_count} "
            f"distinct levels, packed closer together near zero and spread out towards ±1, like the quantiles of a "
            f"normal distribution; int4 has {int4.distinct_count} evenly spaced levels; FP4 has {fp4.distinct_count}, "
            "very dense around zero and sparse near ±1.")
    return figure(_spec(ticks, desc), chart_id="chart-nf4-levels",
                  caption="The 16 codes of NF4, FP4 and int4 on the [−1, 1] scale every block is normalised to. "
                          "Levels from calc.quant.nf4_code, fp4_code and int4_code (bitsandbytes' tables).",
                  description=desc, headers=("Code book", "4-bit code", "Bits", "Level"), rows=rows)


@rule_of_thumb("rot-bits-per-parameter")
def _rot_bits() -> RotTable:
    rows = tuple((r.storage, r.blocksize, None if r.double_quant is None else ("yes" if r.double_quant else "no"),
                  r.bits, r.scale_bits, r.bytes_per_param, r.percent_of_bf16) for r in pq.bits_rows())
    return RotTable(
        id="rot-bits-per-parameter", title="Storage bits per weight, with and without double quantization",
        conditions=(f"{release('bitsandbytes')} storage per weight element, asymptotically (the small code tables every "
                    "quantized weight carries are left out). 4-bit: 4 bits per weight plus one "
                    "fp32 absmax per block (32/blocksize bits) or, with double quantization, one 8-bit absmax per block "
                    "plus one fp32 scale per 256 blocks (8/blocksize + 32/(256·blocksize) bits). int8 is LLM.int8 "
                    f"with one fp32 scale per output row, shown for rows of {pq.INT8_EXAMPLE_IN_FEATURES:,} inputs. "
                    "NF4 and FP4 store the same way. 'Scale bits' is what the scales add."),
        columns=(Column("Storage"), Column("Blocksize", "int"), Column("Double quantization"), Column("Bits", "fixed:4"),
                 Column("Scale bits", "fixed:4"), Column("Bytes", "fixed:4"), Column("vs bf16", "pct:1")),
        rows=rows, source="calc.pages.quant.bits_rows (calc.quant.bits_per_parameter)")


@rule_of_thumb("rot-4bit-quantization-error")
def _rot_error() -> RotTable:
    rows = tuple((r.label, "yes" if r.double_quant else "no", r.mse, r.rmse, r.mae, r.max_abs, r.mse_vs_nf4)
                 for r in pq.quantization_errors())
    return RotTable(
        id="rot-4bit-quantization-error", title="Round-trip error of NF4, FP4 and int4 on Gaussian weights",
        conditions=(f"{pq.ERROR_SAMPLES:,} float32 samples of N(0, 1) from numpy.random.default_rng({pq.ERROR_SEED}), "
                    f"quantized in blocks of {pq.ERROR_BLOCKSIZE} with one absmax per block and dequantized again, "
                    f"bit for bit as {release('bitsandbytes')} does on CPU (nearest level, ties to the lower one). Errors are "
                    "in units of the weights' standard deviation (they scale with it); MSE = mean squared error, "
                    "RMSE its root, MAE = mean absolute error, max = largest absolute error. Measured when the site "
                    "is built."),
        columns=(Column("Format"), Column("Double quantization"), Column("MSE", "fixed:6"), Column("RMSE", "fixed:4"),
                 Column("MAE", "fixed:4"), Column("Max", "fixed:4"), Column("MSE vs NF4", "fixed:3")),
        rows=rows, source="calc.pages.quant.quantization_errors (calc.quant.quantization_error)")


# == QLoRA page ====================================================================================================
@rule_of_thumb("rot-qlora-weight-storage")
def _rot_qlora_storage() -> RotTable:
    rows = []
    for pid in pq.QLORA_STORAGE_PRESETS:
        r = pq.qlora_storage_row(pid)
        rows.append((r.name, r.total_params, r.quantized_percent, r.bf16_gib, r.nf4_gib, r.ratio, r.kept_16bit))
    return RotTable(
        id="rot-qlora-weight-storage", title="What a 4-bit load actually quantizes",
        conditions=("from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit=True, "
                    "bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True), dtype=bfloat16) in transformers "
                    f"{version('transformers')} with {release('bitsandbytes')} and the default skip list: only nn.Linear (and GPT-2's Conv1D) "
                    "weights inside the decoder become 4-bit; every bias and the listed kinds stay in bf16. Before "
                    "prepare_model_for_kbit_training, which upcasts what stays to fp32. GiB = 2^30 bytes; tied "
                    "embeddings counted once."),
        columns=(Column("Model"), Column("Parameters", "int"), Column("Quantized", "pct:1"), Column("bf16", "fixed:2", "GiB"),
                 Column("4-bit load", "fixed:2", "GiB"), Column("bf16 / 4-bit", "fixed:2"), Column("Stays in 16-bit")),
        rows=tuple(rows), source="calc.pages.quant.qlora_storage_row (calc.quant.model_weight_bytes)")


def indent(block: str, spaces: int) -> str:
    """``block`` with every non-empty line indented (to sit inside an admonition or a tab)."""
    return "\n".join(" " * spaces + line if line else "" for line in block.splitlines())


def qlora_module_table(preset_id: str = pc.EXAMPLE_PRESET, spaces: int = 0) -> str:
    """Each weight kind of one model after a 4-bit load (:func:`calc.pages.quant.module_storage_rows`);
    ``spaces`` indents it for an admonition."""
    rows = [(code(m.name), text(m.kind), show(m.count), show(m.params), text(m.storage), show(m.mib, "fixed:1"))
            for m in pq.module_storage_rows(preset_id)]
    return indent(md_table(("Weight", "Kind", "Instances", "Parameters", "Stored as", "MiB (all instances)"), rows,
                           align="llrrlr"), spaces)


def kbit_prepare_table(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """QLoRA without and with ``prepare_model_for_kbit_training`` (:func:`calc.pages.quant.kbit_prepare`)."""
    k = pq.kbit_prepare(preset_id)
    rows = [
        ("Base weights (GiB)", show(k.weights_bf16_gib), show(k.weights_fp32_gib), show(k.weights_extra_gib, "sign:2")),
        ("Checkpoint kept per token and layer (bytes)", show(k.checkpoint_bf16), show(k.checkpoint_fp32), ""),
        ("Modelled peak allocated (GiB)", show(k.peak_bf16_gib), show(k.peak_fp32_gib), show(k.peak_extra_gib, "sign:2")),
        ("Peak reached at", text(pm.PHASE_LABELS[k.phase_bf16]), text(pm.PHASE_LABELS[k.phase_fp32]), ""),
    ]
    return md_table(("", "Left in bf16", "Upcast to fp32 (prepare_model_for_kbit_training)", "Difference"), rows,
                    align="lrrr")


def optimizer_table(preset_id: str = pc.EXAMPLE_PRESET, method: str = "qlora") -> str:
    """The same QLoRA run with four optimizers (:func:`calc.pages.quant.optimizer_rows`)."""
    rows = [(code(o.optimizer), text(o.label), show(o.states_mib, "fixed:1"), show(o.paged_mib, "fixed:1"),
             show(o.peak_gib), show(o.required_gib)) for o in pq.optimizer_rows(preset_id, method)]
    return md_table(("optim", "Optimizer", "State seen by max_memory_allocated (MiB)",
                     "State paged to unified memory (MiB)", "Peak allocated (GiB)", "Required with context (GiB)"),
                    rows, align="llrrrr")


def chart_qlora_methods() -> str:
    """Required memory of full, LoRA and QLoRA per model (:func:`calc.pages.quant.method_points`)."""
    pts = pq.method_points()
    order = list(dict.fromkeys(p.name for p in pts))
    methods = [pq.METHOD_LABELS[m] for m in ("full", "lora", "qlora")]
    values = [{"model": p.name, "method": p.label, "required": p.required_gib, "peak": p.peak_gib,
               "phase": pm.PHASE_LABELS[p.phase]} for p in pts]
    pick = _legend_pick("pick_method", "method")
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        x=alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("method:N", sort=methods),
        y=alt.Y("required:Q", title="Required memory (GiB): modelled peak + CUDA context"),
        color=alt.Color("method:N", sort=methods, title=None, legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.25)),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("method:N", title="Method"),
                 alt.Tooltip("required:Q", title="Required (GiB)", format=",.1f"),
                 alt.Tooltip("peak:Q", title="Peak allocated (GiB)", format=",.1f"),
                 alt.Tooltip("phase:N", title="Peak at")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Grouped bar chart: for {len(order)} models, the memory one training step needs with full fine-tuning, "
            "LoRA and QLoRA under the same conditions. Full fine-tuning is several times the others for every model; "
            "QLoRA's advantage over LoRA grows with model size, because the 4-bit base saves more the larger it is, "
            "while the adapter, activations and loss buffers are similar for both.")
    rows = [(text(p.name), text(p.label), show(p.peak_gib), show(p.context_gib), show(p.required_gib),
             text(pm.PHASE_LABELS[p.phase])) for p in pts]
    return figure(_spec(chart, desc), chart_id="chart-qlora-memory-by-method",
                  caption="Full fine-tuning vs LoRA vs QLoRA: modelled peak allocated memory plus the CUDA context, "
                          "per model, at the conditions stated above. Values from calc.pages.quant.method_points "
                          "(calc.memory.estimate_memory).",
                  description=desc,
                  headers=("Model", "Method", "Peak allocated (GiB)", "CUDA context (GiB)", "Required (GiB)",
                           "Peak reached at"),
                  rows=rows)
