"""A real browser in the lab: headless Chromium opens chapter 1 in ``facecap lab``, runs it, and
takes a screenshot of the rendered output.

    .venv/bin/python benchmarks/lab_browser.py [--out build/lab] [--chromium /usr/bin/chromium]

Needs Debian's ``chromium`` (``apt-get install chromium``; it installs offline from the Debian
mirror). Chromium is driven through its DevTools protocol over a websocket (tornado, which
JupyterLab brings), so nothing else is installed. The script:

1. starts JupyterLab on the chapters as ``make lab`` does (its own work folder and port);
2. loads ``/lab/tree/01_au_lexicon.py`` and waits until the ``.py`` is open as a notebook (a
   notebook panel with cells, not a text editor);
3. runs every cell of chapter 1 (``notebook:run-all-cells``), waits until every code cell has an
   execution count and the kernel is idle, and checks that no cell holds an error;
4. writes ``chapter1.png`` (the first output scrolled into view) and ``lab_browser.json``, and
   prints what it checked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from facecap_lib.lab import LabServer

ROOT = Path(__file__).resolve().parent.parent
FLAGS = (  # as this machine's probe starts it: no sandbox as root, no network it cannot reach
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--hide-scrollbars",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """Commands to one page over Chromium's DevTools protocol."""

    def __init__(self, socket_, out: Path):
        self.socket, self.next_id, self.out = socket_, 0, out

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.socket.write_message(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.read_message(), 60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def value(self, expression: str):
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.value(expression):
                return
            await asyncio.sleep(0.5)
        shot = await self.call("Page.captureScreenshot", format="png")
        (self.out / "failed.png").write_bytes(base64.b64decode(shot["data"]))  # what it showed
        state = await self.value(
            "JSON.stringify({app: typeof window.jupyterapp, title: document.title, "
            "dialog: document.querySelector('.jp-Dialog')?.innerText})"
        )
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; the page: {state}")


async def drive(url: str, debugging: int, out: Path) -> dict:
    from tornado.websocket import websocket_connect

    pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{debugging}/json/list").read())
    page = next(p for p in pages if p["type"] == "page")
    tools = DevTools(
        await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=2**28), out
    )
    await tools.call("Page.enable")
    await tools.call("Runtime.enable")
    start = time.monotonic()
    await tools.call("Page.navigate", url=url)
    await tools.wait_for(
        "!!document.querySelector('.jp-NotebookPanel .jp-Notebook .jp-Cell')",
        "chapter 1 to open as a notebook",
    )
    opened = time.monotonic() - start
    editor = await tools.value("!!document.querySelector('.jp-FileEditor')")
    panel = "[...window.jupyterapp.shell.widgets('main')].find(w => w.sessionContext)"
    code = f"[...{panel}.content.model.cells].filter(c => c.type === 'code')"
    await tools.wait_for(f"{panel}?.sessionContext?.session?.kernel?.status === 'idle'", "a kernel")
    await tools.value(f"window.jupyterapp.shell.activateById({panel}.id) || true")
    await tools.value(
        "window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => true)"
    )
    await tools.wait_for(
        f"{code}.every(c => c.executionCount) && "
        f"{panel}.sessionContext.session.kernel.status === 'idle'",
        "every code cell to run",
    )
    ran = time.monotonic() - start - opened
    cells = await tools.value(f"{panel}.content.model.cells.length")
    executed = await tools.value(f"{code}.length")
    errors = await tools.value(
        f"{code}.filter(c => c.outputs.toJSON().some(o => o.output_type === 'error')).length"
    )
    table = ".jp-OutputArea-output table"
    await tools.value(f"{panel}.content.scrollToItem(3) || true")  # the AU table's cell
    await tools.wait_for(f"!!document.querySelector('{table}')", "the AU table to render", 30)
    header = await tools.value(f"document.querySelector('{table}').textContent.slice(0, 300)")
    await tools.value(f"document.querySelector('{table}').closest('.jp-Cell').scrollIntoView()")
    await asyncio.sleep(1.0)
    shot = await tools.call("Page.captureScreenshot", format="png")
    (out / "chapter1.png").write_bytes(base64.b64decode(shot["data"]))
    return {
        "opened_as_notebook": not editor, "cells": cells, "code_cells_run": executed,
        "cells_with_errors": errors, "seconds_to_open": round(opened, 1),
        "seconds_to_run_all": round(ran, 1), "au_table_starts": " ".join(header.split())[:160],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lab")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port, token, debugging = free_port(), secrets.token_hex(16), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        isolated = {"FACECAP_CACHE": str(tmp / "work"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
                    "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}  # fmt: skip
        with LabServer(ROOT, port, token, args.out / "lab.log", isolated, expose_app=True) as lab:
            browser = subprocess.Popen(
                [args.chromium, *FLAGS, f"--user-data-dir={tmp / 'chromium'}",
                 f"--remote-debugging-port={debugging}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                for _ in range(60):  # the DevTools endpoint comes up in a second or two
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{debugging}/json/version")
                        break
                    except OSError:
                        time.sleep(0.5)
                url = f"{lab.base}/lab/tree/01_au_lexicon.py?token={token}"
                result = asyncio.run(drive(url, debugging, args.out))
            finally:
                browser.kill()
    (args.out / "lab_browser.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"screenshot: {args.out / 'chapter1.png'}")
    if not result["opened_as_notebook"] or result["cells_with_errors"]:
        raise SystemExit("chapter 1 did not open as a notebook, or a cell failed")


if __name__ == "__main__":
    main()
