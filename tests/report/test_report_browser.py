"""The report in a real browser: headless Chromium (Debian package `chromium`) renders it offline,
the screenshot is not blank and shows the figures, and every section heading is in the DOM."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers.paper_files import write_paper_files
from helpers.report import build_analysis
from valuescope.report import TITLES, write_report

PIL = pytest.importorskip("PIL.Image")  # Pillow comes with matplotlib

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
if CHROMIUM is None:
    if os.environ.get("VALUESCOPE_REQUIRE_CHROMIUM"):
        pytest.fail("chromium not found and VALUESCOPE_REQUIRE_CHROMIUM is set", pytrace=False)
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    analysis = build_analysis(tmp)
    write_paper_files(analysis)  # the paper's further analyses, so their sections have content
    html_path, _ = write_report(analysis)
    return html_path


def test_screenshot_is_not_blank(html: Path, tmp_path: Path):
    shot = tmp_path / "shot.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", html.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    img = PIL.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    px = np.asarray(img, dtype=np.int32).reshape(-1, 3)
    ink = int((px.sum(axis=1) < 600).sum())  # text, bars, axes: not white or near it
    assert ink > 0.01 * len(px), ink
    # the first screen shows the top-values chart: its bar colour (#3b6ea8) must be painted
    bars = int((np.abs(px - [59, 110, 168]).max(axis=1) < 12).sum())
    assert bars > 2000, bars
    assert len(np.unique(px, axis=0)) > 50


def test_every_heading_in_dom(html: Path, tmp_path: Path):
    res = chromium(tmp_path, "--dump-dom", html.as_uri())
    headings = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", res.stdout)]
    assert headings == list(TITLES.values()), res.stderr[-2000:]
    assert res.stdout.count("<svg") >= 10


def test_the_paper_sections_render_their_figures_and_tables(html: Path, tmp_path: Path):
    res = chromium(tmp_path, "--dump-dom", html.as_uri())
    for sid in ("within_tasks", "explicit", "pairs", "watch"):
        found = re.search(rf'<section id="{sid}">(.*?)</section>', res.stdout, re.S)
        assert found, (sid, res.stderr[-2000:])
        body = found.group(1)
        assert "Not computed" not in body, sid
        assert "<table" in body or sid == "watch", sid
        if sid != "watch":
            assert "<svg" in body, sid
    watch = re.search(r'<section id="watch">(.*?)</section>', res.stdout, re.S)
    assert watch and "not published (below the thresholds or absent)" in watch.group(1)
