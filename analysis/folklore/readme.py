"""Copy the folklore findings into the repository and the README's "Findings" section.

    python -m analysis.folklore.readme [--findings findings] [--readme README.md] [--store analysis/findings]

For every experiment with a ``<findings>/<name>/findings.md`` (written by ``python run.py
experiment=NAME``), the folder is copied to ``<store>/<name>/`` and the README's section between
``<!-- findings:begin -->`` and ``<!-- findings:end -->`` is rewritten: per experiment its claim, the
command, the verdict paragraph, its first figure and links to the whole table. Experiments without
findings keep no entry; the rest of the README is left as it is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from . import EXPERIMENTS

BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"


class ReadmeError(RuntimeError):
    """The README or the findings cannot be used; the message is one line."""


def entry(name: str, markdown: str, store: Path, readme_dir: Path) -> str:
    """The README entry of one experiment from its ``findings.md`` text; links relative to the README."""
    blocks = [b.strip() for b in markdown.split("\n\n") if b.strip()]
    claim = next(b for b in blocks if b.startswith("**Claim.**"))
    command = next(b for b in blocks if b.startswith("**Command.**"))
    verdict = blocks[blocks.index(command) + 1]
    figures = [b for b in blocks if b.startswith("![")]
    folder = Path(os.path.relpath(store / name, readme_dir)).as_posix()
    lines = [f"### {name}", "", claim, "", command, "", verdict, ""]
    if figures:
        stem = figures[0].splitlines()[0].split("](", 1)[1].rstrip(")")
        lines += [f"![{name}]({folder}/{stem})", ""]
    lines += [f"Table and notes: [{folder}/findings.md]({folder}/findings.md) ([CSV]({folder}/findings.csv)).", ""]
    return "\n".join(lines)


def section(findings: Path, store: Path, readme_dir: Path) -> tuple[str, list[str]]:
    """The section's text and the experiments it holds; copies each findings folder into ``store``."""
    parts, names = [], []
    for name in EXPERIMENTS:
        source = findings / name / "findings.md"
        if not source.is_file():
            continue
        target = store / name
        if target.resolve() != (findings / name).resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(findings / name, target)
        parts.append(entry(name, source.read_text(), store, readme_dir))
        names.append(name)
    return "\n".join(parts), names


def check_markers(readme: Path) -> str:
    """The README's text; ``ReadmeError`` unless it has one begin marker followed by one end marker."""
    if not readme.is_file():
        raise ReadmeError(f"--readme {readme}: no such file")
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ReadmeError(f"{readme}: needs one {BEGIN} line followed by one {END} line")
    return text


def rewrite(readme: Path, body: str) -> None:
    """Replace the text between the markers of ``readme`` with ``body`` (written whole, then renamed)."""
    head, rest = check_markers(readme).split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    staging = readme.with_name(readme.name + ".writing")
    staging.write_text(f"{head}{BEGIN}\n{body.rstrip()}\n{END}{tail}")
    staging.replace(readme)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.folklore.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--findings", default="findings", help="folder the experiments wrote (default: findings)")
    parser.add_argument("--readme", default="README.md", help="the README to update (default: README.md)")
    parser.add_argument("--store", default="analysis/findings",
                        help="where the findings are kept beside the README (default: analysis/findings)")
    args = parser.parse_args(argv)
    readme, findings, store = Path(args.readme), Path(args.findings), Path(args.store)
    try:
        check_markers(readme)  # before anything is copied
        body, names = section(findings, store, readme.resolve().parent)
        if not names:
            raise ReadmeError(f"--findings {findings}: no <experiment>/findings.md there; run "
                              "`python run.py experiment=NAME` first")
        rewrite(readme, body)
    except ReadmeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{readme}: Findings section rewritten from {', '.join(names)}; copies in {store}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
