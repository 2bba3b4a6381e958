"""JupyterLab on the chapters (``facecap lab``), through its REST API and a kernel's websocket:
every chapter ``.py`` is a notebook, a kernel runs chapter 1's first cells in the environment the
runner gives chapters, progress bars are widgets there, and the server stops within the test."""

import asyncio
import json
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jupytext
import pytest

from facecap_lib import notebooks as runner
from facecap_lib.lab import LabServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab(LabServer):
    """The server, and a kernel's websocket to run cells in it."""

    def execute(self, kernel: str, cells: list[str], timeout: float = 120) -> list[list[dict]]:
        """Run ``cells`` one after the other in ``kernel``; each cell's iopub outputs."""
        return asyncio.run(self._execute(kernel, cells, timeout))

    async def _execute(self, kernel: str, cells: list[str], timeout: float) -> list[list[dict]]:
        from tornado.websocket import websocket_connect

        url = f"{self.base.replace('http', 'ws')}/api/kernels/{kernel}/channels?token={self.token}"
        socket_ = await websocket_connect(url)
        session, results = uuid.uuid4().hex, []
        try:
            for code in cells:
                msg_id = uuid.uuid4().hex
                header = {
                    "msg_id": msg_id, "username": "test", "session": session,
                    "msg_type": "execute_request", "version": "5.3",
                }  # fmt: skip
                content = {"code": code, "silent": False, "store_history": True,
                           "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
                await socket_.write_message(json.dumps({
                    "header": header, "parent_header": {}, "metadata": {}, "content": content,
                    "channel": "shell",
                }))  # fmt: skip
                outputs = []
                deadline = time.monotonic() + timeout
                while True:
                    message = await asyncio.wait_for(
                        socket_.read_message(), max(1.0, deadline - time.monotonic())
                    )
                    message = json.loads(message)
                    if message.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = message["msg_type"]
                    if kind in ("stream", "execute_result", "display_data", "error"):
                        outputs.append({"type": kind, **message["content"]})
                    if kind == "status" and message["content"]["execution_state"] == "idle":
                        break
                results.append(outputs)
        finally:
            socket_.close()
        return results


@pytest.fixture(scope="module")
def lab(repo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    work = folder / "work"
    isolated = {  # no user's Jupyter settings, runtime files or progress setting
        "FACECAP_CACHE": str(work), "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
    }  # fmt: skip
    with Lab(repo, free_port(), secrets.token_hex(16), folder / "lab.log", isolated) as server:
        server.work = work
        yield server
    assert server.process.returncode is not None  # stopped within the fixture's 30 s


def test_every_chapter_opens_as_a_notebook(lab, repo):
    listing = {
        item["name"]: item["type"] for item in lab.request("GET", "/api/contents/")["content"]
    }
    chapters = runner.discover(repo / "notebooks")
    assert {p.name: listing.get(p.name) for p in chapters} == {p.name: "notebook" for p in chapters}
    for source in chapters:
        model = lab.request("GET", f"/api/contents/{source.name}")
        assert model["type"] == "notebook" and model["format"] == "json", source.name
        assert len(model["content"]["cells"]) == len(jupytext.read(source).cells), source.name
        assert model["content"]["metadata"]["kernelspec"]["name"] == "python3"
    assert not list((repo / "notebooks").glob("*.ipynb"))  # opening wrote no paired copy


def test_a_kernel_runs_chapter_one_in_the_books_environment(lab, repo):
    model = lab.request("GET", "/api/contents/01_au_lexicon.py")
    code = [c["source"] for c in model["content"]["cells"] if c["cell_type"] == "code"][:5]
    kernel = lab.request("POST", "/api/kernels", {"name": "python3"})["id"]
    try:
        imports, parameters, aus, regions, checks = lab.execute(kernel, code)
        cells = [imports, parameters, aus, regions, checks]
        assert not [o for cell in cells for o in cell if o["type"] == "error"], cells
        table = aus[0]["data"]["text/plain"]  # the 27 AUs, first to last
        assert "noun" in table and "stretches mouth" in table and "closes eyes" in table
        assert "upper" in regions[0]["data"]["text/plain"]
        (environment,) = lab.execute(
            kernel,
            ["import os, sys; print(os.environ['FACECAP_CACHE'], sys.executable, "
             "os.environ['HF_HUB_OFFLINE'], os.environ.get('FACECAP_PROGRESS'))"],
        )  # fmt: skip
        printed = environment[0]["text"].split()
        assert printed == [str(lab.work.resolve()), sys.executable, "1", "None"]
        (bar,) = lab.execute(
            kernel,
            ["from facecap_lib.progress import progress_bar\n_ = list(progress_bar(range(3)))"],
        )
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in bar)
    finally:
        lab.request("DELETE", f"/api/kernels/{kernel}")


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (CI installs it)")
def test_a_real_browser_opens_chapter_one_as_a_notebook_and_runs_it(repo, tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/lab_browser.py", "--out", str(tmp_path)],
        cwd=repo, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "lab_browser.json").read_text())
    assert result["opened_as_notebook"] and result["cells_with_errors"] == 0
    assert result["code_cells_run"] > 10 and result["cells"] > result["code_cells_run"]
    assert result["au_table_starts"].startswith("code noun verb")
    assert (tmp_path / "chapter1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
