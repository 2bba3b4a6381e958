"""LLM calls for caption synthesis, through any OpenAI-compatible endpoint.

:class:`LLMClient` sends chat-completion requests to OpenAI or to any server that speaks the same
protocol (vLLM, Ollama, llama.cpp server), given a base URL, a model and a key (arguments, or the
environment: ``FACECAP_LLM_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``). It

- runs requests concurrently (bounded by ``concurrency``) and retries 429, 5xx, timeouts, broken
  connections and unreadable answers with exponential backoff, honouring ``Retry-After``;
- keeps every answer in a SQLite cache (write-ahead log, one transaction per answer) keyed by the
  request's content only (model, messages, sampling settings, prompt version; not the endpoint or
  the key), so re-runs and resumed jobs never pay twice: ``kill -9`` loses at most the calls in
  flight;
- counts tokens and cost with a price table you can override, estimates a job's cost before it
  starts (:meth:`LLMClient.estimate`), and stops cleanly at a hard budget of calls or dollars;
- checks each answer (e.g. :func:`~facecap_lib.captions.validate.check_au_caption`) and asks again,
  a bounded number of times, when it breaks the rules; what still fails is flagged, not hidden.

The API key is held by the HTTP client only: it is not part of any repr, log line, cache row or
error message this module writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from facecap_lib.captions.prompts import PROMPT_VERSION
from facecap_lib.progress import progress_bar

log = logging.getLogger("facecap.llm")


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float


PRICES: dict[str, Price] = {
    # list prices per 1M tokens as published by OpenAI (check before relying on them; override freely)
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
}
FREE = Price(0.0, 0.0)  # a self-hosted model


def env_prices(model: str) -> dict[str, Price] | None:
    """The price list with ``model`` priced as ``FACECAP_LLM_PRICE`` says ("input,output" in US
    dollars per million tokens), or None when it is not set."""
    if not os.environ.get("FACECAP_LLM_PRICE"):
        return None
    try:
        given = Price(*(float(x) for x in os.environ["FACECAP_LLM_PRICE"].split(",")))
    except (TypeError, ValueError):
        raise ValueError("FACECAP_LLM_PRICE must be 'input,output' in USD per 1M tokens") from None
    return {**PRICES, model: given}


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to call. ``api_key`` never appears in ``repr``."""

    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 16
    max_retries: int = 6  # per call, for 408 / 409 / 429 / 5xx / timeouts / unreadable answers
    max_wait: float = 120.0  # longest pause between tries, whatever Retry-After asks
    timeout: float = 60.0  # seconds per HTTP request
    temperature: float = 0.7
    max_tokens: int = 300
    max_calls: int | None = None  # hard budget: HTTP calls of this job
    max_cost: float | None = None  # hard budget: US dollars of this job
    validation_retries: int = 2  # new attempts when an answer breaks the rules
    batch_discount: float = 0.5  # Batch API price as a share of the live price
    prices: dict[str, Price] = field(default_factory=lambda: dict(PRICES))

    @classmethod
    def from_env(cls, **overrides) -> EndpointConfig | None:
        """The endpoint the environment configures, or ``None`` when none is (use the offline
        describer then). A model is required: ``FACECAP_LLM_MODEL``."""
        model = overrides.pop("model", None) or os.environ.get("FACECAP_LLM_MODEL")
        if not model:
            return None
        if "prices" not in overrides and (prices := env_prices(model)):
            overrides["prices"] = prices
        return cls(
            model=model,
            base_url=overrides.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL"),
            api_key=overrides.pop("api_key", None) or os.environ.get("OPENAI_API_KEY"),
            **overrides,
        )

    def price(self) -> Price:
        """Price of this model: the table's, free for a server on this machine, else an error
        (a budget or an estimate in made-up dollars would be worse than none)."""
        if self.model in self.prices:
            return self.prices[self.model]
        host = urlsplit(self.base_url or "").hostname or ""
        if host in ("localhost", "127.0.0.1", "::1"):
            return FREE
        raise ValueError(
            f"no price known for model {self.model!r} at {self.describe()}: pass "
            f"prices={{{self.model!r}: Price(input, output)}} (USD per 1M tokens) or set FACECAP_LLM_PRICE=in,out"
        )

    def describe(self) -> str:
        """Where calls go, without the key, user names or query strings."""
        url = urlsplit(self.base_url or "https://api.openai.com/v1")
        host = url.hostname or ""
        port = f":{url.port}" if url.port else ""
        return f"{self.model} at {url.scheme}://{host}{port}{url.path}"


@dataclass(frozen=True)
class Request:
    """One chat completion to make. ``tag`` names what it is for (e.g. an image id) and is part of
    the cache key: two images with the same AUs get two answers, as in the paper (one call per
    image). ``check`` is this request's own rule check (overrides the job's), not part of the key."""

    messages: tuple[tuple[str, str], ...]
    tag: str = ""
    check: Callable[[str], list[str]] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def user(
        cls, prompt: str, tag: str = "", check: Callable[[str], list[str]] | None = None
    ) -> Request:
        return cls((("user", prompt),), tag, check)

    def payload(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class Result:
    """The answer to a :class:`Request` (``text`` is ``None`` when it could not be had)."""

    request: Request
    text: str | None
    cached: bool
    attempts: int = 0  # answers asked for (1 + validation retries)
    problems: list[str] = field(default_factory=list)  # rule checks the final answer still fails
    error: str | None = None  # why there is no answer (budget, non-retryable error ...)
    cost: float = 0.0


@dataclass(frozen=True)
class Estimate:
    calls: int  # requests not in the cache
    cached: int
    prompt_tokens: int
    completion_tokens: int
    cost: float

    def __str__(self) -> str:
        return (
            f"{self.calls} calls to make ({self.cached} cached), about {self.prompt_tokens:,} prompt + "
            f"{self.completion_tokens:,} completion tokens, about ${self.cost:,.2f}"
        )


def approx_tokens(text: str) -> int:
    """A rough token count (4 characters a token, as OpenAI's rule of thumb for English)."""
    return max(1, len(text) // 4)


class CallCache:
    """Answers by request key, in SQLite (WAL; each answer committed on its own)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, request TEXT, "
            "text TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, created REAL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, keys TEXT, status TEXT, created REAL)"
        )

    def get(self, key: str) -> dict | None:
        with self.lock:
            row = self.db.execute(
                "SELECT text, prompt_tokens, completion_tokens, cost FROM answers WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return {
            "text": row[0],
            "prompt_tokens": row[1],
            "completion_tokens": row[2],
            "cost": row[3],
        }

    def put(
        self, key: str, model: str, request: list, text: str, usage: tuple[int, int], cost: float
    ) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, json.dumps(request), text, usage[0], usage[1], cost, time.time()),
            )

    def __len__(self) -> int:
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def add_batch(self, batch_id: str, keys: list[str]) -> None:
        """Remember a submitted batch before anything else happens (a crash must not resubmit it)."""
        with self.lock:
            self.db.execute(
                "INSERT INTO batches VALUES (?, ?, 'submitted', ?)",
                (batch_id, json.dumps(keys), time.time()),
            )

    def pending_batches(self) -> dict[str, list[str]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, keys FROM batches WHERE status = 'submitted'"
            ).fetchall()
        return {batch_id: json.loads(keys) for batch_id, keys in rows}

    def finish_batch(self, batch_id: str, status: str) -> None:
        with self.lock:
            self.db.execute("UPDATE batches SET status = ? WHERE id = ?", (status, batch_id))

    def close(self) -> None:
        with self.lock:
            self.db.close()


class BudgetExhausted(RuntimeError):
    """The job reached its budget of calls or dollars."""


class FatalEndpointError(RuntimeError):
    """The endpoint refuses the whole job (wrong key, no access, unknown model): stop asking."""


def _retry_after(error) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    if "retry-after-ms" in headers:
        return float(headers["retry-after-ms"]) / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class LLMClient:
    """Cached, concurrent, budgeted chat completions (see the module docstring)."""

    def __init__(
        self, config: EndpointConfig, cache: str | Path | CallCache, *, sleep=asyncio.sleep
    ):
        self.config = config
        self.cache = cache if isinstance(cache, CallCache) else CallCache(cache)
        self._sleep = sleep
        self.calls = 0  # HTTP calls made by this client
        self.cost = 0.0  # dollars spent by this client
        self.reserved = 0.0  # worst-case dollars of the calls in flight (budget check)
        self.tokens = [0, 0]
        self.fatal: str | None = None  # set when the endpoint refuses the job (bad key, no model)

    def __repr__(self) -> str:
        return f"LLMClient({self.config.describe()}, cache={self.cache.path})"

    # --- keys and estimates ---------------------------------------------------------------------
    def key(self, request: Request, attempt: int = 0) -> str:
        """Content hash of a request: model, messages, tag, sampling settings, prompt version, attempt."""
        content = {
            "model": self.config.model,
            "messages": request.payload(),
            "tag": request.tag,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "version": PROMPT_VERSION,
            "attempt": attempt,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def estimate(self, requests: Sequence[Request], completion_tokens: int = 80) -> Estimate:
        """What a job would cost before it runs (cached requests are free)."""
        todo = [r for r in requests if self.cache.get(self.key(r)) is None]
        prompt = sum(approx_tokens(m[1]) for r in todo for m in r.messages)
        completion = completion_tokens * len(todo)
        price = self.config.price()
        cost = (prompt * price.input + completion * price.output) / 1e6
        return Estimate(len(todo), len(requests) - len(todo), prompt, completion, cost)

    # --- one call -------------------------------------------------------------------------------
    def _client(self, max_retries: int = 0):
        import openai

        return openai.AsyncOpenAI(
            api_key=self.config.api_key or "not-needed",
            base_url=self.config.base_url,
            max_retries=max_retries,
            timeout=self.config.timeout,
        )

    def _worst_cost(self, request: Request) -> float:
        price = self.config.price()
        prompt = sum(approx_tokens(m[1]) for m in request.messages)
        return (prompt * price.input + self.config.max_tokens * price.output) / 1e6

    def _charge(self, request: Request) -> float:
        """Count a call against the budgets, reserving its worst-case cost until it settles (calls
        in flight count, so concurrency cannot overshoot). Returns the reservation."""
        cfg = self.config
        if self.fatal:
            raise FatalEndpointError(self.fatal)
        if cfg.max_calls is not None and self.calls >= cfg.max_calls:
            raise BudgetExhausted(f"budget of {cfg.max_calls} calls reached")
        worst = 0.0
        if cfg.max_cost is not None:
            worst = self._worst_cost(request)
            if self.cost + self.reserved + worst > cfg.max_cost:
                raise BudgetExhausted(
                    f"budget of ${cfg.max_cost:.2f} reached (spent ${self.cost:.4f})"
                )
        self.calls += 1
        self.reserved += worst
        return worst

    async def _call(self, client, request: Request) -> tuple[str, tuple[int, int]]:
        import openai

        retryable = (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
            openai.APIResponseValidationError,
            json.JSONDecodeError,
        )
        for attempt in range(self.config.max_retries + 1):
            reserved = self._charge(request)
            try:
                response = await client.chat.completions.create(
                    model=self.config.model,
                    messages=request.payload(),
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens,
                )
                text = response.choices[0].message.content or ""
                usage = response.usage
                tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
                self._settle(reserved, tokens)
                return text, tokens
            except openai.APIStatusError as error:
                self._settle(reserved, (0, 0))
                if error.status_code in (401, 403, 404):  # wrong key, no access, no such model
                    self.fatal = (
                        f"{self.config.describe()} refused the job: HTTP {error.status_code}"
                    )
                    raise FatalEndpointError(self.fatal) from None
                if (
                    not isinstance(error, retryable)
                    and error.status_code not in (408, 409)
                    and error.status_code < 500
                ):
                    raise RuntimeError(
                        f"{self.config.describe()} refused the request: HTTP {error.status_code}"
                    ) from None
                last = f"HTTP {error.status_code}"
                wait = _retry_after(error)
            except retryable as error:
                self._settle(reserved, (0, 0))
                last = type(error).__name__
                wait = None
            except (
                TypeError,
                AttributeError,
                IndexError,
                ValueError,
            ) as error:  # unreadable answer
                self._settle(reserved, (0, 0))
                last = f"unreadable answer ({type(error).__name__})"
                wait = None
            if attempt == self.config.max_retries:
                break
            backoff = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
            delay = min(self.config.max_wait, wait if wait is not None else backoff)
            log.info("retrying after %s in %.2f s (attempt %d)", last, delay, attempt + 1)
            await self._sleep(delay)
        raise RuntimeError(
            f"no answer from {self.config.describe()} after {self.config.max_retries + 1} tries ({last})"
        )

    async def _answer(self, client, request: Request, attempt: int) -> tuple[str, bool, float]:
        key = self.key(request, attempt)
        hit = self.cache.get(key)
        if hit is not None:
            return hit["text"], True, 0.0
        text, tokens = await self._call(client, request)
        cost = self._price_of(tokens)
        try:
            self.cache.put(key, self.config.model, request.payload(), text, tokens, cost)
        except sqlite3.Error as error:  # the answer is paid for: keep it for this run at least
            log.warning("could not cache an answer (%s); it will be asked again next run", error)
        return text, False, cost

    def _price_of(self, tokens: tuple[int, int]) -> float:
        price = self.config.price()
        return (tokens[0] * price.input + tokens[1] * price.output) / 1e6

    def _settle(self, reserved: float, tokens: tuple[int, int]) -> None:
        """Replace a call's reservation by what it really cost."""
        self.reserved -= reserved
        self.cost += self._price_of(tokens)
        self.tokens[0] += tokens[0]
        self.tokens[1] += tokens[1]

    async def _complete(self, client, semaphore, request, check) -> Result:
        check = request.check or check
        async with semaphore:
            result = Result(request, None, cached=True)
            try:
                for attempt in range(self.config.validation_retries + 1):
                    text, cached, cost = await self._answer(client, request, attempt)
                    result.text, result.attempts = text, attempt + 1
                    result.cached &= cached
                    result.cost += cost
                    result.problems = check(text) if check else []
                    if not result.problems:
                        break
            except (BudgetExhausted, FatalEndpointError, RuntimeError) as error:
                result.error = str(error)
                result.cached = False
            return result

    # --- many calls -----------------------------------------------------------------------------
    async def complete_async(
        self,
        requests: Sequence[Request],
        check: Callable[[str], list[str]] | None = None,
        progress: bool = True,
    ) -> list[Result]:
        """Answer every request (cache first), at most ``concurrency`` at a time, in order."""
        client = self._client()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        bar = progress_bar(total=len(requests), desc="LLM", unit="call", disable=not progress)

        async def one(request):
            result = await self._complete(client, semaphore, request, check)
            bar.update(1)
            return result

        try:
            results = await asyncio.gather(*(one(r) for r in requests))
        finally:
            bar.close()
            await client.close()
        failed = [r for r in results if r.error]
        if failed:
            log.warning(
                "%d of %d requests got no answer, e.g.: %s",
                len(failed),
                len(results),
                failed[0].error,
            )
        return list(results)

    def complete(
        self,
        requests: Sequence[Request],
        check: Callable[[str], list[str]] | None = None,
        progress: bool = True,
    ) -> list[Result]:
        """:meth:`complete_async` from synchronous code (also inside a running event loop, e.g. Jupyter)."""
        return run_sync(self.complete_async(requests, check, progress))


class BatchJobs:
    """The provider's Batch API for large jobs: build the JSONL, submit, poll, collect into the
    same answer cache. Submitted batches are recorded in the cache before anything else, so a
    crashed job resumes polling instead of paying for a second batch."""

    def __init__(self, client: LLMClient, *, sleep=asyncio.sleep):
        self.llm = client
        self._sleep = sleep

    def lines(self, requests: Sequence[Request]) -> list[dict]:
        """Batch input lines for the requests neither answered nor already in a submitted batch."""
        cfg = self.llm.config
        pending = {k for keys in self.llm.cache.pending_batches().values() for k in keys}
        out, seen = [], set()
        for request in requests:
            key = self.llm.key(request)
            if key in pending or key in seen or self.llm.cache.get(key) is not None:
                continue
            seen.add(key)
            out.append(
                {
                    "custom_id": key,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": cfg.model,
                        "messages": request.payload(),
                        "temperature": cfg.temperature,
                        "max_tokens": cfg.max_tokens,
                    },
                }
            )
        return out

    MAX_LINES = 50_000  # the provider's limit of requests per batch

    async def submit(self, requests: Sequence[Request]) -> list[str]:
        """Upload and start batches (at most :data:`MAX_LINES` requests each) of what is still
        unanswered; returns their ids (none if everything is answered or submitted)."""
        lines = self.lines(requests)
        ids = []
        for start in range(0, len(lines), self.MAX_LINES):
            ids.append(await self._submit_chunk(requests, lines[start : start + self.MAX_LINES]))
        return ids

    async def _submit_chunk(self, requests: Sequence[Request], lines: list[dict]) -> str:
        cfg = self.llm.config
        if cfg.max_cost is not None:
            estimate = self.llm.estimate(
                [r for r in requests if self.llm.key(r) in {line["custom_id"] for line in lines}]
            )
            if self.llm.cost + estimate.cost * cfg.batch_discount > cfg.max_cost:
                raise BudgetExhausted(
                    f"a batch of {len(lines)} calls (about ${estimate.cost * cfg.batch_discount:.2f}) exceeds the budget"
                )
        client = self.llm._client(max_retries=3)
        try:
            payload = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
            upload = await client.files.create(file=("requests.jsonl", payload), purpose="batch")
            batch = await client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        finally:
            await client.close()
        self.llm.cache.add_batch(batch.id, [line["custom_id"] for line in lines])
        log.info("submitted batch %s with %d requests", batch.id, len(lines))
        return batch.id

    async def collect(self, poll_interval: float = 60.0, timeout: float | None = None) -> int:
        """Poll every submitted batch until it ends (or ``timeout``); store its answers. Returns
        how many answers were stored."""
        client = self.llm._client(max_retries=3)
        stored, start = 0, time.monotonic()
        price = self.llm.config.price()
        try:
            while pending := self.llm.cache.pending_batches():
                for batch_id, keys in pending.items():
                    batch = await client.batches.retrieve(batch_id)
                    if batch.status in ("failed", "expired", "cancelled"):
                        self.llm.cache.finish_batch(batch_id, batch.status)
                        log.warning(
                            "batch %s %s; its requests will be made live", batch_id, batch.status
                        )
                    elif batch.status == "completed":
                        content = await client.files.content(batch.output_file_id)
                        stored += self._store(content.text, set(keys), price)
                        self.llm.cache.finish_batch(batch_id, "collected")
                if not self.llm.cache.pending_batches():
                    break
                if timeout is not None and time.monotonic() - start > timeout:
                    break
                await self._sleep(poll_interval)
        finally:
            await client.close()
        return stored

    def _store(self, text: str, keys: set[str], price: Price) -> int:
        stored = 0
        discount = self.llm.config.batch_discount
        for line in filter(None, text.splitlines()):
            item = json.loads(line)
            key, response = item.get("custom_id"), item.get("response") or {}
            body = response.get("body") or {}
            if key not in keys or response.get("status_code") != 200 or not body.get("choices"):
                continue
            usage = body.get("usage") or {}
            tokens = (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
            cost = discount * (tokens[0] * price.input + tokens[1] * price.output) / 1e6
            self.llm.cost += cost
            self.llm.cache.put(
                key,
                self.llm.config.model,
                [],
                body["choices"][0]["message"]["content"] or "",
                tokens,
                cost,
            )
            stored += 1
        return stored

    def run(
        self,
        requests: Sequence[Request],
        check: Callable[[str], list[str]] | None = None,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        progress: bool = True,
    ) -> list[Result]:
        """Collect earlier batches, submit what is unanswered, wait for it, then answer from the
        cache (asking live for anything the batch did not answer or that breaks the rules)."""

        async def job():
            await self.collect(poll_interval, timeout=0)
            await self.submit(requests)
            await self.collect(poll_interval, timeout)

        run_sync(job())
        waiting = {k: b for b, keys in self.llm.cache.pending_batches().items() for k in keys}
        ready = [r for r in requests if self.llm.key(r) not in waiting]  # never pay twice
        answered = iter(self.llm.complete(ready, check, progress))
        return [
            Result(r, None, cached=False, error=f"still in batch {waiting[self.llm.key(r)]}")
            if self.llm.key(r) in waiting
            else next(answered)
            for r in requests
        ]


def run_sync(coroutine):
    """Run a coroutine to completion, in a helper thread if this thread already runs a loop (e.g.
    Jupyter). An interrupt (Ctrl-C, a cancelled cell) cancels the work in the helper thread too."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    loop = asyncio.new_event_loop()
    task = loop.create_task(coroutine)
    box: dict = {}

    def target():
        try:
            box["value"] = loop.run_until_complete(task)
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error
        finally:
            loop.close()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        thread.join()
    except BaseException:
        loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
