"""GPUs and whether a training setup fits on them.

The data is ``calc/data/gpus.yaml`` (validated with pydantic, unknown keys rejected; errors name the file
and the field). Each GPU has two sizes, both in bytes:

* ``as_sold_bytes`` - the vendor's figure ("80 GB") read as GiB, because the DRAM is sized in binary units
  (an A100 80GB reports exactly 81,920 MiB in nvidia-smi);
* ``usable_bytes`` - the total the CUDA runtime reports to a process (``cudaMemGetInfo`` total, which is
  ``torch.cuda.get_device_properties(i).total_memory``): the board's memory minus ECC (GDDR6 data-centre
  cards) and what the driver keeps. The CUDA context of the training process is *not* subtracted here.

:func:`fit` then asks: does ``estimate total + CUDA context`` stay within ``usable_bytes``? Headroom is
``usable - (total + context)``. The arithmetic is pure; only :func:`load_gpus` reads a file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from calc.errors import CalcError

GPU_FILE = Path(__file__).parent / "data" / "gpus.yaml"
GIB = 1 << 30
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


@dataclass(frozen=True)
class Gpu:
    """One GPU model as calc uses it (sizes in bytes)."""

    id: str
    name: str
    vendor: str
    memory_type: str
    marketed: str
    as_sold_bytes: int
    usable_bytes: int
    usable_basis: str
    source_url: str
    usable_source: str
    driver_total_bytes: int | None = None
    driver_total_source: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class FitResult:
    """Whether ``required_bytes`` (modelled peak + CUDA context) fits in ``usable_bytes`` of one GPU."""

    gpu: str
    usable_bytes: int
    required_bytes: int
    headroom_bytes: int
    fits: bool


def fit(gpu: Gpu, peak_bytes: int, cuda_context_bytes: int) -> FitResult:
    """Headroom of one GPU for a modelled peak (per GPU) plus the CUDA context; fits when headroom >= 0."""
    if peak_bytes < 0 or cuda_context_bytes < 0:
        raise CalcError("memory figures must be non-negative")
    required = peak_bytes + cuda_context_bytes
    headroom = gpu.usable_bytes - required
    return FitResult(gpu.id, gpu.usable_bytes, required, headroom, headroom >= 0)


def fit_all(gpus: dict[str, Gpu] | list[Gpu], peak_bytes: int, cuda_context_bytes: int) -> list[FitResult]:
    """:func:`fit` for every GPU, in the given order."""
    items = gpus.values() if isinstance(gpus, dict) else gpus
    return [fit(g, peak_bytes, cuda_context_bytes) for g in items]


# -- loading ------------------------------------------------------------------------------------------
def _schema():
    """The pydantic models (built lazily: pydantic is slow to import and only the loader needs it)."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    class GpuEntry(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,39}$")
        name: str = Field(min_length=1, max_length=80)
        vendor: Literal["NVIDIA", "AMD"]
        memory_type: str = Field(min_length=1, max_length=60)
        marketed: str = Field(pattern=r"^[0-9]+(\.[0-9]+)? GB$", description="The vendor's wording, e.g. '80 GB'")
        as_sold_bytes: int = Field(gt=0, lt=1 << 44)
        source_url: str
        driver_total_bytes: Optional[int] = Field(default=None, gt=0, lt=1 << 44)
        driver_total_source: Optional[str] = Field(default=None, min_length=1, max_length=300)
        usable_bytes: int = Field(gt=0, lt=1 << 44)
        usable_basis: Literal["measured", "reported", "derived"]
        usable_source: str = Field(min_length=1, max_length=300)
        note: Optional[str] = Field(default=None, max_length=1200)

        @field_validator("source_url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not _URL.match(value):
                raise ValueError("must be an http(s) URL")
            return value

        @model_validator(mode="after")
        def _sizes_consistent(self) -> "GpuEntry":
            if self.usable_bytes > self.as_sold_bytes:
                raise ValueError("usable_bytes: exceeds as_sold_bytes")
            if self.driver_total_bytes is not None:
                if self.driver_total_bytes > self.as_sold_bytes:
                    raise ValueError("driver_total_bytes: exceeds as_sold_bytes")
                if self.usable_bytes > self.driver_total_bytes:
                    raise ValueError("usable_bytes: exceeds driver_total_bytes")
                if self.driver_total_source is None:
                    raise ValueError("driver_total_source: required with driver_total_bytes")
            if self.usable_basis != "derived" and not (_URL.match(self.usable_source)
                                                       or self.usable_source.startswith("calc/data/")):
                raise ValueError("usable_source: a measured or reported figure needs a URL or a calc/data file")
            return self

    class GpuFile(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        gpus: list[GpuEntry] = Field(min_length=1)

    return GpuFile


def load_gpus(path: Path | str = GPU_FILE) -> dict[str, Gpu]:
    """All GPUs of the file by id (file order). Raises :class:`CalcError` naming the file and the field."""
    from pydantic import ValidationError

    from calc.preset_files import read_yaml

    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise CalcError("must be a YAML mapping with a 'gpus' list", source=str(path))
    try:
        parsed = _schema().model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or None
        msg = first["msg"].removeprefix("Value error, ")
        if ": " in msg and msg.split(": ", 1)[0].isidentifier():
            field, msg = msg.split(": ", 1)
            loc = f"{loc}.{field}" if loc else field
        raise CalcError(msg, source=str(path), field=_named(loc, data)) from None
    out: dict[str, Gpu] = {}
    for i, entry in enumerate(parsed.gpus):
        if entry.id in out:
            raise CalcError(f"duplicate id {entry.id!r}", source=str(path), field=f"gpus.{i}.id")
        out[entry.id] = Gpu(**entry.model_dump())
    return out


def _named(loc: str | None, data: dict) -> str | None:
    """``gpus.3.usable_bytes`` -> ``gpus.3 (l4).usable_bytes`` so the message names the entry."""
    if not loc:
        return loc
    parts = loc.split(".")
    if len(parts) >= 2 and parts[0] == "gpus" and parts[1].isdigit():
        entries = data.get("gpus")
        idx = int(parts[1])
        if isinstance(entries, list) and idx < len(entries) and isinstance(entries[idx], dict):
            gid = entries[idx].get("id")
            if isinstance(gid, str):
                parts[1] = f"{parts[1]} ({gid})"
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def _cached(path: str) -> dict[str, Gpu]:
    return load_gpus(path)


def all_gpus(path: Path | str = GPU_FILE) -> dict[str, Gpu]:
    """:func:`load_gpus`, cached per file."""
    return dict(_cached(str(path)))


def get_gpu(gpu_id: str, path: Path | str = GPU_FILE) -> Gpu:
    """One GPU by id; an unknown id raises :class:`CalcError` listing the known ids."""
    gpus = all_gpus(path)
    if gpu_id not in gpus:
        raise CalcError(f"unknown GPU {gpu_id!r} (known: {', '.join(gpus)})", source="--gpu")
    return gpus[gpu_id]
