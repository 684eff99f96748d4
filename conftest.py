"""Fixtures shared by every test: the real Something-Else sample in ../shared/fixtures (skip when absent)."""
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "shared" / "fixtures" / "something_else_sample"


@pytest.fixture(scope="session")
def sample_root() -> Path:
    if not (SAMPLE / "annotations.json").exists():
        pytest.skip(f"real Something-Else sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_annotations(sample_root) -> Path:
    return sample_root / "annotations.json"


@pytest.fixture(scope="session")
def sample_splits(sample_root) -> Path:
    return sample_root / "splits"
