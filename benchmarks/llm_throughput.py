"""LLM client throughput against the local OpenAI-compatible server with 200 ms latency.

    .venv/bin/python benchmarks/llm_throughput.py [--n 10000] [--concurrency 64] [--latency 0.2]

Prints the time for N distinct prompts at the given concurrency (target: under 60 s for 10,000 at
concurrency 64), then the time to answer them all again from the cache (target: under 5 s, with no
HTTP call), next to the floor N x latency / concurrency.
"""

import argparse
import tempfile
import time
from pathlib import Path

from facecap_lib.captions.llm import EndpointConfig, LLMClient, Request
from facecap_lib.captions.local_server import LocalServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    requests = [Request.user(f"Describe face number {i}.", str(i)) for i in range(args.n)]
    with LocalServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        config = EndpointConfig(
            model="local", base_url=server.base_url, api_key="k", concurrency=args.concurrency
        )
        cache = Path(tmp) / "answers.sqlite"
        start = time.perf_counter()
        first = LLMClient(config, cache).complete(requests, progress=False)
        cold = time.perf_counter() - start
        calls = sum(server.requests.values())
        start = time.perf_counter()
        second = LLMClient(config, cache)
        again = second.complete(requests, progress=False)
        warm = time.perf_counter() - start
    assert all(r.text for r in first) and all(r.cached for r in again) and second.calls == 0
    floor = args.n * args.latency / args.concurrency
    print(f"{args.n} prompts, concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency")
    print(
        f"first run:  {cold:6.1f} s  ({args.n / cold:6.0f} calls/s, {calls} HTTP calls; floor {floor:.1f} s; target < 60 s)"
    )
    print(f"from cache: {warm:6.1f} s  ({second.calls} HTTP calls; target < 5 s)")


if __name__ == "__main__":
    main()
