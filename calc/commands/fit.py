"""``python -m calc fit CONFIG [memory options] [--gpu ID ...] [--json]``: does a training setup fit each GPU?

For every GPU in ``calc/data/gpus.yaml``: required = modelled peak (per GPU) + CUDA context, headroom =
usable - required, fits = headroom >= 0. Output in GiB (2^30 bytes); ``--json`` prints bytes.

The memory options are added by :func:`add_memory_options` and turned into a
:class:`~calc.memory.TrainingSetup` by :func:`setup_from_args`; the ``memory`` command can share both.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from calc.errors import CalcError

GIB = 1 << 30

# The vocabulary of calc.memory, spelled out so that building the CLI parser does not import the memory
# model (every command pays for the parser; see benchmarks/bench_cli.py). tests/test_gpus.py checks these
# equal calc.memory's tuples.
METHODS = ("full", "lora", "qlora")
PRECISIONS = ("fp32", "bf16", "fp16", "nf4", "fp4")
ADAPTER_DTYPES = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")
MIXED_PRECISION = ("amp_bf16", "amp_fp16", "none")
ATTN = ("sdpa", "flash_attention_2", "eager")
LOSSES = ("plain", "chunked")
SHARDING = ("none", "zero1", "zero2", "zero3", "fsdp_full_shard", "fsdp_qlora")


# -- shared memory options ------------------------------------------------------------------------------
def add_memory_options(p: argparse.ArgumentParser) -> None:
    """The options that describe one training setup (shared by ``memory`` and ``fit``)."""
    p.add_argument("config", help="a preset id (python -m calc presets) or a path to a config.json")
    p.add_argument("--method", choices=METHODS, default="lora", help="full, lora (default) or qlora")
    p.add_argument("--rank", "-r", type=int, default=16, help="LoRA rank r (default 16)")
    p.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2r)")
    p.add_argument("--targets", default="all-linear",
                   help="all-linear (default), qv, attention, mlp, or comma-separated module names")
    p.add_argument("--dora", action="store_true", help="use_dora=True")
    p.add_argument("--rslora", action="store_true", help="use_rslora=True")
    p.add_argument("--batch", type=int, default=1, help="micro-batch size per GPU (default 1)")
    p.add_argument("--seq", type=int, default=2048, help="sequence length in tokens (default 2048)")
    p.add_argument("--gradient-checkpointing", "--gc", action="store_true", dest="gradient_checkpointing",
                   help="gradient checkpointing on")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="default adamw (torch, foreach)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="base weights: fp32/bf16/fp16 for full and lora (default bf16), nf4/fp4 for qlora (default nf4)")
    p.add_argument("--adapter-dtype", choices=ADAPTER_DTYPES, default="fp32",
                   help="LoRA adapter dtype (PEFT default fp32)")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="amp_bf16",
                   help="autocast mode (default amp_bf16, what Trainer(bf16=True) does)")
    p.add_argument("--attn", choices=ATTN, default="sdpa", help="attention implementation (default sdpa)")
    p.add_argument("--loss", choices=LOSSES, default="plain", help="plain (default) or chunked cross-entropy")
    p.add_argument("--keep-logits", action="store_true",
                   help="the output logits stay referenced through backward (plain loops; HF Trainer drops them)")
    p.add_argument("--no-prepare-kbit", action="store_true",
                   help="QLoRA without prepare_model_for_kbit_training's fp32 upcast")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--sharding", choices=SHARDING, default="none", help="multi-GPU sharding (default none)")


def _targets(value: str) -> str | tuple[str, ...]:
    if value in ("all-linear", "qv", "attention", "mlp"):
        return value
    names = tuple(t.strip() for t in value.split(",") if t.strip())
    if not names:
        raise CalcError("must be all-linear, qv, attention, mlp or comma-separated module names", source="--targets")
    return names


_FLAGS = {"method": "--method", "base_precision": "--precision", "adapter_dtype": "--adapter-dtype",
          "optimizer": "--optimizer", "mixed_precision": "--mixed-precision", "micro_batch": "--batch",
          "seq_len": "--seq", "gradient_checkpointing": "--gradient-checkpointing", "attn_implementation": "--attn",
          "loss": "--loss", "keep_logits": "--keep-logits", "prepare_kbit": "--no-prepare-kbit",
          "gradient_accumulation_steps": "--grad-accum", "num_gpus": "--gpus", "sharding": "--sharding",
          "lora": "--method"}


def setup_from_args(args: argparse.Namespace):
    """The :class:`~calc.memory.TrainingSetup` the options describe (bad values name the flag)."""
    from calc.lora import LoraSpec
    from calc.memory import TrainingSetup

    for flag, value in (("--batch", args.batch), ("--seq", args.seq), ("--gpus", args.gpus),
                        ("--grad-accum", args.grad_accum)):
        if value <= 0:
            raise CalcError(f"must be a positive integer, got {value}", source=flag)
    spec = None
    if args.method != "full":
        alpha = args.alpha if args.alpha is not None else 2 * args.rank
        try:
            spec = LoraSpec(r=args.rank, lora_alpha=alpha, target_modules=_targets(args.targets),
                            use_dora=args.dora, use_rslora=args.rslora)
        except CalcError as err:
            flag = {"r": "--rank", "lora_alpha": "--alpha", "target_modules": "--targets"}.get(err.field or "")
            raise CalcError(err.message, source=flag) if flag else err from None
    kwargs: dict[str, Any] = dict(
        method=args.method, lora=spec, base_precision=args.precision, adapter_dtype=args.adapter_dtype,
        optimizer=args.optimizer, mixed_precision=args.mixed_precision, micro_batch=args.batch, seq_len=args.seq,
        gradient_checkpointing=args.gradient_checkpointing, attn_implementation=args.attn, loss=args.loss,
        keep_logits=args.keep_logits, gradient_accumulation_steps=args.grad_accum, num_gpus=args.gpus,
        sharding=args.sharding,
    )
    if args.method == "qlora":
        kwargs["prepare_kbit"] = not args.no_prepare_kbit
    try:
        return TrainingSetup(**kwargs)
    except CalcError as err:
        flag = _FLAGS.get(err.field or "")
        raise CalcError(err.message, source=flag) if flag else err from None


# -- the command ------------------------------------------------------------------------------------------
def fit_result(arch, setup, gpu_ids: list[str] | None = None) -> tuple[Any, list[Any]]:
    """(estimate, [FitResult per GPU]) for one setup."""
    from calc.gpus import all_gpus, fit_all, get_gpu
    from calc.memory import estimate_memory

    gpus = [get_gpu(g) for g in gpu_ids] if gpu_ids else list(all_gpus().values())
    est = estimate_memory(arch, setup)
    peak = est.per_gpu_bytes if est.per_gpu_bytes is not None else est.total_bytes
    return est, fit_all(gpus, peak, est.cuda_context_bytes)


def _cmd_fit(args: argparse.Namespace) -> int:
    from calc.cli import load_config

    setup = setup_from_args(args)
    arch, label = load_config(args.config)
    try:
        est, results = fit_result(arch, setup, args.gpu)
    except CalcError as err:
        flag = {**_FLAGS, "target_modules": "--targets", "use_dora": "--dora"}.get(err.field or "")
        raise CalcError(err.message, source=flag) if flag and err.source is None else err from None
    if args.json:
        print(json.dumps([{"gpu": r.gpu, "usable_bytes": r.usable_bytes, "required_bytes": r.required_bytes,
                           "headroom_bytes": r.headroom_bytes, "fits": r.fits} for r in results], indent=2))
        return 0
    from calc.fmt import table
    from calc.gpus import all_gpus

    names = all_gpus()
    peak = est.per_gpu_bytes if est.per_gpu_bytes is not None else est.total_bytes
    per = " per GPU" if setup.num_gpus > 1 else ""
    print(f"{label}: {setup.method}, batch {setup.micro_batch} x seq {setup.seq_len}, "
          f"checkpointing {'on' if setup.gradient_checkpointing else 'off'}, {setup.num_gpus} GPU(s)")
    print(f"modelled peak allocated{per}: {peak / GIB:.2f} GiB + CUDA context {est.cuda_context_bytes / GIB:.2f} GiB"
          f" = {(peak + est.cuda_context_bytes) / GIB:.2f} GiB required")
    rows = [[names[r.gpu].name, f"{r.usable_bytes / GIB:.2f}", f"{r.required_bytes / GIB:.2f}",
             f"{r.headroom_bytes / GIB:+.2f}", "yes" if r.fits else "no"] for r in results]
    print(table(["GPU", "usable GiB", "required GiB", "headroom GiB", "fits"], rows))
    print("usable = total memory the CUDA runtime reports (see calc/data/gpus.yaml for sources); "
          "allocator fragmentation is not included, so keep some headroom.")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="does a training setup fit each GPU (headroom in GiB)?")
    add_memory_options(p)
    p.add_argument("--gpu", action="append", metavar="ID", help="only this GPU id (repeatable; default all)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {gpu, usable_bytes, required_bytes, headroom_bytes, fits}")
    p.set_defaults(func=_cmd_fit)
