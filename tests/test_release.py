"""Release habits (issue 28): one version, written once and read everywhere; a changelog whose first
entry is that version; package metadata that ``pip show`` and an index page read right."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import elistimator_tracking

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_and_the_changelog_opens_with_it():
    version = elistimator_tracking.__version__
    assert version == "0.2.0"
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert entries[0] == version and len(entries) == len(set(entries))
    first = changelog.split(f"## [{version}]", 1)[1].split("\n## [", 1)[0]
    assert {"### Added", "### Changed", "### Fixed"} <= set(re.findall(r"^### \w+", first, re.M))


def test_the_installed_metadata_reads_right():
    """What an editable install recorded (CI reinstalls the project every time)."""
    metadata = importlib.metadata.metadata("elistimator_tracking")
    assert metadata["Version"] == elistimator_tracking.__version__
    assert metadata["License-Expression"] == "Apache-2.0" and "LICENSE" in metadata.get_all("License-File")
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers and "Typing :: Typed" in classifiers
    assert metadata["Summary"] and metadata["Author-email"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
