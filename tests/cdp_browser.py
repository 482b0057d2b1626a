"""Headless Chromium driven over the DevTools protocol (aiohttp's WebSocket client), for pages that
render after load (a single-page app fetching its data): open a URL, wait in real time until its
text holds what a test looks for, then take a screenshot."""
from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _render(url: str, needle: str, shot: Path, port: int, timeout: float) -> str:
    for _ in range(100):
        try:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
            break
        except OSError:
            await asyncio.sleep(0.2)
    page = next(t for t in targets if t["type"] == "page")
    async with aiohttp.ClientSession() as session, session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
        counter = 0

        async def call(method: str, **params):
            nonlocal counter
            counter += 1
            await ws.send_json({"id": counter, "method": method, "params": params})
            while True:
                message = await ws.receive_json()
                if message.get("id") == counter:
                    return message.get("result", {})

        await call("Page.enable")
        await call("Page.navigate", url=url)
        text, deadline = "", time.monotonic() + timeout
        while needle not in text and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            reply = await call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                               returnByValue=True)
            text = reply.get("result", {}).get("value", "") or ""
        shot.write_bytes(base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"]))
        return text


def render(chromium: str, url: str, needle: str, shot: Path, timeout: float = 60.0) -> str:
    """The page's text once it holds `needle` (or at `timeout`), with a screenshot taken then."""
    port, profile = free_port(), tempfile.mkdtemp(prefix="ctxeval-chromium-")
    browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                                f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_render(url, needle, shot, port, timeout))
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
