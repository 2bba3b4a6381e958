"""The LLM client against a real HTTP server on 127.0.0.1 that injects faults."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from facecap_lib.captions.llm import EndpointConfig, LLMClient, Price, Request, run_sync
from facecap_lib.captions.local_server import LocalServer
from facecap_lib.captions.prompts import au_prompt
from facecap_lib.captions.validate import check_au_caption

SECRET = "sk-test-NEVER-SHOW-THIS-0123456789"


@pytest.fixture
def server():
    with LocalServer() as s:
        yield s


class Sleeps:
    """Records backoff waits instead of sleeping."""

    def __init__(self):
        self.waits = []

    async def __call__(self, seconds):
        self.waits.append(seconds)


def client(server, tmp_path, sleeps=None, **config):
    cfg = EndpointConfig(model="local", base_url=server.base_url, api_key=SECRET, **config)
    return LLMClient(cfg, tmp_path / "cache.sqlite", sleep=sleeps or Sleeps())


def prompts(n, start=1):
    aus = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26]
    return [
        Request.user(
            au_prompt({aus[i % len(aus)], aus[(i * 7 + 3) % len(aus)]}) + f"\n#{i}", tag=str(i)
        )
        for i in range(start, start + n)
    ]


def test_faults_are_retried_and_retry_after_is_honoured(server, tmp_path):
    sleeps = Sleeps()
    llm = client(server, tmp_path, sleeps, concurrency=1)
    server.inject(("429", 7), ("500",), ("malformed",))
    results = llm.complete(prompts(2), check=check_au_caption, progress=False)
    assert all(r.text and not r.problems and not r.error for r in results)
    assert sleeps.waits[0] == 7.0 and len(sleeps.waits) == 3  # Retry-After, then backoff twice
    assert llm.calls == 5


def test_timeouts_are_retried(server, tmp_path):
    llm = client(server, tmp_path, timeout=0.3, concurrency=1)
    server.inject(("slow", 1.5))
    [result] = llm.complete(prompts(1), progress=False)
    assert result.text and llm.calls == 2


def test_rule_breaking_answers_are_asked_again_then_flagged(server, tmp_path):
    llm = client(server, tmp_path, concurrency=1, validation_retries=2)
    server.inject(("rule-break",))
    [fixed] = llm.complete(prompts(1), check=check_au_caption, progress=False)
    assert fixed.attempts == 2 and fixed.problems == []
    server.inject(("rule-break",), ("rule-break",), ("rule-break",))
    [flagged] = llm.complete(prompts(1, start=50), check=check_au_caption, progress=False)
    assert flagged.attempts == 3 and "mentions AU" in flagged.problems and flagged.text


def test_cache_means_no_second_payment(server, tmp_path):
    requests = prompts(20)
    first = client(server, tmp_path, concurrency=8).complete(requests, progress=False)
    before = sum(server.requests.values())
    again_client = client(server, tmp_path, concurrency=8)
    again = again_client.complete(requests, progress=False)
    assert sum(server.requests.values()) == before and again_client.calls == 0
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)


def test_cache_key_ignores_endpoint_and_key(server, tmp_path):
    a = client(server, tmp_path)
    b = LLMClient(
        EndpointConfig(model="local", base_url="http://elsewhere/v1", api_key="other"), a.cache
    )
    request = prompts(1)[0]
    assert a.key(request) == b.key(request)
    c = LLMClient(EndpointConfig(model="other-model"), a.cache)
    assert c.key(request) != a.key(request) and a.key(request, attempt=1) != a.key(request)


def test_budget_stops_cleanly(server, tmp_path):
    llm = client(server, tmp_path, concurrency=1, max_calls=3)
    results = llm.complete(prompts(6), progress=False)
    assert sum(r.text is not None for r in results) == 3 and llm.calls == 3
    assert all("budget of 3 calls" in r.error for r in results if r.text is None)
    priced = client(
        server, tmp_path, concurrency=1, max_cost=0.01, prices={"local": Price(10.0, 10.0)}
    )
    results = priced.complete(prompts(6, start=100), progress=False)
    assert 0 < sum(r.text is not None for r in results) < 6 and priced.cost <= 0.01


def test_estimate_before_a_job(server, tmp_path):
    llm = client(server, tmp_path, prices={"local": Price(1.0, 2.0)})
    requests = prompts(10)
    llm.complete(requests[:4], progress=False)
    estimate = llm.estimate(requests)
    assert (estimate.calls, estimate.cached) == (6, 4)
    assert estimate.cost == pytest.approx(
        (estimate.prompt_tokens * 1.0 + estimate.completion_tokens * 2.0) / 1e6
    )


def test_configuration_from_the_environment(monkeypatch):
    monkeypatch.delenv("FACECAP_LLM_MODEL", raising=False)
    assert EndpointConfig.from_env() is None
    monkeypatch.setenv("FACECAP_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    cfg = EndpointConfig.from_env(concurrency=4)
    assert (cfg.model, cfg.api_key, cfg.concurrency) == ("gpt-4o-mini", SECRET, 4)
    assert SECRET not in repr(cfg) and SECRET not in cfg.describe()


def test_the_key_never_leaks(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    llm = client(server, tmp_path, concurrency=2, max_retries=3)
    server.inject(("429", 0), ("500",), ("401",))
    results = llm.complete(prompts(4), progress=False)
    refused = [r for r in results if r.error]
    assert refused and all("refused the job: HTTP 401" in r.error for r in refused)
    assert server.seen_authorization[0] == f"Bearer {SECRET}"  # it was sent ...
    texts = [caplog.text, repr(llm), repr(llm.config)] + [str(r) for r in results]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("cache.sqlite*")]
    assert not any(SECRET in t for t in texts)  # ... and is nowhere else


def test_kill_minus_nine_loses_at_most_the_calls_in_flight(tmp_path):
    with LocalServer(latency=0.05) as server:
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(os.getcwd())!r})
            from facecap_lib.captions.llm import EndpointConfig, LLMClient
            from tests.test_llm import prompts
            cfg = EndpointConfig(model="local", base_url={server.base_url!r}, api_key="k", concurrency=4)
            LLMClient(cfg, {str(tmp_path / "cache.sqlite")!r}).complete(prompts(120), progress=False)
        """)
        job = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.time() + 60
        while sum(server.requests.values()) < 30 and time.time() < deadline:
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
        job.wait()
        answered_before = sum(server.requests.values())
        assert 30 <= answered_before < 120
        resumed = client(server, tmp_path, concurrency=4)
        results = resumed.complete(prompts(120), progress=False)
        assert all(r.text for r in results)
        repeated = [p for p, n in server.requests.items() if n > 1]
        assert len(repeated) <= 4  # only the calls in flight when the job died
        assert resumed.calls <= 120 - answered_before + 4


def test_batch_api_submit_poll_collect_and_no_second_batch(server, tmp_path):
    from facecap_lib.captions.llm import BatchJobs

    sleeps = Sleeps()
    llm = client(server, tmp_path, sleeps)
    jobs = BatchJobs(llm, sleep=sleeps)
    requests = prompts(12)
    assert len(jobs.lines(requests + requests)) == 12  # one line per distinct request
    [batch_id] = run_sync(jobs.submit(requests))
    assert batch_id == "batch-1" and llm.cache.pending_batches() == {
        batch_id: [llm.key(r) for r in requests]
    }
    assert jobs.lines(requests) == []  # submitted: a crash and a re-run must not pay again
    server.batch_polls_until_done = 2  # "in progress" twice: the job waits and polls again
    results = BatchJobs(client(server, tmp_path, sleeps), sleep=sleeps).run(
        requests, check=check_au_caption, progress=False
    )
    assert all(r.text and r.cached for r in results)  # answered by the batch, from the cache
    assert len(server.batches) == 1 and sleeps.waits  # one batch, polled until done
    live_before = sum(server.requests.values())
    BatchJobs(client(server, tmp_path, sleeps), sleep=sleeps).run(requests, progress=False)
    assert len(server.batches) == 1 and sum(server.requests.values()) == live_before


def test_a_refused_key_stops_the_whole_job(server, tmp_path):
    llm = client(server, tmp_path, concurrency=2)
    server.inject(*[("401",)] * 2)
    results = llm.complete(prompts(30), progress=False)
    assert all(r.error and "HTTP 401" in r.error for r in results)
    assert llm.calls <= 2  # the calls in flight, then nothing more


def test_cost_budget_holds_under_concurrency(server, tmp_path):
    llm = client(
        server, tmp_path, concurrency=16, max_cost=0.01, prices={"local": Price(10.0, 10.0)}
    )
    results = llm.complete(prompts(60, start=300), progress=False)
    assert 0 < sum(r.text is not None for r in results) < 60
    assert llm.cost <= 0.01 and llm.reserved == pytest.approx(0.0)


def test_prices_are_never_made_up():
    with pytest.raises(ValueError, match="no price known for model 'mystery'"):
        EndpointConfig(model="mystery", base_url="https://api.together.xyz/v1").price()
    assert EndpointConfig(model="mystery", base_url="http://localhost:8000/v1").price() == Price(
        0, 0
    )
    cfg = EndpointConfig(model="m", base_url="https://user:pw@example.org:8443/v1?token=abc")
    assert cfg.describe() == "m at https://example.org:8443/v1"


def test_retry_after_as_a_date_and_capped(server, tmp_path):
    from email.utils import formatdate

    sleeps = Sleeps()
    llm = client(server, tmp_path, sleeps, concurrency=1, max_wait=5)
    server.inject(("429", formatdate(time.time() + 30, usegmt=True)), ("429", 86400))
    [result] = llm.complete(prompts(1), progress=False)
    assert result.text and sleeps.waits[0] == pytest.approx(5, abs=0.01) and sleeps.waits[1] == 5


def test_same_prompt_for_two_images_is_two_calls(server, tmp_path):
    from facecap_lib.captions.llm import Request

    llm = client(server, tmp_path)
    prompt = au_prompt({6, 12})
    results = llm.complete(
        [Request.user(prompt, "a.jpg"), Request.user(prompt, "b.jpg")], progress=False
    )
    assert llm.calls == 2 and results[0].text and results[1].text


def test_a_batch_still_running_is_not_paid_again_live(server, tmp_path):
    from facecap_lib.captions.llm import BatchJobs

    sleeps = Sleeps()
    server.batch_polls_until_done = 10**6  # never finishes
    jobs = BatchJobs(client(server, tmp_path, sleeps), sleep=sleeps)
    results = jobs.run(prompts(5), poll_interval=0.01, timeout=0.05, progress=False)
    assert all(r.error and r.error.startswith("still in batch batch-1") for r in results)
    assert sum(server.requests.values()) == 0
