"""The chapters in JupyterLab: ``make lab`` (``facecap lab``).

- The chapters' py:percent sources open as notebooks: jupytext's server extension (installed with
  the ``jupytext`` package) serves every ``notebooks/NN_slug.py`` as a notebook and saves edits
  back into it, so the ``.py`` stays the only source; the settings shipped here
  (``lab_settings/overrides.json``) make a double click open a ``.py`` as one.
- Kernels run with the environment the runner gives its kernels
  (:func:`facecap_lib.notebooks.chapter_environment`): this project's interpreter, the same work
  folder as ``make book`` (``$FACECAP_CACHE``, default ``build/work/full``; ``--smoke``:
  ``build/work/smoke``) and no model hub. So chapters 1 to 6 run in order hand their artifacts on
  as in the book, and one chapter run alone builds what it lacks, through the same library calls.
- Progress bars are widgets here (:mod:`facecap_lib.progress`); in the runner they are text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from facecap_lib.notebooks import chapter_environment
from facecap_lib.progress import ENVIRONMENT

SETTINGS = Path(__file__).parent / "lab_settings"


def lab_command(
    root: Path,
    *,
    port: int | None = None,
    token: str | None = None,
    browser: bool = True,
    ip: str = "127.0.0.1",
    smoke: bool = False,
    expose_app: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The command line and the environment of JupyterLab on ``root``'s chapters. ``token``:
    the server's access token (default: one JupyterLab draws and prints); ``expose_app``: the
    page's ``window.jupyterapp``, for a scripted browser."""
    environment = {**os.environ, **chapter_environment(root, smoke)}
    environment.pop(ENVIRONMENT, None)  # widgets, not text
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        f"--LabServerApp.app_settings_dir={SETTINGS}",
        f"--ServerApp.ip={ip}",
    ]  # fmt: skip
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if token is not None:
        command.append(f"--IdentityProvider.token={token}")
    if not browser:
        command.append("--no-browser")
    if expose_app:
        command.append("--LabApp.expose_app_in_browser=True")
    if os.geteuid() == 0:  # containers and CI run as root; JupyterLab refuses it unless told
        command.append("--allow-root")
    return command, environment


def run_lab(root: Path, **options) -> None:
    """Replace this process by JupyterLab (Ctrl-C stops it, as a plain ``jupyter lab``)."""
    command, environment = lab_command(root, **options)
    Path(environment["FACECAP_CACHE"]).mkdir(parents=True, exist_ok=True)
    os.execvpe(command[0], command, environment)


class LabServer:
    """JupyterLab on the chapters in a child process, for tests and scripted checks: ``with
    LabServer(root, port, token, log) as lab:`` waits until its REST API answers and, on leaving,
    shuts it down through ``/api/shutdown`` (killing it if it has not stopped 30 s later).
    ``environment`` adds to or overrides the variables it starts with."""

    def __init__(self, root: Path, port: int, token: str, log: Path, environment=None, **options):
        self.base, self.token, self.log = f"http://127.0.0.1:{port}", token, Path(log)
        command, env = lab_command(root, port=port, token=token, browser=False, **options)
        self.command, self.environment = command, {**env, **(environment or {})}
        self.environment.pop(ENVIRONMENT, None)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        """``path`` of the server's REST API, answered as JSON (``None`` when empty)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def __enter__(self) -> LabServer:
        Path(self.environment["FACECAP_CACHE"]).mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                self.command, env=self.environment, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                self.request("GET", "/api/status", timeout=5)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    tail = self.log.read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{tail}") from None
                time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        try:
            self.request("POST", "/api/shutdown", timeout=10)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("JupyterLab did not stop within 30 s of /api/shutdown") from None
