"""Ingest against a real Chroma on disk and the real model: what a curator would notice."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, declared_kind, make_pdf, run_cli
from pypdf import PdfWriter

from corpus.store import Store
from evals.bench import chroma_server
from ingest.chunking import collapse
from ingest.pipeline import CorpusError, index_lock, ingest
from settings import Settings

CONTRACT_KEYS = set(
    [
        "added",
        "updated",
        "removed",
        "unchanged",
        "chunks_embedded",
        "chunks_total",
        "skipped",
        "seconds",
    ]
)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under folder with its sha256: to prove the corpus is never written."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_seed_ingest_meets_the_json_contract(seed_index: tuple[Path, dict]) -> None:
    _, report = seed_index
    assert set(report) == CONTRACT_KEYS
    assert (report["added"], report["updated"], report["removed"], report["unchanged"]) == (
        2,
        0,
        0,
        0,
    )
    assert report["skipped"] == []
    assert report["chunks_embedded"] == report["chunks_total"] > 20


def test_chunks_carry_metadata_and_offsets_into_the_original_file(seed_index) -> None:
    store = Store.open(Settings(index_dir=seed_index[0]))
    chunks = store.live_chunks()
    by_doc = {c.doc_id for c in chunks}
    assert by_doc == {"melatonin-microbiome-synergy", "how-gut-health-affects-sleep"}
    for chunk in chunks:
        assert chunk.kind == declared_kind(chunk.source), chunk.source  # sources.toml's kind
        original = (CORPUS / chunk.source).read_text(encoding="utf-8")
        assert 0 <= chunk.start < chunk.end <= len(original)
        sentences = store.sentence_records(chunk.sentence_ids)
        assert [s.id for s in sentences] == list(chunk.sentence_ids)
        for sentence in sentences:
            assert collapse(original[sentence.start : sentence.end]) == sentence.text
            assert sentence.text in chunk.text
        assert len(chunk.embedding_text()) <= 1100  # fits the model's 256-token window
    sections = {c.section for c in chunks}
    assert "Melatonin Side Effects" in sections
    assert "Why I Prefer Low-Dose Melatonin (1 mg)" in sections


def test_boilerplate_never_becomes_chunk_text(seed_index) -> None:
    chunks = Store.open(Settings(index_dir=seed_index[0])).live_chunks()
    text = "\n".join(c.text for c in chunks).lower()
    assert "innerbuddies gut microbiome testing" not in text
    assert "restless sleep" not in text
    assert "probiotic supplements for restful nights" not in text
    assert "melatonin has been shown to influence the composition" in text  # real content stays


def test_unchanged_corpus_embeds_nothing(workspace: Settings) -> None:
    report = ingest(workspace)  # no embedder passed: none must be needed
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 2)
    assert report.chunks_embedded == 0
    assert report.seconds < 1.0


def test_edit_add_delete_give_exact_reports_and_fresh_search(workspace: Settings, embedder) -> None:
    before = tree_digest(workspace.corpus_dir)
    doc = workspace.corpus_dir / "how-gut-health-affects-sleep.txt"
    doc.write_text(
        doc.read_text(encoding="utf-8").replace(
            "It dissolves easily, tastes pleasant, and I wake up feeling clear rather than heavy.",
            "It dissolves slowly, tastes of lemon zest, and I wake up humming sea shanties.",
        ),
        encoding="utf-8",
    )
    report = ingest(workspace, embedder=embedder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, 1)
    assert 0 < report.chunks_embedded <= 2  # only the edited chunk(s), not the whole document
    store = Store.open(workspace)
    texts = " ".join(c.text for c in store.live_chunks())
    assert "humming sea shanties" in texts and "clear rather than heavy" not in texts
    hit = store.search(embedder.embed_query("waking up humming sea shanties"), 1)[0][0]
    assert "sea shanties" in store.chunks.get(ids=[hit])["documents"][0]
    assert store.stored_versions() == {e.version for e in store.documents().values()}

    (workspace.corpus_dir / "notes.md").write_text(
        "# Valerian\n\nValerian root tea is an old sleep remedy.\n", encoding="utf-8"
    )
    report = ingest(workspace, embedder=embedder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 0, 0, 2)
    assert any(c.section == "Valerian" for c in store.live_chunks())

    (workspace.corpus_dir / "melatonin-microbiome-synergy.txt").unlink()
    report = ingest(workspace, embedder=embedder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 1, 2)
    assert {c.doc_id for c in store.live_chunks()} == {"how-gut-health-affects-sleep", "notes"}
    assert store.chunks.count() == report.chunks_total  # old chunks deleted, not just hidden
    assert "how-gut-health-affects-sleep.txt" in before


def test_metadata_change_reingests_the_document(workspace: Settings, embedder) -> None:
    meta = workspace.corpus_dir / "sources.toml"
    meta.write_text(meta.read_text().replace('"personal account"', '"blog post"'), encoding="utf-8")
    report = ingest(workspace, embedder=embedder)
    assert (report.updated, report.unchanged, report.chunks_embedded) == (1, 1, 0)
    kinds = {e.doc_id: e.kind for e in Store.open(workspace).documents().values()}
    assert kinds["how-gut-health-affects-sleep"] == "blog post"


def test_document_without_metadata_takes_its_first_line_as_title(tmp_path: Path, embedder) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "sleep-tips.txt").write_text(
        "Sleep Tips For Shift Workers\n\nKeep the bedroom dark and cool during the day.\n",
        encoding="utf-8",
    )
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    assert ingest(settings, embedder=embedder).added == 1
    (entry,) = Store.open(settings).documents().values()
    assert entry.title == "Sleep Tips For Shift Workers"
    assert entry.kind == "document"


def test_bad_files_are_skipped_with_specific_reasons(tmp_path: Path, embedder) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "good.txt").write_text(
        "Melatonin\n\nMelatonin is a hormone made at night.\n", encoding="utf-8"
    )
    (corpus / "empty.txt").write_text("", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 100)
    (corpus / "latin1.txt").write_bytes("Caf\xe9 au lait helps nobody sleep.".encode("latin-1"))
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (corpus / "scan.pdf").write_bytes(_blank_pdf())
    (corpus / "locked.pdf").write_bytes(_encrypted_pdf())
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (corpus / "paper.pdf").write_bytes(
        make_pdf("Melatonin and the gut", "Melatonin is made in the gut too.")
    )
    outside = tmp_path / "secret.txt"
    outside.write_text("Private notes that must never be indexed.", encoding="utf-8")
    (corpus / "link.txt").symlink_to(outside)
    before = tree_digest(corpus)

    report = ingest(Settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=embedder)

    reasons = {s.source: s.reason for s in report.skipped}
    assert reasons == {
        "empty.txt": "empty file",
        "binary.txt": "binary file (contains NUL bytes), not text",
        "latin1.txt": "not valid UTF-8 (byte 0xe9 at offset 3)",
        "image.png": "unsupported file type '.png'",
        "scan.pdf": "PDF has no text layer (scanned image?)",
        "locked.pdf": "encrypted PDF (password required)",
        "broken.pdf": reasons["broken.pdf"],
        "link.txt": "symbolic link to a file outside the corpus (not followed)",
    }
    assert reasons["broken.pdf"].startswith("unreadable PDF")
    assert report.added == 2  # good.txt and paper.pdf
    assert tree_digest(corpus) == before
    texts = " ".join(
        c.text for c in Store.open(Settings(index_dir=tmp_path / "index")).live_chunks()
    )
    assert "Melatonin is made in the gut too." in texts
    assert "Private notes" not in texts


def test_html_and_markdown_keep_their_headings(tmp_path: Path, embedder) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "page.html").write_text(
        "<html><head><title>Gut &amp; Sleep</title><script>alert(1)</script></head><body>"
        "<nav>Home | Shop</nav><h1>Gut &amp; Sleep</h1><h2>Fibre</h2>"
        "<p>Fibre feeds <b>beneficial</b> bacteria.</p><ul><li>Oats</li><li>Lentils</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    (corpus / "guide.md").write_text(
        "---\ntitle: A Guide\n---\n# Intro\n\nSome words here.\n\n"
        "## Light\n\nDim the lights at night.\n",
        encoding="utf-8",
    )
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    ingest(settings, embedder=embedder)
    store = Store.open(settings)
    titles = {e.doc_id: e.title for e in store.documents().values()}
    assert titles == {"page": "Gut & Sleep", "guide": "A Guide"}
    chunks = {(c.doc_id, c.section): c.text for c in store.live_chunks()}
    assert chunks[("page", "Fibre")] == "Fibre feeds beneficial bacteria.\nOats\nLentils"
    assert chunks[("guide", "Light")] == "Dim the lights at night."
    assert "alert" not in " ".join(chunks.values()) and "Shop" not in " ".join(chunks.values())


def test_cli_missing_corpus_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("ingest", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: corpus folder not found: {tmp_path / 'nope'}"
    ]
    assert result.stdout == ""


def test_missing_corpus_raises_in_the_api(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus folder not found"):
        ingest(Settings(corpus_dir=tmp_path / "absent", index_dir=tmp_path / "index"))


def test_rebuild_starts_from_scratch(workspace: Settings) -> None:
    result = run_cli(
        "ingest", "--corpus", str(workspace.corpus_dir), "--index", str(workspace.index_dir),
        "--rebuild", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 2 and report["unchanged"] == 0
    assert report["chunks_embedded"] == report["chunks_total"]
    assert "embedding" in result.stderr  # the progress bar goes to stderr


def test_a_second_ingest_waits_for_the_first(workspace: Settings) -> None:
    (workspace.corpus_dir / "extra.txt").write_text(
        "Extra\n\nChamomile tea is calming.\n", encoding="utf-8"
    )
    args = [
        "ingest",
        "--corpus",
        str(workspace.corpus_dir),
        "--index",
        str(workspace.index_dir),
        "--json",
    ]
    lines: list[str] = []
    with index_lock(workspace.index_dir, log=lambda _: None):  # a first ingest holds the lock
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
        reader.start()
        deadline = time.time() + 120
        while not any("another ingest is running" in line for line in lines):
            assert time.time() < deadline and process.poll() is None, lines
            time.sleep(0.1)
        time.sleep(0.5)
        assert process.poll() is None  # still waiting, has written nothing
        assert Store.open(workspace).documents().keys() == {
            "how-gut-health-affects-sleep.txt",
            "melatonin-microbiome-synergy.txt",
        }
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert json.loads(out)["added"] == 1
    store = Store.open(workspace)
    assert len(store.documents()) == 3
    assert store.stored_versions() == {e.version for e in store.documents().values()}


@pytest.mark.slow
def test_chroma_server_mode(tmp_path: Path, embedder) -> None:
    with chroma_server(tmp_path / "server", tmp_path / "chroma.log") as port:
        settings = Settings.from_env(
            {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port)},
            corpus_dir=CORPUS,
            index_dir=tmp_path / "local",
        )
        report = ingest(settings, embedder=embedder)
        assert report.added == 2 and report.chunks_total > 20
        assert ingest(settings, embedder=embedder).chunks_embedded == 0
        store = Store.open(settings)
        assert store.location == f"http://127.0.0.1:{port}"
        hit = store.search(embedder.embed_query("side effects of melatonin such as dizziness"), 1)[
            0
        ][0]
        assert "dizziness" in store.chunks.get(ids=[hit])["documents"][0]
        assert not (tmp_path / "local" / "chroma").exists()  # nothing went to the embedded store


def _blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf("Secret dosing table")))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_env_settings_are_read(tmp_path: Path) -> None:
    env = {"RAG_CORPUS_DIR": str(tmp_path), "RAG_INDEX_DIR": "x", "RAG_PORT": "9999"}
    settings = Settings.from_env(env, index_dir="override")
    assert settings.corpus_dir == tmp_path and settings.port == 9999
    assert settings.index_dir == Path("override")
    assert os.path.isdir(settings.model_path())


def test_onnx_backends_are_exported_locally_and_agree_with_torch(tmp_path: Path) -> None:
    from corpus.embeddings import Embedder
    from settings import default_model_path

    texts = ["How much melatonin should I take?", "Probiotics may ease bloating and gas."]
    model = default_model_path()
    torch_vectors = Embedder(model, backend="torch").encode(texts)
    onnx = Embedder(model, backend="onnx", cache_dir=tmp_path)
    int8 = Embedder(model, backend="onnx-int8", cache_dir=tmp_path)
    agreement = (torch_vectors * onnx.encode(texts)).sum(axis=1)
    int8_agreement = (torch_vectors * int8.encode(texts)).sum(axis=1)
    assert agreement.min() > 0.9999  # the same model, run by onnxruntime
    assert 0.95 < int8_agreement.min() < 0.9999  # quantized: close, but another vector space
    assert onnx.space == Embedder(model, backend="torch").space != int8.space
    assert sorted(p.name for p in tmp_path.rglob("*.onnx")) == ["model-int8.onnx", "model.onnx"]


def test_a_new_vector_space_re_embeds_everything_and_old_readers_are_told(
    workspace: Settings,
) -> None:
    from assistant.chain import Assistant
    from assistant.retrieval import IndexMismatchError

    before = Store.open(workspace).chunks.count()
    int8 = workspace.replace(embed_backend="onnx-int8")
    messages: list[str] = []
    report = ingest(int8, log=messages.append)
    assert report.chunks_embedded == report.chunks_total == before  # nothing reused across spaces
    assert any("rebuilding" in m for m in messages)
    with pytest.raises(IndexMismatchError, match="RAG_EMBED_BACKEND"):
        Assistant(workspace).warm_up()  # fp32 queries against int8 vectors: refused, not wrong
    assert Assistant(int8).ask("How much melatonin should I take?").status == "answered"


def test_search_only_index_ranks_but_does_not_pretend_to_answer(tmp_path: Path) -> None:
    index = tmp_path / "index"
    result = run_cli(
        "ingest", "--corpus", str(CORPUS), "--index", str(index), "--json", "--search-only"
    )
    assert result.returncode == 0, result.stderr
    assert Store.open(Settings(index_dir=index)).sentences.count() == 0
    query = json.dumps({"id": "q", "question": "gut bacteria and melatonin"}) + "\n"
    found = run_cli("assistant", "search", "--jsonl", "--index", str(index), stdin=query)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"]
    asked = run_cli("assistant", "ask", "--index", str(index), "What are probiotics?")
    assert asked.returncode == 1
    assert "--search-only" in asked.stderr
