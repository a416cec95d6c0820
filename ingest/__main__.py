"""python -m ingest [--corpus DIR] [--index DIR] [--rebuild] [--json] [--search-only]"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from settings import offline


def main(argv: list[str] | None = None) -> int:
    """Run one incremental ingest; exit 0 when the index matches the corpus, 2 on usage errors."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument(
        "--corpus", help="documents folder (default: RAG_CORPUS_DIR or corpus/documents)"
    )
    parser.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    parser.add_argument("--rebuild", action="store_true", help="drop the index and rebuild it")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--search-only",
        action="store_true",
        default=None,
        help="embed chunks only, not sentences: half the time, for `assistant search` benchmarks",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from corpus.store import StoreError
    from ingest.pipeline import CorpusError, TerminalProgress, ingest
    from settings import Settings, SettingsError

    try:
        settings = Settings.from_env(
            corpus_dir=args.corpus, index_dir=args.index, search_only=args.search_only
        )
    except SettingsError as exc:
        parser.error(str(exc))
    try:
        with TerminalProgress() as progress:
            report = ingest(settings, rebuild=args.rebuild, progress=progress, log=progress.write)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged; {report.chunks_embedded} chunks embedded, "
            f"{report.chunks_total} in the index ({report.seconds:.2f} s)"
        )
        for skip in report.skipped:
            print(f"skipped {skip.source}: {skip.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
