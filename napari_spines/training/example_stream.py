"""The torch dataset of endless training examples, in a module of its own.

It imports torch at import time, so only `training.batches` imports it, and only when batches
are made. Its class is defined at module level, so worker processes can be sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info


class ExampleStream(IterableDataset):
    """Endless examples, each process drawing from its own generator.

    Parameters
    ----------
    make_example
        Makes one example, a tuple of arrays, from a `numpy.random.Generator`; it must pickle
        (a module-level function or a class instance, not a closure) when workers are used.
    seed
        Seed of the generators, with each worker's index.
    """

    def __init__(
        self, make_example: Callable[[np.random.Generator], tuple[np.ndarray, ...]], seed: int
    ) -> None:
        self.make_example = make_example
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Examples for ever, from a generator seeded by the seed and the worker's index.

        Returns
        -------
        Iterator of tuple of numpy.ndarray
            The examples.
        """
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1])
        while True:
            yield self.make_example(rng)
