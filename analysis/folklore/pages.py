"""Copy the folklore findings into the repository, rewrite docs/findings.md and the README's table.

    python -m analysis.folklore.pages [--findings findings] [--page docs/findings.md] [--readme README.md]
                                      [--store analysis/findings]

For every experiment or variant with a ``<findings>/<name>/findings.md`` (written by ``python run.py
experiment=NAME``), the folder is copied to ``<store>/<name>/``; the page's part between
``<!-- findings:begin -->`` and ``<!-- findings:end -->`` is rewritten (per experiment its data set, its
claim, the command, the verdict paragraph, its first figure, links to the whole table), and so is the
README's part between ``<!-- findings-table:begin -->`` and ``<!-- findings-table:end -->`` (a row per
experiment: its data set, claim, the verdict's first words, a link to the page). The data set is the
one ``conf/experiment/NAME.yaml`` composes to. Experiments without findings
keep no entry; the rest of both files is left as it is. Nothing is copied or written unless both
files have their markers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from experiments.config import register_configs

from . import NAMES

CONF = Path(__file__).resolve().parents[2] / "conf"

BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"
TABLE_BEGIN, TABLE_END = "<!-- findings-table:begin -->", "<!-- findings-table:end -->"


class PagesError(RuntimeError):
    """The page, the README or the findings cannot be used; the message is one line."""


def parts(markdown: str) -> dict[str, str]:
    """The claim, command and verdict paragraphs of a ``findings.md`` and its first figure's file stem."""
    blocks = [b.strip() for b in markdown.split("\n\n") if b.strip()]
    claim = next(b for b in blocks if b.startswith("**Claim.**"))
    command = next(b for b in blocks if b.startswith("**Command.**"))
    figures = [b for b in blocks if b.startswith("![")]
    stem = figures[0].splitlines()[0].split("](", 1)[1].rstrip(")") if figures else ""
    return {"claim": claim, "command": command, "verdict": blocks[blocks.index(command) + 1], "figure": stem}


def data_sets(names) -> dict[str, str]:
    """{name: the data set ``experiment=name`` composes to}."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return {name: str(compose(config_name="config", overrides=[f"experiment={name}"]).data.name) for name in names}


def entry(name: str, markdown: str, store: Path, page_dir: Path, data: str) -> str:
    """The page's entry of one experiment from its ``findings.md`` text; links relative to the page."""
    found = parts(markdown)
    folder = Path(os.path.relpath(store / name, page_dir)).as_posix()
    lines = [f"## {name}", "", f"**Data set.** {data}", "", found["claim"], "", found["command"], "",
             found["verdict"], ""]
    if found["figure"]:
        lines += [f"![{name}]({folder}/{found['figure']})", ""]
    lines += [f"Table and notes: [{folder}/findings.md]({folder}/findings.md) ([CSV]({folder}/findings.csv)).", ""]
    return "\n".join(lines)


def table_row(name: str, markdown: str, page: Path, readme_dir: Path, data: str) -> str:
    """The README's row of one experiment: its data set, claim, the verdict's lead words, a link to its entry."""
    found = parts(markdown)
    claim = found["claim"].removeprefix("**Claim.**").strip()
    lead = re.match(r"\*\*(.+?)\*\*", found["verdict"])
    verdict = lead.group(1).rstrip(":.") if lead else found["verdict"].split(":", 1)[0]
    link = Path(os.path.relpath(page, readme_dir)).as_posix()
    return f"| [{name}]({link}#{name}) | {data} | {claim} | {verdict} |"


def collect(findings: Path, store: Path) -> dict[str, str]:
    """{experiment: its findings.md text} for those with findings; copies each folder into ``store``."""
    found = {}
    for name in NAMES:
        source = findings / name / "findings.md"
        if not source.is_file():
            continue
        target = store / name
        if target.resolve() != (findings / name).resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(findings / name, target)
        found[name] = source.read_text()
    return found


def check_markers(path: Path, begin: str, end: str, flag: str) -> str:
    """The file's text; ``PagesError`` unless it has one ``begin`` marker followed by one ``end`` marker."""
    if not path.is_file():
        raise PagesError(f"{flag} {path}: no such file")
    text = path.read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise PagesError(f"{path}: needs one {begin} line followed by one {end} line")
    return text


def rewrite(path: Path, begin: str, end: str, body: str) -> None:
    """Replace the text between the markers of ``path`` with ``body`` (written whole, then renamed)."""
    head, rest = path.read_text().split(begin, 1)
    tail = rest.split(end, 1)[1]
    staging = path.with_name(path.name + ".writing")
    staging.write_text(f"{head}{begin}\n{body.rstrip()}\n{end}{tail}")
    staging.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.folklore.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--findings", default="findings", help="folder the experiments wrote (default: findings)")
    parser.add_argument("--page", default="docs/findings.md", help="the findings page (default: docs/findings.md)")
    parser.add_argument("--readme", default="README.md", help="the README with the table (default: README.md)")
    parser.add_argument("--store", default="analysis/findings",
                        help="where the findings are kept in the repository (default: analysis/findings)")
    args = parser.parse_args(argv)
    page, readme, findings, store = Path(args.page), Path(args.readme), Path(args.findings), Path(args.store)
    try:
        check_markers(page, BEGIN, END, "--page")  # before anything is copied
        check_markers(readme, TABLE_BEGIN, TABLE_END, "--readme")
        found = collect(findings, store)
        if not found:
            raise PagesError(f"--findings {findings}: no <experiment>/findings.md there; run "
                             "`python run.py experiment=NAME` first")
        data = data_sets(found)
        body = "\n".join(entry(name, text, store, page.resolve().parent, data[name]) for name, text in found.items())
        rows = [table_row(name, text, page.resolve(), readme.resolve().parent, data[name])
                for name, text in found.items()]
        rewrite(page, BEGIN, END, body)
        rewrite(readme, TABLE_BEGIN, TABLE_END,
                "\n".join(["| finding | data | claim | verdict |", "|---|---|---|---|", *rows]))
    except PagesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{page} and the table in {readme} rewritten from {', '.join(found)}; copies in {store}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
