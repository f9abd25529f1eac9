"""The bibliography (calc/data/references.yaml), validated; pages cite through the ``cite`` macro."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from calc.errors import CalcError
from calc.preset_files import read_yaml

REFERENCES_FILE = Path(__file__).parent / "data" / "references.yaml"


class Reference(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9]+$")
    authors: str
    title: str
    venue: str
    year: int = Field(ge=1900, le=2100)
    url: str
    cite_as: str | None = Field(default=None, description="Short label for organisations (default: surname [et al.])")

    @property
    def label(self) -> str:
        """``Hu et al. 2021``, ``Kalajdzievski 2023`` or ``cite_as year``."""
        if self.cite_as:
            return f"{self.cite_as} {self.year}"
        names = [a.strip() for a in self.authors.split(",")]
        surname = names[0].split()[-1]
        return f"{surname} et al. {self.year}" if len(names) > 1 else f"{surname} {self.year}"

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https URL")
        return value


@functools.lru_cache(maxsize=None)
def load_references(path: Path = REFERENCES_FILE) -> dict[str, Reference]:
    data = read_yaml(path)
    if not isinstance(data, list):
        raise CalcError("must be a list of references", source=str(path))
    out: dict[str, Reference] = {}
    for i, item in enumerate(data):
        try:
            ref = Reference.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            raise CalcError(first["msg"], source=str(path),
                            field=f"[{i}]." + ".".join(str(p) for p in first["loc"])) from None
        if ref.key in out:
            raise CalcError(f"duplicate key {ref.key!r}", source=str(path), field=f"[{i}].key")
        out[ref.key] = ref
    return out
