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


def test_train_commands_refuse_negative_workers(tmp_path, capsys):
    from napari_spines.cli import main

    assert main(["train", "affinities", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--workers", "-1"]) != 0
    assert "--workers must be 0 or more" in capsys.readouterr().err
