"""Fixtures shared by the data tests."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest
from torch.utils.data import DataLoader


@pytest.fixture
def start_method(monkeypatch) -> Callable[[str], None]:
    """A function that makes every DataLoader created afterwards in the test start
    its workers with the given multiprocessing start method (skipping the test
    where that method does not exist)."""

    def use(method: str) -> None:
        if method not in multiprocessing.get_all_start_methods():
            pytest.skip(f"{method} not available")
        original = DataLoader.__init__

        def init(self, *args, **kwargs):
            kwargs.setdefault("multiprocessing_context", method)
            original(self, *args, **kwargs)

        monkeypatch.setattr(DataLoader, "__init__", init)

    return use
