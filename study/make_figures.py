#!/usr/bin/env python
"""Rebuild every figure and generated table of the docs from the recorded results (seconds; no model, no data).

    python -m study.make_figures            # redraw figures, rewrite the tables in the docs
    python -m study.make_figures --check    # only report docs whose tables disagree with results/ (exit 1)

Figures: training curves and confusion matrices of every recorded run (results/*/), and the study's figures in
docs/figures/ (complexity, latents, permutation, depth, regularisation, heads, stem epochs, position use over
training), each drawn when its result file exists. Tables: the blocks between `<!-- generated:NAME -->` markers in
docs/*.md and README.md. The runs themselves are separate commands, listed in docs/report.md.
"""

import argparse
import sys
from pathlib import Path

from study.report import (
    draw_figures,
    marker_names,
    tables,
    update_document,
    write_text_atomic,
)

ROOT = Path(__file__).resolve().parent.parent


def documents(root: Path) -> list[Path]:
    return sorted(root.glob("docs/*.md")) + [root / "README.md"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(ROOT), help="Repository root (results/ and docs/ under it).")
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a table is out of date.")
    args = parser.parse_args(argv)
    root = Path(args.root)

    generated = tables(root / "results")
    stale, unknown = [], []
    for document in documents(root):
        text = document.read_text()
        unknown += [f"{document.name}: {name}" for name in marker_names(text) if name not in generated]
        updated = update_document(text, generated)
        if updated != text:
            stale.append(document)
            if not args.check:
                write_text_atomic(document, updated)
    if unknown:
        print("markers without a result file: " + ", ".join(unknown), file=sys.stderr)
    if args.check:
        for document in stale:
            print(f"out of date: {document.relative_to(root)} (run python -m study.make_figures)", file=sys.stderr)
        return 1 if stale or unknown else 0
    for path in draw_figures(root / "results", root / "docs" / "figures"):
        print(f"drew {path.relative_to(root) if path.is_relative_to(root) else path}")
    for document in stale:
        print(f"updated tables in {document.relative_to(root)}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
