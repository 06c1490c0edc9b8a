"""The notebooks and their sliders in a real JupyterLab, driven in Debian's Chromium by Playwright.

A JupyterLab server is started from the venv on 127.0.0.1, on a free port,
with a random token and private config, runtime, data and settings folders,
serving a temporary copy of notebooks/ (so the committed notebooks are never
touched) in quick mode (NB_QUICK=1), with a fresh cache and figures folder.
Its kernels, this Python, import helpers as installed in the venv (make
installs this checkout with pip install -e), as a student's would; their
sockets are encrypted, as with `make lab`.
For each notebook with a slider, the test opens it, runs all its cells from
the Run menu, checks that no cell failed and that the figures are shown,
moves the slider with the keyboard, checks that the kernel trained the
chosen run and redrew the plot, then clicks the slider's export button and
finds the figure shown, as PNG and PDF, in the figures folder. Screenshots of each step go to
tests/browser/screenshots/ (gitignored).

These tests fail, never skip, when Playwright or Chromium is missing:
`make test` installs Playwright (requirements-dev.txt) and, as root, Chromium
from apt (`apt-get install chromium`). Never `playwright install`.
"""

import base64
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.report import job

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}

SERVER_START_TIMEOUT = 90  # seconds for JupyterLab to answer
PAGE_TIMEOUT = 60  # seconds for the page, the notebook and its kernel to be ready
RUN_ALL_TIMEOUT = 240  # seconds for all cells of a notebook, quick mode (about 50 s on 2 cores)
SLIDER_TIMEOUT = 120  # seconds for a slider's run to be trained and drawn (about 10 s)
STOP_TIMEOUT = 30  # seconds for the server to shut its kernels down and exit on SIGTERM
PLAIN_TCP_WARNING = "Kernel is running over TCP without encryption"

# A cell's output that tells of an error: a traceback, an exception's name, a widget that did not render.
ERROR_TEXT = re.compile(r"Traceback|\b\w*(Error|Exception)\b|Error displaying widget|Failed to load model class")


@dataclass(frozen=True)
class Case:
    notebook: str
    slider: str  # the slider's description
    key: str  # the key pressed on the slider's handle
    label: str  # how the kernel's status line names the run: a regular expression, the value its group
    figures: int  # figures the notebook's own cells show (the explorer's is on top)
    export: str  # the name the export button gives the figure, without .png: a format of the label's value


CASES = [
    Case("05_init_sensitivity", "sigma", "ArrowRight", r"sigma = (\S+), BN:", figures=1,
         export="slider_3-layer_sigma-{}_bn"),
    Case("04_lambda_search", "lambda", "End", r"lambda = (\S+):", figures=3, export="slider_3-layer_lambda-{}"),
]
EXPORT_TIMEOUT = 30  # seconds for the kernel to write a figure as PNG and PDF


# ---------------------------------------------------------------- what the tests need


def require_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        missing = err
    else:
        return sync_playwright
    pytest.fail(f"The browser tests need Playwright for Python, which is not installed ({missing}). Install the "
                "dev extras: `make test`, or `.venv/bin/pip install -c constraints.txt -e '.[dev]'`. Do not run "
                f"`playwright install`: the tests use Debian's Chromium, {CHROMIUM}.", pytrace=False)


def require_chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"The browser tests need Debian's Chromium at {CHROMIUM}, which is missing. Install it as root: "
                    "`apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                    "chromium` (.ci/run does this).", pytrace=False)


# ---------------------------------------------------------------- the JupyterLab server


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the folder it serves: a copy of notebooks/
    figures: Path  # the notebooks' figures folder (NB_FIGURES_DIR)
    log: Path  # its stdout and stderr

    def api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines=40):
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(settings_dir):
    """JupyterLab settings for a quiet, stable test: no news or update checks, no autosave."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def process_table():
    """{pid: (parent pid, start time)} of every process, read from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return table


def descendants(pid):
    """{pid: start time} of the processes under pid (the kernels, their workers)."""
    table = process_table()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def stop_server(process):
    """SIGTERM (the server shuts its kernels down), then SIGKILL; then SIGKILL to any process it left."""
    left = descendants(process.pid)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    still = process_table()
    for pid, start in left.items():
        if pid in still and still[pid][1] == start:  # the same process, not a new one with its id
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab from the venv, private folders, quick mode, on a copy of notebooks/; stopped afterwards."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    root.mkdir()
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(notebook, root)
    home = {name: base / name for name in ("config", "runtime", "data", "ipython", "settings", "workspaces",
                                           "figures", "cache")}
    for folder in home.values():
        folder.mkdir()
    write_settings(home["settings"])
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home["config"]),
        "JUPYTER_RUNTIME_DIR": str(home["runtime"]),
        "JUPYTER_DATA_DIR": str(home["data"]),  # the venv's kernelspec and ipywidgets stay on the path
        "JUPYTERLAB_SETTINGS_DIR": str(home["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(home["workspaces"]),
        "IPYTHONDIR": str(home["ipython"]),
        "NB_QUICK": "1",
        "TQDM_DISABLE": "1",
        "NB_FIGURES_DIR": str(home["figures"]),
        "NB_CACHE_DIR": str(home["cache"]),  # fresh: every run is really trained
    }
    try:
        job.check_kernels_import_this_package(env, cwd=root)
    except job.NotebookError as err:
        pytest.fail(str(err), pytrace=False)
    port, token = free_port(), secrets.token_hex(24)
    log = base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly",
               "--MappingKernelManager.transport_encryption=required"]
    server = Lab(f"http://127.0.0.1:{port}", token, root, home["figures"], log)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode} before answering:\n"
                            f"{server.log_tail()}", pytrace=False)
            try:
                server.api("status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within {SERVER_START_TIMEOUT} s:\n"
                                f"{server.log_tail()}", pytrace=False)
                time.sleep(0.5)
        yield server
    finally:
        stop_server(process)


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    sync_playwright = require_playwright()
    require_chromium()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as err:  # noqa: BLE001 (Playwright's errors have no common public base)
            pytest.fail(f"Chromium ({CHROMIUM}) did not start under Playwright: {err}", pytrace=False)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser tab on JupyterLab, with what it met on the way: dialogs, toasts, page errors."""

    def __init__(self, page, lab):
        self.page, self.lab = page, lab
        self.dialogs, self.errors = [], []
        page.set_default_timeout(PAGE_TIMEOUT * 1000)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # Dialogs and popups may come at any time: handle_popups answers them, before each action and while
        # wait_until polls.
        self.dialog = page.locator(".jp-Dialog").first
        self.news = page.locator(".Toastify__toast", has_text="news").first

    def answer_dialog(self, dialog):
        text = " ".join(dialog.inner_text().split())
        if "Select Kernel" in text or "select a kernel" in text.lower():
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()  # the notebook's own kernel, python3
        else:
            self.dialogs.append(text)  # unexpected: the test fails on it
            buttons = dialog.locator(".jp-Dialog-button.jp-mod-reject")
            buttons.first.click() if buttons.count() else self.page.keyboard.press("Escape")

    def refuse_news(self, toast):
        no = toast.get_by_role("button", name="No", exact=True)
        (no if no.count() else toast.locator(".jp-Notification-Toast-Close")).first.click()
        self.news.wait_for(state="hidden")

    def handle_popups(self):
        if self.dialog.is_visible():
            self.answer_dialog(self.dialog)
            self.dialog.wait_for(state="hidden")
        if self.news.is_visible():
            self.refuse_news(self.news)

    def screenshot(self, name, element=None):
        path = SCREENSHOTS / f"{name}.png"
        (element or self.page).screenshot(path=path)
        return path

    def wait_until(self, check, timeout, what):
        """Poll check() (a true value ends the wait, and is returned) for up to timeout seconds.

        what: what is awaited, for the message on timeout; a function is called then, to tell the state reached.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.handle_popups()
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"Timed out after {timeout} s waiting for {what() if callable(what) else what}.")
            self.page.wait_for_timeout(250)

    def kernel_state(self):
        indicator = self.page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")
        return indicator.first.get_attribute("data-status") if indicator.count() else None

    # Text is read as textContent: innerText is empty for the cells that JupyterLab does not render off screen.
    def prompts(self):
        return self.page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_text_contents()

    def outputs(self):
        """(mime type, text) of every output in the notebook, widgets' included."""
        return self.page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
            .map(e => [e.getAttribute('data-mime-type'), e.textContent])""")

    def check_no_errors(self, where):
        bad = [text for mime, text in self.outputs()
               if (mime == "application/vnd.jupyter.stderr" and ERROR_TEXT.search(text))
               or "Error displaying widget" in text or "Failed to load model class" in text]
        assert not bad, f"{where}: a cell failed:\n" + "\n---\n".join(text[-2000:] for text in bad)
        assert not self.dialogs, f"{where}: JupyterLab showed unexpected dialogs: {self.dialogs}"


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield Page(context.new_page(), lab)
    finally:
        context.close()
        try:  # stop the notebook's kernel, to leave the cores to the next test; stopping the server would too
            for session in lab.api("sessions"):
                lab.api(f"sessions/{session['id']}", method="DELETE")
        except (urllib.error.URLError, OSError) as err:
            print(f"Could not stop the kernels through JupyterLab's API: {err}")


@contextmanager
def notebook_run(page, name):
    """Open notebook `name` in JupyterLab and run all its cells, then the block; any failure gets a screenshot.

    The screenshots of an earlier run of the notebook are removed first.
    """
    for old in SCREENSHOTS.glob(f"{name}-*.png"):
        old.unlink()
    SCREENSHOTS.mkdir(exist_ok=True)
    with screenshot_on_failure(page, name):
        open_notebook(page, name)
        run_all_cells(page, name)
        yield


@contextmanager
def screenshot_on_failure(page, name):
    """On any failure, a screenshot of the whole window, and what JupyterLab's log and the page said."""
    try:
        yield
    except BaseException as err:
        try:
            path = page.screenshot(f"{name}-FAILED")
        except Exception as shot:  # noqa: BLE001
            path = f"(no screenshot: {shot})"
        notes = [f"screenshot: {path}", f"kernel: {page.kernel_state()}, prompts: {page.prompts()}"]
        if page.errors:
            notes.append(f"page errors: {page.errors}")
        notes.append(f"JupyterLab's log, last lines:\n{page.lab.log_tail()}")
        if isinstance(err, AssertionError):
            raise AssertionError(f"{err}\n\n" + "\n".join(notes)) from err
        print("\n".join(notes))
        raise


# ---------------------------------------------------------------- the steps


def open_notebook(page, notebook):
    """Open notebook.ipynb in JupyterLab; wait for all its cells and for its kernel, Python 3, to be idle."""
    cells = len(json.loads((page.lab.root / f"{notebook}.ipynb").read_text())["cells"])
    page.page.goto(f"{page.lab.url}/lab/tree/{notebook}.ipynb?reset&token={page.lab.token}")
    kernel_name = page.page.locator(".jp-NotebookPanel .jp-Toolbar-kernelName").first

    def ready():
        shown = page.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count()
        return shown == cells and "Python 3" in kernel_name.inner_text() and page.kernel_state() == "idle"

    page.wait_until(ready, PAGE_TIMEOUT, lambda: f"{notebook}'s {cells} cells and its Python 3 kernel, idle "
                                                 f"(the kernel shown is {kernel_name.inner_text()!r})")


def run_all_cells(page, notebook):
    """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle."""
    page.handle_popups()
    page.page.get_by_role("menuitem", name="Run", exact=True).click()
    page.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_until(lambda: any("*" in p or re.search(r"\d", p) for p in page.prompts()), PAGE_TIMEOUT,
                    f"{notebook} to start running")
    page.wait_until(lambda: page.kernel_state() == "idle" and not any("*" in p for p in page.prompts()),
                    RUN_ALL_TIMEOUT, f"all cells of {notebook} to run")
    page.check_no_errors(notebook)
    assert PLAIN_TCP_WARNING not in page.lab.log.read_text(errors="replace"), \
        f"{notebook}'s kernel runs over plain TCP:\n{page.lab.log_tail()}"
    prompts = page.prompts()
    assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), \
        f"not every code cell of {notebook} ran (a cell failed and the rest were skipped?): {prompts}"


def shown_images(locator, outside_widgets=False):
    """The src of each image under locator that the browser decoded (outside_widgets: only the cells' own)."""
    return locator.evaluate_all("""(els, outside) => els
        .filter(e => e.complete && e.naturalWidth > 0 && !(outside && e.closest('.jupyter-widgets')))
        .map(e => e.src)""", outside_widgets)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.notebook)
def test_the_notebook_runs_and_its_slider_redraws_the_plot(page, case):
    name = case.notebook
    with notebook_run(page, name):

        # The figures: the notebook's own, and the explorer's under its slider.
        cell = page.page.locator(".jp-CodeCell").filter(
            has=page.page.locator(".widget-slider", has_text=case.slider))
        assert cell.count() == 1, f"{name}: no {case.slider} slider was shown (did ipywidgets render?)"
        explorer = cell.locator(".jp-OutputArea-output .widget-vbox").first
        figure = explorer.locator(".widget-output").last.locator("img")
        static = shown_images(page.page.locator(".jp-OutputArea-output img"), outside_widgets=True)
        assert len(static) == case.figures, \
            f"{name}: expected {case.figures} figure(s) shown in the cells' outputs, found {len(static)}"
        first = page.page.locator(".jp-OutputArea-output img").first
        first.scroll_into_view_if_needed()
        page.screenshot(f"{name}-1-ran-all-cells")

        # The slider before: the kernel's status names the run of the slider's value, and its plot is shown.
        # JupyterLab may leave a cell far from the view unrendered, its text empty: bring it into view first.
        cell.scroll_into_view_if_needed()
        handle = cell.locator(".widget-slider .noUi-handle")
        readout = cell.locator(".widget-slider .widget-readout")
        status = explorer.locator(":scope > .widget-html")
        page.wait_until(lambda: status.inner_text().strip() and readout.inner_text().strip(), 10,
                        f"{name}'s explorer to be drawn once in view")
        before = {"readout": readout.inner_text(), "status": status.inner_text(), "images": shown_images(figure)}
        before["value"] = shown_value(case, before["status"], before["readout"])
        assert before["value"] is not None and "test accuracy" in before["status"], \
            f"{name}: the explorer's status {before['status']!r} does not name the slider's value {before['readout']}"
        assert len(before["images"]) == 1, f"{name}: the explorer shows {len(before['images'])} figures, not 1"
        page.screenshot(f"{name}-2-{case.slider}-slider-before", cell)

        # Move it with the keyboard, as a user would: focus the handle, press a key.
        page.handle_popups()
        handle.focus()
        handle.press(case.key)
        page.wait_until(lambda: readout.inner_text() != before["readout"], 10,
                        f"the {case.slider} slider to move on {case.key} (readout {before['readout']})")
        after = readout.inner_text()

        # The kernel saw the new value: it trained that run (not in the cache) and drew it.
        def redrawn():
            page.check_no_errors(f"{name}, after moving the {case.slider} slider")
            text = status.inner_text()
            if "failed" in text:
                return text
            value = shown_value(case, text, after)
            images = shown_images(figure)
            return (value is not None and value != before["value"] and "trained in" in text and len(images) == 1
                    and images != before["images"] and page.kernel_state() == "idle") and text

        text = page.wait_until(redrawn, SLIDER_TIMEOUT,
                               lambda: f"the kernel to train and draw the run of {case.slider} = {after} after the "
                                       f"slider moved from {before['readout']} (status: {status.inner_text()!r}, "
                                       f"images: {len(shown_images(figure))}, kernel: {page.kernel_state()})")
        assert "failed" not in text, f"{name}: the run of {case.slider} = {after} failed: {text}"
        cell.scroll_into_view_if_needed()
        page.screenshot(f"{name}-3-{case.slider}-slider-after", cell)

        # Export the figure shown: the files are named by the slider's settings.
        export_figure(page, cell, status, figure, case.export.format(re.search(case.label, text).group(1)))
        page.screenshot(f"{name}-4-{case.slider}-exported", cell)


def export_figure(page, cell, status, figure, name):
    """Click the export button of the slider in cell; check that the kernel wrote the figure shown as name.png/.pdf.

    status: the slider's status line; figure: the img its output area shows.
    """
    png, pdf = page.lab.figures / f"{name}.png", page.lab.figures / f"{name}.pdf"
    assert not png.exists() and not pdf.exists(), f"{name} was exported before its button was clicked"
    page.handle_popups()
    cell.locator("button.widget-button", has_text="export PNG + PDF").click()
    text = page.wait_until(lambda: "Export" in status.inner_text() and status.inner_text(), EXPORT_TIMEOUT,
                           lambda: f"the export button to say where it wrote {name} (status: {status.inner_text()!r})")
    assert f"Exported to {png} and .pdf" in text, f"the export did not write {png}: {text}"
    assert pdf.read_bytes().startswith(b"%PDF"), f"{pdf} is not a PDF"
    (src,) = shown_images(figure)
    assert src == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"), \
        f"{png} is not the figure shown"


def shown_value(case, status, readout):
    """The value the kernel's status line names, if it is the slider's readout (rounded to 2 digits), else None."""
    found = re.search(case.label, status)
    if found and math.isclose(float(found.group(1)), float(readout), rel_tol=0.06):
        return found.group(1)
    return None


def test_the_bonus_exercise_notebook_runs_without_error(page):
    name = "06_beyond_the_report"
    with notebook_run(page, name):
        images = shown_images(page.page.locator(".jp-OutputArea-output img"))
        assert len(images) == 2, f"{name}: expected the rules' and the best model's figures, found {len(images)} images"


def test_the_inside_notebook_runs_and_its_histogram_slider_redraws_the_histograms(page):
    """07: every cell runs, its figures are shown, and the scrubber's slider redraws the histograms in the kernel."""
    name = "07_inside_batch_norm"
    with notebook_run(page, name):
        static = shown_images(page.page.locator(".jp-OutputArea-output img"), outside_widgets=True)
        assert len(static) == 10, f"{name}: expected its 10 figures in the cells' outputs, found {len(static)}"

        cell = page.page.locator(".jp-CodeCell").filter(
            has=page.page.locator(".widget-slider", has_text="evaluation"))
        assert cell.count() == 1, f"{name}: no evaluation slider was shown (did ipywidgets render?)"
        cell.scroll_into_view_if_needed()
        handle = cell.locator(".widget-slider .noUi-handle")
        readout = cell.locator(".widget-slider .widget-readout")
        figure = cell.locator(".jp-OutputArea-output .widget-output img")
        page.wait_until(lambda: readout.inner_text().strip() == "0" and len(shown_images(figure)) == 1, 10,
                        f"{name}'s scrubber to show evaluation 0 and its histograms once in view")
        before = shown_images(figure)
        page.screenshot(f"{name}-1-histograms-before", cell)

        page.handle_popups()
        handle.focus()
        handle.press("End")
        page.wait_until(lambda: readout.inner_text().strip() == "10", 10,
                        f"the evaluation slider to move to its last evaluation, 10 (readout {readout.inner_text()})")

        def redrawn():
            page.check_no_errors(f"{name}, after moving the evaluation slider")
            images = shown_images(figure)
            return len(images) == 1 and images != before and page.kernel_state() == "idle"

        page.wait_until(redrawn, SLIDER_TIMEOUT,
                        lambda: f"the kernel to redraw the histograms of evaluation 10 "
                                f"(images: {len(shown_images(figure))}, kernel: {page.kernel_state()})")
        cell.scroll_into_view_if_needed()
        page.screenshot(f"{name}-2-histograms-after", cell)

        status = cell.locator(".jp-OutputArea-output .widget-vbox > .widget-html").first
        step = re.search(r"step (\d+)", status.inner_text())
        assert step and "evaluation 10" in status.inner_text(), \
            f"{name}: the scrubber's status does not say which evaluation and step it shows: {status.inner_text()!r}"
        export_figure(page, cell, status, figure,
                      f"slider_histograms_9-layer_he_no-bn_and_9-layer_he_bn_step_{step.group(1)}")
        page.screenshot(f"{name}-3-histograms-exported", cell)
