"""Gradio chat UI: python app.py [--host H] [--port P]. Ingests first if the index is stale.

Nothing imports this module; `ui.server` wires the store, the assistant and ingest together.
"""

from __future__ import annotations

import argparse
import logging
import sys

from settings import Settings, SettingsError, offline


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, then bring the index up to date, warm up and serve (ui.server)."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--host", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    args = parser.parse_args(argv)
    offline()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env(host=args.host, port=args.port)
    except SettingsError as exc:
        parser.error(str(exc))
    from ui.server import StartError, serve

    try:
        serve(settings)
    except StartError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
