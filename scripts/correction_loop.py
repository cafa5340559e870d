"""The correction loop on real data: correct one session as a user would, fine-tune, score another.

    python scripts/correction_loop.py --model runs/tp0/spine-2p \\
        --data ../shared/data/two_photon/rr30a --correct rr30a_tp1 --score rr30a_tp2 \\
        --work runs/loop --minutes 15

1. ``napari-spines detect`` runs the model on the session to correct.
2. Its proposals are corrected as a user would, from the annotations: a proposal matched to an
   annotated head (1.0 µm, one to one) is accepted, or moved onto the head when it is more than
   0.3 µm off; an unmatched proposal is rejected; an unmatched annotated head is added. Only
   within 4 µm of the traced dendrites, the region the annotations cover; proposals on heads
   flagged ``is_bad`` stay unreviewed (auto), as scoring ignores them.
3. ``napari-spines training add`` saves them in a store (region: the traced dendrites).
4. ``napari-spines finetune`` fine-tunes the model on the store.
5. ``napari-spines detect`` + ``score`` score the model before and after on the other session.

Nothing chosen here sees the scored session: the fine-tuned model's threshold is chosen on the
held-out part of the store.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MOVED_UM = 0.3


def cli(*args: str) -> str:
    """Run ``napari-spines ARGS``; return its stderr + stdout; stop on failure."""
    command = [sys.executable, "-m", "napari_spines.cli", *args]
    print("$ napari-spines", " ".join(args), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stderr + done.stdout


def corrections(proposals: np.ndarray, session) -> tuple[np.ndarray, list[str]]:
    """(coords, statuses) a user would leave after reviewing ``proposals`` on ``session``."""
    from napari_spines.spines.detect import near_points
    from napari_spines.spines.metrics import match_points

    voxel = session.voxel_size_um
    near = near_points(proposals, session.dendrites, voxel, 4.0)
    heads = session.spines[near_points(session.spines, session.dendrites, voxel, 4.0)]
    coords = [p for p in proposals]
    statuses = ["auto"] * len(proposals)
    on_bad = {p for p, _ in match_points(proposals, session.bad_spines, voxel, 1.0)}
    candidates = [i for i in range(len(proposals)) if near[i] and i not in on_bad]
    pairs = match_points(proposals[candidates], heads, voxel, 1.0)
    matched = set()
    for p, a in pairs:
        i = candidates[p]
        matched.add(a)
        offset = np.linalg.norm((proposals[i] - heads[a]) * np.asarray(voxel))
        if offset > MOVED_UM:
            coords[i], statuses[i] = heads[a], "moved"
        else:
            statuses[i] = "accepted"
    for p in set(range(len(candidates))) - {p for p, _ in pairs}:
        statuses[candidates[p]] = "rejected"
    for a in sorted(set(range(len(heads))) - matched):
        coords.append(heads[a])
        statuses.append("added")
    return np.array(coords, float).reshape(-1, 3), statuses


def f1_of(text: str) -> float:
    """The F1 figure `napari-spines score` prints."""
    return float(re.search(r"F1 ([0-9.]+)", text).group(1))


def main() -> None:
    """Run the loop; print the figures before and after."""
    from napari_spines.io.points_csv import read_points_csv, write_points_csv
    from napari_spines.spines.evaluate import load_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--correct", required=True)
    parser.add_argument("--score", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--minutes", default="12")
    parser.add_argument("--finetune-options", default="", help="more finetune options")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    correct = args.data / f"{args.correct}.tif"
    scored = args.data / f"{args.score}.tif"
    session = load_session(correct)

    proposals_csv = args.work / "proposals.csv"
    cli("detect", str(correct), "-o", str(proposals_csv), "--model", args.model)
    proposals = read_points_csv(proposals_csv)[0].reshape(-1, 3)
    coords, statuses = corrections(proposals, session)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print("corrections:", counts)
    reviewed = args.work / "reviewed.csv"
    write_points_csv(reviewed, coords, session.voxel_size_um, {"status": np.array(statuses)})
    trace = args.work / "dendrites.csv"
    write_points_csv(trace, session.dendrites, session.voxel_size_um)
    store = args.work / "store"
    cli(
        "training",
        "add",
        str(correct),
        "--points",
        str(reviewed),
        "--dendrites",
        str(trace),
        "--store",
        str(store),
        "--model",
        args.model,
    )
    tuned = args.work / "finetuned"
    started = time.monotonic()
    out = cli(
        "finetune",
        "--store",
        str(store),
        "--model",
        args.model,
        "-o",
        str(tuned),
        "--minutes",
        args.minutes,
        *args.finetune_options.split(),
    )
    print(f"fine-tuning took {(time.monotonic() - started) / 60:.1f} min")
    print("\n".join(line for line in out.splitlines() if "held-out" in line))
    figures = {}
    for label, model in (("before", args.model), ("after", str(tuned))):
        found = args.work / f"{label}_{args.score}.csv"
        cli("detect", str(scored), "-o", str(found), "--model", model)
        text = cli("score", str(found), "--session", str(scored))
        figures[label] = f1_of(text)
        print(f"{label}: {text.strip().splitlines()[-1]}")
    print(
        f"F1 on {args.score}: {figures['before']:.3f} before, {figures['after']:.3f} after "
        f"({figures['after'] - figures['before']:+.3f})"
    )


if __name__ == "__main__":
    main()
