"""The command line: ``python -m calc params|presets ...``.

Bad input never produces a traceback: one line on stderr naming the file/flag and the field, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from calc.architecture import Architecture
from calc.commands import COMMAND_MODULES
from calc.errors import CalcError
from calc.lora import LoraSpec, count_lora

EXIT_BAD_INPUT = 2
MAX_CONFIG_BYTES = 1 << 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise CalcError(message, source=self.prog)


def load_config(ref: str) -> tuple[Architecture, str]:
    """A preset id or a path to a config.json → (architecture, display name)."""
    path = Path(ref)
    if ref.endswith(".json") or path.is_file():
        return Architecture_from_file(path), str(path)
    from calc.preset_files import read_preset_quick

    name, config, source = read_preset_quick(ref)
    try:
        return Architecture.from_hf_config(config), name
    except CalcError as err:
        raise err.located(source) from None


def read_config_json(path: Path) -> dict[str, Any]:
    """Parse a config.json (multimodal configs: their ``text_config``)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CalcError(f"cannot read ({err.strerror})", source=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise CalcError(f"is {len(raw)} bytes; a config.json is far smaller", source=str(path))
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CalcError(f"is not UTF-8 (byte {err.start})", source=str(path)) from None
    except json.JSONDecodeError as err:
        raise CalcError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", source=str(path)) from None
    if not isinstance(data, dict):
        raise CalcError("must be a JSON object", source=str(path))
    text = data.get("text_config")
    if isinstance(text, dict) and "model_type" in text and "num_hidden_layers" not in data:
        return text
    return data


def Architecture_from_file(path: Path) -> Architecture:  # noqa: N802 - reads like the constructor it wraps
    try:
        return Architecture.from_hf_config(read_config_json(path))
    except CalcError as err:
        raise err.located(str(path)) from None


def _targets(value: str) -> str | tuple[str, ...]:
    if value in ("all-linear", "qv", "attention", "mlp"):
        return value
    names = tuple(t.strip() for t in value.split(",") if t.strip())
    if not names:
        raise CalcError("must be all-linear, qv, attention, mlp or comma-separated module names",
                        source="--targets")
    return names


FLAGS = {"r": "--rank", "lora_alpha": "--alpha", "bias": "--bias", "target_modules": "--targets",
         "modules_to_save": "--modules-to-save", "use_dora": "--dora"}


def as_flag_error(err: CalcError) -> CalcError:
    """A LoraSpec/count_lora error re-attributed to the command-line flag the user typed."""
    flag = FLAGS.get(err.field or "")
    return CalcError(err.message, source=flag) if flag and err.source is None else err


def lora_spec_from_args(args: argparse.Namespace) -> LoraSpec:
    """The LoraSpec of the shared LoRA flags (see :func:`add_lora_arguments`); α defaults to 2r."""
    alpha = args.alpha if args.alpha is not None else 2 * args.rank
    try:
        return LoraSpec(r=args.rank, lora_alpha=alpha, target_modules=_targets(args.targets), use_dora=args.dora,
                        use_rslora=args.rslora, modules_to_save=tuple(args.modules_to_save or ()), bias=args.bias)
    except CalcError as err:
        raise as_flag_error(err) from None


_spec = lora_spec_from_args


def params_result(arch: Architecture, spec: LoraSpec) -> dict[str, Any]:
    """The JSON object ``params --json`` prints."""
    count = count_lora(arch, spec)
    return {
        "model_type": arch.model_type,
        "total_params": count.total_params,
        "trainable_params": count.trainable_params,
        "all_params": count.peft_all_params,
        "trainable_percent": count.trainable_percent,
        "r": spec.r,
        "lora_alpha": spec.lora_alpha,
        "scaling": spec.scaling,
        "use_dora": spec.use_dora,
        "use_rslora": spec.use_rslora,
        "target_modules": count.peft_target_modules if isinstance(count.peft_target_modules, str)
        else list(count.peft_target_modules),
        "modules": [
            {"name": m.name, "target": m.target, "in_features": m.in_features, "out_features": m.out_features,
             "count": m.count, "experts": m.experts, "r": m.r, "lora_params": m.lora_params}
            for m in count.modules
        ],
        "bias_params": count.bias_params,
        "modules_to_save": [{"name": n, "params": p} for n, p in count.modules_to_save],
    }


def _cmd_params(args: argparse.Namespace) -> int:
    spec = _spec(args)
    arch, label = load_config(args.config)
    try:
        result = params_result(arch, spec)
    except CalcError as err:
        raise as_flag_error(err) from None
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from calc.fmt import human_count, table

    print(f"{label} ({arch.model_type}): r={spec.r}, lora_alpha={spec.lora_alpha:g}, "
          f"scaling={spec.scaling:g}{', DoRA' if spec.use_dora else ''}{', rsLoRA' if spec.use_rslora else ''}")
    rows = [[m["name"], m["in_features"], m["out_features"], m["count"] * m["experts"], f"{m['lora_params']:,}"]
            for m in result["modules"]]
    rows += [[f"{m['name']} (modules_to_save)", "", "", 1, f"{m['params']:,}"] for m in result["modules_to_save"]]
    if result["bias_params"]:
        rows.append(["biases", "", "", "", f"{result['bias_params']:,}"])
    print(table(["module", "in", "out", "matrices", "trainable"], rows))
    print(f"trainable: {result['trainable_params']:,} ({human_count(result['trainable_params'])}) of "
          f"{result['all_params']:,} = {result['trainable_percent']:.4f}%  (base model: "
          f"{result['total_params']:,} = {human_count(result['total_params'])})")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from calc.fmt import human_count, table
    from calc.presets import all_presets

    presets = all_presets()
    if args.json:
        print(json.dumps([{"id": p.id, "name": p.name, "family": p.family, "model_type": p.config["model_type"],
                           "total_params": p.architecture.total_params} for p in presets.values()], indent=2))
        return 0
    print(table(["id", "name", "total params"],
                [[p.id, p.name, human_count(p.architecture.total_params)] for p in presets.values()]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m calc", description="Exact LoRA parameter counts, as PEFT trains them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("params", help="trainable parameters of a LoRA configuration")
    p.add_argument("config", help="a preset id (python -m calc presets) or a path to a config.json")
    p.add_argument("--rank", "-r", type=int, default=16, help="LoRA rank r (default 16)")
    p.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2r)")
    p.add_argument("--targets", default="all-linear",
                   help="all-linear (default), qv, attention, mlp, or comma-separated module names")
    p.add_argument("--dora", action="store_true", help="use_dora=True")
    p.add_argument("--rslora", action="store_true", help="use_rslora=True (scale alpha/sqrt(r))")
    p.add_argument("--modules-to-save", nargs="+", metavar="NAME", help="e.g. lm_head embed_tokens")
    p.add_argument("--bias", default="none", help="none (default), all, lora_only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_params)
    p = sub.add_parser("presets", help="list the model presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_presets)
    for name in COMMAND_MODULES:
        importlib.import_module(f"calc.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CalcError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # pragma: no cover - `| head`
        return 0
