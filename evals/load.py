"""python -m evals.load [--url URL] [--sessions 20] [--questions 10]: concurrent chat sessions.

Each session is its own `gradio_client.Client` keeping its own history; sessions ask about
different topics and then the same follow-ups ("Which ones are most common?"), so an answer
drawn from another session's history shows up as a wrong topic. Without --url the app is started
on a free loopback port and stopped afterwards. Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from assistant.safety import DISCLAIMER
from evals.metrics import percentile
from settings import offline

ROOT = Path(__file__).resolve().parents[1]

# (opening question, the word its follow-ups' retrieval query must carry, and no other's)
TOPICS = (
    ("What are probiotics?", "probiotics"),
    ("What are the side effects of melatonin?", "side"),
    ("What is the gut microbiome?", "microbiome"),
    ("Can melatonin help with IBS symptoms?", "ibs"),
)
FOLLOW_UPS = (
    "Which ones are most common?",
    "Tell me more about that.",
    "Why is that?",
)
OFF_TOPIC = "What is the capital of France?"


@dataclass
class Tally:
    """What all sessions saw."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: int = 0
    refused: int = 0
    with_citations: int = 0
    with_disclaimer: int = 0
    cross_talk: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def session(url: str, number: int, questions: int, tally: Tally) -> None:
    """One user: an opening question, follow-ups relying on the history, one off-topic question."""
    from gradio_client import Client

    opening, marker = TOPICS[number % len(TOPICS)]
    others = [m for _, m in TOPICS if m != marker]
    client = Client(url, verbose=False)
    history: list[dict[str, str]] = []
    for i in range(questions):
        if i == 0:
            question = opening
        elif i == questions - 1:
            question = OFF_TOPIC
        else:
            question = FOLLOW_UPS[(i - 1) % len(FOLLOW_UPS)]
        started = time.perf_counter()
        try:
            result = client.predict(question, history, api_name="/ask")
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
            with tally.lock:
                tally.errors.append(f"session {number}: {type(exc).__name__}: {exc}")
            continue
        elapsed = (time.perf_counter() - started) * 1000
        with tally.lock:
            tally.latencies.append(elapsed)
            tally.with_disclaimer += result.get("disclaimer") == DISCLAIMER
            query = result.get("query", "").lower()
            if question in FOLLOW_UPS and any(
                m in query for m in others
            ):  # the follow-up was read with some other session's history
                tally.cross_talk.append(f"session {number} ({opening}) searched {query!r}")
            if result["status"] == "answered":
                tally.answered += 1
                tally.with_citations += bool(result["citations"])
            elif result["status"] == "refused":
                tally.refused += 1
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": result["answer"]},
        ]


def run(url: str, sessions: int, questions: int) -> dict[str, float | int | list[str]]:
    """All sessions at once; returns throughput, latency percentiles and the failure counts."""
    host = urllib.parse.urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load tests run against loopback only, not {host}")
    tally = Tally()
    threads = [
        threading.Thread(target=session, args=(url, n, questions, tally)) for n in range(sessions)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    seconds = time.perf_counter() - started
    asked = len(tally.latencies)
    return {
        "sessions": sessions,
        "questions": sessions * questions,
        "completed": asked,
        "seconds": seconds,
        "throughput_qps": asked / seconds,
        "p50_ms": percentile(tally.latencies, 50),
        "p95_ms": percentile(tally.latencies, 95),
        "errors": len(tally.errors),
        "answered": tally.answered,
        "refused": tally.refused,
        "answered_with_citations": tally.with_citations,
        "with_disclaimer": tally.with_disclaimer,
        "cross_talk": tally.cross_talk,
        "error_samples": tally.errors[:5],
    }


def free_port() -> int:
    """A free loopback TCP port (nothing holds it once this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(
    url: str,
    process: subprocess.Popen,
    timeout: float,
    log: IO[str] | None = None,
    what: str = "the server",
    interval: float = 0.2,
) -> None:
    """Poll `url` until it answers; RuntimeError (with the log, opened "w+") if `process` exits
    or `timeout` seconds pass first."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.perf_counter() > deadline:
                output = ""
                if log is not None:
                    log.flush()
                    log.seek(0)
                    output = log.read()
                raise RuntimeError(f"{what} did not start at {url}:\n{output}") from None
            time.sleep(interval)


@contextmanager
def served_app(env: dict[str, str] | None = None, log_path: Path | None = None) -> Iterator[str]:
    """`python app.py` on a free loopback port; yields its URL (its output goes to `log_path`)."""
    port = free_port()
    log = log_path.open("w+") if log_path else tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, app, timeout=300, log=log, what="the app")
        yield url
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()


def report(result: dict[str, float | int | list[str]]) -> str:
    """The figures, one per line."""
    return "\n".join(
        [
            f"{result['sessions']} sessions x {result['questions'] // result['sessions']} "
            f"questions: {result['completed']} completed in {result['seconds']:.1f} s "
            f"({result['throughput_qps']:.1f} questions/s)",
            f"latency p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms",
            f"errors {result['errors']}, answered {result['answered']} "
            f"(with citations {result['answered_with_citations']}), refused {result['refused']}, "
            f"with disclaimer {result['with_disclaimer']}, cross-talk {len(result['cross_talk'])}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the load test; exit 1 on any error, missing citation or disclaimer, or cross-talk."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m evals.load", description=__doc__)
    parser.add_argument("--url", help="a running app (loopback only); default: start one")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--questions", type=int, default=10)
    args = parser.parse_args(argv)
    if args.url:
        result = run(args.url, args.sessions, args.questions)
    else:
        with served_app() as url:
            result = run(url, args.sessions, args.questions)
    print(report(result))
    ok = (
        result["errors"] == 0
        and result["completed"] == result["questions"]
        and result["answered_with_citations"] == result["answered"]
        and result["with_disclaimer"] == result["completed"]
        and not result["cross_talk"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
