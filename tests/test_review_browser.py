"""Real-browser test of the review pages: headless Chromium driven by Playwright.

Opens the browse page on a generated rollout, checks that the video plays and the
curve cursor follows it (and that clicking the curves seeks), then labels three
query pairs with the keyboard on the label page and checks the database rows.

Uses the system Chromium (Debian's ``chromium``; ``.ci/run`` installs it and the
``playwright`` package); skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlearn.recording import RolloutRecord, write_sidecar, write_video
from rewardlearn.review import ClipRef, LabelStore
from rewardlearn.review.server import ReviewServer

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
FPS = 10.0
STEPS = 40


def chromium_path() -> str | None:
    """The system Chromium: $REWARDLEARN_CHROMIUM, else chromium / chromium-browser on PATH."""
    env = os.environ.get("REWARDLEARN_CHROMIUM")
    if env and Path(env).is_file():
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


def frames(n: int, hue: int) -> np.ndarray:
    """``n`` 64x64 frames of a square moving left to right on a coloured background."""
    out = np.zeros((n, 64, 64, 3), dtype=np.uint8)
    out[..., hue % 3] = 60
    for t in range(n):
        x = int(4 + 48 * t / max(1, n - 1))
        out[t, 24:40, x:x + 12] = 255
    return out


def make_root(root: Path) -> None:
    """One run of two rollouts (with learned reward, a signal and env info) and 3 queries' clips."""
    run = root / "demo_run"
    for ep in range(2):
        t = np.arange(STEPS)
        env_r = np.sin(t / 6.0) + ep
        learned = np.cos(t / 6.0) - ep
        rec = RolloutRecord(
            episode=ep, seed=100 + ep, length=STEPS, env_return=float(env_r.sum()),
            learned_return=float(learned.sum()), success=bool(ep), terminated=bool(ep),
            truncated=not ep, env_reward=env_r.tolist(), learned_reward=learned.tolist(),
            signals={"progress": (t / STEPS).tolist()},
            env_info={"stage": (t // 10).astype(float).tolist()},
        )
        video = write_video(run / f"episode_{ep:03d}.mp4", frames(STEPS + 1, ep), FPS)
        rec.video, rec.fps = video.name, FPS
        write_sidecar(video.with_suffix(".json"), rec,
                      {"run": "demo_run", "env": "toy", "agent": "ppo", "reward": "mlp"})
    for q in range(3):
        for side in ("left", "right"):
            write_video(root / "queries" / f"q{q}_{side}.mp4", frames(12, q), FPS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("no system Chromium (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; .ci/run does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    make_root(tmp_path)
    with ReviewServer(tmp_path, db=tmp_path / "labels.sqlite", port=0) as srv:
        for q in range(3):
            srv.store.add_query("demo_run", ClipRef(f"queries/q{q}_left.mp4", 0, 12),
                                ClipRef(f"queries/q{q}_right.mp4", 0, 12), {"segment": q})
        yield srv


def test_browse_plays_video_and_cursor_follows(browser: Any, server: ReviewServer) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/#run=demo_run&rollout=episode_001")
    page.wait_for_selector("#runs li[data-run='demo_run']")
    page.wait_for_selector("#rollout-rows tr[data-rollout='episode_001'].selected")
    # The video plays: currentTime advances and the cursor's frame follows it.
    page.wait_for_function("document.getElementById('video').currentTime > 0.4", timeout=10_000)
    page.wait_for_function("Number(document.body.dataset.frame) >= 3", timeout=10_000)
    t1 = page.evaluate("document.getElementById('video').currentTime")
    page.wait_for_timeout(300)
    assert page.evaluate("document.getElementById('video').currentTime") > t1
    assert page.locator("#ro-title").inner_text() == "Episode 1"
    # Click three quarters along the curves: the video seeks to that frame.
    page.evaluate("document.getElementById('video').pause()")
    box = page.locator("#curves").bounding_box()
    assert box is not None
    left, right = 150, 64  # CurvePlot margins
    x = box["x"] + left + 0.75 * (box["width"] - left - right)
    page.mouse.click(x, box["y"] + 40)
    page.wait_for_function("Number(document.body.dataset.frame) === 30", timeout=5_000)
    assert abs(page.evaluate("document.getElementById('video').currentTime") - 3.05) < 0.06
    # Keyboard frame stepping moves the cursor too.
    page.keyboard.press(".")
    page.wait_for_function("Number(document.body.dataset.frame) === 31", timeout=5_000)
    assert errors == []
    page.close()


def test_label_three_pairs_with_keyboard(browser: Any, server: ReviewServer) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/label")
    page.wait_for_selector("body[data-state='need-name']")
    page.fill("#annotator", "alice")
    page.press("#annotator", "Enter")
    page.wait_for_selector("body[data-state='ready'][data-query-id='1']")
    # Both clips play in a loop.
    page.wait_for_function(
        "['left', 'right'].every(s => document.getElementById('video-' + s).currentTime > 0.2)",
        timeout=10_000)
    assert page.evaluate("localStorage.getItem('rewardlearn.annotator')") == "alice"
    for qid, key in ((1, "ArrowLeft"), (2, "2"), (3, "e")):
        page.wait_for_selector(f"body[data-state='ready'][data-query-id='{qid}']")
        page.keyboard.press(key)
    page.wait_for_selector("body[data-state='empty']")
    assert "3 of 3 answered" in page.locator("#progress-text").inner_text()
    assert errors == []
    page.close()

    rows = LabelStore(server.app.db_path).answers_after(0)
    assert [(a.seq, a.query_id, a.label, a.annotator) for a in rows] == [
        (1, 1, "left", "alice"), (2, 2, "right", "alice"), (3, 3, "equal", "alice")]
    assert all(a.run == "demo_run" and a.left.video == f"queries/q{a.query_id - 1}_left.mp4"
               for a in rows)
    assert server.store.pending() == 0
