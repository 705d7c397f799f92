"""Fixtures shared by every test suite."""

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def short_tmp():
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="lr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
