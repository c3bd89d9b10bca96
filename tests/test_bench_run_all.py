"""bench/run_all.py: discovery, quick tables kept apart from the published ones, provenance."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE = '''import argparse, pathlib
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()
out = pathlib.Path(__file__).parent / "results" / "{name}.md"
out.write_text("## {name} " + ("quick" if args.quick else "full") + "\\n")
'''


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all_under_test",
                                                  ROOT / "bench" / "run_all.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all_under_test", mod)  # dataclasses look it up
    spec.loader.exec_module(mod)
    bench = tmp_path / "bench"
    (bench / "results").mkdir(parents=True)
    (bench / "_benchmarks_md.py").write_text((ROOT / "bench" / "_benchmarks_md.py")
                                                  .read_text())
    for name in ("alpha", "foundation"):
        (bench / f"bench_{name}.py").write_text(FAKE.format(name=name))
    (bench / "bench_noquick.py").write_text("print('no quick flag here')\n")
    (bench / "bench_vlm.py").write_text("print('listed with options it lacks')\n")
    monkeypatch.setitem(mod.SCRIPTS, "alpha", mod.Spec(["--quick"], [], seeds="0"))
    monkeypatch.setitem(mod.SCRIPTS, "noquick", mod.Spec(None, [], note="no quick mode"))
    (bench / "results" / "foundation.md").write_text("## foundation published\n")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "BENCH", bench)
    monkeypatch.setattr(mod, "RESULTS", bench / "results")
    monkeypatch.setattr(mod, "QUICK", bench / "_work" / "quick")
    monkeypatch.setattr(sys, "path", [*sys.path])
    monkeypatch.delitem(sys.modules, "_benchmarks_md", raising=False)
    return mod


def test_quick_keeps_published_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    mod = _load(tmp_path, monkeypatch)
    assert mod.main(["--quick", "--skip", "preference", "progress_shaping"]) == 0
    bench = tmp_path / "bench"
    quick = bench / "_work" / "quick"
    # the published table is restored; the quick one is collected apart, with provenance
    assert (bench / "results" / "foundation.md").read_text() == "## foundation published\n"
    assert not (bench / "results" / "alpha.md").exists()
    text = (quick / "results" / "alpha.md").read_text()
    assert text.startswith("## alpha quick") and "run_all.py --quick" in text
    assert "commit" in text and "seeds" in text and "machine" in text
    assert "## foundation quick" in (quick / "BENCHMARKS.md").read_text()
    out = capsys.readouterr().out
    assert "perceptual: bench/bench_perceptual.py not found, skipped" in out
    assert "skipped (no quick mode)" in out  # bench_noquick.py has no --quick flag
    assert "bench/bench_vlm.py has no --quick, --out; skipped" in out


def test_every_bench_script_is_listed_with_its_arguments() -> None:
    """``run_all.SCRIPTS`` names every ``bench/bench_*.py`` (no grepping for flags), and every
    flag a spec passes exists in its script."""
    spec = importlib.util.spec_from_file_location("run_all_listed", ROOT / "bench" / "run_all.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all_listed"] = mod
    spec.loader.exec_module(mod)
    present = mod.discover()
    assert set(present) == set(mod.SCRIPTS)
    for name, script in mod.SCRIPTS.items():
        source = present[name].read_text()
        if "add_paths(" in source:  # bench/_common.add_paths defines --work and --out
            source += " --work --out"
        for args in (script.quick or [], script.full or []):
            flags = [a for a in [*args, script.out_flag or ""] if a.startswith("--")]
            assert all(f in source for f in flags), (name, flags)
    with pytest.raises(KeyError, match="not listed"):
        mod.spec_for("unlisted", ROOT / "bench" / "bench_unlisted.py")


def test_full_regenerates_benchmarks_md(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _load(tmp_path, monkeypatch)
    assert mod.main(["--full", "--only", "alpha", "noquick"]) == 0
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "## alpha full" in md and "## foundation published" in md
    with pytest.raises(SystemExit):
        mod.main(["--full", "--only", "nope"])
