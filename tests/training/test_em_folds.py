"""Nested cross-validation of the EM recipe: no choice ever sees a fold's test sections."""

from __future__ import annotations

import json

import pytest

from napari_spines.training.em_folds import nested_folds
from tests.training.test_affinity_training import write_em_folder


@pytest.mark.parametrize("n_folds", [2, 4])
def test_every_section_is_tested_once_and_never_trains_or_chooses_its_own_fold(n_folds) -> None:
    folds = nested_folds(n_folds)
    tested = sorted(z for fold in folds for z in fold.isbi_test)
    assert tested == list(range(20))
    assert sorted(z for fold in folds for z in fold.gala_test) == list(range(50))
    for fold in folds:
        split = fold.split
        seen_isbi = set(split.isbi_train) | set(split.isbi_validate)
        seen_gala = set(split.gala_train) | set(split.gala_validate)
        assert not seen_isbi & set(fold.isbi_test) and not seen_gala & set(fold.gala_test)
        assert not set(split.isbi_train) & set(split.isbi_validate)
        assert not set(split.gala_train) & set(split.gala_validate)


def test_cross_validation_trains_and_chooses_without_the_test_sections(tmp_path, monkeypatch):
    """Spy on what training loads; the fold's figures are written, and a rerun only reads them."""
    from napari_spines.training import affinity
    from napari_spines.training.em_folds import cross_validate

    write_em_folder(tmp_path / "em")
    loaded: list[int] = []
    load_isbi, load_gala = affinity.load_isbi, affinity.load_gala

    def spy_isbi(folder, sections):
        loaded.extend(sections)
        return load_isbi(folder, sections)

    def spy_gala(folder, sections):
        loaded.extend(100 + z for z in sections)
        return load_gala(folder, sections)

    monkeypatch.setattr(affinity, "load_isbi", spy_isbi)
    monkeypatch.setattr(affinity, "load_gala", spy_gala)
    fold = nested_folds(2, 20, 40)[0]
    options = {"width": 4, "validate_every": 10**6}
    report = cross_validate(tmp_path / "em", tmp_path / "cv", 0.1, [fold], (0.5, 0.8), **options)
    assert loaded and not set(loaded) & {*fold.isbi_test, *(100 + z for z in fold.gala_test)}
    result = report["folds"][0]
    assert len(result["isbi"]["test_errors"]) == len(fold.isbi_test)
    assert result["isbi"]["threshold"] in (0.5, 0.8) and result["gala"]["in_plane_scale"] >= 1
    assert json.loads((tmp_path / "cv" / "cross_validation.json").read_text()) == report
    monkeypatch.setattr(affinity, "train", lambda *a, **k: pytest.fail("trained again"))
    assert cross_validate(tmp_path / "em", tmp_path / "cv", 0.1, [fold], (0.5, 0.8)) == report
    # the same packages segmented another way: scored again, its own files, nothing trained
    again = cross_validate(
        tmp_path / "em",
        tmp_path / "cv",
        0.1,
        [fold],
        (0.3, 0.6),
        method="mutex_watershed",
        min_sizes=(0, 50),
    )
    assert again["folds"][0]["isbi"]["threshold"] in (0.3, 0.6)
    assert again["folds"][0]["gala"]["min_size"] in (0, 50)
    assert (tmp_path / "cv" / "cross_validation_mutex_watershed.json").exists()
    assert json.loads((tmp_path / "cv" / "cross_validation.json").read_text()) == report
    gala_only = cross_validate(
        tmp_path / "em", tmp_path / "cv", 0.1, [fold], (0.5,), "agglomeration", volumes=("gala",)
    )
    assert set(gala_only["summary"]) == {"gala_per_block", "gala_mean"}
    # a longer budget: each fold trains on from its own last checkpoint, on the same sections
    monkeypatch.undo()
    loaded.clear()
    monkeypatch.setattr(affinity, "load_isbi", spy_isbi)
    cv, longer = tmp_path / "cv", tmp_path / "cv-longer"
    cross_validate(tmp_path / "em", longer, 0.1, [fold], (0.5, 0.8), continue_from=cv, **options)
    assert loaded and not set(loaded) & set(fold.isbi_test)

    def steps(run):
        return [json.loads(line)["step"] for line in (run / "fold_0" / "log.jsonl").open()]

    assert min(steps(longer)) > max(steps(cv))


def test_3d_settings_are_scored_on_a_block_that_did_not_choose_them(
    tmp_path, edge_affinity_package
):
    from napari_spines.training.mode_settings import choose_3d_settings

    write_em_folder(tmp_path / "em")
    blocks = [range(0, 8), range(8, 16), range(16, 24)]
    thresholds, scales = (0.3, 0.6, 0.9), (1.0, 2.0)
    report = choose_3d_settings(edge_affinity_package, tmp_path / "em", blocks, thresholds, scales)
    errors = report["errors"]

    def mean_error(scale, t, others):
        return sum(errors[f"scale {scale}, block {o}"][t] for o in others) / len(others)

    for b, held in enumerate(report["held_out"]):
        others = [o for o in range(len(blocks)) if o != b]
        best = min(mean_error(s, t, others) for s in scales for t in range(len(thresholds)))
        t = thresholds.index(held["threshold"])
        chosen = mean_error(held["in_plane_scale"], t, others)
        assert chosen == pytest.approx(best)
        assert held["oracle_error"] <= held["error"]
    assert report["chosen"]["in_plane_scale"] in scales


def test_the_shipped_settings_are_the_folds_medians_of_the_better_method_per_mode():
    from napari_spines.training.shipped_settings import shipped_settings

    def report(isbi_mean, gala_mean, isbi_thresholds, gala_thresholds, min_size=0):
        folds = [
            {
                "isbi": {"threshold": i, "in_plane_scale": 1.0, "min_size": min_size},
                "gala": {"threshold": g, "in_plane_scale": 2.0, "min_size": min_size},
            }
            for i, g in zip(isbi_thresholds, gala_thresholds, strict=True)
        ]
        summary = {"isbi_mean": isbi_mean, "isbi_per_section": {"0": isbi_mean}}
        return {"folds": folds, "summary": summary | {"gala_mean": gala_mean}}

    reports = {
        "agglomeration": report(0.08, 0.09, [0.4, 0.6, 0.65], [0.55, 0.7, 0.5]),
        "mutex_watershed": report(0.07, 0.12, [0.45, 0.4, 0.4], [0.5, 0.5, 0.5], 100),
    }
    postprocessing, figures = shipped_settings(reports)
    assert postprocessing["threshold"] == 0.6  # ISBI's agglomeration median
    two_d, three_d = postprocessing["modes"]["2d"], postprocessing["modes"]["3d"]
    assert two_d["method"] == "mutex_watershed" and two_d["bias"] == 0.4
    assert two_d["threshold"] == 0.0 and two_d["min_size"] == 100
    assert "method" not in three_d and three_d["threshold"] == 0.55
    assert three_d["in_plane_scale"] == 2.0
    assert figures["isbi"]["shipped"] == "mutex_watershed"
    assert figures["gala"]["shipped"] == "agglomeration"
    reports["agglomeration"]["summary"]["isbi_mean"] = 0.05  # now it wins on ISBI too
    assert "method" not in shipped_settings(reports)[0]["modes"]["2d"]


def test_weights_trained_again_take_the_settings_of_their_recipes_package(tmp_path, monkeypatch):
    """``--settings-from``: the settings and figures are copied; on sections the weights
    trained on, the scores are recorded as a check, never as validation."""
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from napari_spines.models import find_model
    from napari_spines.models.spec import read_spec, write_spec
    from napari_spines.training import shipped_settings as module

    source = Path(find_model("em-affinity").root)
    fresh = tmp_path / "em-affinity"
    shutil.copytree(source, fresh)
    card = read_spec(fresh / "model.yaml")
    bare = {k: v for k, v in card.postprocessing.items() if k != "modes"}
    write_spec(fresh / "model.yaml", replace(card, postprocessing=bare, metrics={}))
    with pytest.raises(ValueError, match="no cross-validated settings"):
        module.settings_of_package(fresh)
    monkeypatch.setattr(module, "score_defaults", lambda package, data: {"isbi": {"e": 0.1}})
    settings = module.settings_of_package(source)
    module.write_shipped_settings(fresh, settings, tmp_path, trained_on_them=True)
    written = read_spec(fresh / "model.yaml")
    assert (
        written.postprocessing["modes"] == read_spec(source / "model.yaml").postprocessing["modes"]
    )
    assert written.metrics["cross_validation"] == settings[1]
    assert "validation" not in written.metrics
    assert "not its accuracy" in written.metrics["training_sections"]["through"]


def test_default_scores_are_of_the_sections_asked_for(tmp_path):
    """Packages trained on different sections are compared on sections chosen for both."""
    from napari_spines.models import find_model
    from napari_spines.training.em_data import Split
    from napari_spines.training.shipped_settings import score_defaults

    write_em_folder(tmp_path / "em")
    package = find_model("em-affinity").root
    split = Split(isbi_train=(), isbi_validate=(0, 1, 2), gala_train=(), gala_validate=(4, 5, 6))
    scores = score_defaults(package, tmp_path / "em", split)
    assert set(scores) == {"isbi2012 sections 0-2", "gala sections 4-6"}
    assert len(scores["isbi2012 sections 0-2"]["per_section"]) == 3
    assert set(score_defaults(package, tmp_path / "em")) == {
        "isbi2012 sections 15-19",
        "gala sections 35-39",  # the stand-in has 40 sections
    }
