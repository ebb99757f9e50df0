"""Small torch networks and the helpers they share."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread, restoring the caller's count after: tiny tensors gain nothing
    from more (several OpenMP threads on a busy machine spin against each other), and float
    convolutions can sum in another order with more threads (other pixels)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
