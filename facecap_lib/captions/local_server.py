"""A small OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` and answers the paper's prompts with the offline describer
(so answers have the right content), with a configurable latency and a queue of injected faults:
``("429", seconds)`` (rate limit with Retry-After), ``("500",)``, ``("slow", seconds)``,
``("malformed",)`` (a 200 whose body is not JSON), ``("401",)`` (a refused key) and
``("rule-break",)`` (an answer that names an emotion and says "AU"). It counts requests per prompt, so tests can prove a resumed job repeats no
finished call. It is a test double, not a language model: nothing it writes is labelled as LLM text.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from facecap_lib.captions import offline
from facecap_lib.captions.prompts import FUSION_INSTRUCTION


def answer(prompt: str) -> str:
    """What the double answers: an AU description for an AU prompt, a fused caption for a fusion
    prompt, an echo otherwise."""
    questions = re.findall(r"which contains ((?:AU\d+(?:, )?)+) in 1-9", prompt)
    if questions:
        return offline.describe_aus(
            [int(n) for n in re.findall(r"AU(\d+)", questions[-1])], key=prompt
        )
    if prompt.startswith(FUSION_INSTRUCTION):
        au_sentence = re.search(r'Facial Action Sentence: "(.*)"', prompt).group(1)
        emotion_sentence = re.search(r'Emotion Sentence: "(.*)"', prompt).group(1)
        return offline.fuse_sentences(au_sentence, emotion_sentence, key=prompt)
    return f"echo: {prompt[:200]}"


class LocalServer:
    """Run the double in a background thread: ``with LocalServer(latency=0.2) as server: ...``."""

    def __init__(self, latency: float = 0.0, port: int = 0):
        self.latency = latency
        self.faults: deque[tuple] = deque()
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        self.seen_authorization: list[str] = []
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, *faults: tuple) -> None:
        """Queue faults; each request takes the next one (then requests succeed again)."""
        with self.lock:
            self.faults.extend(faults)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, b'{"error": {"message": "not found"}}')
                with server.lock:
                    fault = server.faults.popleft() if server.faults else None
                    server.seen_authorization.append(self.headers.get("Authorization", ""))
                prompt = payload["messages"][-1]["content"]
                if server.latency:
                    time.sleep(server.latency)
                if fault and fault[0] == "429":
                    return self._send(
                        429,
                        b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                        {"Retry-After": str(fault[1])},
                    )
                if fault and fault[0] == "401":
                    return self._send(
                        401, b'{"error": {"message": "invalid api key", "type": "auth"}}'
                    )
                if fault and fault[0] == "500":
                    return self._send(500, b'{"error": {"message": "server error"}}')
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                if fault and fault[0] == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [')
                text = answer(prompt)
                if fault and fault[0] == "rule-break":
                    text = "AU6 and AU12 show a happy face."
                with server.lock:
                    server.requests[prompt] += 1
                words = len(prompt.split())
                body = {
                    "id": f"chatcmpl-{sum(server.requests.values())}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": payload.get("model", "local"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": words,
                        "completion_tokens": len(text.split()),
                        "total_tokens": words + len(text.split()),
                    },
                }
                return self._send(200, json.dumps(body).encode())

        return Handler
