"""The documentation's examples run, and the API reference covers the public API.

Every fenced ```python block in ``docs/**/*.md`` and ``README.md`` is executed on its own,
in a fresh interpreter (cwd and ``CACHEPLUG_DIR`` are temporary directories), and must exit
with status 0. Blocks that are deliberately not runnable use ```text or ```py-sketch.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

import cacheplug

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
# Fence languages allowed in the docs; anything else (``py``, ``python3``...) would be
# skipped silently by the runner, so it is refused instead.
ALLOWED_FENCES = {"python", "py-sketch", "text", "sh", "console", "yaml", "toml", "ini"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<lang>[^\s`]*)[^`]*$")
BLOCK_TIMEOUT = 60


def _doc_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return files


def _fences(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, dedented body) of every fenced block in ``path``."""
    blocks: list[tuple[str, int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, ticks, lang = match["indent"], match["ticks"], match["lang"]
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        blocks.append((lang, start, "\n".join(body) + "\n"))
    return blocks


def _python_blocks() -> list[pytest.param]:
    params = []
    for path in _doc_files():
        rel = path.relative_to(ROOT).as_posix()
        index = 0
        for lang, line, body in _fences(path):
            if lang != "python":
                continue
            params.append(pytest.param(rel, line, body, id=f"{rel}[{index}]@L{line}"))
            index += 1
    return params


PYTHON_BLOCKS = _python_blocks()


def test_docs_have_runnable_examples() -> None:
    # Guards the parametrized test below against silently collecting nothing.
    files = {rel for rel, *_ in (p.values for p in PYTHON_BLOCKS)}
    assert len(PYTHON_BLOCKS) >= 30, f"only {len(PYTHON_BLOCKS)} python blocks found"
    assert "docs/guide/invalidation.md" in files
    assert "docs/index.md" in files


def test_doc_fences_use_known_languages() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: ```{lang or '(none)'}"
        for path in _doc_files()
        for lang, line, _ in _fences(path)
        if lang not in ALLOWED_FENCES
    ]
    assert not wrong, "fences must be ```python (run) or ```text/```py-sketch (not run):\n" + "\n".join(wrong)


def _run_block(code: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["CACHEPLUG_DIR"] = str(workdir / "cachedir")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )


@pytest.fixture(scope="session")
def block_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Start every selected example at once (each in its own interpreter), a few at a time."""
    selected = [
        item.callspec.params
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_doc_example_runs"
    ]
    base = tmp_path_factory.mktemp("doc-examples")
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        runs = {
            f"{p['doc']}:{p['line']}": pool.submit(_run_block, p["code"], base / f"block{i}")
            for i, p in enumerate(selected)
        }
        yield runs


@pytest.mark.parametrize(("doc", "line", "code"), PYTHON_BLOCKS)
def test_doc_example_runs(
    doc: str, line: int, code: str, block_runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    proc = block_runs[f"{doc}:{line}"].result(timeout=BLOCK_TIMEOUT * 2)
    assert proc.returncode == 0, (
        f"example at {doc}:{line} exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def _documented_object(name: str) -> bool:
    obj = getattr(cacheplug, name)
    return inspect.isclass(obj) or inspect.isroutine(obj) or isinstance(obj, types.ModuleType)


@pytest.mark.parametrize("name", cacheplug.__all__)
def test_public_name_is_in_the_reference(name: str) -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    assert re.search(rf"^::: cacheplug\.{re.escape(name)}\s*$", reference, re.M), (
        f"docs/reference.md has no '::: cacheplug.{name}' block"
    )


@pytest.mark.parametrize("name", cacheplug.__all__)
def test_public_name_is_documented(name: str) -> None:
    obj = getattr(cacheplug, name)
    if _documented_object(name):
        assert (obj.__doc__ or "").strip(), f"cacheplug.{name} has no docstring"
        return
    # Constants and aliases (MISS, Middleware) carry no docstring of their own: the reference
    # page must describe them in prose, next to their block.
    reference = REFERENCE.read_text(encoding="utf-8")
    prose = [
        line for line in reference.splitlines() if f"`{name}`" in line and not line.startswith(("#", ":::"))
    ]
    assert prose, f"docs/reference.md does not describe cacheplug.{name} in prose"
