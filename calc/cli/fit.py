"""``python -m calc fit CONFIG [memory options] [--gpu ID ...] [--json]``: does a training setup fit each GPU?

For every GPU in ``calc/data/gpus.yaml``: required = modelled peak (per GPU) + CUDA context, headroom =
usable - required, fits = headroom >= 0. Output in GiB (2^30 bytes); ``--json`` prints bytes.

The setup options are :mod:`calc.cli.options`' (shared with ``memory``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from calc.cli.options import add_memory_options, as_flag_error, setup_from_args
from calc.errors import CalcError

GIB = 1 << 30

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
    arch, label = load_config(args.config, args.revision)
    try:
        est, results = fit_result(arch, setup, args.gpu)
    except CalcError as err:
        raise as_flag_error(err) from None
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
