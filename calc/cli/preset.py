"""``python -m calc preset new|check|schema``: adding a model preset in one pull request.

* ``preset new --from-config config.json --id ID --source-url URL --stated-params N`` writes
  ``calc/presets/<id>.yaml`` (or ``--out DIR``): the schema line, the metadata, and the config keys calc
  reads for that ``model_type``. The file is written to a temporary name, validated with
  :func:`calc.presets.load_preset`, and only then renamed into place, so an invalid or half-written file is
  never left behind; an existing file is kept unless ``--force``.
* ``preset check [FILE|DIR ...]`` (default: every bundled preset) validates each file and prints the rows the
  site will show for it (:func:`calc.cli.preset_tools.preview`). Each bad file gets one line on stderr naming the
  file and the field, and the exit status is 2.
* ``preset schema`` prints the JSON Schema committed as ``calc/presets/schema.json``.

Heavy imports (pydantic, the memory model) happen inside the commands: building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from calc.errors import CalcError

EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "preset", help="add or check a model preset (calc/presets/<id>.yaml)",
        description="Write a preset from a model's config.json, check preset files and preview the numbers the "
                    "site will show for them, or print the JSON Schema of preset files.")
    sub = p.add_subparsers(dest="preset_command", required=True, parser_class=type(p))

    n = sub.add_parser("new", help="write calc/presets/<id>.yaml from a config.json",
                       description="Copy the keys calc reads from a Hugging Face config.json into a new preset "
                                   "file, validate it, and print its preview.")
    n.add_argument("--from-config", required=True, metavar="CONFIG_JSON",
                   help="the model's config.json (a multimodal config's text_config is used)")
    n.add_argument("--id", required=True, help="the preset id = file name: lower case, digits, '.', '_', '-'")
    n.add_argument("--source-url", required=True, metavar="URL", help="where the config.json was copied from")
    n.add_argument("--stated-params", metavar="N",
                   help="the parameter count the publisher states: 7.61e9, 7.61B or 494M (required)")
    n.add_argument("--stated-params-source", metavar="URL",
                   help="where the publisher states it (default: the Hugging Face model card of --source-url)")
    n.add_argument("--stated-params-note", metavar="TEXT", help="a note on the stated size (e.g. total vs active)")
    n.add_argument("--name", help="display name (default: the Hugging Face repository name)")
    n.add_argument("--family", help="display family, e.g. 'Llama 3.1' (default: the name without its size)")
    n.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config value the config.json leaves to transformers' default, e.g. vocab_size=262208 "
                        "(VALUE is JSON: 8, true, null); repeatable")
    n.add_argument("--out", metavar="DIR", help="directory to write to (default: calc/presets)")
    n.add_argument("--force", action="store_true", help="replace an existing file of the same id")
    n.set_defaults(func=run_new)

    c = sub.add_parser("check", help="validate preset files and preview the site's rows for them",
                       description="Validate preset files (default: every bundled preset) and print, for each, "
                                   "the rows the site shows: total parameters, LoRA trainable parameters at "
                                   "r = 8, 16, 64 and LoRA/QLoRA memory at the site's default conditions.")
    c.add_argument("files", nargs="*", metavar="FILE", help="preset files or directories (default: calc/presets)")
    c.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    c.set_defaults(func=run_check)

    s = sub.add_parser("schema", help="print the JSON Schema of preset files (calc/presets/schema.json)")
    s.set_defaults(func=run_schema)


# -- output -------------------------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    """``text`` safe for one terminal line: newlines and other control characters escaped (a hostile file
    could otherwise split the line or send terminal escape sequences)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def report(err: CalcError) -> None:
    print(f"error: {one_line(str(err))}", file=sys.stderr)


def _format_preview(preset, path: Path, p) -> str:
    from calc.fmt import human_count, table

    rows = [["parameters (calc)", f"{p.total_params:,}", human_count(p.total_params)]]
    if p.stated_deviation is not None:
        rows.append(["stated by the publisher", f"{p.stated_params:,.0f}",
                     f"{human_count(int(p.stated_params))}; calc {p.stated_deviation:+.1%}".replace("%", " %")])
    for r in p.ranks:
        rows.append([f"LoRA r={r.r}, lora_alpha={r.lora_alpha:g}, all-linear: trainable", f"{r.trainable_params:,}",
                     f"{r.trainable_percent:.3f} % of all params"])
    for m in p.memory:
        label = {"lora": "LoRA", "qlora": "QLoRA"}.get(m.method, m.method)
        rows.append([f"{label} r={m.r} memory: peak / required", f"{m.peak_gib:,.2f} GiB",
                     f"{m.required_gib:,.2f} GiB with CUDA context"])
    c = p.conditions
    conditions = (f"micro-batch {c['micro_batch']} x {c['seq_len']:,} tokens, gradient checkpointing "
                  f"{'on' if c['gradient_checkpointing'] else 'off'}, {c['optimizer']}, {c['attn_implementation']}, "
                  f"{c['mixed_precision']}")
    head = (f"== {one_line(preset.id)}: {one_line(preset.name)} (family {one_line(preset.family)}, model_type "
            f"{p.model_type}) [{one_line(str(path))}]")
    return "\n".join([head, table(["row", "value", "unit / share"], rows), f"memory conditions: {conditions}"])


# -- preset check ---------------------------------------------------------------------------------------------------
def _expand(items: list[str]) -> list[Path]:
    from calc.preset_files import PRESET_DIR

    if not items:
        return sorted(PRESET_DIR.glob("*.yaml"))
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.yaml"))
            if not found:
                raise CalcError("holds no *.yaml files", source=str(path))
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def check_files(paths: list[Path]) -> tuple[list[tuple[Path, Any, Any]], list[CalcError]]:
    """Validate each file (:func:`calc.presets.load_preset`) and preview the good ones; an id equal to another
    checked file's or to a bundled preset's (``_`` and ``-`` read alike, :func:`calc.preset_files.id_key`) is an
    error on the later file. Returns ``([(path, preset, preview)], [errors])``."""
    from calc.preset_files import PRESET_DIR, id_key
    from calc.cli.preset_tools import preview
    from calc.presets import load_preset

    bundled: dict[str, list[Path]] = {}
    for p in sorted(PRESET_DIR.glob("*.yaml")):
        bundled.setdefault(id_key(p.stem), []).append(p)
    seen: dict[str, Path] = {}
    good, bad = [], []
    for path in paths:
        try:
            preset = load_preset(path)
            key = id_key(preset.id)
            other = seen.get(key) or next((b for b in bundled.get(key, ()) if not _same_file(b, path)), None)
            if other is not None:
                raise CalcError(f"duplicate id {preset.id!r}: {other} has the same id ('_' and '-' read alike)",
                                source=str(path), field="id")
            seen[key] = path
            good.append((path, preset, preview(preset.architecture, preset.stated_params)))
        except CalcError as err:
            bad.append(err)
    return good, bad


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:  # pragma: no cover - a path that cannot be resolved is not the same file
        return False


def run_check(args: argparse.Namespace) -> int:
    from calc.cli.preset_tools import preview_dict

    good, bad = check_files(_expand(args.files))
    if args.json:
        print(json.dumps([{"file": str(path), "id": preset.id, "name": preset.name, "family": preset.family,
                           **preview_dict(p)} for path, preset, p in good], indent=2))
    else:
        print("\n\n".join(_format_preview(preset, path, p) for path, preset, p in good), end="\n" if good else "")
    for err in bad:
        report(err)
    return EXIT_BAD_INPUT if bad else 0


# -- preset schema --------------------------------------------------------------------------------------------------
def run_schema(args: argparse.Namespace) -> int:
    from calc.cli.preset_tools import schema_text

    sys.stdout.write(schema_text())
    return 0


# -- preset new -----------------------------------------------------------------------------------------------------
def read_config(path: Path) -> dict[str, Any]:
    """:func:`calc.cli.read_config_json`, with the parser's own failures on hostile JSON (nesting deeper than
    the recursion limit, an integer of thousands of digits) reported as bad input too."""
    from calc.cli import read_config_json

    try:
        return read_config_json(path)
    except CalcError:
        raise
    except (RecursionError, ValueError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0]
        raise CalcError(f"invalid JSON ({reason})", source=str(path)) from None


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CalcError(f"must be KEY=VALUE, got {item!r}", source="--set")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            raise CalcError(f"{key.strip()}: VALUE must be JSON (8, true, null), got {raw!r}", source="--set") from None
    return out


def write_preset(text: str, preset_id: str, out_dir: Path, force: bool = False,
                 expected: dict[str, Any] | None = None):
    """Write ``text`` as ``out_dir/<preset_id>.yaml`` only if it validates: written to a temporary directory
    beside the target, loaded with :func:`calc.presets.load_preset` (and, given ``expected``, compared with
    the mapping it was made from), then renamed into place (atomic on one file system). Without ``force`` an
    existing file is never replaced. Returns ``(path, preset)``."""
    from calc.presets import load_preset

    target = out_dir / f"{preset_id}.yaml"
    if target.exists() and not force:
        raise CalcError(f"{target} exists; pass --force to replace it", source="--id")
    tmpdir = Path(tempfile.mkdtemp(prefix=".preset-new-", dir=out_dir))
    tmp = tmpdir / target.name
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            preset = load_preset(tmp)
        except CalcError as err:  # name the file it would have been
            raise CalcError(err.message, source=str(target), field=err.field) from None
        if expected is not None and preset.model_dump(exclude_none=True) != expected:
            raise CalcError("does not read back as the values it was written from", source=str(target))
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if the target appeared meanwhile: never clobber
            except FileExistsError:
                raise CalcError(f"{target} exists; pass --force to replace it", source="--id") from None
    finally:
        for leftover in tmpdir.iterdir():
            leftover.unlink()
        tmpdir.rmdir()
    return target, preset


def run_new(args: argparse.Namespace) -> int:
    from calc.preset_files import PRESET_DIR, id_key
    from calc.cli.preset_tools import parse_count, preset_document, preset_yaml, preview

    if args.stated_params is None:
        raise CalcError("required: the parameter count the publisher states (model card or paper), e.g. 7.61B; "
                        "the tests compare calc's count with it", source="--stated-params")
    try:
        stated = parse_count(args.stated_params)
    except CalcError as err:
        raise CalcError(err.message, source="--stated-params") from None
    out_dir = Path(args.out) if args.out else PRESET_DIR
    if not out_dir.is_dir():
        raise CalcError(f"{out_dir} is not a directory", source="--out")
    config = read_config(Path(args.from_config))
    try:
        doc, set_keys = preset_document(
            config, preset_id=args.id, source_url=args.source_url, stated_params=stated, name=args.name,
            family=args.family, stated_params_source=args.stated_params_source,
            stated_params_note=args.stated_params_note, overrides=_overrides(args.set))
    except CalcError as err:
        raise (err if err.source else err.located(args.from_config)) from None
    for directory in {out_dir.resolve(), PRESET_DIR.resolve()}:
        for other in directory.glob("*.yaml"):
            if other.stem != args.id and id_key(other.stem) == id_key(args.id):
                raise CalcError(f"{other} already has this id ('_' and '-' read alike)", source="--id")
    try:
        path, preset = write_preset(preset_yaml(doc, set_keys), args.id, out_dir, force=args.force, expected=doc)
    except OSError as err:
        raise CalcError(f"cannot write there ({err.strerror or err})", source=str(out_dir)) from None
    print(f"wrote {path}")
    print(_format_preview(preset, path, preview(preset.architecture, preset.stated_params)))
    return 0
