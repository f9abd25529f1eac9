"""Macros for the training-memory, adapter-file and validation pages (memory.md, adapters.md, validation.md).

Every number comes from one function of :mod:`calc.pages_data` (named in each docstring), which does the unit
conversions, ratios and per-token divisions; these macros only choose what to show, format digits and escape
text from data. Inline values use :func:`macros.quant_pages.pd_value`. Rule-of-thumb tables are registered
with :func:`macros.rot.rule_of_thumb`; charts go through :func:`macros.charts.figure`.
"""

from __future__ import annotations


import altair as alt

from calc.pages import common as pc, memory as pm
from calc.memory import BNB_8BIT_BLOCK, BNB_MIN_8BIT_SIZE
from calc.versions import label as release
from macros.charts import figure
from macros.quant_pages import CHART_HEIGHT, CHART_WIDTH, _legend_pick, _spec, show
from macros.render import code, md_table, text
from macros.rot import Column, RotTable, rule_of_thumb

MACROS = (
    "memory_conditions_text", "precision_table", "activation_table", "loss_table", "phase_table",
    "chart_memory_breakdown", "adapter_layout_table", "adapter_header_excerpt", "serving_table",
    "chart_adapter_size", "validation_summary_table", "measurement_provenance", "unmodelled_table",
    "chart_validation",
)


def memory_conditions_text(r: int = pc.EXAMPLE_RANK, gradient_checkpointing: bool = True) -> str:
    """The conditions of the memory figures in words (:func:`calc.pages.common.conditions_text`), escaped."""
    return text(pc.conditions_text(r, gradient_checkpointing))


# == memory.md =====================================================================================================
def precision_table(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """A model's weights in each storage precision (:func:`calc.pages.memory.precision_rows`)."""
    rows = [(text(p.label), show(p.total_gib), show(p.bits_per_param, "fixed:2"), show(p.percent_of_bf16, "pct:1"))
            for p in pm.precision_rows(preset_id)]
    return md_table(("Weights stored as", "Size (GiB)", "Bits per parameter, whole model", "vs bf16"), rows)


@rule_of_thumb("rot-bytes-per-trainable-parameter")
def _rot_param_bytes() -> RotTable:
    rows = tuple((r.regime, r.weights, r.gradients, r.optimizer_states, r.master_weights, r.total)
                 for r in pm.param_bytes_rows())
    return RotTable(
        id="rot-bytes-per-trainable-parameter", title="Bytes per trainable parameter, by precision and optimizer",
        conditions=(f"read off calc's estimate for {pm.model_name(pc.EXAMPLE_PRESET)} at the optimizer step (each "
                    "term divided by the trainable parameters: all of them for full fine-tuning, the adapter's for "
                    f"LoRA at r={pc.EXAMPLE_RANK} on all linear layers). torch AdamW keeps exp_avg and exp_avg_sq in the "
                    "parameter's dtype; bitsandbytes 8-bit AdamW keeps two uint8 states plus one fp32 absmax per "
                    f"{BNB_8BIT_BLOCK} elements each (fp32 states for tensors under {BNB_MIN_8BIT_SIZE:,} elements); a "
                    "master copy is fp32. Activations, "
                    "the frozen base of LoRA and transients are separate terms. Bytes per parameter."),
        columns=(Column("Regime"), Column("Weights", "fixed:3"), Column("Gradients", "fixed:3"),
                 Column("Optimizer states", "fixed:3"), Column("Master copy", "fixed:3"), Column("Total", "fixed:3")),
        rows=rows, source="calc.pages.memory.param_bytes_rows (calc.memory.estimate_memory)")


def activation_table(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """Saved activations per token and layer, and in total (:func:`calc.pages.memory.activation_rows`)."""
    acts = pm.activation_rows(preset_id)
    rows = [(text(a.label), show(a.per_token_layer, "int"), show(a.checkpoint_per_token_layer, "int"),
             show(a.total_gib_off), show(a.total_gib_on)) for a in acts]
    return md_table(("Method", "Saved per token and layer, no checkpointing (bytes)",
                     "Kept per token and layer with checkpointing (bytes)",
                     f"All layers at {acts[0].tokens:,} tokens, no checkpointing (GiB)",
                     "Same with checkpointing (GiB)"), rows)


def loss_table(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """Logits-and-loss bytes per token (:func:`calc.pages.memory.loss_terms`)."""
    t = pm.loss_terms(preset_id)
    rows = [("Saved by log-softmax (fp32) and the int64 labels", show(t.saved_per_token)),
            ("Gradient buffers at the start of backward (fp32)", show(t.backward_per_token)),
            ("**Total per token**", f"**{show(t.total_per_token)}**"),
            (f"Total at {t.tokens:,} tokens (GiB)", show(t.total_gib))]
    return md_table(("Term", "Bytes per token"), rows)


def phase_table(preset_id: str = pc.EXAMPLE_PRESET, method: str = "qlora", gradient_checkpointing: bool = True) -> str:
    """Every modelled phase of one configuration (:func:`calc.pages.memory.phase_rows`)."""
    rows = [(text(p.label), show(p.total_gib), "**peak**" if p.is_peak else "")
            for p in pm.phase_rows(preset_id, method, gradient_checkpointing)]
    return md_table(("Moment of the step", "Allocated (GiB)", ""), rows, align="lrl")


def chart_memory_breakdown(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """Stacked components of each method's peak, checkpointing on and off (:func:`calc.pages.memory.breakdowns`)."""
    bds = pm.breakdowns(preset_id)
    configs, values, rows = [], [], []
    comp_order = list(pm.COMPONENT_LABELS.values())
    for b in bds:
        config = f"{b.label}, checkpointing {'on' if b.gradient_checkpointing else 'off'}"
        configs.append(config)
        for i, c in enumerate(b.components):
            if c.gib:
                values.append({"config": config, "component": c.component_label, "gib": c.gib, "order": i,
                               "phase": pm.PHASE_LABELS[b.phase]})
            rows.append((text(config), text(c.component_label), show(c.gib, "fixed:3")))
        rows.append((text(config), "**Required (peak + CUDA context)**", f"**{show(b.required_gib, 'fixed:3')}**"))
    pick = _legend_pick("pick_component", "component")
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("config:N", sort=configs, title=None),
        x=alt.X("gib:Q", stack="zero", title="GiB (2^30 bytes)"),
        color=alt.Color("component:N", sort=comp_order, title=None,
                        legend=alt.Legend(orient="bottom", columns=3, labelLimit=320)),
        order=alt.Order("order:Q"),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.25)),
        tooltip=[alt.Tooltip("config:N", title="Configuration"), alt.Tooltip("component:N", title="Component"),
                 alt.Tooltip("gib:Q", title="GiB", format=",.2f"), alt.Tooltip("phase:N", title="Peak at")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Stacked horizontal bars for {pm.model_name(preset_id)}: the components of the modelled peak for full "
            "fine-tuning, LoRA and QLoRA, each with gradient checkpointing on and off, plus the CUDA context. Full "
            "fine-tuning is dominated by weights, gradients, optimizer states and the optimizer's temporary; LoRA and "
            "QLoRA by the base weights, with activations taking over when checkpointing is off.")
    return figure(_spec(chart, desc), chart_id="chart-memory-breakdown",
                  caption=f"Where the memory goes: {pm.model_name(preset_id)}, components of the peak phase of each "
                          "configuration (GiB). Values from calc.pages.memory.breakdowns (calc.memory.estimate_memory).",
                  description=desc, headers=("Configuration", "Component", "GiB"), rows=rows)


@rule_of_thumb("rot-vram-by-model-size")
def _rot_vram() -> RotTable:
    rows = tuple((r.name, r.total_params, r.full_gib, r.lora_gib, r.qlora_gib, r.full_no_gc_gib, r.lora_no_gc_gib,
                  r.qlora_no_gc_gib) for r in pm.vram_rows())
    return RotTable(
        id="rot-vram-by-model-size", title="GPU memory for one training step, by model size and method (GiB)",
        conditions=(pc.conditions_text() + ". The last three columns repeat the three methods with gradient "
                    "checkpointing off, everything else equal. Every value "
                    "is the memory one GPU must have free: a modelled peak, not a measurement; see the validation page "
                    "for how the model compares with measured runs."),
        columns=(Column("Model"), Column("Parameters", "int"), Column("Full", "fixed:1", "GiB"), Column("LoRA", "fixed:1", "GiB"),
                 Column("QLoRA", "fixed:1", "GiB"), Column("Full, no checkpointing", "fixed:1", "GiB"),
                 Column("LoRA, no checkpointing", "fixed:1", "GiB"),
                 Column("QLoRA, no checkpointing", "fixed:1", "GiB")),
        rows=rows, source="calc.pages.memory.vram_rows (calc.pages.common.compare_methods)")


def _gpu_header(c: pm.GpuColumn) -> str:
    short = c.name.removeprefix("NVIDIA ").removeprefix("GeForce ")
    named = short if c.marketed.replace(" ", "") in short else f"{short} {c.marketed}"
    return f"{named} ({c.usable_gib:,.1f} GiB usable)"


@rule_of_thumb("rot-gpu-fit-qlora")
def _rot_fit() -> RotTable:
    cols = pm.fit_columns()
    rows = tuple((r.name, r.required_gib, *[c.headroom_gib for c in r.cells]) for r in pm.fit_matrix())
    return RotTable(
        id="rot-gpu-fit-qlora", title="Will QLoRA fit? Headroom per GPU (GiB)",
        conditions=(pc.conditions_text() + ". Each GPU cell is the headroom: the memory the CUDA runtime reports as "
                    "usable on that card minus the required memory. Negative means it does not fit; a small positive "
                    "headroom may still fail, because the caching allocator's fragmentation (reserved minus allocated) "
                    "comes on top. Vendors' 'GB' figures are kept as sold."),
        columns=(Column("Model"), Column("Required", "fixed:1", "GiB"), *[Column(_gpu_header(c), "fixed:1") for c in cols]),
        rows=rows, source="calc.pages.memory.fit_matrix (calc.gpus.fit)")


@rule_of_thumb("rot-multi-gpu-llama-3-1-70b")
def _rot_multi() -> RotTable:
    rows = tuple((r.method_label, r.sharding_label, r.single_gpu_gib, *r.per_gpu_gib) for r in pm.sharding_rows())
    return RotTable(
        id="rot-multi-gpu-llama-3-1-70b",
        title=f"Per-GPU memory of {pm.model_name(pm.MULTI_GPU_PRESET)} sharded over several GPUs (GiB)",
        conditions=(pc.conditions_text() + ". Per GPU: model states divided as ZeRO (Rajbhandari et al.) and FSDP "
                    "(Zhao et al.) do (ZeRO-1 the optimizer states, ZeRO-2 also the gradients, ZeRO-3 and FSDP "
                    "FULL_SHARD also the weights); activations are not sharded; ZeRO-3/FSDP add about two decoder "
                    "layers of gathered weights and one layer of gradients; DDP adds a gradient-sized bucket buffer; "
                    "FSDP + QLoRA shards the packed 4-bit weights (bnb_4bit_quant_storage=bf16) but keeps the full "
                    "quantization state on every GPU. Not modelled: NCCL buffers, DeepSpeed bucket sizes, CPU "
                    "offload. The single-GPU column is the same method without sharding, for comparison."),
        columns=(Column("Method"), Column("Sharding"), Column("1 GPU, unsharded", "fixed:1", "GiB"),
                 *[Column(f"{n} GPUs", "fixed:1", "GiB per GPU") for n in pm.GPU_COUNTS]),
        rows=rows, source="calc.pages.memory.sharding_rows (calc.memory.estimate_memory)")


# == adapters.md ===================================================================================================
@rule_of_thumb("rot-adapter-size-by-targets")
def _rot_adapter_size() -> RotTable:
    sizes = pm.adapter_size_rows()
    ranks = sizes[0].ranks
    rows = tuple((s.target_modules, s.dtype, *s.mib) for s in sizes)
    return RotTable(
        id="rot-adapter-size-by-targets",
        title=f"adapter_model.safetensors of {pm.model_name(pm.ADAPTER_PRESET)} by targets, dtype and rank (MiB)",
        conditions=(f"{release('peft')} save_pretrained with {release('safetensors')}: the exact file size, header included, MiB = "
                    "2^20 bytes. target_modules as calc expands them for this model (qv = q_proj + v_proj, attention = "
                    "the four attention projections, mlp = gate/up/down, all-linear = PEFT's every decoder linear); "
                    "lora_alpha = 2r (it does not change the size); bias='none', no modules_to_save. float32 is what "
                    "PEFT saves by default even for a bf16 model; bfloat16 after autocast_adapter_dtype=False or a "
                    "cast before saving."),
        columns=(Column("target_modules"), Column("dtype"), *[Column(f"r={r}", "fixed:1") for r in ranks]),
        rows=rows, source="calc.pages.memory.adapter_size_rows (calc.adapters.adapter_file_bytes)")


def chart_adapter_size() -> str:
    """File size against rank per target set and dtype (:func:`calc.pages.memory.adapter_size_rows`)."""
    sizes = pm.adapter_size_rows()
    targets = list(dict.fromkeys(s.target_modules for s in sizes))
    values, rows = [], []
    for s in sizes:
        for r, m, n in zip(s.ranks, s.mib, s.trainable_params):
            values.append({"targets": s.target_modules, "dtype": s.dtype, "rank": r, "mib": m, "params": n})
            rows.append((code(s.target_modules), code(s.dtype), show(r), show(n), show(m, "fixed:1")))
    pick = _legend_pick("pick_targets", "targets")
    chart = alt.Chart(alt.Data(values=values)).mark_line(point=True).encode(
        x=alt.X("rank:Q", scale=alt.Scale(type="log", base=2), title="LoRA rank r (log scale)",
                axis=alt.Axis(values=list(sizes[0].ranks))),
        y=alt.Y("mib:Q", scale=alt.Scale(type="log"), title="adapter_model.safetensors (MiB, log scale)"),
        color=alt.Color("targets:N", sort=targets, title="target_modules", legend=alt.Legend(orient="bottom")),
        strokeDash=alt.StrokeDash("dtype:N", sort=list(pm.ADAPTER_DTYPES), title="dtype", legend=alt.Legend(orient="bottom")),
        detail="dtype:N",
        opacity=alt.condition(pick, alt.value(1), alt.value(0.2)),
        tooltip=[alt.Tooltip("targets:N", title="Targets"), alt.Tooltip("dtype:N", title="dtype"),
                 alt.Tooltip("rank:Q", title="r"), alt.Tooltip("params:Q", title="Parameters", format=","),
                 alt.Tooltip("mib:Q", title="MiB", format=",.1f")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Line chart, both axes on log scales: the size of the adapter file for {pm.model_name(pm.ADAPTER_PRESET)} "
            f"against the rank, for {len(targets)} target sets, each saved in float32 (solid) and bfloat16 (dashed). "
            "Every line is straight with slope one: the file doubles with the rank; bfloat16 halves it; all linear "
            "layers cost several times q and v alone.")
    return figure(_spec(chart, desc), chart_id="chart-adapter-size-by-targets",
                  caption=f"adapter_model.safetensors of {pm.model_name(pm.ADAPTER_PRESET)} by rank, target set and "
                          "dtype (exact sizes, header included). Values from calc.pages.memory.adapter_size_rows.",
                  description=desc, headers=("target_modules", "dtype", "Rank r", "Parameters", "File (MiB)"),
                  rows=rows)


def _layout(preset_id: str, r: int, targets: str, modules_to_save: tuple[str, ...]) -> pm.AdapterLayout:
    return pm.adapter_layout(preset_id, r, targets, tuple(modules_to_save))


def adapter_layout_table(preset_id: str = "llama-3.2-1b", r: int = pc.EXAMPLE_RANK, targets: str = "all-linear",
                         modules_to_save: tuple[str, ...] = ()) -> str:
    """The first tensors of the file, in file order, and the last (:func:`calc.pages.memory.adapter_layout`)."""
    lay = _layout(preset_id, r, targets, tuple(modules_to_save))
    rows = [(code(e.key), code(e.dtype), show(e.shape), f"{e.begin:,} – {e.end:,}") for e in lay.first]
    rows.append(("…", "", "", ""))
    rows += [(code(e.key), code(e.dtype), show(e.shape), f"{e.begin:,} – {e.end:,}") for e in lay.last]
    return md_table(("Key", "dtype", "Shape", "data_offsets (bytes)"), rows, align="lllr")


def adapter_header_excerpt(preset_id: str = "llama-3.2-1b", r: int = pc.EXAMPLE_RANK, targets: str = "all-linear") -> str:
    """The opening of the file's JSON header, as written (:func:`calc.pages.memory.adapter_layout`). A text fence."""
    lay = _layout(preset_id, r, targets, ())
    return f"```text\n{lay.header_start}…\n```\n"


def serving_table(preset_id: str = pc.EXAMPLE_PRESET) -> str:
    """One base + N adapters vs N merged models (:func:`calc.pages.memory.serving_rows`)."""
    rows = [(show(s.n), show(s.base_gib), show(s.adapters_gib), show(s.total_gib), show(s.merged_copies_gib, "fixed:1"),
             show(s.saving_factor, "x:1")) for s in pm.serving_rows(preset_id)]
    return md_table(("Fine-tunes N", "Base, once (GiB)", "N adapters (GiB)", "Base + adapters (GiB)",
                     "N merged models (GiB)", "Merged ÷ shared"), rows)


@rule_of_thumb("rot-merged-model-size")
def _rot_merged() -> RotTable:
    rows = tuple((m.name, m.adapter_mib, m.merged_fp32_gib, m.merged_bf16_gib, m.nf4_gib, m.merged_per_adapter)
                 for m in pm.merge_rows())
    return RotTable(
        id="rot-merged-model-size", title="Adapter vs merged model vs 4-bit base",
        conditions=(f"adapter: LoRA r={pc.EXAMPLE_RANK} on all linear layers saved by {release('peft')} with its defaults "
                    "(float32 tensors, header included), MiB = 2^20 bytes. Merged: merge_and_unload() gives the base "
                    "architecture back, so its weights are every parameter at the saved dtype (tensor data only; the "
                    "safetensors headers and index add well under 0.01 %), GiB = 2^30 bytes. 4-bit: the same model "
                    "loaded in NF4 with double quantization (embeddings, lm_head and norms in bf16), for comparison."),
        columns=(Column("Model"), Column("Adapter", "fixed:1", "MiB"), Column("Merged fp32", "fixed:2", "GiB"),
                 Column("Merged bf16", "fixed:2", "GiB"), Column("NF4 base", "fixed:2", "GiB"),
                 Column("Merged bf16 / adapter", "fixed:0")),
        rows=rows, source="calc.pages.memory.merge_rows (calc.adapters.merged_model_bytes)")


# == validation.md =================================================================================================
def validation_summary_table() -> str:
    """Median |error| per group (:func:`calc.pages.memory.validation_summary`)."""
    s = pm.validation_summary()
    rows = [(text(label), show(n), show(med, "pct:2")) for _, label, n, med in s.by_group]
    rows.append(("**All published points**", f"**{show(s.published_points)}**",
                 f"**{show(s.median_abs_error_pct_published, 'pct:2')}**"))
    rows.append(("**All points**", f"**{show(s.modelled)}**", f"**{show(s.median_abs_error_pct, 'pct:2')}**"))
    return md_table(("Source", "Points", "Median absolute error"), rows)


def _validation_rot(table_id: str, own: bool, title: str, conditions: str) -> RotTable:
    rows = tuple((r.id, r.model, r.conditions, r.metric_label, r.published, r.measured_gib, r.estimate_gib, r.error_pct)
                 for r in pm.validation_rows(own=own))
    return RotTable(
        id=table_id, title=title, conditions=conditions,
        columns=(Column("Point", "code"), Column("Model"), Column("Conditions"), Column("Metric"), Column("Published"),
                 Column("Measured", "fixed:2", "GiB"), Column("Estimate", "fixed:2", "GiB"), Column("Error", "pct:2")),
        rows=rows, source="calc.pages.memory.validation_rows (calc.validation.run_validation)")


@rule_of_thumb("rot-validation-published")
def _rot_val_published() -> RotTable:
    return _validation_rot(
        "rot-validation-published", False, "Estimates against peaks published by others",
        "every modelled point of calc/data/published_measurements.yaml. 'Published' is the figure as its source "
        "prints it (GB = 10^9 bytes where the source says GB; GiB = 2^30 bytes); 'Measured' is the same figure in "
        "GiB. The estimate is calc's modelled max_memory_allocated for the conditions stated (b = micro-batch, s = "
        "sequence length). Where the source measured max_memory_reserved, the allocated estimate is compared with it "
        "unchanged, so a few per cent low is expected. Error = (estimate - measured) / measured.")


def _steps() -> str:
    return " or ".join(show(s) for s in sorted({s for m in pm.measurement_files() for s in m.steps}))


@rule_of_thumb("rot-validation-h200")
def _rot_val_ours() -> RotTable:
    return _validation_rot(
        "rot-validation-h200", True, "Estimates against our own H200 measurements",
        f"torch.cuda.max_memory_allocated() over {_steps()} training steps (after model build; the AdamW states "
        "included), measured on one NVIDIA H200 with random weights; 'Published' is the measured byte count, "
        "'Measured' the same in GiB (2^30 bytes). b = micro-batch, s = sequence length. These points are in-sample: "
        "the cuBLAS workspace constant of the memory model was calibrated on them, and some of its rules were "
        "checked against them. Error = (estimate - measured) / measured.")


def measurement_provenance() -> str:
    """Where and how our measurements were taken (:func:`calc.pages.memory.measurement_files`), one list per file."""
    out = []
    for m in pm.measurement_files():
        libs = ", ".join(f"{text(k)} {text(v)}" for k, v in m.libraries)
        outside = ", ".join(show(v, "fixed:0") for v in m.outside_allocator_mib)
        out.append("\n".join([
            f"**{code(m.path)}** ({show(m.points)} points, ids {code(m.id_prefix + '-…')}): {text(m.note)}",
            "",
            f"- GPU: {text(m.gpu)}, {show(m.gpu_total_gib)} GiB as torch reports it; driver {text(m.driver_version)}, "
            f"CUDA driver API {text(m.cuda_driver_api_version)}, torch CUDA runtime {text(m.torch_cuda_runtime)}.",
            f"- Software: Python {text(m.python)}; {libs}.",
            f"- Dates (UTC): {text(', '.join(m.dates))}; script {code(m.script)}; models "
            f"{', '.join(code(p) for p in m.presets)}; {', '.join(show(s) for s in m.steps)} steps per point, "
            f"seed {', '.join(text(str(s)) for s in m.seeds)}.",
            f"- max_memory_reserved ÷ max_memory_allocated over the points: {show(m.reserved_ratio_min, 'fixed:3')} to "
            f"{show(m.reserved_ratio_max, 'fixed:3')}, median {show(m.reserved_ratio_median, 'fixed:3')}.",
            f"- Per-process memory outside the caching allocator (NVML used minus reserved): {outside} MiB.",
        ]))
        if m.notes:
            notes = "\n".join(f"    - {text(n)}" for n in m.notes)
            out.append(f'??? note "Settings recorded in {text(m.path)}"\n\n{notes}\n')
    return "\n\n".join(out)


def unmodelled_table() -> str:
    """Points kept in the data but not compared, with their reasons (:func:`calc.pages.memory.unmodelled_rows`)."""
    rows = [(code(u.id), text(u.model), text(u.metric), text(u.published), text(u.reason))
            for u in pm.unmodelled_rows()]
    return md_table(("Point", "Model", "Metric", "Published", "Why it is not compared"), rows, align="lllll")


def chart_validation() -> str:
    """Estimate against measurement for every modelled point (:func:`calc.pages.memory.validation_rows`)."""
    vrows = pm.validation_rows()
    groups = list(dict.fromkeys(r.group_label for r in vrows))
    values = [{"id": r.id, "group": r.group_label, "measured": r.measured_gib, "estimate": r.estimate_gib,
               "error": r.error_pct, "metric": r.metric_label} for r in vrows]
    lo, hi = pm.validation_extent()
    scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
    diag = alt.Chart(alt.Data(values=[{"a": lo, "b": lo}, {"a": hi, "b": hi}])).mark_line(
        color="gray", strokeDash=[4, 4]).encode(x=alt.X("a:Q", scale=scale), y=alt.Y("b:Q", scale=scale))
    pick = _legend_pick("pick_group", "group")
    dots = alt.Chart(alt.Data(values=values)).mark_point(filled=True, size=60).encode(
        x=alt.X("measured:Q", scale=scale, title="Measured (GiB, log scale)"),
        y=alt.Y("estimate:Q", scale=scale, title="Estimate (GiB, log scale)"),
        color=alt.Color("group:N", sort=groups, title=None, legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
        shape=alt.Shape("metric:N", title="Metric", legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.15)),
        tooltip=[alt.Tooltip("id:N", title="Point"), alt.Tooltip("measured:Q", title="Measured (GiB)", format=",.2f"),
                 alt.Tooltip("estimate:Q", title="Estimate (GiB)", format=",.2f"),
                 alt.Tooltip("error:Q", title="Error (%)", format="+.2f"), alt.Tooltip("metric:N", title="Metric")],
    ).add_params(pick)
    chart = alt.layer(diag, dots).properties(width=CHART_WIDTH, height=CHART_HEIGHT + 60)
    desc = (f"Scatter plot on log-log axes: {len(values)} modelled points, measured peak memory against calc's "
            "estimate, with the diagonal where they are equal. Our own H200 points sit on the diagonal; the published "
            "points sit on it or slightly below (the estimate a few per cent low), most of all where the source measured "
            "reserved rather than allocated memory.")
    rows = [(code(r.id), text(r.group_label), text(r.metric_label), show(r.measured_gib), show(r.estimate_gib),
             show(r.error_pct, "sign:2")) for r in vrows]
    return figure(_spec(chart, desc), chart_id="chart-validation-estimate-vs-measured",
                  caption="calc's estimate against the measured peak, every modelled point (GiB). Values from "
                          "calc.pages.memory.validation_rows (calc.validation.run_validation).",
                  description=desc,
                  headers=("Point", "Source", "Metric", "Measured (GiB)", "Estimate (GiB)", "Error (%)"), rows=rows)
