"""The Gradio app, served for real: driven through gradio_client and headless Chromium."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CORPUS, served_app

from assistant.safety import DISCLAIMER

XSS_DOC = (
    "Chamomile Notes\n\n"
    "Chamomile tea <script>alert('xss')</script> is a bedtime drink "
    "<img src=x onerror=alert(1)> that many people enjoy before sleep.\n"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, seed_index) -> Iterator[str]:
    """python app.py on a free loopback port, over a copy of the corpus plus a hostile document."""
    root = tmp_path_factory.mktemp("app")
    corpus = root / "documents"
    shutil.copytree(CORPUS, corpus)
    (corpus / "chamomile-notes.txt").write_text(XSS_DOC, encoding="utf-8")
    shutil.copytree(seed_index[0], root / "index")
    with served_app(corpus, root / "index", root / "app.log") as url:
        yield url


def test_ask_endpoint_returns_the_cli_json(app_url: str) -> None:
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    result = client.predict("What are probiotics?", [], api_name="/ask")
    assert result["status"] == "answered"
    assert result["disclaimer"] == DISCLAIMER
    assert "[1]" in result["answer"]
    assert {"n", "doc_id", "source", "title", "section", "quote"} <= set(result["citations"][0])
    follow = client.predict(
        "Which ones are most common?",
        [
            {"role": "user", "content": "What are probiotics?"},
            {"role": "assistant", "content": result["answer"]},
        ],
        api_name="/ask",
    )
    assert "Lactobacillus" in follow["answer"]
    refused = client.predict("Does magnesium help sleep?", [], api_name="/ask")
    assert refused["status"] == "refused" and refused["disclaimer"] == DISCLAIMER


def test_no_endpoint_exposes_reingest_or_reads_paths(app_url: str) -> None:
    from gradio_client import Client

    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask"}
    for path in (
        "gradio_api/file=/etc/passwd",
        "file=/etc/passwd",
        "gradio_api/file=../.git/config",
    ):
        try:
            with urllib.request.urlopen(app_url + path, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            assert exc.code in (403, 404), path
        else:
            assert b"root:" not in body and b"[core]" not in body, path


@pytest.mark.browser
def test_chat_in_a_real_browser(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith((app_url.rstrip("/"), "data:", "blob:"))
                else None
            ),
        )
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app_url)
        expect(page.locator("#disclaimer")).to_contain_text("not medical advice")

        def ask(text: str) -> None:
            page.locator("#question textarea").fill(text)
            page.locator("#send").click()

        chat = page.locator("#chat")
        ask("What are probiotics?")
        expect(chat).to_contain_text("live beneficial bacteria", timeout=20_000)
        expect(chat).to_contain_text("[1]")
        expect(chat).to_contain_text("not medical advice")
        expect(page.locator("#sources mark").first).to_contain_text(
            "Probiotics are live beneficial bacteria"
        )
        expect(page.locator("#sources")).to_contain_text("commercial article")
        page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)

        ask("Which ones are most common?")  # the first answer named them too: wait for the sources
        expect(page.locator("#sources mark").first).to_contain_text(
            "Common probiotic strains include", timeout=20_000
        )

        ask("Does magnesium help sleep?")
        expect(chat).to_contain_text("My documents don't answer that", timeout=20_000)
        expect(page.locator("#sources .badge-refused")).to_be_visible()

        ask("My toddler swallowed a bottle of melatonin gummies")
        expect(page.locator("#sources .badge-urgent")).to_be_visible(timeout=20_000)
        expect(chat).to_contain_text("Poison Control")
        page.screenshot(path=str(tmp_path / "urgent.png"), full_page=True)

        page.locator("#new-chat").click()
        expect(chat).not_to_contain_text("Poison Control")

        ask("What is chamomile tea?")
        expect(chat).to_contain_text("<script>alert('xss')</script>", timeout=20_000)
        expect(page.locator("#sources")).to_contain_text("<img src=x onerror=alert(1)>")
        assert page.locator("#chat script, #chat img[onerror], #sources img").count() == 0
        page.screenshot(path=str(tmp_path / "xss.png"), full_page=True)

        page.locator("#index-panel").get_by_text("Index").first.click()
        expect(page.locator("#index-info")).to_contain_text("chunks")
        page.locator("#reingest").click()
        expect(page.locator("#ingest-report")).to_contain_text("Re-ingest done", timeout=60_000)
        expect(page.locator("#ingest-report")).to_contain_text("3 unchanged")
        page.locator("#run-evals").click()
        expect(page.locator("#eval-summary")).to_contain_text("answer accuracy", timeout=240_000)
        page.screenshot(path=str(tmp_path / "evals.png"), full_page=True)
        page.screenshot(path=str(tmp_path / "reingest.png"), full_page=True)
        browser.close()
    assert dialogs == []
    assert outside == [], f"the page reached off this machine: {outside[:5]}"


def test_reingest_is_disabled_on_a_public_address_without_a_password(seed_index, embedder) -> None:
    import app
    from assistant.chain import Assistant
    from corpus.settings import Settings

    settings = Settings(corpus_dir=CORPUS, index_dir=seed_index[0], host="0.0.0.0")
    helper = Assistant(settings, embedder=embedder)
    demo = app.build_ui(settings, helper, embedder)
    (button,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "reingest"]
    assert button.interactive is False
    assert (
        app.is_loopback("127.0.0.1") and app.is_loopback("::1") and not app.is_loopback("0.0.0.0")
    )


def test_document_text_is_escaped_never_rendered() -> None:
    import app

    assert app.doc_text("<script>x</script> [a](javascript:1) `x`") == (
        "&lt;script&gt;x&lt;/script&gt; [a](javascript:1) `x`"
    )  # inert: the chat and panels render HTML, never markdown
    assert app.highlight("a <b> c", ["<b>"]) == "a <mark><bdi>&lt;b&gt;</bdi></mark> c"
    shown = app.doc_text("is 0.5 mg, not 05\u202c")
    assert "0.5 mg, not 05" in shown and "[U+202C]" in shown and "\u202c" not in shown


def test_two_quotes_from_one_passage_share_one_card(assistant) -> None:
    import app
    from assistant.records import Answer

    answer = assistant.ask("What are the side effects of melatonin?")
    assert len(answer.citations) >= 2
    same = [c for c in answer.citations if c.chunk_id == answer.citations[0].chunk_id]
    html_out = app.render_sources(Answer("answered", "", tuple(same), ""))
    assert html_out.count("class='src'") == 1
    assert html_out.count("<mark>") == len(same)


@pytest.mark.slow
def test_twenty_concurrent_sessions_get_whole_answers_and_only_their_own_history(
    app_url: str,
) -> None:
    from evals.load import report, run

    result = run(app_url, sessions=20, questions=10)
    print(report(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["completed"] == 200
    assert result["answered"] >= 20  # every session's opening question at least
    assert result["answered_with_citations"] == result["answered"]
    assert result["with_disclaimer"] == 200
    assert result["cross_talk"] == []
