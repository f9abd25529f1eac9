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

from calc.errors import CalcError

# TrainingSetup / LoraSpec field -> the flag that sets it (for error messages)
FLAGS = {
    "method": "--method", "base_precision": "--precision", "adapter_dtype": "--adapter-dtype",
    "optimizer": "--optimizer", "mixed_precision": "--mixed-precision", "micro_batch": "--batch",
    "seq_len": "--seq", "attn_implementation": "--attn", "loss": "--loss", "num_gpus": "--gpus",
    "sharding": "--sharding", "gradient_accumulation_steps": "--grad-accum", "r": "--rank",
    "lora_alpha": "--alpha", "target_modules": "--targets", "use_dora": "--dora", "loss_chunks": "--loss-chunks",
    "prepare_kbit": "--no-prepare-kbit", "bnb_4bit_compute_dtype": "--compute-dtype",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("memory", help="peak training memory (torch max_memory_allocated) of a setup")
    p.add_argument("config", help="a preset id (python -m calc presets) or a path to a config.json")
    p.add_argument("--method", default="lora", help="full, lora (default) or qlora")
    p.add_argument("--rank", "-r", type=int, default=16, help="LoRA rank r (default 16)")
    p.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2r)")
    p.add_argument("--targets", default="all-linear",
                   help="all-linear (default), qv, attention, mlp, or comma-separated module names")
    p.add_argument("--dora", action="store_true", help="use_dora=True")
    p.add_argument("--batch", type=int, default=1, help="micro-batch size (default 1)")
    p.add_argument("--seq", type=int, default=2048, help="sequence length in tokens (default 2048)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="gradient_checkpointing_enable()")
    p.add_argument("--optimizer", default="adamw",
                   help="adamw (torch foreach, default), adamw_fused, adamw_8bit, paged_adamw_8bit, "
                        "paged_adamw_32bit, sgd")
    p.add_argument("--precision", default=None,
                   help="base weights: fp32/bf16/fp16 for full and lora (default bf16), nf4/fp4 for qlora "
                        "(default nf4)")
    p.add_argument("--adapter-dtype", default="fp32", help="LoRA parameter dtype: fp32 (PEFT default) or bf16")
    p.add_argument("--mixed-precision", default="amp_bf16",
                   help="amp_bf16 (autocast forward, HF Trainer bf16=True; default), amp_fp16, none")
    p.add_argument("--compute-dtype", default="bf16", help="qlora: bnb_4bit_compute_dtype (default bf16)")
    p.add_argument("--no-double-quant", action="store_true", help="qlora: bnb_4bit_use_double_quant=False")
    p.add_argument("--no-prepare-kbit", action="store_true",
                   help="qlora: skip prepare_model_for_kbit_training (no fp32 upcast of embeddings/norms)")
    p.add_argument("--attn", default="sdpa", help="sdpa (default), flash_attention_2, eager")
    p.add_argument("--loss", default="plain", help="plain (default) or chunked cross-entropy")
    p.add_argument("--loss-chunks", type=int, default=8, help="chunks for --loss chunked (default 8)")
    p.add_argument("--keep-logits", action="store_true", help="logits stay referenced during backward")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--sharding", default=None,
                   help="none (DDP), zero1, zero2, zero3, fsdp_full_shard, fsdp_qlora (default none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _located(err: CalcError) -> CalcError:
    flag = FLAGS.get(err.field or "")
    return CalcError(err.message, source=flag) if flag else err


def setup_from_args(args: argparse.Namespace):
    """The :class:`~calc.memory.TrainingSetup` the flags describe (CalcError names the flag)."""
    from calc.cli import _targets
    from calc.lora import LoraSpec
    from calc.memory import TrainingSetup

    try:
        lora = None
        if args.method != "full":
            alpha = args.alpha if args.alpha is not None else 2 * args.rank
            lora = LoraSpec(r=args.rank, lora_alpha=alpha, target_modules=_targets(args.targets), use_dora=args.dora)
        return TrainingSetup(
            method=args.method, lora=lora, base_precision=args.precision,
            bnb_4bit_use_double_quant=not args.no_double_quant, bnb_4bit_compute_dtype=args.compute_dtype,
            adapter_dtype=args.adapter_dtype, optimizer=args.optimizer, mixed_precision=args.mixed_precision,
            micro_batch=args.batch, seq_len=args.seq, gradient_checkpointing=args.gradient_checkpointing,
            attn_implementation=args.attn, loss=args.loss, loss_chunks=args.loss_chunks,
            keep_logits=args.keep_logits, prepare_kbit=False if args.no_prepare_kbit else None,
            gradient_accumulation_steps=args.grad_accum, num_gpus=args.gpus,
            sharding=args.sharding or "none")
    except CalcError as err:
        raise _located(err) from None


def memory_result(arch, label: str, setup) -> dict[str, Any]:
    """The JSON object ``memory --json`` prints."""
    from calc.memory import estimate_memory

    try:
        est = estimate_memory(arch, setup)
    except CalcError as err:
        raise _located(err) from None
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
    arch, label = load_config(args.config)
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
