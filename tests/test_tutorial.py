"""docs/tutorial.md is executable documentation: its quoted output and its code stay true.

The conventions, also stated at the end of the tutorial:

* a ```text block whose introducing paragraph (the paragraph right above the fence)
  mentions ``irqflow demo`` quotes the demo: its lines appear, in the same
  order, in the current output of :func:`irqflow.demo.run_demo` (lines may be skipped,
  trailing spaces are ignored);
* every ```python block runs without error in a fresh namespace;
* a ```text block whose introducing paragraph says "It prints" quotes, in the same sense,
  what the ```python block before it prints;
* a ```diff block is applied to the ```python block before it, and the result runs too;
* any other ```text block is an error, so a new excerpt cannot escape these checks.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from irqflow.demo import run_demo
from support import DEMO_STAGE_LABELS

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial.md"
DEMO_MARK = "irqflow demo"
OUTPUT_MARK = "It prints"


@dataclass(frozen=True)
class Block:
    """One fenced block of the tutorial."""

    lang: str
    lines: tuple[str, ...]
    #: 1-based line number of the opening fence
    lineno: int
    #: the paragraph right above the fence, joined into one line
    intro: str

    @property
    def code(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def where(self) -> str:
        return f"docs/tutorial.md:{self.lineno}"

    @property
    def quotes_demo(self) -> bool:
        return self.lang == "text" and DEMO_MARK in self.intro

    @property
    def quotes_output(self) -> bool:
        return self.lang == "text" and OUTPUT_MARK in self.intro


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"docs/tutorial.md:{i + 1}: code fence never closed")
        bottom = i  # the paragraph above: skip blank lines, then up to the next blank line
        while bottom > 0 and not lines[bottom - 1].strip():
            bottom -= 1
        top = bottom
        while top > 0 and lines[top - 1].strip():
            top -= 1
        intro = " ".join(line.strip() for line in lines[top:bottom])
        blocks.append(Block(lines[i][3:].strip(), tuple(lines[i + 1 : end]), i + 1, intro))
        i = end + 1
    return blocks


BLOCKS = parse_blocks(TUTORIAL.read_text(encoding="utf-8"))


def program_before(block: Block) -> Block:
    """The ```python block nearest above ``block``."""
    earlier = [b for b in BLOCKS if b.lang == "python" and b.lineno < block.lineno]
    if not earlier:
        raise AssertionError(f"{block.where}: no ```python block above this {block.lang} block")
    return earlier[-1]


def first_unmatched(quoted: Iterable[str], actual: Iterable[str]) -> str | None:
    """None if the ``quoted`` lines occur in ``actual`` in the same order (gaps allowed,
    trailing spaces ignored); otherwise the first quoted line that could not be matched."""
    remaining = (line.rstrip() for line in actual)
    for line in quoted:
        wanted = line.rstrip()
        if not any(candidate == wanted for candidate in remaining):
            return line
    return None


@cache
def demo_output() -> tuple[str, ...]:
    """The lines ``irqflow demo`` prints now."""
    out: list[str] = []
    run_demo(out.append)
    return tuple("\n".join(out).splitlines())


def run_program(code: str, where: str) -> str:
    """Exec ``code`` in a fresh namespace; return what it printed."""
    namespace: dict[str, object] = {"__name__": "__tutorial__"}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, where, "exec"), namespace)
    return buf.getvalue()


def apply_diff(source: str, diff: Sequence[str], where: str) -> str:
    """Apply a ```diff block to ``source``: hunks are separated by ``@@`` lines, and each
    hunk's context (`` ``) and removed (``-``) lines must occur exactly once in ``source``."""
    hunks: list[list[str]] = [[]]
    for line in diff:
        if line.startswith("@@"):
            hunks.append([])
        else:
            hunks[-1].append(line)
    lines = source.splitlines()
    for hunk in (h for h in hunks if h):
        old: list[str] = []
        new: list[str] = []
        for line in hunk:
            sign, body = line[:1] or " ", line[1:]
            assert sign in " -+", f"{where}: diff line {line!r} starts with neither ' ', - nor +"
            if sign in " -":
                old.append(body)
            if sign in " +":
                new.append(body)
        starts = [i for i in range(len(lines)) if lines[i : i + len(old)] == old]
        assert len(starts) == 1, f"{where}: the lines {old} occur {len(starts)} times, not once"
        lines[starts[0] : starts[0] + len(old)] = new
    return "\n".join(lines) + "\n"


def _params(blocks: Iterable[Block]) -> list[object]:
    """One pytest param per block, id'ed by its line; code on the real engine is marked so."""
    params: list[object] = []
    for b in blocks:
        real = 'engine="real"' in b.code
        mark = pytest.mark.real_only if real else pytest.mark.sim_only
        params.append(pytest.param(b, id=f"line{b.lineno}", marks=mark))
    return params


DEMO_BLOCKS = [b for b in BLOCKS if b.quotes_demo]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
OUTPUT_BLOCKS = [b for b in BLOCKS if b.quotes_output]
DIFF_BLOCKS = [b for b in BLOCKS if b.lang == "diff"]


def test_every_text_block_is_checked() -> None:
    """A ```text block either quotes the demo or quotes a snippet's output, never both."""
    for b in BLOCKS:
        if b.lang == "text":
            assert b.quotes_demo != b.quotes_output, (
                f"{b.where}: say in the paragraph above this text block either that it comes "
                f"from `{DEMO_MARK}` or that the snippet above prints it ({OUTPUT_MARK!r})"
            )


@pytest.mark.sim_only
def test_the_excerpts_cover_every_stage() -> None:
    """The tutorial quotes at least one demo line of each stage, and a snippet to try."""
    quoted = "\n".join(b.code for b in DEMO_BLOCKS)
    for label in (*DEMO_STAGE_LABELS, "interrupted=softirq"):
        assert label in quoted, label
    assert PYTHON_BLOCKS, "the tutorial has no ```python block"


@pytest.mark.sim_only
@pytest.mark.parametrize("block", _params(DEMO_BLOCKS))
def test_demo_excerpt_is_current_demo_output(block: Block) -> None:
    """Each quoted line is in today's `irqflow demo` output, in the quoted order."""
    missing = first_unmatched(block.lines, demo_output())
    assert missing is None, (
        f"{block.where}: this line is not in the demo's output (or not in this order): {missing!r}"
    )


@pytest.mark.parametrize("block", _params(PYTHON_BLOCKS))
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each snippet runs without error (in a scratch directory: it may write files)."""
    monkeypatch.chdir(tmp_path)
    run_program(block.code, block.where)


@pytest.mark.parametrize("block", _params(OUTPUT_BLOCKS))
def test_quoted_output_is_what_the_snippet_prints(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An "It prints" block quotes the output of the snippet above it."""
    monkeypatch.chdir(tmp_path)
    program = program_before(block)
    printed = run_program(program.code, program.where).splitlines()
    missing = first_unmatched(block.lines, printed)
    assert missing is None, (
        f"{block.where}: the snippet at line {program.lineno} does not print this line "
        f"(or not in this order): {missing!r}"
    )


@pytest.mark.parametrize("block", _params(DIFF_BLOCKS))
def test_diffed_snippet_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ```diff block applies to the snippet above it, and the changed snippet runs and
    leaves no thread behind (the real engine's ``with k:`` joins its threads)."""
    monkeypatch.chdir(tmp_path)
    program = program_before(block)
    changed = apply_diff(program.code, block.lines, block.where)
    assert changed != program.code, f"{block.where}: the diff changes nothing"
    before = set(threading.enumerate())
    run_program(changed, f"{block.where} applied to line {program.lineno}")
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left behind: {left}"
