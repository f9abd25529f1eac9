"""``python -m calc nf4 [--code nf4|fp4|int4] [--json]``: the 16 levels of a 4-bit code book.

NF4 is QLoRA's NormalFloat (arXiv 2305.14314 §3, Eq. 4) as bitsandbytes builds it
(``functional.create_normal_map``); FP4 is bitsandbytes' e2m1 table in bit-pattern order
(``functional.get_4bit_type("fp4")``); int4 is symmetric absmax ``k/7`` for comparison. See
:mod:`calc.quant` for the construction and sources.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("nf4", help="the 16 levels of the NF4 (or FP4/int4) 4-bit code",
                              description="Print the 16 levels of a 4-bit code book, normalised to [-1, 1], "
                                          "indexed by the 4-bit code bitsandbytes stores.")
    p.add_argument("--code", choices=("nf4", "fp4", "int4"), default="nf4", help="which code book (default nf4)")
    p.add_argument("--json", action="store_true", help="print a JSON list of 16 floats (index = 4-bit code)")
    p.set_defaults(func=_cmd_nf4)


def code_values(name: str) -> list[float]:
    """The levels as Python floats (each float32 level exactly), index = the 4-bit code."""
    from calc.quant import code_by_name

    return [float(v) for v in code_by_name(name)]


def _cmd_nf4(args: argparse.Namespace) -> int:
    values = code_values(args.code)
    if args.json:
        print(json.dumps(values))
        return 0
    from calc.fmt import table

    print(f"{args.code}: 16 levels in [-1, 1] (multiply by the block's absmax to dequantize)")
    print(table(["index", "code", "value"], [[i, f"0b{i:04b}", repr(v)] for i, v in enumerate(values)]))
    return 0
