#!/usr/bin/env python3
"""Print the open validation of calc's memory model: every measured point, its estimate and the error.

    python scripts/validation_report.py           # table + summary
    python scripts/validation_report.py --json    # one JSON object (rows, unmodelled points, summary)

Data: calc/data/published_measurements.yaml and the measurement files it lists (our H200 runs). The
comparison rule per metric is in calc/validation.py's docstring: allocated figures are compared like for
like; PEFT's reserved peaks are compared with the allocated estimate as they are (expect a few % low).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calc.errors import CalcError  # noqa: E402
from calc.validation import DATA_FILE, run_validation  # noqa: E402

GIB = 1 << 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA_FILE), help="published measurements file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        rows, points, summary = run_validation(args.data)
    except CalcError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "rows": [r.__dict__ for r in rows],
            "unmodelled": [{"id": p.id, "published": p.published, "metric": p.metric, "reason": p.reason}
                           for p in points if not p.modelled],
            "summary": {**summary.__dict__,
                        "median_abs_error_pct_by_group": dict(summary.median_abs_error_pct_by_group)},
        }, indent=2))
        return 0

    from calc.fmt import table

    table_rows = [[r.id, r.metric.replace("peak_", ""), f"{r.measured_bytes / GIB:.2f}",
                   f"{r.estimate_bytes / GIB:.2f}", f"{r.error_pct:+.1f}"] for r in rows]
    print("Modelled points (GiB = 2^30 B; error = (estimate - measured) / measured)")
    print(table(["id", "metric", "measured GiB", "estimate GiB", "error %"], table_rows))
    print()
    print("Comparisons:")
    for metric, text in sorted({(r.metric, r.comparison) for r in rows}):
        print(f"  {metric}: {text}")
    print()
    print("Not modelled:")
    for p in points:
        if not p.modelled:
            print(f"  {p.id}: {p.published} ({p.metric}) - {p.reason}")
    print()
    print(f"points: {summary.modelled + summary.unmodelled} ({summary.modelled} modelled, "
          f"{summary.unmodelled} not modelled)")
    print(f"median absolute error: {summary.median_abs_error_pct:.1f} % over {len(rows)} points "
          f"(max {summary.max_abs_error_pct:.1f} %)")
    n_pub = sum(1 for p in points if p.modelled and not p.own_measurement)
    print(f"median absolute error over the {n_pub} points measured by others: "
          f"{summary.median_abs_error_pct_published:.1f} % (our own H200 points are in-sample: the memory model's "
          "calibrated constants come from those runs)")
    for group, med in summary.median_abs_error_pct_by_group:
        n = sum(1 for r in rows if r.group == group)
        print(f"  {group}: median absolute error {med:.1f} % ({n} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
