"""Time `napari-spines detect` on a full real two-photon stack (70 × 1024 × 1024).

Run:  .venv/bin/python benchmarks/detect_speed.py [--stack PATH] [--model spine-2p spine-dog]

Runs the command line as a user would, in a fresh process per model, and reports wall time
(imports, reading, inference, peak finding and writing the CSV included) and peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEFAULT_STACK = SHARED / "data/two_photon/rr30a/rr30a_tp2.tif"

MEASURE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from napari_spines.cli import main
code = main(["detect", sys.argv[1], "-m", sys.argv[2], "-o", sys.argv[3]])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", type=Path, default=DEFAULT_STACK)
    parser.add_argument("--model", nargs="+", default=["spine-2p", "spine-dog"])
    args = parser.parse_args()
    print(f"stack {args.stack.name}")
    print("| model | spines | time (s) | peak memory (MiB) |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model:
            out = Path(tmp) / f"{model}.csv"
            result = subprocess.run(
                [sys.executable, "-c", MEASURE, str(args.stack), model, str(out)],
                capture_output=True,
                text=True,
            )
            lines = result.stdout.strip().splitlines()
            if result.returncode or not lines:
                print(f"| {model} | failed: {result.stderr.strip().splitlines()[-1:]} | | |")
                continue
            r = json.loads(lines[-1])
            n = len(out.read_text().splitlines()) - 1 if out.exists() else 0
            print(f"| {model} | {n} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
