"""Regenerate BENCHMARKS.md from the tables the bench scripts wrote to bench/results/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["foundation", "preference", "vlm", "progress_shaping", "perceptual", "drs", "outcomes",
         "evaluate"]


def main(results: Path = ROOT / "bench" / "results", out: Path = ROOT / "BENCHMARKS.md") -> None:
    """Concatenate ``results/*.md`` (in ORDER, then by name) into ``out``."""
    files = sorted(results.glob("*.md"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    parts = ["# Benchmarks\n",
             "Measured on this project's CI machine kind (2 CPU cores, no GPU) unless a table "
             "says otherwise. Each table names the command that produced it; speeds are "
             "ratios within one run. Regenerate this file with "
             "`python bench/_benchmarks_md.py` after running the scripts.\n"]
    parts += [p.read_text() for p in files]
    out.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
