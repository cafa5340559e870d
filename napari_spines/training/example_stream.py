"""The torch dataset of endless training examples, made on first use.

`ExampleStream` subclasses torch's ``IterableDataset``, so it cannot exist before torch is
imported, and importing this module must not import torch. The class is therefore built the
first time the module's ``ExampleStream`` attribute is read (PEP 562) and kept. Pickle finds it
the same way in a worker process, so workers can be sent the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_built: dict[str, type] = {}


def _examples(
    make_example: Callable[[np.random.Generator], tuple[np.ndarray, ...]], seed: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """Examples for ever, from a generator seeded by ``seed`` and the worker's index."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    rng = np.random.default_rng([seed, 0 if info is None else info.id + 1])
    while True:
        yield make_example(rng)


def _build() -> type:
    from torch.utils.data import IterableDataset

    class ExampleStream(IterableDataset):
        """Endless examples, each process drawing from its own generator.

        Parameters
        ----------
        make_example
            Makes one example, a tuple of arrays, from a `numpy.random.Generator`; it must
            pickle (a module-level function or a class instance, not a closure) when workers
            are used.
        seed
            Seed of the generators, with each worker's index.
        """

        def __init__(
            self, make_example: Callable[[np.random.Generator], tuple[np.ndarray, ...]], seed: int
        ) -> None:
            self.make_example = make_example
            self.seed = seed

        def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
            return _examples(self.make_example, self.seed)

    ExampleStream.__module__, ExampleStream.__qualname__ = __name__, "ExampleStream"
    return ExampleStream


def __getattr__(name: str) -> Any:
    """``ExampleStream``, built (and torch imported) on first use."""
    if name != "ExampleStream":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = _build()
    return _built[name]
