"""The documentation runs as written: every ```python block of README.md and of each page of docs/, the
blocks of a page in order, in one fresh process per page, in an empty working directory tracked to
MLflow's default store there, with MNIST-shaped idx files where the one MNIST rule points
(``$ELISTIMATOR_MNIST_DIR``; ``examples/mnist_data.py``).

Two markers, HTML comments a reader of the site does not see:

- ``<!-- docs-test: after getting-started.md -->`` anywhere in a page: that page's blocks run first,
  in the same process (a guide that goes on from where Getting started stopped);
- ``<!-- docs-test: skip: <why> -->`` on the line before a block: it is not run, and says why (it
  needs a GPU, a second machine, a server with logins...).

A pasted walkthrough must not leave clutter either: after each page the working directory, a git
repository with the project's ``.gitignore``, holds nothing git would show (issue 28: ``export/`` and
a download cache were left in the clone).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_FILES, write_idx

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
IMAGES = 700  # 560 to train (10 steps an epoch of the CNN), 140 to validate

BLOCK = re.compile(
    r"^(?:<!-- docs-test: skip: (?P<why>[^\n]*?) -->\n)?```python(?P<info>[^\n]*)\n(?P<code>.*?)^```$", re.S | re.M
)
AFTER = re.compile(r"<!-- docs-test: after (?P<page>[\w./-]+\.md) -->")
#: TensorFlow's C++ start-up logs (absl: I0000 ..., W0000 ...) and its notices of deprecated TF1 APIs
NOTICE = re.compile(r"^[IWE]\d{4} |is deprecated and will be removed")
SNIPPET = re.compile(r'^--8<-- "(?P<file>[^":]+)(?::(?P<section>[\w-]+))?"$', re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def name_of(page: Path) -> str:
    return str(page.relative_to(ROOT))


def expanded(page: Path) -> str:
    """The page as MkDocs renders it: pymdownx.snippets' ``--8<-- "file:section"`` lines replaced."""

    def section(match: re.Match) -> str:
        text = (ROOT / match["file"]).read_text(encoding="utf-8")
        if match["section"]:
            start, end = f"--8<-- [start:{match['section']}]", f"--8<-- [end:{match['section']}]"
            text = text[text.index(start) : text.index(end)]
            text = text.split("\n", 1)[1].rsplit("\n", 1)[0]  # without the marker lines
        return text

    return SNIPPET.sub(section, page.read_text(encoding="utf-8"))


def blocks(page: Path) -> list[tuple[str, str | None]]:
    """``(code, why it is not run or None)`` for each ```python block of ``page``, in order."""
    return [(m["code"], m["why"]) for m in BLOCK.finditer(expanded(page))]


def program(page: Path) -> str:
    """The blocks that run for ``page``: those of the pages it goes on from, then its own."""
    text = expanded(page)
    parts = []
    for earlier in AFTER.findall(text):
        parts.append(program((page.parent / earlier).resolve()))
    for number, (code, why) in enumerate(blocks(page), start=1):
        if why is None:
            parts.append(f"print('--- {name_of(page)} block {number}', flush=True)\n{code}")
    return "\n".join(parts)


RUNNABLE = [page for page in pages() if any(why is None for _, why in blocks(page))]


@pytest.fixture
def small_mnist(digits_mnist_dir, tmp_path):
    """The first IMAGES images of the digits-based idx files, in a folder of their own."""
    target = tmp_path / "mnist"
    target.mkdir()
    for name in MNIST_FILES:
        with gzip.open(digits_mnist_dir / name, "rb") as handle:
            raw = handle.read()
        dims = raw[3]
        shape = np.frombuffer(raw[4 : 4 + 4 * dims], ">u4").astype(int)
        write_idx(target / name, np.frombuffer(raw[4 + 4 * dims :], np.uint8).reshape(shape)[:IMAGES])
    return target


def clutter(work: Path) -> list[str]:
    """What ``git status`` would show in ``work`` under the project's .gitignore."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=work, capture_output=True, text=True, check=True
    )
    return [line[3:] for line in done.stdout.splitlines() if line[3:] not in (".gitignore", "walkthrough.py")]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=name_of)
def test_every_python_block_of_the_page_runs_in_order(page, small_mnist, tmp_path):
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copy(ROOT / ".gitignore", work / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    (work / "walkthrough.py").write_text(program(page) + "\nprint('--- done', flush=True)\n", encoding="utf-8")
    # a reader's shell: no store chosen, and TensorFlow's log level left to the package (this process's
    # import of it set TF_CPP_MIN_LOG_LEVEL, which a child would take for the reader's own choice)
    unset = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "TF_CPP_MIN_LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["ELISTIMATOR_MNIST_DIR"] = str(small_mnist)
    done = subprocess.run(
        [sys.executable, "walkthrough.py"], cwd=work, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert done.stdout.rstrip().endswith("--- done")
    notices = [line for line in done.stderr.splitlines() if NOTICE.search(line)]
    assert notices == [], "TensorFlow's start-up logs or deprecation notices reached the reader"
    assert clutter(work) == [], "the page's code left files git would show"


def test_every_block_that_does_not_run_says_why_and_every_page_it_goes_on_from_exists():
    for page in pages():
        text = expanded(page)
        for match in BLOCK.finditer(text):
            assert match["info"].strip() == "" or match["info"].strip().startswith("title="), (
                f"{name_of(page)}: mark a block that does not run with <!-- docs-test: skip: <why> -->, "
                f"not with {match['info']!r}"
            )
            assert match["why"] is None or len(match["why"].strip()) > 10, f"{name_of(page)}: say why"
        for earlier in AFTER.findall(text):
            assert (page.parent / earlier).is_file(), f"{name_of(page)} goes on from {earlier}, which is not there"


def test_the_readme_is_short_and_its_example_complete():
    """Issue 28: a README a newcomer reads in two minutes, two set-up commands that leave the venv
    active (bare ``elistimator`` was "command not found"), and one complete example."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    (example,) = [code for code, why in blocks(README) if why is None]
    assert len(example.splitlines()) <= 40
    for step in ("train()", "validate()", "save_ckpt()", "register_best(", 'from_disk("models:/'):
        assert step in example, step
    set_up = [line for line in re.findall(r"```bash\n(.*?)```", text, re.S) if "python3 -m venv" in line]
    assert len(set_up) == 2 and all(". .venv/bin/activate" in command for command in set_up)
    assert "mlflow ui" in text and "docs/screenshots/runs-table.png" in text


def test_the_configuration_page_names_every_option_and_the_nav_every_page():
    from elistimator_tracking.settings import Settings

    table = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert [name for name in Settings.defaults() if f"| `{name}` |" not in table] == []
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s+([\w/.-]+\.md)\s*$", nav, re.M))
    assert {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")} - listed == set()


def test_every_picture_a_page_shows_is_in_the_repository():
    """``mkdocs build --strict`` checks links between pages, not the pictures they show."""
    missing = []
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).is_file():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert missing == []
