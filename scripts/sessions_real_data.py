"""Figures of docs/sessions.md on rr30a: registration error, link F1, detection from the last.

Usage::

    .venv/bin/python scripts/sessions_real_data.py RR30A_FOLDER [--cache DIR]

RR30A_FOLDER is the real-data folder's ``two_photon/rr30a`` (see docs/sessions.md); nothing of
it is kept in the repository.

Every choice (linking distance and z weight; the carry thresholds) is made on one pair of
consecutive sessions and reported on the other. ``--cache`` keeps the heatmaps and
registrations between runs (a few minutes each on 2 cores).
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_spines.io import read_volumes
from napari_spines.io.points_csv import read_points_csv
from napari_spines.models import find_model
from napari_spines.sessions.carry import carry_spines
from napari_spines.sessions.linking import AXIAL_WEIGHT, MAX_DISTANCE_UM, link_score, link_sessions
from napari_spines.sessions.registration import register_sessions
from napari_spines.spines.detection import predict_heatmaps
from napari_spines.spines.evaluate import load_session, near_points, score_on_session
from napari_spines.spines.metrics import match_points

PAIRS = ((0, 1), (1, 2))
DISTANCES = (1.5, 2.0, 2.5, 3.0, 4.0)
WEIGHTS = (1.0, 0.5, 0.3)
CARRY = (0.25, 0.5, 0.75)
NEW = (1.0, 1.25, 1.5, 2.0, 100.0)  # 100: no new spines


def cached(cache: Path | None, name: str, make):
    """``make()``, kept in ``cache/name.pkl`` when a cache folder is given."""
    if cache is None:
        return make()
    path = cache / f"{name}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def lenient(session):
    """The same session scored with z counting half (a head two slices off still matches)."""
    voxel = session.voxel_size_um
    return replace(session, voxel_size_um=(voxel[0] * AXIAL_WEIGHT, *voxel[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    names = [f"rr30a_tp{i}" for i in range(3)]
    sessions = [load_session(args.data / f"{n}.tif") for n in names]
    voxel = np.asarray(sessions[0].voxel_size_um)
    stacks = [np.asarray(read_volumes(args.data / f"{n}.tif")[0].levels[0]) for n in names]
    tables = [read_points_csv(args.data / f"{n}_spines.csv") for n in names]
    points = [coords * voxel for coords, _, _ in tables]
    truth = [columns["track_id"].astype(int) for _, _, columns in tables]

    def partners(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions in µm in sessions a and b of the spines annotated in both."""
        _, rows_a, rows_b = np.intersect1d(truth[a], truth[b], return_indices=True)
        return points[a][rows_a], points[b][rows_b]

    print("## Registration error (µm between a spine and its tracked partner)\n")
    print("| sessions | registration | median | 90th percentile |\n| --- | --- | --- | --- |")
    registrations = {}
    for deformable in (False, True):
        for a, b in PAIRS:
            reg = cached(
                args.cache,
                f"reg{a}{b}{int(deformable)}",
                lambda a=a, b=b, d=deformable: register_sessions(stacks[a], stacks[b], voxel, d),
            )
            registrations[a, b, deformable] = reg
            pa, pb = partners(a, b)
            error = np.linalg.norm(reg.apply(pa) - pb, axis=1)
            none = np.linalg.norm(pa - pb, axis=1)
            kind = "translation + optical flow" if deformable else "translation"
            if not deformable:
                print(
                    f"| tp{a} → tp{b} | none | {np.median(none):.2f} | "
                    f"{np.percentile(none, 90):.2f} |"
                )
            print(
                f"| tp{a} → tp{b} | {kind} | {np.median(error):.2f} | "
                f"{np.percentile(error, 90):.2f} |"
            )

    print("\n## Link F1 from the annotated points (track ids hidden)\n")
    grid = {}
    for deformable in (False, True):
        for a, b in PAIRS:
            reg = registrations[a, b, deformable]
            for d in DISTANCES:
                for w in WEIGHTS:
                    ids = link_sessions([points[a], points[b]], [reg], d, w)
                    grid[deformable, a, b, d, w] = link_score([truth[a], truth[b]], ids)[2]
    print(
        "| registration | held-out pair | chosen on the other pair | link F1 held out | "
        "link F1 at the defaults |\n| --- | --- | --- | --- | --- |"
    )
    for deformable in (False, True):
        for a, b in PAIRS:
            other = next(p for p in PAIRS if p != (a, b))
            d, w = max(
                ((d, w) for d in DISTANCES for w in WEIGHTS),
                key=lambda dw: grid[deformable, *other, *dw],
            )
            kind = "translation + flow" if deformable else "translation"
            print(
                f"| {kind} | tp{a} → tp{b} | {d} µm, z weight {w} | "
                f"{grid[deformable, a, b, d, w]:.3f} | "
                f"{grid[deformable, a, b, MAX_DISTANCE_UM, AXIAL_WEIGHT]:.3f} |"
            )
    regs = [registrations[0, 1, True], registrations[1, 2, True]]
    ids = link_sessions(points, regs)
    print(f"\nAll three sessions at the defaults: link F1 {link_score(truth, ids)[2]:.3f}")

    package = find_model("spine-2p")
    post = dict(package.spec.postprocessing)
    threshold = float(post["threshold"])
    maps = [
        cached(
            args.cache,
            f"heat{i}",
            lambda i=i: predict_heatmaps(stacks[i], "ZYX", package, tuple(voxel)),
        )
        for i in range(3)
    ]

    print("\n## Link F1 with detected spines\n")
    # detections and annotations near the traced dendrites, as `score` counts them; each
    # detection takes the track id of the annotation it matches (1 µm, z counting half)
    detected, annotated, matched = [], [], []
    for i in range(3):
        found_i = maps[i].postprocessed(post).coords
        found_i = found_i[near_points(found_i, sessions[i].dendrites, voxel, 4.0)]
        keep = near_points(points[i] / voxel, sessions[i].dendrites, voxel, 4.0)
        detected.append(found_i * voxel)
        annotated.append(truth[i][keep])
        ids_i = -np.arange(1, len(found_i) + 1)  # unmatched: an id no annotation has
        pairs = match_points(found_i * voxel, points[i][keep], (AXIAL_WEIGHT, 1.0, 1.0), 1.0)
        for p, q in pairs:
            ids_i[p] = truth[i][keep][q]
        matched.append(ids_i)
    found = link_sessions(detected, regs)
    links_right = links_found = 0
    for t in range(2):
        linked = found[t][:, None] == found[t + 1][None]
        same_spine = (matched[t][:, None] == matched[t + 1][None]) & (matched[t][:, None] > 0)
        links_found += int(linked.sum())
        links_right += int((linked & same_spine).sum())
    links_true = sum(len(np.intersect1d(annotated[t], annotated[t + 1])) for t in range(2))
    precision, recall = links_right / links_found, links_right / links_true
    print(
        f"spine-2p detections near the traced dendrites, linked at the defaults: link "
        f"precision {precision:.3f}, recall {recall:.3f}, F1 "
        f"{2 * precision * recall / (precision + recall):.3f} ({links_right} of {links_found} "
        f"links found are annotated links, of {links_true}; a detection stands for the "
        "annotation it matches within 1 µm, z counting half)"
    )

    print("\n## Detection from the previous session (tp_a's annotated spines → tp_b)\n")
    print(
        "| sessions | method | F1 (as `score`) | F1, z counting half |\n| --- | --- | --- | --- |"
    )
    scores = {}
    for a, b in PAIRS:
        low = maps[b].postprocessed({**post, "threshold": min(CARRY) * threshold})
        for c in CARRY:
            for n in NEW:
                carried = carry_spines(
                    points[a], truth[a], regs[a], low.coords * voxel, low.scores, threshold, c, n
                )
                found_b = carried.coords_um / voxel
                scores[a, b, c, n] = (
                    score_on_session(found_b, sessions[b]),
                    score_on_session(found_b, lenient(sessions[b])),
                )
    for a, b in PAIRS:
        single = maps[b].postprocessed(post).coords
        strict, loose = (
            score_on_session(single, sessions[b]),
            score_on_session(single, lenient(sessions[b])),
        )
        print(f"| tp{a} → tp{b} | tp{b} alone (`detect`) | {strict.f1:.3f} | {loose.f1:.3f} |")
        other = next(p for p in PAIRS if p != (a, b))
        c, n = max(((c, n) for c in CARRY for n in NEW), key=lambda cn: scores[(*other, *cn)][0].f1)
        s, loose = scores[a, b, c, n]
        print(
            f"| tp{a} → tp{b} | from tp{a} (carry {c}, new {n}, chosen on the other pair) | "
            f"{s.f1:.3f} | {loose.f1:.3f} |"
        )
        s, loose = scores[a, b, 0.5, 1.25]
        print(
            f"| tp{a} → tp{b} | from tp{a} at the defaults (carry 0.5, new 1.25) | "
            f"{s.f1:.3f} | {loose.f1:.3f} |"
        )
    print(
        "\ntp1 was one of spine-2p's training sessions: only tp1 → tp2 is held out from the model."
    )
    print(
        "\nWhat caps the strict figure: each spine annotated in both sessions, carried from its "
        "tp_a annotation by the registration, against its own tp_b annotation.\n"
    )
    print("| sessions | within 1 µm | within 1 µm in y, x | z within 0.5 µm |")
    print("| --- | --- | --- | --- |")
    for (a, b), reg in zip(PAIRS, regs, strict=True):
        pa, pb = partners(a, b)
        error = reg.apply(pa) - pb
        print(
            f"| tp{a} → tp{b} ({len(pa)} spines) "
            f"| {np.mean(np.linalg.norm(error, axis=1) <= 1):.0%} "
            f"| {np.mean(np.linalg.norm(error[:, 1:], axis=1) <= 1):.0%} "
            f"| {np.mean(np.abs(error[:, 0]) <= 0.5):.0%} |"
        )


if __name__ == "__main__":
    main()
