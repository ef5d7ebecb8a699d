"""Regenerate the web console's screenshots in ``docs/console/`` from a demo root.

Builds the images -> edges -> montage DAG of ``examples/opencv`` in a temporary root (the same
steps as ``scripts/demo.sh``), then uploads a corrupt image so one ``edges`` datum fails. Runs
``tusk serve`` over it, opens the console in headless Chromium (Debian's ``chromium``, driven by
Playwright) and saves the main views, reached by clicks as a user would::

    .venv/bin/python scripts/console_screenshots.py [--out docs/console] [--keep]

Needs the ``examples`` extra (Pillow) and ``chromium``; takes about half a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_DIR / "examples" / "opencv"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_BYTES = 200 * 1024
VIEWPORT = {"width": 1280, "height": 800}


def tusk_exe() -> str:
    candidate = Path(sys.executable).parent / "tusk"
    found = str(candidate) if candidate.exists() else shutil.which("tusk")
    if found is None:
        sys.exit("console_screenshots: the 'tusk' command is not installed (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """A temporary root, a ``tusk serve`` over it, and the CLI pointed at that server."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.exe = tusk_exe()
        self.token = secrets.token_urlsafe(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
        self.env["TUSK_ROOT"] = str(work / "root")
        # The example code runs `python3`: the one with Pillow (as scripts/demo.sh sets PATH).
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.work / "serve.log", "wb")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(
            [self.exe, "serve", "--address", f"127.0.0.1:{self.port}", "--auth-token", self.token],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"console_screenshots: tusk serve did not start: {(self.work / 'serve.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def tusk(self, *args: str, check: bool = True) -> str:
        env = dict(self.env, TUSK_ADDRESS=self.url, TUSK_AUTH_TOKEN=self.token,
                   TUSK_CONFIG=str(self.work / "config.json"), TUSK_ROOT=str(self.work / "client"))
        p = subprocess.run([self.exe, *args], env=env, cwd=self.work, capture_output=True, text=True,
                           timeout=300, check=False)
        if check and p.returncode != 0:
            sys.exit(f"console_screenshots: tusk {' '.join(args)} failed: {p.stderr.strip()}")
        return p.stdout

    def build(self) -> None:
        photos = self.work / "photos"
        subprocess.run([sys.executable, str(EXAMPLES / "make_images.py"), str(photos),
                        "liberty", "kitten", "harbor"], check=True)
        for name in ("edges", "montage"):
            spec = (EXAMPLES / f"{name}.json").read_text().replace("EXAMPLES", str(EXAMPLES))
            (self.work / f"{name}.json").write_text(spec)
        self.tusk("create", "repo", "images", "-d", "photos to edge-detect")
        for name in ("liberty", "kitten"):
            self.tusk("put", "file", f"images@master:/{name}.png", "-f", str(photos / f"{name}.png"))
        self.tusk("create", "pipeline", "-f", "edges.json")
        self.tusk("create", "pipeline", "-f", "montage.json")
        self.tusk("wait", "commit", "montage@master", "--timeout", "180")
        self.tusk("put", "file", "images@master:/harbor.png", "-f", str(photos / "harbor.png"))
        self.wait_head("images")
        # A truncated upload: its edges datum fails with Pillow's error in the datum's log.
        (self.work / "scan.png").write_bytes((photos / "kitten.png").read_bytes()[:64])
        self.tusk("put", "file", "images@master:/scan.png", "-f", str(self.work / "scan.png"))
        self.wait_head("images")

    def last_good(self, repo: str) -> str:
        """The newest commit of repo@master that has files and no error."""
        commits = json.loads(self.tusk("list", "commit", f"{repo}@master", "--raw"))
        return next(c["id"] for c in commits if not c["error"] and c["file_count"])

    def wait_head(self, repo: str) -> None:
        head = json.loads(self.tusk("list", "commit", f"{repo}@master", "-n", "1", "--raw"))[0]["id"]
        self.tusk("wait", "commit", head, "--timeout", "180", check=False)


def shrink(path: Path) -> None:
    """Keep a screenshot under MAX_BYTES: a 256-color palette if the plain PNG is too big."""
    if path.stat().st_size <= MAX_BYTES:
        return
    from PIL import Image

    img = Image.open(path).convert("RGB")
    for colors in (256, 128, 64):
        buf = io.BytesIO()
        img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
        if buf.tell() <= MAX_BYTES or colors == 64:
            path.write_bytes(buf.getvalue())
            return


def shoot(page: Any, out: Path, name: str) -> None:
    page.wait_for_timeout(400)  # let the image and fonts settle
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    shrink(path)
    print(f"  {path.relative_to(REPO_DIR) if path.is_relative_to(REPO_DIR) else path}"
          f" ({path.stat().st_size // 1024} KB)")


def screenshots(demo: Demo, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        sys.exit("console_screenshots: needs chromium (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.set_default_timeout(30_000)
        page.goto(f"{demo.url}/#token={demo.token}")
        page.wait_for_selector("[data-testid='dag-node-pipeline-montage']")
        shoot(page, out, "dag")

        # The repo browser: the montage pipeline's output at its last good commit, previewed.
        page.click("[data-testid='dag-node-repo-montage']")
        page.click(f"[data-testid=commit-item][data-commit='{demo.last_good('montage')}']")
        page.click("[data-testid=file-row][data-path='/montage.png'] a")
        page.wait_for_function("() => { const i = document.querySelector('[data-testid=preview-image]');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        shoot(page, out, "repo-browser")

        # Lineage of the montage, from the file's button.
        page.click("[data-testid=lineage-link]")
        page.wait_for_selector("[data-testid=lineage]")
        shoot(page, out, "lineage")

        # The edges pipeline, its failed job's datums, and the failed datum's log.
        page.evaluate("location.hash = '#/'")
        page.click("[data-testid='dag-node-pipeline-edges']")
        page.locator("[data-testid=job-row][data-state=FAILURE] a").first.click()
        page.wait_for_selector("[data-testid=datum-row]")
        page.locator("[data-testid=datums]").scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        shoot(page, out, "pipeline")
        page.locator("[data-testid=datum-row][data-state=FAILED] a").first.click()
        log = page.locator("[data-testid=datum-log]")
        log.wait_for()
        page.evaluate("document.querySelector('[data-testid=datum-detail]').closest('section')"
                      ".scrollIntoView({block: 'start'})")
        page.evaluate("window.scrollBy(0, -64)")  # keep the sticky top bar off the card
        shoot(page, out, "datum-log")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "console", help="where to save the PNGs")
    ap.add_argument("--keep", action="store_true", help="keep the demo root and print where it is")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tusk-console-"))
    demo = Demo(work)
    try:
        demo.start()
        print(f"demo root {work / 'root'}, console {demo.url}/#token={demo.token}")
        demo.build()
        screenshots(demo, args.out.resolve())
    finally:
        demo.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
