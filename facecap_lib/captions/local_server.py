"""A small OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (:func:`hashed_words`) (and the Batch API: ``POST /v1/files``, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content``; a batch completes on its second poll) and answers the paper's prompts with the offline describer
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
import zlib
from collections import Counter, deque
from email.parser import BytesParser
from email.policy import default
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


def hashed_words(text: str, dims: int = 64) -> list[float]:
    """The double's embedding: counts of the text's lower-case words hashed into ``dims`` bins."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[zlib.crc32(word.encode()) % dims] += 1.0
    return vector


class LocalServer:
    """Run the double in a background thread: ``with LocalServer(latency=0.2) as server: ...``."""

    def __init__(self, latency: float = 0.0, port: int = 0):
        self.latency = latency
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_polls_until_done = 1  # GETs of a batch that still answer "in_progress"
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

            def do_GET(self):
                with server.lock:
                    server.seen_authorization.append(self.headers.get("Authorization", ""))
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[1] == "batches" and parts[2] in server.batches:
                    return self._send(200, json.dumps(server._poll(parts[2])).encode())
                if (
                    len(parts) == 4
                    and parts[1] == "files"
                    and parts[3] == "content"
                    and parts[2] in server.files
                ):
                    body = server.files[parts[2]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return self.wfile.write(body)
                return self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path.endswith("/files"):
                    return self._send(
                        200, json.dumps(server._store_file(raw, self.headers)).encode()
                    )
                payload = json.loads(raw or b"{}")
                if self.path.endswith("/batches"):
                    return self._send(200, json.dumps(server._create_batch(payload)).encode())
                if self.path.endswith("/embeddings"):
                    with server.lock:
                        server.seen_authorization.append(self.headers.get("Authorization", ""))
                    return self._send(200, json.dumps(server._embeddings(payload)).encode())
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, b'{"error": {"message": "not found"}}')
                with server.lock:
                    fault = server.faults.popleft() if server.faults else None
                    server.seen_authorization.append(self.headers.get("Authorization", ""))
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
                rule_break = bool(fault and fault[0] == "rule-break")
                return self._send(200, json.dumps(server._completion(payload, rule_break)).encode())

        return Handler

    def _embeddings(self, payload: dict) -> dict:
        texts = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_words(text)}
            for i, text in enumerate(texts)
        ]
        return {"object": "list", "data": data, "model": payload.get("model", "")}

    def _completion(self, payload: dict, rule_break: bool = False) -> dict:
        prompt = payload["messages"][-1]["content"]
        text = "AU6 and AU12 show a happy face." if rule_break else answer(prompt)
        with self.lock:
            self.requests[prompt] += 1
            number = sum(self.requests.values())
        words = len(prompt.split())
        return {
            "id": f"chatcmpl-{number}",
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

    # --- files and batches (the provider's Batch API) -------------------------------------------
    def _store_file(self, raw: bytes, headers) -> dict:
        message = BytesParser(policy=default).parsebytes(
            f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + raw
        )
        fields = {
            part.get_param("name", header="content-disposition"): part
            for part in message.iter_parts()
        }
        content = fields["file"].get_payload(decode=True)
        purpose = fields["purpose"].get_content().strip() if "purpose" in fields else "batch"
        with self.lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": fields["file"].get_filename() or "input.jsonl",
            "purpose": purpose,
            "status": "processed",
        }

    def _create_batch(self, payload: dict) -> dict:
        with self.lock:
            batch_id = f"batch-{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": payload["endpoint"],
                "errors": None,
                "input_file_id": payload["input_file_id"],
                "completion_window": payload["completion_window"],
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "polls": 0,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
        return self._public(batch_id)

    def _public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if k != "polls"}

    def _poll(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        batch["polls"] += 1
        if batch["status"] != "completed" and batch["polls"] > self.batch_polls_until_done:
            lines = self.files[batch["input_file_id"]].decode().splitlines()
            out = []
            for line in filter(None, lines):
                item = json.loads(line)
                body = self._completion(item["body"])
                out.append(
                    json.dumps(
                        {
                            "id": f"resp-{item['custom_id'][:8]}",
                            "custom_id": item["custom_id"],
                            "response": {"status_code": 200, "request_id": "r", "body": body},
                            "error": None,
                        }
                    )
                )
            with self.lock:
                output_id = f"file-{len(self.files) + 1}"
                self.files[output_id] = ("\n".join(out) + "\n").encode()
            batch.update(
                status="completed",
                output_file_id=output_id,
                request_counts={"total": len(out), "completed": len(out), "failed": 0},
            )
        elif batch["status"] == "validating":
            batch["status"] = "in_progress"
        return self._public(batch_id)
