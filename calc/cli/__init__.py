"""The command line: ``python -m calc params|presets ...``.

Bad input never produces a traceback: one line on stderr naming the file/flag and the field, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from calc.architecture import Architecture
from calc.cli.options import add_config_argument, add_lora_options, as_flag_error, lora_spec_from_args
from calc.errors import CalcError
from calc.textfile import read_utf8
from calc.lora import LoraSpec, count_lora

#: Sub-commands beyond ``params``/``presets``: each module ``calc.cli.<name>`` defines ``register(subparsers)``, which
#: adds one sub-parser and sets ``func`` to a callable taking the parsed args and returning an exit code (raise
#: :class:`calc.errors.CalcError` for bad input; :func:`main` prints it as one line and exits 2).
COMMAND_MODULES = ("nf4", "memory", "adapter_size", "fit", "preset")
EXIT_BAD_INPUT = 2
MAX_CONFIG_BYTES = 1 << 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        match = re.match(r"argument ([^:]+): (.*)", message)
        if match:  # "argument --rank/-r: invalid int value" -> "--rank: invalid int value"
            flags = match.group(1).split("/")
            raise CalcError(match.group(2), source=max(flags, key=len))
        raise CalcError(message, source=self.prog)


def load_config(ref: str, revision: str | None = None) -> tuple[Architecture, str]:
    """A preset id, a path to a config.json, or a Hugging Face Hub id (``Qwen/Qwen3-8B``, fetched by
    :func:`calc.cli.hub.fetch_config`) → (architecture, display name). ``revision`` applies to Hub ids only."""
    path = Path(ref)
    if ref.endswith(".json") or path.is_file():
        if revision:
            raise CalcError("applies to a Hugging Face Hub id, not to a file", source="--revision")
        return Architecture_from_file(path), str(path)
    from calc.preset_files import read_preset_quick

    if "/" in ref:  # preset ids never hold a slash
        from calc.cli.hub import fetch_config, is_hub_id

        if not is_hub_id(ref):
            raise CalcError("is not a preset id, an existing config.json or a Hugging Face Hub id "
                            "(namespace/name)", source=ref)
        local = fetch_config(ref, revision)
        try:
            return Architecture.from_hf_config(read_config_json(local)), ref
        except CalcError as err:
            raise CalcError(err.message, source=ref + "/config.json", field=err.field) from None
    if revision:
        raise CalcError("applies to a Hugging Face Hub id, not to a preset", source="--revision")
    name, config, source = read_preset_quick(ref)
    try:
        return Architecture.from_hf_config(config), name
    except CalcError as err:
        raise err.located(source) from None


def read_config_json(path: Path) -> dict[str, Any]:
    """Parse a config.json (multimodal configs: their ``text_config``)."""
    text = read_utf8(path, MAX_CONFIG_BYTES, "a config.json is far smaller")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CalcError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", source=str(path)) from None
    except RecursionError:
        raise CalcError("invalid JSON (nested too deeply)", source=str(path)) from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise CalcError(f"invalid JSON ({str(err).split(';')[0]})", source=str(path)) from None
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
    spec = lora_spec_from_args(args)
    arch, label = load_config(args.config, args.revision)
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
    add_config_argument(p)
    add_lora_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_params)
    p = sub.add_parser("presets", help="list the model presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_presets)
    for name in COMMAND_MODULES:
        importlib.import_module(f"calc.cli.{name}").register(sub)
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
