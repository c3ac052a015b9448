"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streamscore.settings import ENV_PREFIX


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove STREAMSCORE_ variables so that no test reads the developer's own settings."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    yield
