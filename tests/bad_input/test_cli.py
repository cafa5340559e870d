"""The command line on bad input: exit code 2, one line saying what is wrong, no traceback.

Each case names the files it uses from `files.write_bad_files` as ``{name}``; ``{out}`` is a
fresh output path and ``{outdir}`` an existing folder. The expected words are matched in the
error line (case-insensitive), so a case fails when the message stops naming the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from napari_spines.cli import main
from tests.bad_input.files import write_bad_files

READ = ["missing", "folder_tif", "empty", "text", "garbage", "cut_8_bytes", "cut_half"]
READ_WORDS = {
    "missing": "no such file",
    "folder_tif": "folder",
    "empty": "empty",
    "text": "not a readable tiff",
    "garbage": "not a readable tiff",
    "cut_8_bytes": "truncated",
    "cut_half": "truncated",
    "one_voxel": "1 voxel|single|1d|0d",
    "one_row": "1d",
    "all_nan": "nan",
    "png": "not a supported format",
}

CASES: list[tuple[str, str, str]] = [
    # --- files that cannot be read, for every command that reads a stack ---
    *[
        (f"{cmd}-{name}", f"{cmd} {{{name}}} {extra}", READ_WORDS[name])
        for cmd, extra in (
            ("detect", "-o {out}.csv"),
            ("segment", "-o {out}.tif"),
            ("predict", "-m spine-dog -o {out}.tif"),
            ("info", ""),
        )
        for name in (*READ, "one_voxel", "one_row", "all_nan", "png")
    ],
    ("affinities-missing", "affinities {missing} -o {out}.tif", "no such file"),
    ("affinities-float", "affinities {labels_float} -o {out}.tif", "integer"),
    ("affinities-negative", "affinities {labels_negative} -o {out}.tif", "negative"),
    ("affinities-cut", "affinities {cut_half} -o {out}.tif", "truncated"),
    # --- values out of range, refused before any work ---
    *[
        (f"{cmd}-voxel-{label}", f"{cmd} {{good}} {extra} --voxel-size {value}", words)
        for cmd, extra in (
            ("detect", "-o {out}.csv"),
            ("segment", "-o {out}.tif"),
            ("predict", "-m spine-dog -o {out}.tif"),
        )
        for label, value, words in (
            ("zero", "0 0 0", "voxel-size.*positive"),
            ("negative", "-1 0.1 0.1", "voxel-size.*positive"),
            ("nan", "nan 0.1 0.1", "voxel-size.*(finite|number)"),
            ("inf", "1 inf 0.1", "voxel-size.*(finite|number)"),
            ("tiny", "1e-12 1e-12 1e-12", "voxel.size"),
            ("huge", "1000 1000 1000", "voxel.size"),
            ("text", "a b c", "voxel-size.*number"),
        )
    ],
    ("detect-threshold-nan", "detect {good} -o {out}.csv --threshold nan", "threshold"),
    ("detect-threshold-inf", "detect {good} -o {out}.csv --threshold inf", "threshold"),
    ("segment-threshold-2", "segment {em} -o {out}.tif --threshold 2", "threshold"),
    ("segment-threshold-neg", "segment {em} -o {out}.tif --threshold -0.1", "threshold"),
    ("segment-threshold-nan", "segment {em} -o {out}.tif --threshold nan", "threshold"),
    ("segment-quantile-7", "segment {em} -o {out}.tif --quantile 7", "quantile"),
    ("segment-quantile-200", "segment {em} -o {out}.tif --quantile 200", "quantile"),
    ("predict-tile-zero", "predict {good} -m spine-dog -o {out}.tif --tile 0 -5 0", "tile"),
    ("predict-tile-text", "predict {good} -m spine-dog -o {out}.tif --tile a 1 1", "tile"),
    (
        "predict-tile-huge",
        "predict {good} -m spine-dog -o {out}.tif --tile 4000 4000 4000",
        "memory|tile",
    ),
    ("predict-batch-zero", "predict {good} -m spine-dog -o {out}.tif --batch-size 0", "batch"),
    ("predict-batch-neg", "predict {good} -m spine-dog -o {out}.tif --batch-size -2", "batch"),
    ("predict-batch-text", "predict {good} -m spine-dog -o {out}.tif --batch-size x", "batch"),
    ("synthetic-shape-zero", "synthetic two-photon -o {out}.tif --shape 0 0 0", "shape"),
    ("synthetic-shape-neg", "synthetic em -o {out}.tif --shape -1 64 64", "shape"),
    (
        "synthetic-shape-huge",
        "synthetic em -o {out}.tif --shape 100000 100000 100000",
        "of memory",
    ),
    ("synthetic-seed-neg", "synthetic em -o {out}.tif --seed -1", "seed"),
    # --- a stack that does not fit the model ---
    ("segment-two-photon", "segment {good} -o {out}.tif", "memory|voxel size"),
    ("detect-hyperstack", "detect {hyperstack_tzcyx} -o {out}.csv", "channel"),
    # --- outputs that cannot be written ---
    ("detect-out-dir", "detect {good} -o {outdir}", "folder|directory|\\.csv"),
    ("detect-out-dir-csv", "detect {good} -o {folder_csv}", "folder"),
    ("detect-out-suffix", "detect {good} -o {out}.txt", "\\.csv"),
    ("segment-out-dir-tif", "segment {em} -o {folder_tif}", "folder"),
    ("segment-out-suffix", "segment {em} -o {out}.png", "\\.tif"),
    ("predict-out-dir-tif", "predict {good} -m spine-dog -o {folder_tif}", "folder"),
    ("predict-out-suffix", "predict {good} -m spine-dog -o {out}.npy", "\\.tif"),
    ("affinities-out-dir", "affinities {em_labels} -o {folder_tif}", "folder"),
    ("synthetic-out-dir", "synthetic em -o {folder_tif}", "folder"),
    ("detect-out-under-file", "detect {good} -o {good}/x.csv", "not a folder|cannot write"),
    # --- models ---
    ("detect-model-unknown", "detect {good} -o {out}.csv -m no-such-model", "no-such-model"),
    ("detect-model-em", "detect {good} -o {out}.csv -m em-affinity", "task|spine"),
    ("segment-model-spine", "segment {em} -o {out}.tif -m spine-dog", "task|affinit"),
    ("predict-model-garbage", "predict {good} -m {model_garbage_yaml} -o {out}.tif", "yaml"),
    ("predict-model-empty", "predict {good} -m {model_empty_folder} -o {out}.tif", "model"),
    ("predict-model-halo", "predict {good} -m {model_huge_halo} -o {out}.tif", "halo"),
    ("predict-model-tile", "predict {good} -m {model_huge_tile} -o {out}.tif", "tile"),
    # --- scoring ---
    *[
        (f"score-{name}", f"score {{{name}}} --session {{good}}", words)
        for name, words in (
            ("points_nan", "nan|finite"),
            ("points_inf", "inf|finite"),
            ("points_no_columns", "z, y, x|column"),
            ("points_empty", "empty|column"),
            ("points_2d", "z, y, x"),
            ("points_binary", "csv|column|read"),
            ("missing", "no such file"),
        )
    ],
    ("score-text-score", "score {points_text_score} --session {good} --min-score 0.5", "score"),
    ("score-min-score-nan", "score {points_ok} --session {good} --min-score nan", "min-score"),
    ("score-match-neg", "score {points_ok} --session {good} --match-um -1", "match-um"),
    ("score-match-zero", "score {points_ok} --session {good} --match-um 0", "match-um"),
    ("score-within-nan", "score {points_ok} --session {good} --within-um nan", "within-um"),
    ("score-within-neg", "score {points_ok} --session {good} --within-um -4", "within-um"),
    ("score-session-missing", "score {points_ok} --session {missing}", "missing"),
    ("score-session-bare", "score {points_ok} --session {blank}", "spines.csv"),
    # --- training ---
    (
        "train-unsafe-checkpoint",
        "train spines --data {folder} --train good --validate good --out {out} "
        "--start-from {checkpoint_unsafe}",
        "unsafe|not a|checkpoint",
    ),
    (
        "train-garbage-checkpoint",
        "train affinities --data {folder} --out {out} --start-from {checkpoint_garbage}",
        "checkpoint|package",
    ),
    (
        "train-minutes-neg",
        "train spines --data {folder} --train good --validate good --out {out} --minutes -1",
        "minutes",
    ),
    (
        "train-minutes-nan",
        "train spines --data {folder} --train good --validate good --out {out} --minutes nan",
        "minutes",
    ),
    (
        "train-missing-session",
        "train spines --data {folder} --train nobody --validate good --out {out}",
        "nobody",
    ),
    ("train-lr-zero", "train affinities --data {folder} --out {out} --lr 0", "lr"),
    # --- the training store and fine-tuning ---
    ("store-add-missing", "training add {missing} --points {spines_csv} --store {out}", "no such"),
    ("store-add-nothing", "training add {good} --store {out}", "--points|--labels"),
    (
        "store-add-no-voxel-size",
        "training add {blank} --points {spines_csv} --store {out}",
        "voxel size is unknown",
    ),
    (
        "store-add-box-outside",
        "training add {good} --points {spines_csv} --store {out} --box 100 0 0 200 5 5",
        "holds no voxel",
    ),
    (
        "store-add-box-short",
        "training add {good} --points {spines_csv} --store {out} --box 0 0 0",
        "box",
    ),
    (
        "store-add-float-labels",
        "training add {em} --labels {labels_float} --store {out}",
        "same shape|integer",
    ),
    ("store-list-missing", "training list --store {missing}", "no such store"),
    ("finetune-no-store", "finetune --store {missing} -m spine-2p -o {out}", "no such store"),
    ("finetune-empty-store", "finetune --store {outdir} -m spine-2p -o {out}", "no spines entries"),
    (
        "finetune-not-unet",
        "finetune --store {outdir} -m spine-dog -o {out}",
        "not a napari-spines u-net",
    ),
    ("finetune-no-model", "finetune --store {outdir} -m nobody -o {out}", "no model named"),
    (
        "finetune-no-replay-store",
        "finetune --store {outdir} -m spine-2p -o {out} --replay {missing}",
        "no such store",
    ),
    (
        "finetune-minutes-zero",
        "finetune --store {outdir} -m spine-2p -o {out} --minutes 0",
        "minutes",
    ),
    (
        "finetune-holdout-two",
        "finetune --store {outdir} -m spine-2p -o {out} --holdout 2",
        "holdout",
    ),
    # --- no command-line value is taken for what it is not ---
    ("unknown-command", "frobnicate", "frobnicate"),
    ("unknown-option", "detect {good} -o {out}.csv --frob 1", "frob"),
    ("missing-output", "detect {good}", "output"),
    # --- sessions ---
    ("track-one-session", "track --images {good} -o {out}.csv", "at least two sessions"),
    ("track-voxel-sizes", "track --images {good} {em} -o {out}.csv", "voxel size"),
    (
        "track-points-count",
        "track --images {good} {good} --points {points_ok} -o {out}.csv",
        "2 --points",
    ),
    (
        "track-points-no-columns",
        "track --images {good} {good} --points {points_ok} {points_no_columns} -o {out}.csv",
        "columns",
    ),
    (
        "track-points-2d",
        "track --images {good} {good} --points {points_ok} {points_2d} -o {out}.csv",
        "z, y, x",
    ),
    (
        "track-dendrites-count",
        "track --images {good} {good} --dendrites {points_ok} -o {out}.csv",
        "2 --dendrites",
    ),
    (
        "track-dendrites-no-segments",
        "track --images {good} {good} --points {points_ok} {points_ok} "
        "--dendrites {points_ok} {points_ok} -o {out}.csv",
        "segment_id",
    ),
    ("track-out-suffix", "track --images {good} {good} -o {out}.txt", "\\.csv"),
    ("track-missing", "track --images {good} {missing} -o {out}.csv", "no such file"),
    ("detect-previous-alone", "detect {good} -o {out}.csv --previous {good}", "together"),
    (
        "detect-previous-voxel-sizes",
        "detect {good} -o {out}.csv --previous {em} --previous-spines {points_ok}",
        "voxel size",
    ),
    (
        "detect-previous-points-2d",
        "detect {good} -o {out}.csv --previous {good} --previous-spines {points_2d}",
        "z, y, x",
    ),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bad file, made once for the module."""
    folder = tmp_path_factory.mktemp("bad input")
    files = write_bad_files(folder)
    files["folder"] = folder
    files["folder_csv"] = folder / "out.csv"
    files["folder_csv"].mkdir(exist_ok=True)
    files["em_labels"] = folder / "em_labels.tif"
    files["spines_csv"] = folder / "good_spines.csv"
    return files


def _argv(template: str, files: dict[str, Path], tmp_path: Path) -> list[str]:
    values = {name: str(path) for name, path in files.items()}
    values["out"] = str(tmp_path / "out")
    values["outdir"] = str(tmp_path)
    return [word.format(**values) for word in template.split()]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit code and stderr of ``napari-spines ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("template", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_with_one_line(
    template: str,
    words: str,
    bad_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """Exit 2, one ``error:`` line that names the problem, no traceback, nothing written."""
    code, err = run_cli(_argv(template, bad_files, tmp_path), capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(errors) == 1, err
    assert re.search(words, errors[0], re.IGNORECASE), errors[0]
    assert not list(tmp_path.glob("out*")), "a failed run left an output behind"


def test_the_corpus_is_large() -> None:
    """The issue's bar: more than 100 bad inputs."""
    assert len(CASES) > 100
