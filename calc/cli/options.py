"""Command-line options shared by the sub-commands, and their translation into calc's objects.

``params`` and ``adapter-size`` take the LoRA options; ``memory`` and ``fit`` take the LoRA options plus
the training-setup options. Errors raised while building a :class:`~calc.lora.LoraSpec` or
:class:`~calc.memory.TrainingSetup` are re-attributed to the flag the user typed. Building a parser never
imports the memory model (every command pays for the parser; see benchmarks/bench_cli.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from calc.errors import CalcError

# calc.memory's vocabulary, spelled out here for the reason above; tests check they equal calc.memory's.
METHODS = ("full", "lora", "qlora")
PRECISIONS = ("fp32", "bf16", "fp16", "nf4", "fp4")
ADAPTER_DTYPES = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")
MIXED_PRECISION = ("amp_bf16", "amp_fp16", "none")
ATTN = ("sdpa", "flash_attention_2", "eager")
LOSSES = ("plain", "chunked")
SHARDING = ("none", "zero1", "zero2", "zero3", "fsdp_full_shard", "fsdp_qlora")
TARGET_SETS = ("all-linear", "qv", "attention", "mlp")

# LoraSpec / TrainingSetup field -> the flag that sets it
FLAGS = {
    "r": "--rank", "lora_alpha": "--alpha", "target_modules": "--targets", "use_dora": "--dora",
    "use_rslora": "--rslora", "modules_to_save": "--modules-to-save", "bias": "--bias",
    "method": "--method", "lora": "--method", "base_precision": "--precision", "adapter_dtype": "--adapter-dtype",
    "optimizer": "--optimizer", "mixed_precision": "--mixed-precision", "micro_batch": "--batch",
    "seq_len": "--seq", "gradient_checkpointing": "--gradient-checkpointing", "attn_implementation": "--attn",
    "loss": "--loss", "loss_chunks": "--loss-chunks", "keep_logits": "--keep-logits",
    "prepare_kbit": "--no-prepare-kbit", "bnb_4bit_compute_dtype": "--compute-dtype",
    "bnb_4bit_use_double_quant": "--no-double-quant", "gradient_accumulation_steps": "--grad-accum",
    "num_gpus": "--gpus", "sharding": "--sharding",
}


def as_flag_error(err: CalcError) -> CalcError:
    """The same error, attributed to the command-line flag behind its field (when there is one)."""
    flag = FLAGS.get(err.field or "")
    return CalcError(err.message, source=flag) if flag and err.source is None else err


def parse_targets(value: str) -> str | tuple[str, ...]:
    """``--targets``: a named set or comma-separated module names."""
    if value in TARGET_SETS:
        return value
    names = tuple(t.strip() for t in value.split(",") if t.strip())
    if not names:
        raise CalcError("must be all-linear, qv, attention, mlp or comma-separated module names", source="--targets")
    return names


def add_config_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a preset id (python -m calc presets), a path to a config.json, or a Hugging Face "
                                  "Hub id such as Qwen/Qwen3-8B (fetched once, then read from the Hub cache; "
                                  "HF_TOKEN for gated models)")
    p.add_argument("--revision", default=None, help="with a Hub id: the branch, tag or commit (default main)")


def add_lora_options(p: argparse.ArgumentParser) -> None:
    """LoRA flags with PEFT's meaning; defaults r=16, lora_alpha=2r, all-linear."""
    p.add_argument("--rank", "-r", type=int, default=16, help="LoRA rank r (default 16)")
    p.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2r)")
    p.add_argument("--targets", default="all-linear",
                   help="all-linear (default), qv, attention, mlp, or comma-separated module names")
    p.add_argument("--dora", action="store_true", help="use_dora=True")
    p.add_argument("--rslora", action="store_true", help="use_rslora=True (scale alpha/sqrt(r))")
    p.add_argument("--modules-to-save", nargs="+", metavar="NAME", help="e.g. lm_head embed_tokens")
    p.add_argument("--bias", default="none", help="none (default), all, lora_only")


def lora_spec_from_args(args: argparse.Namespace):
    """The :class:`~calc.lora.LoraSpec` the LoRA flags describe."""
    from calc.lora import LoraSpec

    alpha = args.alpha if args.alpha is not None else 2 * args.rank
    try:
        return LoraSpec(r=args.rank, lora_alpha=alpha, target_modules=parse_targets(args.targets),
                        use_dora=args.dora, use_rslora=args.rslora,
                        modules_to_save=tuple(args.modules_to_save or ()), bias=args.bias)
    except CalcError as err:
        raise as_flag_error(err) from None


def add_memory_options(p: argparse.ArgumentParser) -> None:
    """CONFIG, the LoRA flags and the flags of one training setup (``memory`` and ``fit``)."""
    add_config_argument(p)
    p.add_argument("--method", choices=METHODS, default="lora", help="full, lora (default) or qlora")
    add_lora_options(p)
    p.add_argument("--batch", type=int, default=1, help="micro-batch size per GPU (default 1)")
    p.add_argument("--seq", type=int, default=2048, help="sequence length in tokens (default 2048)")
    p.add_argument("--gradient-checkpointing", "--gc", action="store_true", dest="gradient_checkpointing",
                   help="gradient_checkpointing_enable()")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                   help="adamw (torch, foreach; default), adamw_fused, adamw_8bit, paged_adamw_8bit, "
                        "paged_adamw_32bit, sgd (with momentum)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="base weights: fp32/bf16/fp16 for full and lora (default bf16), nf4/fp4 for qlora "
                        "(default nf4)")
    p.add_argument("--adapter-dtype", choices=ADAPTER_DTYPES, default="fp32",
                   help="LoRA parameter dtype (PEFT's default fp32)")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="amp_bf16",
                   help="amp_bf16 (autocast forward, what Trainer(bf16=True) does; default), amp_fp16, none")
    p.add_argument("--compute-dtype", default="bf16", help="qlora: bnb_4bit_compute_dtype (default bf16)")
    p.add_argument("--no-double-quant", action="store_true", help="qlora: bnb_4bit_use_double_quant=False")
    p.add_argument("--no-prepare-kbit", action="store_true",
                   help="qlora without prepare_model_for_kbit_training's fp32 upcast of embeddings and norms")
    p.add_argument("--attn", choices=ATTN, default="sdpa", help="attention implementation (default sdpa)")
    p.add_argument("--loss", choices=LOSSES, default="plain", help="plain (default) or chunked cross-entropy")
    p.add_argument("--loss-chunks", type=int, default=8, help="chunks for --loss chunked (default 8)")
    p.add_argument("--keep-logits", action="store_true",
                   help="the output logits stay referenced through backward (plain loops; HF Trainer drops them)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--sharding", choices=SHARDING, default="none", help="multi-GPU sharding (default none: DDP)")


def setup_from_args(args: argparse.Namespace):
    """The :class:`~calc.memory.TrainingSetup` the memory flags describe (bad values name the flag)."""
    from calc.memory import TrainingSetup

    for flag, value in (("--batch", args.batch), ("--seq", args.seq), ("--gpus", args.gpus),
                        ("--grad-accum", args.grad_accum), ("--loss-chunks", args.loss_chunks)):
        if value <= 0:
            raise CalcError(f"must be a positive integer, got {value}", source=flag)
    spec = None if args.method == "full" else lora_spec_from_args(args)
    kwargs: dict[str, Any] = dict(
        method=args.method, lora=spec, base_precision=args.precision,
        bnb_4bit_use_double_quant=not args.no_double_quant, bnb_4bit_compute_dtype=args.compute_dtype,
        adapter_dtype=args.adapter_dtype, optimizer=args.optimizer, mixed_precision=args.mixed_precision,
        micro_batch=args.batch, seq_len=args.seq, gradient_checkpointing=args.gradient_checkpointing,
        attn_implementation=args.attn, loss=args.loss, loss_chunks=args.loss_chunks, keep_logits=args.keep_logits,
        prepare_kbit=False if args.no_prepare_kbit else None, gradient_accumulation_steps=args.grad_accum,
        num_gpus=args.gpus, sharding=args.sharding,
    )
    try:
        return TrainingSetup(**kwargs)
    except CalcError as err:
        raise as_flag_error(err) from None
