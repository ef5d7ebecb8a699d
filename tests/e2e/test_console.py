"""The web console end to end: a real ``tusk serve``, driven by headless Chromium (Playwright).

One root is set up once for the module, through the CLI against the server: a plain repo
``raw`` (two text files and a PNG), a chain ``raw -> upper -> joined``, a pipeline ``picky``
whose datum for ``b.txt`` fails (it writes a line to stderr and exits 3), and a repo ``notes``
with a directory. The tests only click and read what the page shows: the DAG with every node,
edge and job state (and a state changing live after a ``put file``), the failed datum's log
reached by clicks alone, the repo browser (commits, files, text and image previews, download),
the pipeline's spec, a file's lineage, and the token: without it every data call is refused
and the page asks for it.

Chromium is Debian's (``/usr/bin/chromium``), launched by Playwright through its executable
path. Without it the module is skipped, unless ``TUSK_REQUIRE_BROWSER=1`` (CI), where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from pipeline_helpers import Pipes
from server_helpers import TOKEN, Server, remote_tusk, running_server

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000

UPPER = ('n=$(basename "$raw"); case "$n" in slow*) sleep 5;; esac; '
         'case "$n" in *.txt) tr a-z A-Z < "$raw" > "/pfs/out/$n";; *) cp "$raw" "/pfs/out/$n";; esac; '
         'echo "upper: $n"')
PICKY = ('n=$(basename "$raw"); if [ "$n" = b.txt ]; then echo "picky: cannot handle $n" >&2; exit 3; fi; '
         'cp "$raw" "/pfs/out/$n"')


def png(width: int = 12, height: int = 8) -> bytes:
    """A small RGB gradient as a PNG, built by hand (no imaging library needed)."""
    rows = b"".join(b"\0" + b"".join(bytes((x * 20 % 256, y * 30 % 256, 160)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()


def pipeline(name: str, repo: str, glob: str, script: str) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "description": f"the {name} step",
            "input": {"pfs": {"repo": repo, "glob": glob}}, "transform": {"cmd": ["sh", "-c", script]}}


SPECS = [
    pipeline("upper", "raw", "/*", UPPER),
    pipeline("joined", "upper", "/", "cat /pfs/upper/*.txt > /pfs/out/all.txt"),
    pipeline("picky", "raw", "/*", PICKY),
]


class Site(NamedTuple):
    server: Server
    remote: Any  # a conftest.Tusk whose commands go to the server

    @property
    def url(self) -> str:
        return self.server.url


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("TUSK_REQUIRE_BROWSER") == "1":
            pytest.fail("TUSK_REQUIRE_BROWSER=1 but there is no chromium (apt-get install chromium)")
        pytest.skip("no chromium installed (apt-get install chromium) for the console tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(module_tusk: Any) -> Iterator[Site]:
    with running_server(module_tusk) as server:
        remote = remote_tusk(module_tusk, server)
        p = Pipes(remote)
        remote.ok("create", "repo", "raw", "-d", "the inputs")
        remote.ok("put", "file", "raw@master:/a.txt", "-f", "-", input="hello a\n")
        remote.ok("put", "file", "raw@master:/b.txt", "-f", "-", input="hello b\n")
        remote.ok("put", "file", "raw@master:/pic.png", "-f", "-", input=PNG)
        remote.ok("create", "repo", "notes")
        remote.ok("put", "file", "notes@master:/guide/intro.txt", "-f", "-", input="read me first\n")
        for spec in SPECS:
            p.create(spec)
        p.wait("joined@master", timeout=90)
        p.wait("picky@master", timeout=90, ok=False)
        yield Site(server, remote)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors too (a Content-Security-Policy violation is one); refused calls aside.
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_console(page: Any, site: Site, route: str = "/") -> None:
    """Load the console with the token in the URL (which the page moves out of it)."""
    page.goto(f"{site.url}/#token={TOKEN}")
    page.wait_for_selector("[data-testid=dag]")
    if route != "/":
        page.evaluate("route => { location.hash = route; }", "#" + route)


def state_text(page: Any, name: str) -> str:
    return page.locator(f"[data-testid='dag-state-{name}']").text_content() or ""


def test_dag_renders_every_node_edge_and_state_and_updates_live(page: Any, site: Site) -> None:
    open_console(page, site)
    assert "token" not in page.url  # moved to sessionStorage, off the address bar
    for kind, name in [("repo", "raw"), ("repo", "notes"), ("repo", "upper"), ("repo", "joined"),
                       ("repo", "picky"), ("pipeline", "upper"), ("pipeline", "joined"),
                       ("pipeline", "picky")]:
        assert page.locator(f"[data-testid='dag-node-{kind}-{name}']").count() == 1, (kind, name)
    edges = {(e.get_attribute("data-from"), e.get_attribute("data-to"))
             for e in page.locator("[data-testid=dag-edge]").all()}
    r, pl = "repo:default/", "pipe:default/"
    assert edges == {(r + "raw", pl + "upper"), (pl + "upper", r + "upper"), (r + "upper", pl + "joined"),
                     (pl + "joined", r + "joined"), (r + "raw", pl + "picky"), (pl + "picky", r + "picky")}
    assert state_text(page, "upper") == "SUCCESS"
    assert state_text(page, "joined") == "SUCCESS"
    assert state_text(page, "picky") == "FAILURE"
    assert page.get_attribute("[data-testid='dag-node-pipeline-picky']", "data-state") == "FAILURE"

    # Live: a new input file starts jobs; the node follows them without a reload.
    page.evaluate("window.notReloaded = true")
    site.remote.ok("put", "file", "raw@master:/slow.txt", "-f", "-", input="slow\n")
    page.wait_for_function("() => document.querySelector(\"[data-testid='dag-state-upper']\")"
                           ".textContent === 'RUNNING'", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector(\"[data-testid='dag-state-upper']\")"
                           ".textContent === 'SUCCESS'", timeout=90_000)
    assert page.evaluate("window.notReloaded") is True


def test_a_failed_datums_log_is_reached_by_clicks(page: Any, site: Site) -> None:
    open_console(page, site)
    page.click("[data-testid='dag-node-pipeline-picky']")
    page.wait_for_selector("[data-testid=pipeline-name]")
    assert page.text_content("[data-testid=pipeline-name]") == "picky"
    page.locator("[data-testid=job-row][data-state=FAILURE] a").first.click()
    failed = page.locator("[data-testid=datum-row][data-state=FAILED]")
    failed.first.wait_for()
    assert failed.count() == 1
    assert "raw:/b.txt" in (failed.first.text_content() or "")
    failed.first.locator("a").click()
    log = page.locator("[data-testid=datum-log]")
    log.wait_for()
    assert "picky: cannot handle b.txt" in (log.text_content() or "")
    assert page.locator("[data-testid=datum-log] .stderr").count() >= 1
    assert page.text_content("[data-testid=datum-state]") == "FAILED"
    assert "/datum/" in page.url


def test_repo_browser_commits_files_previews_and_download(page: Any, site: Site) -> None:
    open_console(page, site)
    page.click("[data-testid='dag-node-repo-raw']")
    page.wait_for_selector("[data-testid=file-table]")
    assert page.text_content("[data-testid=repo-name]") == "raw"
    assert page.locator("[data-testid=branch-select] option").all_text_contents() == ["master"]
    assert page.locator("[data-testid=commit-item]").count() >= 3  # one commit per put file
    paths = [r.get_attribute("data-path") for r in page.locator("[data-testid=file-row]").all()]
    assert {"/a.txt", "/b.txt", "/pic.png"} <= set(paths)

    # A text file's preview.
    page.click("[data-testid=file-row][data-path='/a.txt'] a")
    page.wait_for_selector("[data-testid=preview-text]")
    assert page.text_content("[data-testid=preview-text]") == "hello a\n"

    # An image renders, and the download gives the file's bytes.
    page.click("[data-testid=file-row][data-path='/pic.png'] a")
    page.wait_for_function("() => { const i = document.querySelector('[data-testid=preview-image]');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert page.evaluate("document.querySelector('[data-testid=preview-image]').naturalWidth") == 12
    with page.expect_download() as info:
        page.click("[data-testid=download]")
    download = info.value
    assert download.suggested_filename == "pic.png"
    assert Path(download.path()).read_bytes() == PNG
    # It came through a one-use link: the same link again is refused.
    assert "/console/download/" in download.url
    again = httpx.get(download.url)
    assert again.status_code == 404 and "used already" in again.text

    # An older commit: the first one held only a.txt.
    page.locator("[data-testid=commit-item]").last.click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=file-row]')]"
                           ".map(r => r.dataset.path).join() === '/a.txt'")

    # Directories: into one, and a file in it.
    page.evaluate("location.hash = '#/repo/notes'")
    page.click("[data-testid=file-row][data-path='/guide'] a")
    page.wait_for_selector("[data-testid=file-row][data-path='/guide/intro.txt']")
    assert "guide" in (page.text_content("[data-testid=path]") or "")
    page.click("[data-testid=file-row][data-path='/guide/intro.txt'] a")
    page.wait_for_selector("[data-testid=preview-text]")
    assert page.text_content("[data-testid=preview-text]") == "read me first\n"


def test_pipeline_view_shows_the_spec_and_jobs(page: Any, site: Site) -> None:
    open_console(page, site, "/pipeline/upper")
    page.wait_for_selector("[data-testid=pipeline-spec]")
    assert json.loads(page.text_content("[data-testid=pipeline-spec]") or "") == SPECS[0]
    states = [r.get_attribute("data-state") for r in page.locator("[data-testid=job-row]").all()]
    assert states and "SUCCESS" in states
    assert page.text_content("[data-testid=pipeline-state]") == "running"


def test_lineage_of_an_output_file_reaches_its_input_files(page: Any, site: Site) -> None:
    open_console(page, site, "/repo/joined")
    page.click("[data-testid=file-row][data-path='/all.txt'] a")
    page.click("[data-testid=lineage-link]")
    page.wait_for_selector("[data-testid=lineage]")
    nodes = page.locator("[data-testid=lineage-node]")
    found = {(n.get_attribute("data-repo"), n.get_attribute("data-path"), n.get_attribute("data-origin"))
             for n in nodes.all()}
    assert ("joined", "/all.txt", "pipeline") in found
    assert ("upper", "/a.txt", "pipeline") in found
    assert ("raw", "/a.txt", "input") in found and ("raw", "/b.txt", "input") in found
    assert "original input" in (page.locator("[data-testid=lineage-node][data-repo=raw]").first.text_content() or "")


def test_without_the_token_data_calls_are_refused_and_the_page_asks_for_it(page: Any, site: Site) -> None:
    # The page and its assets are public; every data call needs the token.
    for path in ("/", "/console/app.js", "/console/style.css"):
        assert httpx.get(site.url + path).status_code == 200, path
    assert httpx.get(site.url + "/console/nope.js").status_code == 401
    assert httpx.post(site.url + "/v1/pfs/list_repos", json={}).status_code == 401
    assert f"console: {site.url}/" in site.server.log.read_text()

    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 and "/v1/" in r.url else None)
    page.goto(site.url + "/")
    form = page.locator("[data-testid=token-form]")
    form.wait_for()
    assert any(u.endswith(("/v1/pfs/list_repos", "/v1/pps/list_pipelines")) for u in refused)
    assert page.locator("[data-testid=dag-node-repo-raw]").count() == 0

    page.fill("[data-testid=token-input]", "wrong")
    page.click("[data-testid=token-submit]")
    page.wait_for_selector("[data-testid=token-error]:not([hidden])")
    assert "refused" in (page.text_content("[data-testid=token-error]") or "")

    page.fill("[data-testid=token-input]", TOKEN)
    page.click("[data-testid=token-submit]")
    page.wait_for_selector("[data-testid='dag-node-repo-raw']")
    assert not form.is_visible()


def test_serve_prints_the_console_url_with_a_generated_token(tusk: Any) -> None:
    from tusk.api.console import console_url

    with running_server(tusk, token=None) as s:
        out = s.log.read_text()
        token = out.split("auth token: ", 1)[1].split()[0]
        assert f"console: {s.url}/#token={token}\n" in out
        assert httpx.get(s.url + "/").headers["content-security-policy"].startswith("default-src 'none'")
    assert console_url("0.0.0.0", 1650, None) == "http://127.0.0.1:1650/"
    assert console_url("::", 1650, "t") == "http://[::1]:1650/#token=t"
