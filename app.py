"""Gradio UI: python app.py [--host H] [--port P]. Ingests first if the index is stale."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> None:
    """Bring the index up to date, then serve the page."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    args = parser.parse_args(argv)

    import gradio as gr

    from corpus.settings import Settings
    from corpus.store import Store
    from ingest.pipeline import ingest

    settings = Settings.from_env(host=args.host, port=args.port)
    store = Store.open(settings)
    report = ingest(settings, store=store)
    docs = store.documents()
    rows = [[d.title, d.kind, d.chunks] for d in docs.values()]
    with gr.Blocks(title="Melatonin & gut health assistant") as demo:
        gr.Markdown(
            f"## Index\n{len(docs)} documents, {report.chunks_total} chunks "
            f"(last ingest {store.last_ingest()})"
        )
        gr.Dataframe(value=rows, headers=["title", "kind", "chunks"], interactive=False)
    demo.launch(server_name=settings.host, server_port=settings.port)


if __name__ == "__main__":
    main()
