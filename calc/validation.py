"""Open validation of the memory model: published and our own measured peaks against :func:`estimate_memory`.

Data: ``calc/data/published_measurements.yaml`` (points copied from their sources, each with the unit and
metric as published, and - for the points we can model - the :class:`~calc.memory.TrainingSetup` they map
to) plus the measurement files it lists (our 40 H200 runs, ``calc/data/measurements/h200-2026-11-23.yaml``).

How estimates are compared (the rule for each metric):

* ``peak_allocated`` (``torch.cuda.max_memory_allocated``; our H200 runs, IBM fms-acceleration):
  ``MemoryEstimate.total_bytes`` against the measured bytes, like for like.
* ``peak_reserved`` (PEFT's MetaMathQA ``accelerator_memory_max``): the same ``total_bytes`` against the
  measured *reserved* peak, without any correction. Reserved >= allocated (the caching allocator keeps
  slack; 1.00-1.18x, median 1.07x on our H200 runs), so for these points a negative error of a few per
  cent is the expected outcome, not a fit. Each row says which comparison it is.
* Anything else (nvidia-smi figures, components, bounds, unclear scope) is not compared: the point stays
  in the data with ``modelled: false`` and its reason.

``error_pct = 100 * (estimate - measured) / measured``. Units inside: bytes.

File reading lives in :func:`load_points` / :func:`architecture_for`; :func:`compare` and
:func:`summarize` are pure.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Optional


from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import LoraSpec

DATA_DIR = Path(__file__).parent / "data"
DATA_FILE = DATA_DIR / "published_measurements.yaml"
MAX_DATA_BYTES = 1 << 21          # the H200 file is ~126 KB; presets' 64 KB limit is too small here
UNITS = {"B": 1, "MB": 10**6, "GB": 10**9, "MiB": 1 << 20, "GiB": 1 << 30}
METRICS = ("peak_allocated", "peak_reserved", "peak_nvml_used", "component", "bound", "unspecified")
COMPARED = {
    "peak_allocated": "allocated estimate vs measured peak allocated",
    "peak_reserved": "allocated estimate vs measured peak reserved (reserved >= allocated: expect a few % low)",
}


@dataclass(frozen=True)
class Point:
    """One measurement: what was published, and (if modelled) the setup it maps to."""

    id: str
    source: str
    model: str
    preset: str | None
    overrides: tuple[tuple[str, Any], ...]
    method: str
    metric: str
    published: str
    measured_bytes: int | None
    modelled: bool
    reason: str | None = None
    setup: Any = None                       # calc.memory.TrainingSetup when modelled
    trainable_params: int | None = None     # as the source states it (a check of calc.lora's count)
    group: str = "published"
    own_measurement: bool = False           # from one of our measurement files (the model was built on these)


@dataclass(frozen=True)
class Row:
    """Estimate against measurement for one modelled point."""

    id: str
    group: str
    source: str
    metric: str
    measured_bytes: int
    estimate_bytes: int
    error_pct: float
    comparison: str


@dataclass(frozen=True)
class Summary:
    modelled: int
    unmodelled: int
    median_abs_error_pct: float
    max_abs_error_pct: float
    median_abs_error_pct_by_group: tuple[tuple[str, float], ...]
    #: over the points measured by others only - ours are in-sample for the memory model, whose
    #: calibrated constants (e.g. calc.memory.CUDA_WORKSPACE_BYTES) come from the same H200 runs
    median_abs_error_pct_published: float


# -- pure part ----------------------------------------------------------------------------------------
def to_bytes(value: float, unit: str) -> int:
    """A published figure in bytes (``GB`` = 10^9, ``GiB`` = 2^30, ...)."""
    if unit not in UNITS:
        raise CalcError(f"unknown unit {unit!r} (known: {', '.join(UNITS)})", field="unit")
    return round(value * UNITS[unit])


def error_pct(estimate_bytes: int, measured_bytes: int) -> float:
    if measured_bytes <= 0:
        raise CalcError("measured bytes must be positive")
    return 100.0 * (estimate_bytes - measured_bytes) / measured_bytes


def compare(point: Point, arch: Architecture) -> Row:
    """Run the memory model on one modelled point."""
    from calc.memory import estimate_memory

    if not point.modelled or point.setup is None or point.measured_bytes is None:
        raise CalcError(f"{point.id} is not a modelled point")
    if point.metric not in COMPARED:
        raise CalcError(f"{point.id}: metric {point.metric!r} cannot be compared with an allocated estimate")
    est = estimate_memory(arch, point.setup)
    estimate = est.per_gpu_bytes if est.per_gpu_bytes is not None else est.total_bytes
    return Row(point.id, point.group, point.source, point.metric, point.measured_bytes, estimate,
               error_pct(estimate, point.measured_bytes), COMPARED[point.metric])


def summarize(rows: list[Row], points: list[Point]) -> Summary:
    errs = [abs(r.error_pct) for r in rows]
    own = {p.id for p in points if p.own_measurement}
    independent = [abs(r.error_pct) for r in rows if r.id not in own]
    groups = sorted({r.group for r in rows})
    by_group = tuple((g, statistics.median(abs(r.error_pct) for r in rows if r.group == g)) for g in groups)
    return Summary(
        modelled=sum(1 for p in points if p.modelled),
        unmodelled=sum(1 for p in points if not p.modelled),
        median_abs_error_pct=statistics.median(errs) if errs else float("nan"),
        max_abs_error_pct=max(errs) if errs else float("nan"),
        median_abs_error_pct_by_group=by_group,
        median_abs_error_pct_published=statistics.median(independent) if independent else float("nan"),
    )


# -- loading -------------------------------------------------------------------------------------------
def read_data_yaml(path: Path) -> Any:
    """Parse an alias-free UTF-8 YAML data file (up to ``MAX_DATA_BYTES``); errors name the file."""
    from calc.preset_files import read_yaml

    return read_yaml(path, max_bytes=MAX_DATA_BYTES)


def _schema():
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    class Source(Strict):
        citation: str = Field(min_length=1)
        url: str = Field(pattern=r"^https?://\S+$")
        repo: Optional[str] = None
        path: Optional[str] = None

    class ModelRef(Strict):
        name: str = Field(min_length=1)
        preset: Optional[str] = None
        overrides: dict[str, Any] = Field(default_factory=dict)

    class Figure(Strict):
        value: float = Field(gt=0)
        unit: Literal["B", "MB", "GB", "MiB", "GiB"]
        text: str = Field(min_length=1)

    class OtherFigure(Figure):
        metric: Literal[METRICS]  # type: ignore[valid-type]

    class PointEntry(Strict):
        id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")
        source: Source
        model: ModelRef
        method: str = Field(min_length=1)
        conditions: dict[str, Any]
        setup: Optional[dict[str, Any]] = None
        lora: Optional[dict[str, Any]] = None
        metric: Literal[METRICS]  # type: ignore[valid-type]
        metric_note: str = Field(min_length=1)
        published: Figure
        also_published: list[OtherFigure] = Field(default_factory=list)
        modelled: bool
        reason: Optional[str] = None
        note: Optional[str] = None

        @model_validator(mode="after")
        def _modelled_consistent(self) -> "PointEntry":
            if self.modelled:
                if self.setup is None:
                    raise ValueError("setup: required when modelled is true")
                if self.model.preset is None:
                    raise ValueError("model.preset: required when modelled is true")
                if self.metric not in COMPARED:
                    raise ValueError(f"metric: {self.metric} cannot be modelled (only {', '.join(COMPARED)})")
                if self.reason is not None:
                    raise ValueError("reason: only for points with modelled: false")
            elif not self.reason:
                raise ValueError("reason: required when modelled is false")
            return self

    class MeasurementFile(Strict):
        path: str = Field(min_length=1)
        id_prefix: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
        metric: Literal["peak_allocated"]
        note: str = Field(min_length=1)

    class DataFile(Strict):
        measurement_files: list[MeasurementFile] = Field(default_factory=list)
        points: list[PointEntry] = Field(min_length=1)

    return DataFile


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build_setup(setup: Mapping[str, Any], lora: Mapping[str, Any] | None, source: str, where: str):
    """TrainingSetup from a mapping; unknown keys and bad values name the file and the field."""
    from calc.memory import TrainingSetup

    unknown = sorted(set(setup) - _field_names(TrainingSetup) - {"lora"})
    if unknown:
        raise CalcError(f"not a TrainingSetup field (fields: {', '.join(sorted(_field_names(TrainingSetup)))})",
                        source=source, field=f"{where}.setup.{unknown[0]}")
    spec = None
    if lora is not None:
        bad = sorted(set(lora) - _field_names(LoraSpec))
        if bad:
            raise CalcError("not a LoraSpec field", source=source, field=f"{where}.lora.{bad[0]}")
        args = dict(lora)
        if isinstance(args.get("target_modules"), list):
            args["target_modules"] = tuple(args["target_modules"])
        try:
            spec = LoraSpec(**args)
        except CalcError as err:
            raise CalcError(err.message, source=source, field=f"{where}.lora.{err.field or ''}".rstrip(".")) from None
    try:
        return TrainingSetup(**dict(setup), lora=spec)
    except CalcError as err:
        raise CalcError(err.message, source=source, field=f"{where}.setup.{err.field or ''}".rstrip(".")) from None
    except (TypeError, ValueError) as err:
        raise CalcError(str(err), source=source, field=f"{where}.setup") from None


def _validation_error(err, data: Any, source: str) -> CalcError:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    msg = first["msg"].removeprefix("Value error, ")
    if ": " in msg and msg.split(": ", 1)[0].replace(".", "").isidentifier():
        extra, msg = msg.split(": ", 1)
        loc.append(extra)
    if len(loc) >= 2 and loc[0] == "points" and loc[1].isdigit():
        pts = data.get("points") if isinstance(data, dict) else None
        i = int(loc[1])
        if isinstance(pts, list) and i < len(pts) and isinstance(pts[i], dict) and isinstance(pts[i].get("id"), str):
            loc[1] = f"{loc[1]} ({pts[i]['id']})"
    return CalcError(msg, source=source, field=".".join(loc) or None)


def load_points(path: Path | str = DATA_FILE, *, include_measurement_files: bool = True) -> list[Point]:
    """Every point of the published file, then every point of the measurement files it lists."""
    from pydantic import ValidationError

    path = Path(path)
    source = str(path)
    data = read_data_yaml(path)
    if not isinstance(data, dict):
        raise CalcError("must be a YAML mapping with 'points'", source=source)
    try:
        parsed = _schema().model_validate(data)
    except ValidationError as err:
        raise _validation_error(err, data, source) from None
    points: list[Point] = []
    seen: set[str] = set()
    for i, e in enumerate(parsed.points):
        where = f"points.{i} ({e.id})"
        if e.id in seen:
            raise CalcError(f"duplicate id {e.id!r}", source=source, field=f"{where}.id")
        seen.add(e.id)
        setup = _build_setup(e.setup, e.lora, source, where) if e.modelled else None
        tp = e.conditions.get("trainable_params")
        points.append(Point(
            id=e.id, source=e.source.url if e.source.repo is None else f"{e.source.repo}/{e.source.path}",
            model=e.model.name, preset=e.model.preset, overrides=tuple(sorted(e.model.overrides.items())),
            method=e.method, metric=e.metric, published=e.published.text,
            measured_bytes=to_bytes(e.published.value, e.published.unit), modelled=e.modelled, reason=e.reason,
            setup=setup, trainable_params=tp if isinstance(tp, int) and not isinstance(tp, bool) else None,
            group=e.id.split("-", 1)[0],
        ))
    if include_measurement_files:
        for j, mf in enumerate(parsed.measurement_files):
            mpath = (path.parent / mf.path).resolve()
            for p in load_measurement_file(mpath, mf.id_prefix):
                if p.id in seen:
                    raise CalcError(f"duplicate id {p.id!r}", source=str(mpath), field="points")
                seen.add(p.id)
                points.append(p)
    return points


_H200_REQUIRED = ("preset", "method", "micro_batch", "seq_len", "gradient_checkpointing", "autocast",
                  "attn_implementation", "max_memory_allocated_bytes", "optimizer")


def load_measurement_file(path: Path | str, id_prefix: str) -> list[Point]:
    """Points of one of our measurement files (``scripts/measure_memory.py summarize`` format)."""
    from calc.memory import TrainingSetup

    path = Path(path)
    source = str(path)
    data = read_data_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise CalcError("must be a mapping with a 'points' list", source=source, field="points")
    gpu = (data.get("provenance") or {}).get("gpu", "GPU")
    out = []
    for i, p in enumerate(data["points"]):
        where = f"points.{i}"
        if not isinstance(p, dict):
            raise CalcError("must be a mapping", source=source, field=where)
        for key in _H200_REQUIRED:
            if key not in p:
                raise CalcError("is missing", source=source, field=f"{where}.{key}")
        if p.get("error"):
            raise CalcError(f"failed run kept in the file ({p['error']}); not a measurement", source=source,
                            field=f"{where}.error")
        method = p["method"]
        if method not in ("full", "lora", "qlora"):
            raise CalcError(f"unknown method {method!r}", source=source, field=f"{where}.method")
        if p["autocast"] not in ("bfloat16", None, "none", False):
            raise CalcError(f"autocast {p['autocast']!r} is not mapped", source=source, field=f"{where}.autocast")
        if "foreach" not in str(p["optimizer"]) or "fused=None" not in str(p["optimizer"]):
            raise CalcError("only torch AdamW with default foreach is mapped", source=source, field=f"{where}.optimizer")
        spec = None
        if method != "full":
            for key in ("r", "lora_alpha", "target_modules", "adapter_dtype"):
                if p.get(key) is None:
                    raise CalcError("is missing", source=source, field=f"{where}.{key}")
            tm = p["target_modules"]
            spec = LoraSpec(r=p["r"], lora_alpha=p["lora_alpha"], target_modules=tuple(tm) if isinstance(tm, list) else tm)
        if method != "full" and p["adapter_dtype"] not in ("float32", "bfloat16"):
            raise CalcError(f"adapter dtype {p['adapter_dtype']!r} is not mapped", source=source,
                            field=f"{where}.adapter_dtype")
        q = p.get("quantization") or {}
        kwargs: dict[str, Any] = dict(
            method=method,
            lora=spec,
            base_precision={"full": "fp32", "lora": "bf16", "qlora": None}[method],
            adapter_dtype="fp32",
            optimizer="adamw",
            mixed_precision="amp_bf16" if p["autocast"] == "bfloat16" else "none",
            micro_batch=p["micro_batch"],
            seq_len=p["seq_len"],
            gradient_checkpointing=bool(p["gradient_checkpointing"]),
            attn_implementation=p["attn_implementation"],
            keep_logits=False,
            prepare_kbit=(method == "qlora"),
        )
        if method != "full":
            kwargs["adapter_dtype"] = {"float32": "fp32", "bfloat16": "bf16"}[p["adapter_dtype"]]
        if method == "full" and p.get("base_dtype") != "float32":
            raise CalcError("full fine-tuning points are mapped with fp32 weights", source=source,
                            field=f"{where}.base_dtype")
        if method == "qlora":
            if q.get("bnb_4bit_quant_type") != "nf4" or q.get("bnb_4bit_compute_dtype") != "bfloat16":
                raise CalcError("only NF4 with bf16 compute is mapped", source=source, field=f"{where}.quantization")
            kwargs["bnb_4bit_use_double_quant"] = bool(q.get("bnb_4bit_use_double_quant"))
            kwargs["bnb_4bit_compute_dtype"] = "bf16"
        try:
            setup = TrainingSetup(**kwargs)
        except CalcError as err:
            raise CalcError(err.message, source=source, field=f"{where}.{err.field or 'setup'}") from None
        pid = (f"{id_prefix}-{p['preset']}-{method}-s{p['seq_len']}-b{p['micro_batch']}"
               f"-gc{'on' if p['gradient_checkpointing'] else 'off'}"
               + ("" if p["autocast"] == "bfloat16" else "-noamp"))
        measured = p["max_memory_allocated_bytes"]
        if not isinstance(measured, int) or measured <= 0:
            raise CalcError("must be a positive integer", source=source, field=f"{where}.max_memory_allocated_bytes")
        out.append(Point(
            id=pid, source=f"{path.name} ({gpu})", model=p["preset"], preset=p["preset"], overrides=(),
            method=method, metric="peak_allocated", published=f"{measured} B", measured_bytes=measured,
            modelled=True, setup=setup, trainable_params=p.get("trainable_params"), group=id_prefix,
            own_measurement=True,
        ))
    return out


def architecture_for(point: Point) -> Architecture:
    """The architecture of a point's preset with its overrides (reads the preset file)."""
    from calc.preset_files import read_preset_quick

    if point.preset is None:
        raise CalcError(f"{point.id} names no preset")
    _, config, preset_path = read_preset_quick(point.preset)
    merged = {**config, **dict(point.overrides)}
    try:
        return Architecture.from_hf_config(merged)
    except CalcError as err:
        raise err.located(f"{preset_path} (+ overrides of {point.id})") from None


def run_validation(path: Path | str = DATA_FILE) -> tuple[list[Row], list[Point], Summary]:
    """Load everything, compare every modelled point, summarize."""
    points = load_points(path)
    arches: dict[tuple, Architecture] = {}
    rows = []
    for p in points:
        if not p.modelled:
            continue
        key = (p.preset, p.overrides)
        if key not in arches:
            arches[key] = architecture_for(p)
        rows.append(compare(p, arches[key]))
    return rows, points, summarize(rows, points)
