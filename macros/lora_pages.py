"""Macros for the LoRA pages: lora.md, rank.md, alpha.md, target-modules.md.

Every number comes from one :mod:`calc` function (named in each docstring): mostly :mod:`calc.pages.lora`,
which wraps :func:`calc.lora.count_lora` and :func:`calc.adapters.adapter_file_bytes`. This module only
chooses which result to show and formats it; it does no arithmetic. Rule-of-thumb tables are registered
with :func:`macros.rot.rule_of_thumb`; charts go through :func:`macros.charts.figure`.
"""

from __future__ import annotations

from typing import Any, Sequence

import altair as alt

from calc.pages import lora as g
from calc.adapters import DTYPES
from calc.fmt import human_count
from calc.lora import ALL_LINEAR, LoraSpec, count_lora, scaling
from calc.presets import get_preset
from calc.versions import label as release
from macros.charts import figure
from macros.refs import cite
from macros.render import code, md_table, number, text
from macros.rot import Column, RotTable, rule_of_thumb

MACROS = (
    "model_name", "family_name", "guide", "guide_value", "peft_printout", "projection_value", "projection_table", "lora_count", "rank_cost_value",
    "scale_value", "scale_ratio_value", "target_set_value", "module_value", "mts_value",
    "rank_guidance_findings", "chart_trainable_vs_frozen", "chart_params_vs_rank", "chart_adapter_size_vs_rank",
    "chart_scale_vs_rank", "chart_target_sets", "module_list",
)

CHART_WIDTH = 560
CHART_HEIGHT = 300
TALL_CHART_HEIGHT = 380
PEFT_VERSION = release("peft")


# -- formatting (no arithmetic) --------------------------------------------------------------------------------
def _fmt(value: Any, fmt: str | None = None) -> str:
    """:func:`macros.render.number`, with four significant digits for a bare ``g`` (``5.657``)."""
    return number(value, fmt, g_digits=4)


def _field(obj: Any, field: str) -> Any:
    if not hasattr(obj, field):
        raise AttributeError(f"{type(obj).__name__} has no field {field!r}")
    return getattr(obj, field)


def _targets(targets: str | Sequence[str]) -> str | tuple[str, ...]:
    return targets if isinstance(targets, str) else tuple(targets)


def _name(preset_id: str) -> str:
    return get_preset(preset_id).name


# -- inline values ---------------------------------------------------------------------------------------------
def model_name(preset_id: str) -> str:
    """A preset's display name (``calc.presets.get_preset``), escaped."""
    return text(_name(preset_id))


def family_name(preset_id: str) -> str:
    """A preset's display family (``calc.presets.get_preset``), escaped."""
    return text(get_preset(preset_id).family)


_GUIDE = {
    "example_rank": lambda: g.EXAMPLE_RANK,
    "cargo_low": lambda: g.CARGO_LOW_RANK,
    "cargo_high": lambda: g.CARGO_HIGH_RANK,
    "fixed_alpha": lambda: g.FIXED_ALPHA,
    "peft_r": lambda: g.PEFT_DEFAULTS.r,
    "peft_alpha": lambda: g.PEFT_DEFAULTS.lora_alpha,
    "peft_scale": lambda: g.PEFT_DEFAULTS.scale,  # a float: show with fmt="g"
    "example_alpha": lambda: g.handbook_alpha(g.EXAMPLE_RANK),
    "fp32_bytes": lambda: DTYPES["float32"][1],
    "scale_rules": lambda: len(g.SCALE_RULES),
    "grid_min": lambda: g.RANK_GRID[0],
    "grid_max": lambda: g.RANK_GRID[-1],
    "class_low": lambda: g.SEVEN_B_CLASS[0],
    "class_high": lambda: g.SEVEN_B_CLASS[1],
    "trap_rank": lambda: g.PEFT_TRAP_RANK,
    "qlora_r": lambda: g.QLORA_RECIPE[0],
    "qlora_alpha": lambda: g.QLORA_RECIPE[1],
    "dora_rank": lambda: g.DORA_EXAMPLE_RANK,
}


def guide_value(name: str):
    """The raw constant behind :func:`guide`, for passing on to another macro
    (``scale_value(guide_value("qlora_r"), guide_value("qlora_alpha"))``)."""
    if name not in _GUIDE:
        raise KeyError(f"unknown guide value {name!r}; known: {', '.join(sorted(_GUIDE))}")
    return _GUIDE[name]()


def guide(name: str, fmt: str | None = None) -> str:
    """A constant of :mod:`calc.pages.lora` (the example rank, PEFT's defaults, the rank grid's ends …)."""
    return _fmt(guide_value(name), fmt)


def projection_value(preset_id: str, module: str, field: str, r: int = g.EXAMPLE_RANK, fmt: str | None = None) -> str:
    """A field of :func:`calc.pages.lora.projection_lora` (``in_features``, ``lora_per_instance`` …)."""
    p = g.projection_lora(get_preset(preset_id).architecture, module, r)
    return _fmt(_field(p, field), fmt)


def projection_table(preset_id: str, modules: Sequence[str], r: int = g.EXAMPLE_RANK) -> str:
    """One column per projection: shapes and counts from :func:`calc.pages.lora.projection_lora`."""
    arch = get_preset(preset_id).architecture
    ps = [g.projection_lora(arch, m, r) for m in modules]
    rows = [
        ("Weight `W` shape (out × in)", *[_fmt((p.out_features, p.in_features)) for p in ps]),
        ("Weight elements `in·out`", *[_fmt(p.weight_params) for p in ps]),
        ("`A` shape (r × in)", *[_fmt(p.a_shape) for p in ps]),
        ("`B` shape (out × r)", *[_fmt(p.b_shape) for p in ps]),
        ("LoRA elements `r·(in+out)`", *[_fmt(p.lora_per_instance) for p in ps]),
        ("LoRA as a share of `W`", *[_fmt(p.percent_of_weight, "pct:3") for p in ps]),
        ("Layers holding it", *[_fmt(p.count) for p in ps]),
        ("LoRA elements, all layers", *[_fmt(p.lora_total) for p in ps]),
    ]
    return md_table(["Quantity (parameters unless a shape)", *[code(p.target) for p in ps]], rows)


def lora_count(preset_id: str, r: int = g.EXAMPLE_RANK, targets: str | Sequence[str] = ALL_LINEAR, field: str = "trainable_params",
               use_dora: bool = False, use_rslora: bool = False, fmt: str | None = None) -> str:
    """A field of :func:`calc.lora.count_lora` (``lora_alpha`` = :func:`calc.pages.lora.handbook_alpha`): ``trainable_params``, ``trainable_percent`` …"""
    c = count_lora(get_preset(preset_id).architecture,
                   LoraSpec(r=r, lora_alpha=g.handbook_alpha(r), target_modules=_targets(targets), use_dora=use_dora,
                            use_rslora=use_rslora))
    return _fmt(_field(c, field), fmt)


def peft_printout(preset_id: str, r: int = g.EXAMPLE_RANK, targets: str | Sequence[str] = ALL_LINEAR,
                  use_dora: bool = False) -> str:
    """The line ``print_trainable_parameters()`` prints, as a code block, from :func:`calc.lora.count_lora`
    (format of ``PeftModel.print_trainable_parameters`` in ``peft/peft_model.py``)."""
    c = count_lora(get_preset(preset_id).architecture,
                   LoraSpec(r=r, lora_alpha=g.handbook_alpha(r), target_modules=_targets(targets), use_dora=use_dora))
    return (f"```text\ntrainable params: {c.trainable_params:,} || all params: {c.peft_all_params:,} || "
            f"trainable%: {c.trainable_percent:.4f}\n```")


def rank_cost_value(preset_id: str, field: str, fmt: str | None = None) -> str:
    """A field of :func:`calc.pages.lora.rank_cost` (dotted: ``low.adapter_mib``)."""
    obj: Any = g.rank_cost(get_preset(preset_id))
    for part in field.split("."):
        obj = _field(obj, part)
    return _fmt(obj, fmt)


def scale_value(r: int, lora_alpha: float, use_rslora: bool = False, fmt: str = "g") -> str:
    """PEFT's scale factor, :func:`calc.lora.scaling`."""
    return _fmt(scaling(r, lora_alpha, use_rslora), fmt)


def scale_ratio_value(r_from: int, r_to: int, lora_alpha: float, use_rslora: bool = False,
                      fmt: str = "g") -> str:
    """:func:`calc.pages.lora.scale_ratio`: how the scale changes when only the rank changes."""
    return _fmt(g.scale_ratio(r_from, r_to, lora_alpha, use_rslora), fmt)


def target_set_value(preset_id: str, target_set: str, field: str = "trainable_params", fmt: str | None = None) -> str:
    """A field of :func:`calc.pages.lora.target_set_costs` for one set."""
    for t in g.target_set_costs(get_preset(preset_id).architecture):
        if t.target_set == target_set:
            return _fmt(_field(t, field), fmt)
    raise KeyError(f"no target set {target_set!r}")


def module_value(preset_id: str, module: str, field: str, r: int = g.EXAMPLE_RANK,
                 targets: str | Sequence[str] = ALL_LINEAR, fmt: str | None = None) -> str:
    """A field of one row of :func:`calc.pages.lora.module_table` (untargeted modules included)."""
    table = g.module_table(get_preset(preset_id).architecture, r, _targets(targets), include_untargeted=True)
    for row in table.rows:
        if row.name == module:
            return _fmt(_field(row, field), fmt)
    raise KeyError(f"{preset_id} has no module {module!r}")


def module_list(preset_id: str, targets: str | Sequence[str], r: int = g.EXAMPLE_RANK) -> str:
    """The module paths a target list reaches, from :func:`calc.pages.lora.module_table`, as inline code."""
    table = g.module_table(get_preset(preset_id).architecture, r, _targets(targets))
    return ", ".join(code(row.name) for row in table.rows)


def mts_value(preset_id: str, field: str, fmt: str | None = None, names: Sequence[str] = ("lm_head",)) -> str:
    """A field of :func:`calc.pages.lora.modules_to_save_cost`."""
    return _fmt(_field(g.modules_to_save_cost(get_preset(preset_id), tuple(names)), field), fmt)


def rank_guidance_findings() -> str:
    """What each source in ``rank_guidance.yaml`` found, as a list with citation links
    (:func:`calc.pages.lora.rank_guidance`)."""
    items = []
    for e in g.rank_guidance():
        ranks = ", ".join(str(x) for x in e.ranks)
        items.append(f"- **{text(e.use_case)}** (r = {ranks}). {text(e.finding)} {cite(e.cite)}, {text(e.where)}.")
    return "\n".join(items)


# -- chart helpers ------------------------------------------------------------------------------------------------
#: Parameter-count axis labels with SI prefixes, "B" for billions as model sizes are quoted.
_COUNT_AXIS = alt.Axis(format="~s", labelExpr="replace(datum.label, 'G', 'B')")


def _legend_pick(name: str, field: str) -> alt.Parameter:
    return alt.selection_point(name=name, fields=[field], bind="legend")


def _spec(chart: alt.TopLevelMixin, description: str) -> dict[str, Any]:
    spec = chart.properties(description=description).to_dict()
    spec.setdefault("config", {})["aria"] = True
    return spec


def chart_trainable_vs_frozen(r: int = g.EXAMPLE_RANK) -> str:
    """Frozen vs trainable parameters per preset: :func:`calc.pages.lora.param_split` (all-linear, rank ``r``).

    A dot plot on a log axis (bars cannot start at zero on a log scale): one dot for the frozen base model,
    one for the LoRA adapter, joined by a rule whose length on the log axis is their ratio.
    """
    splits = [g.param_split(get_preset(pid), r) for pid in g.FROZEN_VS_TRAINABLE]
    order = [s.name for s in splits]
    frozen, trainable = "Frozen (base model)", f"Trainable (LoRA r={r}, all-linear)"
    points = []
    for s in splits:
        points.append({"model": s.name, "part": frozen, "params": s.frozen_params})
        points.append({"model": s.name, "part": trainable, "params": s.trainable_params})
    spans = [{"model": s.name, "trainable": s.trainable_params, "frozen": s.frozen_params,
              "ratio": s.frozen_per_trainable} for s in splits]
    x_scale = alt.Scale(type="log")
    y = alt.Y("model:N", sort=order, title=None)
    rule = alt.Chart(alt.Data(values=spans)).mark_rule(strokeWidth=2, opacity=0.5).encode(
        y=y, x=alt.X("trainable:Q", scale=x_scale, title="Parameters (log scale)", axis=_COUNT_AXIS),
        x2="frozen:Q",
        tooltip=[alt.Tooltip("model:N", title="Model"),
                 alt.Tooltip("ratio:Q", title="Frozen per trainable", format=",.0f")])
    pick = _legend_pick("pick_part", "part")
    dots = alt.Chart(alt.Data(values=points)).mark_circle(size=160, opacity=1).encode(
        y=y, x=alt.X("params:Q", scale=x_scale),
        color=alt.Color("part:N", sort=[frozen, trainable], title=None, legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.25)),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("part:N", title="Part"),
                 alt.Tooltip("params:Q", title="Parameters", format=",")],
    ).add_params(pick)
    chart = alt.layer(rule, dots).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Dot plot on a log scale: for each of {len(splits)} models, one dot for the frozen base-model "
            f"parameters and one for the trainable LoRA parameters at rank {r} on all linear layers, joined by a "
            "line. The adapter is a small fraction of the base model in every case, and the fraction shrinks as "
            "models grow.")
    rows = [(text(s.name), _fmt(s.frozen_params), _fmt(s.trainable_params), _fmt(s.trainable_percent, "pct:3"),
             _fmt(s.frozen_per_trainable, "fixed:0")) for s in splits]
    return figure(_spec(chart, desc), chart_id="chart-trainable-vs-frozen",
                  caption=f"Frozen vs trainable parameters, LoRA r={r} (lora_alpha={g.handbook_alpha(r)}) on all "
                          "linear layers. Counts from calc.pages.lora.param_split.",
                  description=desc,
                  headers=("Model", "Frozen (parameters)", "Trainable (parameters)", "Trainable share",
                           "Frozen per trainable"),
                  rows=rows)


def _rank_lines(field: str, y_title: str, chart_id: str, caption: str, what: str, y_format: str) -> str:
    values, rows = [], []
    order = []
    for pid in g.SIZE_LADDER:
        name = _name(pid)
        order.append(name)
        for p in g.rank_sweep(get_preset(pid).architecture):
            values.append({"model": name, "rank": p.r, "value": getattr(p, field)})
            rows.append((text(name), _fmt(p.r), _fmt(getattr(p, field), y_format)))
    pick = _legend_pick("pick_model", "model")
    chart = alt.Chart(alt.Data(values=values)).mark_line(point=True).encode(
        x=alt.X("rank:Q", scale=alt.Scale(type="log", base=2), title="LoRA rank r (log scale)",
                axis=alt.Axis(values=list(g.RANK_GRID))),
        y=alt.Y("value:Q", scale=alt.Scale(type="log"), title=y_title,
                axis=_COUNT_AXIS if y_format == "int" else alt.Axis(format=",")),
        color=alt.Color("model:N", sort=order, title="Model", legend=alt.Legend(orient="bottom", columns=3)),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.2)),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("rank:Q", title="r"),
                 alt.Tooltip("value:Q", title=y_title, format=",.1f" if y_format.startswith("fixed") else ",")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Line chart, both axes on log scales: {what} against LoRA rank from {g.RANK_GRID[0]} to "
            f"{g.RANK_GRID[-1]} for {len(g.SIZE_LADDER)} models, all linear layers targeted. Every line is straight "
            "with the same slope: doubling the rank doubles the value.")
    return figure(_spec(chart, desc), chart_id=chart_id, caption=caption, description=desc,
                  headers=("Model", "Rank r", y_title), rows=rows)


def chart_params_vs_rank() -> str:
    """Trainable parameters vs rank per preset: :func:`calc.pages.lora.rank_sweep`."""
    return _rank_lines("trainable_params", "Trainable parameters", "chart-params-vs-rank",
                       "Trainable LoRA parameters vs rank (all-linear, as PEFT counts them). "
                       "Counts from calc.pages.lora.rank_sweep.", "trainable parameters", "int")


def chart_adapter_size_vs_rank() -> str:
    """``adapter_model.safetensors`` size (MiB, fp32) vs rank per preset: :func:`calc.pages.lora.rank_sweep`."""
    return _rank_lines("adapter_mib", "Adapter file (MiB)", "chart-adapter-size-vs-rank",
                       "Size of adapter_model.safetensors vs rank, fp32 as PEFT saves it by default "
                       "(MiB = 2^20 bytes). Sizes from calc.pages.lora.rank_sweep.", "adapter file size in MiB",
                       "fixed:1")


def chart_scale_vs_rank() -> str:
    """Scale factor vs rank under each alpha rule: :func:`calc.pages.lora.scale_curves`."""
    points = g.scale_curves()
    order = [rule.label for rule in g.SCALE_RULES]
    values = [{"rule": p.rule, "rank": p.r, "alpha": p.lora_alpha, "scale": p.scale} for p in points]
    pick = _legend_pick("pick_rule", "rule")
    chart = alt.Chart(alt.Data(values=values)).mark_line(point=True).encode(
        x=alt.X("rank:Q", scale=alt.Scale(type="log", base=2), title="LoRA rank r (log scale)",
                axis=alt.Axis(values=list(g.RANK_GRID))),
        y=alt.Y("scale:Q", scale=alt.Scale(type="log", base=2), title="Scale factor on B·A (log scale)"),
        color=alt.Color("rule:N", sort=order, title="How α is set", legend=alt.Legend(orient="bottom", columns=3)),
        strokeDash=alt.StrokeDash("rule:N", sort=order, legend=None),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.2)),
        tooltip=[alt.Tooltip("rule:N", title="Rule"), alt.Tooltip("rank:Q", title="r"),
                 alt.Tooltip("alpha:Q", title="lora_alpha"), alt.Tooltip("scale:Q", title="Scale", format=".4~f")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    desc = (f"Line chart, both axes on log scales: the factor PEFT multiplies B·A by, against rank from "
            f"{g.RANK_GRID[0]} to {g.RANK_GRID[-1]}, for {len(order)} ways of setting lora_alpha. "
            "alpha = r and alpha = 2r are flat; a fixed alpha falls as 1/r; rsLoRA with a fixed alpha falls as "
            "1/sqrt(r); rsLoRA with alpha = 2r rises as sqrt(r).")
    rows = [(text(p.rule), _fmt(p.r), _fmt(p.lora_alpha), _fmt(p.scale, "fixed:4")) for p in points]
    return figure(_spec(chart, desc), chart_id="chart-scale-vs-rank",
                  caption="Scale factor α/r (or α/√r with rsLoRA) vs rank. Values from calc.pages.lora.scale_curves.",
                  description=desc, headers=("How α is set", "Rank r", "lora_alpha", "Scale factor"), rows=rows)


def chart_target_sets(r: int = g.EXAMPLE_RANK) -> str:
    """Each target set's share of the all-linear count, per preset: :func:`calc.pages.lora.target_set_costs`."""
    values, rows, order = [], [], []
    sets = [s for s in g.TARGET_SETS if s != ALL_LINEAR]
    for pid in g.TARGET_SET_PRESETS:
        name = _name(pid)
        order.append(name)
        for t in g.target_set_costs(get_preset(pid).architecture, r):
            rows.append((text(name), code(t.target_set), _fmt(t.trainable_params),
                         _fmt(t.percent_of_all_linear, "pct:1")))
            if t.target_set in sets:
                values.append({"model": name, "set": t.target_set, "share": t.percent_of_all_linear,
                               "params": t.trainable_params})
    pick = _legend_pick("pick_set", "set")
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("model:N", sort=order, title=None),
        yOffset=alt.YOffset("set:N", sort=sets),
        x=alt.X("share:Q", title="Share of the all-linear parameter count (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("set:N", sort=sets, title="target_modules", legend=alt.Legend(orient="bottom")),
        opacity=alt.condition(pick, alt.value(1), alt.value(0.25)),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("set:N", title="Targets"),
                 alt.Tooltip("params:Q", title="Trainable parameters", format=","),
                 alt.Tooltip("share:Q", title="Share of all-linear (%)", format=".1f")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=TALL_CHART_HEIGHT)
    desc = (f"Grouped horizontal bars: for {len(order)} models, the trainable LoRA parameters at rank {r} of the "
            f"target sets {', '.join(sets)}, as a percentage of targeting all linear layers. In the dense models "
            "the MLP set is roughly two thirds to three quarters of all-linear and q plus v a small fraction; in the "
            "mixture-of-experts model the MLP set is nearly everything.")
    return figure(_spec(chart, desc), chart_id="chart-target-set-cost",
                  caption=f"What each target set trains, as a share of all-linear, at r={r}. "
                          "Counts from calc.pages.lora.target_set_costs.",
                  description=desc, headers=("Model", "target_modules", "Trainable (parameters)", "Share of all-linear"),
                  rows=rows)


# -- rule-of-thumb tables -----------------------------------------------------------------------------------------
_COUNTING = (f"counted as {PEFT_VERSION} reports trainable parameters (get_nb_trainable_parameters), "
             "bias='none', no modules_to_save")


def _module_rot(table_id: str, preset_id: str, title: str) -> RotTable:
    arch = get_preset(preset_id).architecture
    t = g.module_table(arch, g.EXAMPLE_RANK)
    rows = tuple((r.target, r.in_features, r.out_features, r.count, r.per_layer, r.lora_params, r.percent_of_lora)
                 for r in t.rows)
    rows += (("all modules", None, None, None, None, t.lora_params, 100.0),)
    return RotTable(
        id=table_id, title=title,
        conditions=(f"{_name(preset_id)}, LoRA r={g.EXAMPLE_RANK} on every linear layer (target_modules='all-linear'), "
                    f"{_COUNTING}. in and out are in_features and out_features; per layer = r·(in+out); the model has "
                    f"{arch.num_hidden_layers} layers and {arch.num_key_value_heads} key/value heads. Counts are "
                    "parameters (elements)."),
        columns=(Column("Module"), Column("in", "int"), Column("out", "int"), Column("Layers", "int"),
                 Column("Per layer", "int"), Column("All layers", "int"), Column("Share", "pct:1")),
        rows=rows, source="calc.pages.lora.module_table")


@rule_of_thumb("rot-per-module-llama-3-1-8b")
def _rot_per_module_llama() -> RotTable:
    return _module_rot("rot-per-module-llama-3-1-8b", "llama-3.1-8b",
                       f"LoRA parameters per module: {_name('llama-3.1-8b')}")


@rule_of_thumb("rot-per-module-qwen2-5-7b")
def _rot_per_module_qwen() -> RotTable:
    return _module_rot("rot-per-module-qwen2-5-7b", "qwen2.5-7b",
                       f"LoRA parameters per module in a GQA model: {_name('qwen2.5-7b')}")


@rule_of_thumb("rot-dora-extra-parameters")
def _rot_dora() -> RotTable:
    rows = []
    for pid in g.DORA_PRESETS:
        d = g.dora_cost(get_preset(pid).architecture, g.EXAMPLE_RANK)
        rows.append((_name(pid), d.lora_params, d.magnitude_params, d.dora_params, d.overhead_percent))
    return RotTable(
        id="rot-dora-extra-parameters", title="What DoRA adds to LoRA (parameters)",
        conditions=(f"r={g.EXAMPLE_RANK}, target_modules='all-linear', use_dora=True vs False, {_COUNTING}. DoRA adds "
                    "one magnitude element per output feature of each adapted matrix; rsLoRA adds nothing."),
        columns=(Column("Model"), Column("LoRA", "int", "params"), Column("DoRA magnitudes", "int", "params"),
                 Column("DoRA total", "int", "params"), Column("Extra vs LoRA", "pct:2")),
        rows=tuple(rows), source="calc.pages.lora.dora_cost")


@rule_of_thumb("rot-trainable-params-by-rank")
def _rot_params_by_rank() -> RotTable:
    rows = tuple((_name(pid), *[p.trainable_params for p in g.rank_sweep(get_preset(pid).architecture)])
                 for pid in g.RANK_TABLE_PRESETS)
    return RotTable(
        id="rot-trainable-params-by-rank", title="Trainable LoRA parameters by rank (parameters)",
        conditions=(f"target_modules='all-linear', lora_alpha irrelevant to the count, {_COUNTING}. Every value is a "
                    "number of trainable parameters (elements); r=… is the LoRA rank."),
        columns=(Column("Model"), *[Column(f"r={r}", "int") for r in g.RANK_GRID]),
        rows=rows, source="calc.pages.lora.rank_sweep")


@rule_of_thumb("rot-adapter-size-by-rank")
def _rot_size_by_rank() -> RotTable:
    rows = tuple((_name(pid), *[p.adapter_mib for p in g.rank_sweep(get_preset(pid).architecture)])
                 for pid in g.RANK_TABLE_PRESETS)
    return RotTable(
        id="rot-adapter-size-by-rank", title="adapter_model.safetensors size by rank (MiB)",
        conditions=("target_modules='all-linear', bias='none', no modules_to_save; LoRA tensors saved in float32, "
                    f"as {PEFT_VERSION} does by default even on a bf16 model (autocast_adapter_dtype=True). Every "
                    "value is the exact file size, safetensors header included, in MiB (2^20 bytes); a bf16 save "
                    "is about half."),
        columns=(Column("Model"), *[Column(f"r={r}", "fixed:1") for r in g.RANK_GRID]),
        rows=rows, source="calc.pages.lora.rank_sweep (calc.adapters.adapter_file_bytes)")


def _ref_label(key: str) -> str:
    """``Hu et al. 2021`` for a reference key (the label ``cite`` links with)."""
    from calc.references import load_references

    ref = load_references()[key]
    first = ref.authors.split(",")[0].split()[-1]
    return f"{first} et al. {ref.year}" if "," in ref.authors else f"{ref.authors} {ref.year}"


@rule_of_thumb("rot-rank-by-use-case")
def _rot_rank_guidance() -> RotTable:
    rows = tuple((e.use_case, ", ".join(str(x) for x in e.ranks), e.lora_alpha, e.target_modules,
                  _ref_label(e.cite)) for e in g.rank_guidance())
    return RotTable(
        id="rot-rank-by-use-case", title="Rank by use case: what the sources used",
        conditions=("only ranks a source states (used, swept or recommended), with that source's lora_alpha and "
                    "targets; what each source found, and where it says so, is listed under the table."),
        columns=(Column("Use case"), Column("Ranks stated"), Column("lora_alpha"), Column("Targets"), Column("Source")),
        rows=rows, source="calc.pages.lora.rank_guidance (calc/data/rank_guidance.yaml)")


@rule_of_thumb("rot-high-rank-cost")
def _rot_high_rank_cost() -> RotTable:
    rows = []
    for p in g.presets_in_class():
        c = g.rank_cost(p)
        rows.append((c.name, c.low.trainable_params, c.high.trainable_params, c.params_ratio, c.low.adapter_mib,
                     c.high.adapter_mib, c.extra_mib))
    lo, hi = g.CARGO_LOW_RANK, g.CARGO_HIGH_RANK
    return RotTable(
        id="rot-high-rank-cost", title=f"What r={hi} costs over r={lo} on a 7–8B model",
        conditions=(f"every dense preset with {human_count(g.SEVEN_B_CLASS[0])} to {human_count(g.SEVEN_B_CLASS[1])} "
                    f"base parameters; target_modules='all-linear', {_COUNTING}; adapter files in float32 as PEFT "
                    "saves them by default, MiB = 2^20 bytes."),
        columns=(Column("Model"), Column(f"r={lo}", "int", "params"), Column(f"r={hi}", "int", "params"),
                 Column("Ratio", "fixed:2"), Column(f"File r={lo}", "fixed:1", "MiB"),
                 Column(f"File r={hi}", "fixed:1", "MiB"), Column("Extra", "fixed:1", "MiB")),
        rows=tuple(rows), source="calc.pages.lora.rank_cost")


@rule_of_thumb("rot-alpha-scale-factors")
def _rot_alpha() -> RotTable:
    rows = tuple((a.r, a.lora_alpha, a.scale, a.rslora_scale, a.origin) for a in g.alpha_pairs())
    return RotTable(
        id="rot-alpha-scale-factors", title="Effective scale for common (r, lora_alpha) pairs",
        conditions=(f"{PEFT_VERSION}: the LoRA branch output is multiplied by lora_alpha/r, or by "
                    "lora_alpha/sqrt(r) with use_rslora=True; one module at rank r (rank_pattern and alpha_pattern "
                    "unset). Scales are plain factors."),
        columns=(Column("r", "int"), Column("lora_alpha", "int"), Column("Scale α/r", "fixed:4"),
                 Column("rsLoRA scale α/√r", "fixed:4"), Column("Where the pair comes from")),
        rows=rows, source="calc.pages.lora.alpha_pairs (calc.lora.scaling)")


@rule_of_thumb("rot-target-set-cost")
def _rot_target_sets() -> RotTable:
    rows = []
    for pid in g.TARGET_SET_PRESETS:
        ts = g.target_set_costs(get_preset(pid).architecture)
        rows.append((_name(pid), *[t.trainable_params for t in ts]))
    return RotTable(
        id="rot-target-set-cost", title="Trainable parameters by target set (parameters)",
        conditions=(f"r={g.EXAMPLE_RANK}, {_COUNTING}. Every value is a number of trainable parameters. qv, attention "
                    "and mlp are expanded per family (calc.lora.peft_target_modules): q_proj+v_proj, the four "
                    "attention projections, the MLP projections; on Phi-3 qv is the fused qkv_proj, on Mixtral mlp "
                    "is w1, w2, w3 (the experts)."),
        columns=(Column("Model"), *[Column(s, "int") for s in g.TARGET_SETS]),
        rows=tuple(rows), source="calc.pages.lora.target_set_costs")


@rule_of_thumb("rot-fused-modules")
def _rot_fused() -> RotTable:
    rows = tuple((f.name, f.module, f.holds, f.in_features, f.out_features, f.lora_params)
                 for f in g.fused_rows(g.FUSED_PRESETS))
    return RotTable(
        id="rot-fused-modules", title="Fused projections: one adapter for several roles",
        conditions=(f"LoRA r={g.EXAMPLE_RANK} on the fused module alone, all layers, {_COUNTING}. in and out are "
                    "in_features and out_features. A fused module gets one A and one B, so its roles share the rank."),
        columns=(Column("Model"), Column("Module", "code"), Column("Holds"), Column("in", "int"), Column("out", "int"),
                 Column("LoRA", "int", "params")),
        rows=rows, source="calc.pages.lora.fused_rows")


@rule_of_thumb("rot-moe-all-linear")
def _rot_moe() -> RotTable:
    rows = []
    for pid in g.MOE_PRESETS:
        t = g.module_table(get_preset(pid).architecture, g.EXAMPLE_RANK, include_untargeted=True)
        for r in t.rows:
            rows.append((_name(pid), r.name, r.kind, r.experts, r.r, r.lora_params))
        rows.append((_name(pid), "all modules", "", None, None, t.lora_params))
    return RotTable(
        id="rot-moe-all-linear", title="What all-linear reaches in mixture-of-experts models",
        conditions=(f"target_modules='all-linear', r={g.EXAMPLE_RANK}, lora_alpha={g.handbook_alpha(g.EXAMPLE_RANK)}, "
                    f"{PEFT_VERSION} with transformers v5 (stacked expert parameters and PEFT's MoE target rewrite); "
                    "a dash in r means the module gets no LoRA. Experts > 1: a stacked parameter of that many "
                    "matrices, whose LoRA has rank experts·r. LoRA counts are parameters, all layers."),
        columns=(Column("Model"), Column("Module"), Column("Kind"), Column("Experts", "int"), Column("r", "int"),
                 Column("LoRA", "int", "params")),
        rows=tuple(rows), source="calc.pages.lora.module_table (calc.lora.count_lora)")


@rule_of_thumb("rot-modules-to-save-cost")
def _rot_mts() -> RotTable:
    rows = []
    for pid in g.MODULES_TO_SAVE_PRESETS:
        c = g.modules_to_save_cost(get_preset(pid))
        rows.append((c.name, "yes" if c.tied else "no", c.lora_params, c.copy_params, c.trainable_ratio,
                     c.mib_without, c.mib_with))
    return RotTable(
        id="rot-modules-to-save-cost", title="What a trainable lm_head copy (modules_to_save) costs",
        conditions=(f"LoRA r={g.EXAMPLE_RANK} on all linear layers, with and without modules_to_save=['lm_head'] (a "
                    f"full trainable copy); {PEFT_VERSION}; file sizes for a bf16 model saved with PEFT's defaults "
                    "(LoRA tensors float32, the lm_head copy bf16), MiB = 2^20 bytes. The copy is made and saved "
                    "even when lm_head is tied to the embedding."),
        columns=(Column("Model"), Column("Tied"), Column("LoRA", "int", "params"), Column("lm_head copy", "int", "params"),
                 Column("Trainable ×", "fixed:1"), Column("File without", "fixed:1", "MiB"),
                 Column("File with", "fixed:1", "MiB")),
        rows=tuple(rows), source="calc.pages.lora.modules_to_save_cost")
