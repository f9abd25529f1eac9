"""``python -m calc adapter-size CONFIG [LoRA options] [--dtype D] [--base-dtype D] [--json]``.

Prints the exact size of the ``adapter_model.safetensors`` that ``PeftModel.save_pretrained`` writes for
this configuration (:func:`calc.adapters.adapter_file_bytes`). It also prints the size of the merged model
at each precision. The LoRA options are the same as for ``params``, with the same defaults: r=16,
alpha=2r, all-linear.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from calc.adapters import adapter_file_bytes, merged_sizes, normalize_dtype
from calc.cli.options import add_config_argument, add_lora_options, lora_spec_from_args
from calc.errors import CalcError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "adapter-size", help="exact size of adapter_model.safetensors as PEFT saves it",
        description="Exact byte size of the adapter_model.safetensors that PeftModel.save_pretrained writes, "
                    "and the merged model's size at each precision.")
    add_config_argument(p)
    add_lora_options(p)
    p.add_argument("--dtype", default="float32",
                   help="dtype of the saved LoRA tensors: float32 (PEFT's default, even on a bf16 model), "
                        "bfloat16 or float16 (model loaded in that dtype with autocast_adapter_dtype=False, or "
                        "the PeftModel cast before saving)")
    p.add_argument("--base-dtype", default=None,
                   help="dtype of the base model, which modules_to_save copies and biases keep (default: --dtype)")
    p.add_argument("--tensors", action="store_true", help="also list every tensor (key, shape, dtype)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _dtype(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize_dtype(value, "")
    except CalcError as err:
        raise CalcError(err.message, source=flag) from None


def adapter_size_result(args: argparse.Namespace, with_tensors: bool = False) -> dict[str, Any]:
    """The JSON object ``adapter-size --json`` prints."""
    from calc.cli import load_config

    dtype = _dtype(args.dtype, "--dtype")
    base_dtype = _dtype(args.base_dtype, "--base-dtype")
    spec = lora_spec_from_args(args)
    arch, label = load_config(args.config, args.revision)
    f = adapter_file_bytes(arch, spec, dtype, base_dtype)
    result: dict[str, Any] = {
        "bytes": f.bytes,
        "mib": f.mib,
        "header_bytes": f.header_bytes,
        "tensor_bytes": f.tensor_bytes,
        "tensors": f.tensors,
        "params": f.params,
        "dtype": f.dtype,
        "base_dtype": f.base_dtype,
        "file": "adapter_model.safetensors",
        "model": label,
        "model_type": arch.model_type,
        "r": spec.r,
        "use_dora": spec.use_dora,
        "bias": spec.bias,
        "modules_to_save": list(spec.modules_to_save),
        "merged_bytes": merged_sizes(arch),
    }
    if with_tensors:
        result["tensor_list"] = [{"key": e.key, "shape": list(e.shape), "dtype": e.dtype,
                                  "data_offsets": [e.begin, e.end]} for e in f.entries]
    return result


def run(args: argparse.Namespace) -> int:
    result = adapter_size_result(args, with_tensors=args.tensors)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    mixed = f" (biases/modules_to_save {result['base_dtype']})" if result["base_dtype"] != result["dtype"] else ""
    print(f"{result['model']} ({result['model_type']}): adapter_model.safetensors = {result['bytes']:,} bytes "
          f"= {result['mib']:.2f} MiB  [{result['tensors']} tensors, {result['params']:,} params, "
          f"{result['dtype']}{mixed}; header {result['header_bytes']:,} B, data {result['tensor_bytes']:,} B]")
    merged = ", ".join(f"{k} {v / (1 << 30):.2f} GiB" for k, v in result["merged_bytes"].items())
    print(f"merged model weights (merge_and_unload, tensor data only): {merged}")
    if args.tensors:
        for t in result["tensor_list"]:
            print(f"  {t['key']}  {t['dtype']}  {t['shape']}")
    return 0


__all__ = ["add_lora_options", "adapter_size_result", "register", "run"]
