"""python -m evals [--questions FILE] [--report DIR] [--split dev|test|all] [--compare]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from settings import offline

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Run the question set; print the table; exit 1 when a threshold is missed."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__)
    parser.add_argument("--questions", type=Path, default=HERE / "data" / "questions.jsonl")
    parser.add_argument("--report", type=Path, default=HERE / "reports")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    parser.add_argument("--corpus", help="corpus folder, to check quotes (default: RAG_CORPUS_DIR)")
    parser.add_argument("--thresholds", type=Path, default=HERE / "data" / "thresholds.toml")
    parser.add_argument("--compare", action="store_true", help="also run dense, bm25 and hybrid")
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from assistant.retrieval import MODES, IndexMissingError
    from evals.metrics import QuestionSetError, load_questions
    from evals.runner import (
        compare_table,
        evaluate,
        load_thresholds,
        run,
        table,
        violations,
        write_reports,
    )
    from settings import Settings, SettingsError

    try:
        questions = load_questions(args.questions, args.split)
    except (OSError, QuestionSetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(index_dir=args.index, corpus_dir=args.corpus)
    except SettingsError as exc:
        parser.error(str(exc))
    assistant = Assistant(settings)
    try:
        assistant.warm_up()
    except IndexMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(run(assistant, questions), settings.corpus_dir)
    if args.compare:
        report["compare"] = {
            mode: evaluate(run(assistant, questions, mode=mode), settings.corpus_dir)["overall"]
            for mode in MODES
        }
    problems = violations(report["overall"], load_thresholds(args.thresholds))
    write_reports(report, args.report, problems)
    print(table(report))
    if args.compare:
        print()
        print(compare_table(report["compare"]))
    print(
        f"\n{len(report['failures'])} of {len(questions)} questions failed; report in {args.report}/"
    )
    for problem in problems:
        print(f"THRESHOLD MISSED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
