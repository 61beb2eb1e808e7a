"""The α/β notebook in a real browser: JupyterLab headless on localhost, driven by Debian's Chromium.

Runs notebook 04 on the small benchmark once, in a temporary stand-in for the repository root (its benchmark and
feature cache go there, not into the checkout's ``data/``), then drives its explorer as a student would: drags the α
slider's handle (the recall readout changes), switches the dataset dropdown (the new top-5 strip is drawn,
not blank) and checks the layout at 1,100 px. Screenshots land in ``test-artifacts/``. Skipped when
Chromium or Playwright is absent (``.ci/run`` installs Chromium, so CI runs it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOTEBOOK = "notebooks/04_alpha_beta_sweeps.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "cirlab-browser-test"

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
from tests.helpers import make_notebook_root
from tests.test_widgets import ink_share  # (skips where ipywidgets is missing, as notebook 04 needs it)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_png(page, selector: str) -> bytes:
    """The PNG an ipywidgets Image shows (its ``src`` is a blob: URL), read back from the page."""
    data_uri = page.evaluate("""async (selector) => {
        const blob = await (await fetch(document.querySelector(selector).src)).blob();
        return await new Promise((done) => {
            const reader = new FileReader();
            reader.onload = () => done(reader.result);
            reader.readAsDataURL(blob);
        });
    }""", selector)
    return base64.b64decode(data_uri.split(",", 1)[1])


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                           " === 'idle'", timeout=timeout_ms)


@pytest.fixture(scope="module")
def notebook_root(tmp_path_factory) -> Path:
    """A temporary stand-in for the repository root holding a copy of notebook 04."""
    return make_notebook_root(tmp_path_factory.mktemp("notebook-root"), [NOTEBOOK])


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, notebook_root):
    """A JupyterLab server on localhost serving ``notebook_root``, with autosave off (the copy stays as it was)."""
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    port = free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={notebook_root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.open_browser=False", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("JupyterLab did not start within 120 s")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def notebook_page(jupyterlab, notebook_root):
    """Notebook 04 run to the end in headless Chromium, 1,100 px wide: the page showing its explorer."""
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        try:
            page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK}?token={TOKEN}")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session",
                                   timeout=120_000)
            page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   ".connectionStatus === 'connected'", timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".cirlib-recall-readout").first.wait_for(state="visible", timeout=600_000)
            wait_idle(page, 600_000)
            assert (notebook_root / "data" / "synth-small").is_dir(), "notebook 04 built its benchmark elsewhere"
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(notebook_page, request):
    """The explorer's page, scrolled to the explorer; a screenshot named after the test is taken afterwards."""
    notebook_page.locator(".cirlib-recall-readout").first.scroll_into_view_if_needed()
    yield notebook_page
    notebook_page.screenshot(path=str(ARTIFACTS / f"browser_04_{request.node.name}.png"), full_page=False)


def test_alpha_slider_updates_the_recall_readout(page):
    readout = page.locator(".cirlib-recall-readout").first
    before = readout.inner_text()
    handle = page.locator(".cirlib-alpha-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = page.locator(".cirlib-alpha-slider .noUi-target").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # Drag the handle to the far end of the track, whichever side it starts on.
    target = track["x"] + 2 if x > track["x"] + track["width"] / 2 else track["x"] + track["width"] - 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(target, y, steps=10)
    page.mouse.up()
    # The drag sends several values; JupyterLab may send them to a kernel subshell, so the kernel's idle
    # status does not mean they are all handled: wait until the readout shows the handle's final value.
    page.wait_for_function("([text]) => { const shown = document.querySelector('.cirlib-alpha-slider"
                           " .widget-readout').innerText; const readout = document.querySelector("
                           "'.cirlib-recall-readout').innerText; return readout !== text"
                           " && readout.startsWith(`α=${shown},`); }", arg=[before], timeout=60_000)
    after = readout.inner_text()
    assert "R@" in after
    assert page.locator(".cirlib-alpha-slider .widget-readout").first.inner_text() in ("0", "1")  # an end


def test_switching_the_dataset_draws_the_new_queries_top_5(page):
    sources = "['img.cirlib-results', 'img.cirlib-heatmap'].map((s) => document.querySelector(s).src)"
    before, fashioniq = page.evaluate(sources), image_png(page, "img.cirlib-results")
    page.locator(".cirlib-dataset select").first.select_option("synth-cirr")  # as a click would, in the page
    page.wait_for_function(f"([old]) => {sources}.every((src, i) => src !== old[i])", arg=[before], timeout=60_000)
    wait_idle(page)
    cirr = image_png(page, "img.cirlib-results")
    print(f"ink share of the top-5 strip: synth-fashioniq {ink_share(fashioniq):.3f}, synth-cirr {ink_share(cirr):.3f}")
    assert "Rsubset@1" in page.locator(".cirlib-recall-readout").first.inner_text()
    assert "dev-" in page.locator(".cirlib-query-label").first.inner_text()  # a synth-cirr reference image
    assert ink_share(fashioniq) > 0.1 and ink_share(cirr) > 0.5 * ink_share(fashioniq)


def test_the_explorer_fits_1100_px(page):
    explorer = page.locator(".cirlib-explorer").first.bounding_box()
    tracks = [page.locator(f".cirlib-{name}-slider .noUi-target").first.bounding_box()["width"]
              for name in ("alpha", "beta")]
    shown, natural = page.evaluate("[document.querySelector('img.cirlib-heatmap').clientWidth,"
                                   " document.querySelector('img.cirlib-heatmap').naturalWidth]")
    print(f"explorer {explorer['width']:.0f} px wide, slider tracks {tracks[0]:.0f} px, heatmap {shown}/{natural} px")
    assert min(tracks) > 0.6 * explorer["width"]
    assert shown == natural <= explorer["width"]  # shown at its own size: the unit tests' font sizes hold
    assert page.locator(".cirlib-explorer .widget-label").get_by_text("metric", exact=True).count() == 1
    help_line = page.locator(".cirlib-help").first
    assert "α = 0" in help_line.inner_text() and help_line.bounding_box()["height"] < 40  # one line (28 px)
    output = page.locator(".jp-OutputArea", has=page.locator(".cirlib-explorer")).last
    assert output.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0  # no warnings
