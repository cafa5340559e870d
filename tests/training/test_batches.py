"""Training batches made in this process or in worker processes, and the device choice."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_spines.training.batches import example_batches, resolve_device  # noqa: E402


def noise_example(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((1, 2, 4, 4), dtype=np.float32), rng.random((2,), dtype=np.float32)


@pytest.mark.parametrize("workers", [0, 1])
def test_batches_stack_examples_and_repeat_for_a_seed(workers):
    first = next(example_batches(noise_example, 3, seed=5, workers=workers))
    again = next(example_batches(noise_example, 3, seed=5, workers=workers))
    other = next(example_batches(noise_example, 3, seed=6, workers=workers))
    assert [tuple(t.shape) for t in first] == [(3, 1, 2, 4, 4), (3, 2)]
    assert all(t.dtype == torch.float32 for t in first)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])
    assert not torch.equal(first[0][0], first[0][1])  # each example is drawn anew


def test_device_auto_is_cpu_without_a_gpu_and_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.parametrize("model", ["affinities", "spines"])
def test_train_commands_refuse_negative_workers(model, tmp_path, capsys):
    from napari_spines.cli import main

    extra = ["--train", "a", "--validate", "b"] if model == "spines" else []
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "train",
                model,
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "r"),
                *extra,
                "--workers",
                "-1",
            ]
        )
    assert exit_.value.code != 0
    assert "--workers: must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["affinities", "spines"])
def test_train_commands_pass_the_seed_to_the_training(model, tmp_path, monkeypatch):
    from napari_spines.cli import main, training

    asked = {}
    monkeypatch.setattr(training, "run_training", lambda *args, **options: asked.update(options))
    extra = ["--train", "a", "--validate", "b"] if model == "spines" else []
    out = ["--out", str(tmp_path / "r")]
    main(["train", model, "--data", str(tmp_path), *out, *extra, "--seed", "3"])
    assert asked["seed"] == 3
    main(["train", model, "--data", str(tmp_path), *out, *extra])
    assert asked["seed"] == 0  # as before the option: the runs on record are reproduced


@pytest.mark.timed
def test_timed_steps_stop_at_the_budget_and_decay_the_learning_rate():
    from napari_spines.training.loop import timed_steps

    net = torch.nn.Linear(2, 1)
    batch = (torch.ones(4, 2), torch.zeros(4, 1), torch.ones(4, 1))
    started = __import__("time").monotonic()
    steps = list(
        timed_steps(
            net,
            iter(lambda: batch, None),
            lambda out, t, m: ((out - t) ** 2 * m).mean(),
            lr=0.1,
            minutes=0.05,
            started=started,
            first_step=7,
        )
    )
    assert steps[0][0] == 8 and [s for s, _, _ in steps] == list(range(8, 8 + len(steps)))
    assert [last for _, _, last in steps] == [False] * (len(steps) - 1) + [True]
    assert steps[-1][1] < steps[0][1]  # it learnt


def test_the_trainers_example_makers_can_be_sent_to_worker_processes():
    """Workers start from a clean process, so what makes the examples must pickle."""
    import pickle

    from napari_spines.training import affinity, spines

    makers = [
        affinity.AffinityExamples([affinity.synthetic_volume(1)], np.ones(1), affinity.NEAREST),
        spines.SpineExamples([spines.synthetic_volume(1, (8, 48, 48))], 1),
    ]
    for maker in makers:
        sent = pickle.loads(pickle.dumps(maker))
        here = maker(np.random.default_rng(3))
        there = sent(np.random.default_rng(3))
        assert all(np.array_equal(a, b) for a, b in zip(here, there, strict=True))
