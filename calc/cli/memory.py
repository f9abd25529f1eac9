"""``python -m calc memory CONFIG --method full|lora|qlora ...``: the training-memory estimate of one setup.

Prints the components of the phase that sets the peak (they add up to the peak), the CUDA context beside
it, and per GPU figures when ``--gpus`` > 1. ``--json`` prints one object. Formulas: :mod:`calc.memory`.
Bad input (a negative batch, an unknown optimizer, more GPUs than layers for a layer-sharded setup) exits 2
with one line.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from calc.cli.options import add_memory_options, as_flag_error, setup_from_args
from calc.errors import CalcError

def register(subparsers) -> None:
    p = subparsers.add_parser("memory", help="peak training memory (torch max_memory_allocated) of a setup")
    add_memory_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def memory_result(arch, label: str, setup) -> dict[str, Any]:
    """The JSON object ``memory --json`` prints."""
    from calc.memory import estimate_memory

    try:
        est = estimate_memory(arch, setup)
    except CalcError as err:
        raise as_flag_error(err) from None
    setup_dict = {k: v for k, v in asdict(setup).items() if k != "lora"}
    if setup.lora is not None:
        lora = asdict(setup.lora)
        lora["target_modules"] = (lora["target_modules"] if isinstance(lora["target_modules"], str)
                                  else list(lora["target_modules"]))
        lora["modules_to_save"] = list(lora["modules_to_save"])
        setup_dict["lora"] = lora
    out: dict[str, Any] = {
        "config": label,
        "model_type": arch.model_type,
        "setup": setup_dict,
        "tokens_per_micro_batch": setup.tokens,
        "phase": est.phase,
        "components": dict(est.components),
        "total_bytes": est.total_bytes,
        "cuda_context_bytes": est.cuda_context_bytes,
        "phases": {p.name: p.total for p in est.phases},
        "activation_bytes": est.activations.total,
        "activation_bytes_per_token_per_layer": est.activations.per_token_layer,
    }
    if est.num_gpus > 1:
        out["num_gpus"] = est.num_gpus
        out["per_gpu_bytes"] = est.per_gpu_bytes
        out["per_gpu_components"] = dict(est.per_gpu_components)
    return out


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def run(args: argparse.Namespace) -> int:
    from calc.cli import load_config
    from calc.fmt import table

    setup = setup_from_args(args)
    arch, label = load_config(args.config, args.revision)
    result = memory_result(arch, label, setup)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    lora = setup.lora
    desc = setup.method if lora is None else (
        f"{setup.method} r={lora.r} alpha={lora.lora_alpha:g} targets={lora.target_modules}"
        f"{' DoRA' if lora.use_dora else ''}")
    print(f"{label} ({arch.model_type}): {desc}, {setup.base_precision} weights, {setup.mixed_precision}, "
          f"batch {setup.micro_batch} x seq {setup.seq_len}, {setup.optimizer}"
          f"{', gradient checkpointing' if setup.gradient_checkpointing else ''}")
    many = result.get("num_gpus", 1) > 1
    comps = result["per_gpu_components"] if many else result["components"]
    rows = [[name, f"{b:,}", _gib(b)] for name, b in comps.items()]
    peak = result["per_gpu_bytes"] if many else result["total_bytes"]
    rows.append(["peak allocated" + (" per GPU" if many else ""), f"{peak:,}", _gib(peak)])
    print(table(["component (phase: " + result["phase"] + ")", "bytes", "GiB (2^30 B)"], rows))
    print(f"plus CUDA context and kernels outside the allocator: {_gib(result['cuda_context_bytes'])} per process"
          + (f"; all {result['num_gpus']} GPUs ({setup.sharding}): {_gib(result['total_bytes'])} allocated"
             if many else ""))
    return 0
