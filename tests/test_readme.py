"""README.md's promise: its first two commands set everything up and run the main job, then the tests,
and CI (.ci/run) runs exactly those two lines, in that order, before anything else of its own tests."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(text: str) -> list[str]:
    """The non-empty lines of the first ```bash block of ``text``, their trailing comments removed."""
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README has no ```bash block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def script_lines(text: str) -> list[str]:
    """The lines of a shell script with comments (whole-line and trailing) removed."""
    return [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines() if not line.lstrip().startswith("#")]


def test_the_readme_starts_with_a_setup_and_run_command_then_the_tests():
    first, second = commands((ROOT / "README.md").read_text())[:2]
    assert "pip install -e" in first and first.endswith("python run.py")
    assert second.endswith("pytest")


def test_ci_runs_the_readmes_first_two_commands_in_order_before_its_own_tests():
    first, second = commands((ROOT / "README.md").read_text())[:2]
    lines = script_lines((ROOT / ".ci" / "run").read_text())
    assert first in lines and second in lines, f"{first!r} and {second!r} must be lines of .ci/run"
    i, j = lines.index(first), lines.index(second)
    assert i < j
    assert not any("pytest" in line or "run.py" in line for line in lines[:i]), "nothing runs before the first"
    assert not any("pytest" in line for line in lines[i + 1:j]), "the README's second command runs the tests"
    assert any(line.startswith("pytest -m slow") for line in lines[j + 1:])
    assert any("git status --porcelain" in line for line in lines[j + 1:]), "CI checks the checkout stays clean"


def test_commands_helper_reads_the_first_block_without_comments():
    text = "x\n```bash\na && b   # one\n\nc  # two\n```\n```bash\nd\n```\n"
    assert commands(text) == ["a && b", "c"]
