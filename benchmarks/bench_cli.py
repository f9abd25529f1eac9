"""Wall time of ``python -m calc params <preset>`` (target: ≤ 0.3 s on the project's 2-core machine).

Prints each run, the median and the ratio to the target. A benchmark, not a test: it never fails the
build by timing alone (machines differ); read the ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3
ROOT = Path(__file__).resolve().parent.parent


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "calc", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(runs: int = 7) -> None:
    for args in (["params", "llama-3.1-8b"], ["params", "mixtral-8x7b", "--json"], ["params", "llama-3.1-405b"]):
        wall(args)  # warm the file cache
        times = [wall(args) for _ in range(runs)]
        med = statistics.median(times)
        print(f"python -m calc {' '.join(args)}: median {med:.3f} s over {runs} runs "
              f"(min {min(times):.3f}, max {max(times):.3f}); {med / TARGET_S:.2f}x the {TARGET_S} s target")


if __name__ == "__main__":
    main()
