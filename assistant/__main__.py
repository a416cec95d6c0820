"""python -m assistant ask [--index DIR] [--json|--jsonl] "QUESTION" | search --jsonl [--k K]"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from settings import offline

_SURROGATE = re.compile("[\ud800-\udfff]")


def main(argv: list[str] | None = None) -> int:
    """Answer questions (ask) or rank documents (search) from the command line."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question, or JSON lines from stdin")
    ask.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    ask.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument(
        "--jsonl", action="store_true", help="read JSON lines from stdin, write JSON lines"
    )
    search = commands.add_parser("search", help="rank documents for JSON-line queries from stdin")
    search.add_argument("--jsonl", action="store_true", required=True, help="JSON lines in and out")
    search.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    search.add_argument("--k", type=int, default=10, help="documents per query (default 10)")
    search.add_argument("--mode", choices=("hybrid", "dense", "bm25"), default="hybrid")
    args = parser.parse_args(argv)
    if args.command == "ask" and args.jsonl == bool(args.question):
        parser.error("give a QUESTION, or --jsonl to read questions from stdin (not both)")

    from assistant.chain import Assistant
    from assistant.retrieval import IndexMissingError
    from corpus.store import StoreError
    from settings import Settings, SettingsError

    try:
        settings = Settings.from_env(index_dir=args.index)
    except SettingsError as exc:
        parser.error(str(exc))
    if not (settings.chroma_host or (settings.index_dir / "chroma").is_dir()):
        print(
            f"error: no index at {settings.index_dir}: run `make ingest` (python -m ingest) first",
            file=sys.stderr,
        )
        return 1
    assistant = Assistant(settings)
    try:
        if args.command == "search":  # ranking needs the retriever only, not sentences
            assistant.retriever.warm_up()
        else:
            assistant.warm_up()
    except (IndexMissingError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "search":
        return _search(assistant, args.k, args.mode)
    if args.jsonl:
        return _ask_lines(assistant)
    answer = assistant.ask(args.question)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
    else:
        from assistant.render import plain_text

        print(plain_text(answer))
    return 0


def _lines() -> Any:
    """Each non-blank stdin line as a JSON object, or a record carrying why it is not one.

    Lines are read as bytes, so invalid UTF-8, a lone surrogate, or JSON nested too deep for
    the parser costs that line only (an `error` line), never the lines after it.
    """
    for number, raw in enumerate(sys.stdin.buffer, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            yield record
        except UnicodeDecodeError:
            yield _bad(number, "the line is not valid UTF-8")
        except RecursionError:
            yield _bad(number, "JSON nested too deeply")
        except ValueError as exc:
            yield _bad(number, f"invalid JSON ({exc})")


def _bad(number: int, why: str) -> dict[str, Any]:
    return {"id": f"line-{number}", "question": None, "_error": f"line {number}: {why}"}


def _emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout, valid UTF-8 whatever the input held (lone surrogates become U+FFFD)."""
    text = json.dumps(record, ensure_ascii=False)
    sys.stdout.buffer.write(_SURROGATE.sub("\ufffd", text).encode("utf-8"))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def _ask_lines(assistant: Any) -> int:
    import logging

    from assistant.replies import error_answer

    for record in _lines():
        history = record.get("history") or []
        if "_error" in record:
            answer = error_answer(record["_error"])
        else:
            try:
                answer = assistant.ask(
                    record.get("question"), history if isinstance(history, list) else []
                )
            except Exception:  # one line's failure must not cost the lines after it
                logging.getLogger("assistant").exception("answering a line failed")
                answer = error_answer("the assistant failed on this line; it has been logged")
        _emit(answer.to_json(id=str(record.get("id", ""))))
    return 0


def _search(assistant: Any, k: int, mode: str) -> int:
    for record in _lines():
        question = record.get("question")
        results = []
        if isinstance(question, str) and question.strip():
            results = [
                {"doc_id": doc_id, "score": round(score, 6)}
                for doc_id, score in assistant.retriever.rank_documents(question, k=k, mode=mode)
            ]
        _emit({"id": str(record.get("id", "")), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
