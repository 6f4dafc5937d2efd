"""The report in headless Chromium: it loads with no request, images decode, it is not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/system-packages installs it in CI)")
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_report_loads_in_chromium_with_every_image_decoded(synthetic_report, tmp_path):
    """After load the page's self-check finds all images decoded and no network request."""
    html, _, _ = synthetic_report
    result = _chromium(tmp_path, "--virtual-time-budget=10000", "--enable-logging=stderr",
                       "--v=0", "--dump-dom", html.as_uri())
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    total = re.search(r'data-images-total="(\d+)"', dom)
    ok = re.search(r'data-images-ok="(\d+)"', dom)
    requests = re.search(r'data-network-requests="(\d+)"', dom)
    assert total and ok and requests, "the page's load handler did not run"
    assert int(total[1]) > 10
    assert ok[1] == total[1]  # every <img> decoded (naturalWidth > 0)
    assert requests[1] == "0"  # no resource fetched: everything is inline
    blocked = [line for line in result.stderr.splitlines()
               if "net::ERR" in line or "Content Security Policy" in line]
    assert not blocked, blocked


def test_report_screenshot_is_not_blank(synthetic_report, tmp_path):
    """A 1280x4000 screenshot has real content: many distinct grey levels and variance."""
    import matplotlib.image as mpimg

    html, out, _ = synthetic_report
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000",
                       "--virtual-time-budget=10000", html.as_uri())
    assert shot.is_file(), result.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    grey = pixels.mean(axis=2)
    assert grey.std() > 0.05  # a blank or single-colour page has ~0
    assert len(np.unique(np.round(grey, 2))) > 50
    # the figure area (right of the table of contents) is not empty either
    assert grey[:, 300:].std() > 0.05
    shutil.copy(shot, out / "report_screenshot.png")  # kept for a person to look at
