"""The report page, opened in a real headless browser (Debian's chromium)."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import assert_user_error, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                   reason="chromium not installed (.ci/run installs it; CI fails without it)")


def open_in_browser(page, tmp_path) -> tuple[str, str]:
    """Load ``page`` in headless chromium; return the <body> tag after load and the console messages."""
    assert CHROMIUM, "chromium is required (apt-get install chromium)"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    body = re.search(r"<body[^>]*>", proc.stdout)
    console = [l for l in proc.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    return (body.group(0) if body else ""), "\n".join(console)


@needs_browser
def test_report_loads_with_all_images(tgs_folder, tmp_path):
    root, _ = tgs_folder
    results = tmp_path / "results"
    proc = run_cli("train", "--data", str(root), "--out", str(results / "run1"), "--quiet", "--set", "epochs=2",
                   "--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", "--results", str(results))  # the newest run by default
    assert proc.returncode == 0, proc.stderr
    page = results / "run1" / "report.html"
    text = page.read_text()
    for heading in ("Learning curves", "Best model on validation images", "Best cases", "Worst cases", "Score by coverage class"):
        assert heading in text
    body, console = open_in_browser(page, tmp_path)
    n = text.count("<img ")
    assert n >= 3 and f'data-images-loaded="{n}/{n}"' in body, body
    assert console == "", console
    # the check can fail: a page with a broken image is caught
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace("data:image/png;base64,iVBOR", "data:image/png;base64,XXXX", 1))
    body, _ = open_in_browser(broken, tmp_path)
    assert f'data-images-loaded="{n - 1}/{n}"' in body, body


def test_report_bad_requests(tmp_path):
    (tmp_path / "results").mkdir()
    assert_user_error(run_cli("report", "--results", str(tmp_path / "results")), "no search or training run")
    (tmp_path / "results" / "empty").mkdir()
    assert_user_error(run_cli("report", "empty", "--results", str(tmp_path / "results")), "neither leaderboard.csv")
