"""The Gradio app, served for real: driven through gradio_client and headless Chromium."""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CHROMIUM_ARGS, CORPUS, served_app

from assistant.safety import DISCLAIMER

ORIGINAL = "https://example.org/melatonin-microbiome"  # a test address, not the seed's real one

# Markup inside an ordinary sentence, which the ingest screen does not flag (0.37 < 0.75): it
# must be quoted as text. (The screen flags the markup-heavy "Chamomile tea <script>… is a
# bedtime drink <img …>" at 0.77; then nothing is quoted at all, and escaping goes unchecked.)
XSS_DOC = (
    "Chamomile Notes\n\n"
    "Chamomile tea is a mild herbal drink <b>brewed</b> from dried flowers "
    "<script>alert('xss')</script> and <img src=x onerror=alert(1)> many people enjoy it before "
    "sleep.\n"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seed_index) -> Iterator[tuple[str, Path]]:
    """python app.py on a free loopback port, over a copy of the corpus plus a hostile document
    and an original web address for one seed; yields (URL, its console log)."""
    root = tmp_path_factory.mktemp("app")
    corpus = root / "documents"
    shutil.copytree(CORPUS, corpus)
    (corpus / "chamomile-notes.txt").write_text(XSS_DOC, encoding="utf-8")
    sources = corpus / "sources.toml"
    sources.write_text(
        sources.read_text(encoding="utf-8").replace(
            'kind = "commercial article"', f'kind = "commercial article"\nurl = "{ORIGINAL}"'
        ),
        encoding="utf-8",
    )
    shutil.copytree(seed_index[0], root / "index")
    with served_app(corpus, root / "index", root / "app.log") as url:
        yield url, root / "app.log"


@pytest.fixture(scope="module")
def app_url(served: tuple[str, Path]) -> str:
    """The served app's URL."""
    return served[0]


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


CONTRAST = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return 0;
  const rgb = (c) => c.match(/[0-9.]+/g).map(Number);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const fg = rgb(getComputedStyle(el).color);
  let node = el, bg = [255, 255, 255];
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
    node = node.parentElement;
  }
  const [a, b] = [lum(fg), lum(bg)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def _ask(page, text: str) -> None:
    page.locator("#question textarea").fill(text)
    page.locator("#send").click()


def _replies(page):
    return page.locator("#chat .reply")


@pytest.mark.browser
def test_chat_in_a_real_browser(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000},
            permissions=["clipboard-read", "clipboard-write"],
        )
        page = context.new_page()
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
        chat = page.locator("#chat")

        page.locator("#question textarea").press("Enter")  # an empty send does nothing
        page.wait_for_timeout(800)
        assert chat.locator(".message").count() == 0

        example = page.locator("button.example").first
        asked = example.inner_text()
        example.click()  # an example sends at once, and the engine answers it
        expect(_replies(page).last.locator(".actions")).to_be_visible(timeout=20_000)  # done
        assert _replies(page).last.locator("a.ref").count() >= 1
        assert asked in chat.locator(".message").first.inner_text()
        page.locator("#new-chat").click()
        expect(chat.locator(".message")).to_have_count(0)
        _ask(page, "What are probiotics?")
        expect(_replies(page).last).to_contain_text("live beneficial bacteria", timeout=20_000)
        expect(_replies(page).last).to_contain_text("not medical advice")
        first = _replies(page).nth(0)

        _ask(page, "What are the side effects of melatonin?")
        expect(_replies(page)).to_have_count(2, timeout=20_000)
        expect(_replies(page).last.locator("details.sources")).to_have_count(1, timeout=20_000)
        latest = _replies(page).nth(1)
        ref = latest.locator("a.ref", has_text="[2]").first
        anchor = ref.get_attribute("href")[1:]
        ref.click()  # a citation opens its source, its quote marked
        card = latest.locator(f".src#{anchor}, .src:has(#{anchor})").first
        expect(card).to_be_visible()
        assert latest.locator("details.sources").get_attribute("open") is not None
        expect(card.locator("mark").first).to_be_visible()
        plain = latest.locator(".plain").text_content()
        quote = re.search(r"^\[2\] .*?: “(.*)”$", plain, re.M)[1]
        expect(card.locator("mark").filter(has_text=quote[:40])).to_have_count(1)
        first.locator("a.ref").first.focus()  # reached by keyboard, the source opens too
        expect(first.locator("details.sources")).to_have_attribute("open", "")
        first.locator("a.ref", has_text="[1]").first.click()  # an earlier answer's sources too
        expect(first.locator(".src mark").first).to_contain_text(
            "Probiotics are live beneficial bacteria"
        )
        page.screenshot(path=str(tmp_path / "desktop-light.png"), full_page=False)

        latest.locator("button.copy-text").click()  # clean text, no markup
        copied = page.evaluate("navigator.clipboard.readText()")
        assert DISCLAIMER in copied
        assert "Sources:" in copied and "[1]" in copied and "<" not in copied, copied

        latest.locator("button.open-doc").first.click()  # the whole document, passage in view
        expect(page.locator("#document #doc-target")).to_be_in_viewport(timeout=20_000)
        expect(page.locator("#document h3")).not_to_be_empty()
        expect(page.locator("#document button.back-to-answer")).to_be_in_viewport()  # sticky

        suggestion = latest.locator("button.suggest").first.inner_text()
        latest.locator("button.suggest").first.click()  # a suggested question is sent
        expect(chat.locator(".message").filter(has_text=suggestion).first).to_be_visible(
            timeout=20_000
        )
        expect(_replies(page)).to_have_count(3, timeout=20_000)

        _ask(page, "My toddler swallowed a bottle of melatonin gummies")
        urgent = page.locator("#chat .reply-urgent").last
        expect(urgent).to_contain_text("URGENT", timeout=20_000)
        expect(urgent.locator("a[href^='tel:']").first).to_be_visible()

        page.locator("#chat button[aria-label='Dislike']").first.click()  # feedback, saved
        page.locator("#index-panel").get_by_text("Index").first.click()
        expect(page.locator("#index-info")).to_contain_text("1 thumbs down", timeout=20_000)
        expect(page.locator("#index-info")).to_contain_text("What are probiotics?")

        page.locator("#new-chat").click()  # one control clears everything
        expect(chat.locator(".message")).to_have_count(0)
        _ask(page, "Which ones are most common?")  # read alone: no old conversation behind it
        expect(_replies(page).last).not_to_contain_text("Looking in the documents", timeout=20_000)
        expect(_replies(page)).to_have_count(1)  # this question's reply only

        _ask(page, "What is chamomile tea?")
        expect(chat).to_contain_text("<script>alert('xss')</script>", timeout=20_000)
        assert page.locator("#chat script, #chat img[onerror]").count() == 0

        page.locator("#reingest").click()
        expect(page.locator("#ingest-report")).to_contain_text("Re-ingest done", timeout=60_000)
        expect(page.locator("#ingest-report")).to_contain_text("3 unchanged")
        page.locator("#run-evals").click()
        expect(page.locator("#eval-summary")).to_contain_text("answer accuracy", timeout=240_000)
        browser.close()
    assert dialogs == []
    assert outside == [], f"the page reached off this machine: {outside[:5]}"


@pytest.mark.browser
def test_dark_mode_is_readable_and_a_phone_sees_the_input(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="dark")
        page.goto(app_url)
        _ask(page, "Does magnesium help sleep?")
        expect(_replies(page).last).to_contain_text("don't answer", timeout=20_000)
        _ask(page, "What are probiotics?")
        expect(_replies(page).last).to_contain_text("live beneficial bacteria", timeout=20_000)
        _replies(page).last.locator("a.ref").first.click()
        _replies(page).last.locator("button.open-doc").first.click()
        expect(page.locator("#document #doc-target")).to_be_visible(timeout=20_000)
        _ask(page, "I can't breathe after taking melatonin")
        expect(page.locator("#chat .reply-urgent")).to_be_visible(timeout=20_000)
        page.screenshot(path=str(tmp_path / "desktop-dark.png"))
        ratios = {
            name: page.evaluate(CONTRAST, selector)
            for name, selector in (
                ("disclaimer", "#disclaimer p"),
                ("highlighted quote", "#chat .src-passage mark"),
                ("document viewer", "#document #doc-target mark"),
                ("refusal", "#chat .reply-refused .said"),
                ("urgent bubble", "#chat .reply-urgent p"),
                ("send button", "#send"),
            )
        }
        print("dark-mode contrast:", {k: round(v, 2) for k, v in ratios.items()})
        assert all(r >= 4.5 for r in ratios.values()), ratios  # WCAG AA

        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(app_url)
        expect(phone.locator("#question textarea")).to_be_in_viewport()
        assert phone.locator("#question textarea").get_attribute(
            "aria-label"
        ) == "Your question" or (phone.get_by_label("Your question").count() == 1)
        _ask(phone, "What are probiotics?")
        expect(_replies(phone).last.locator("details.sources")).to_have_count(1, timeout=20_000)
        phone.screenshot(path=str(tmp_path / "phone.png"))
        browser.close()


def test_reingest_is_disabled_on_a_public_address_without_a_password(seed_index, embedder) -> None:
    from assistant.chain import Assistant
    from settings import Settings
    from ui.guard import is_loopback
    from ui.server import chat_ui

    settings = Settings(corpus_dir=CORPUS, index_dir=seed_index[0], host="0.0.0.0")
    helper = Assistant(settings, embedder=embedder)
    demo = chat_ui(settings, helper, embedder).build()
    (button,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "reingest"]
    assert button.interactive is False
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_document_text_is_escaped_never_rendered() -> None:
    from assistant.records import Answer, Claim
    from assistant.render import plain_text
    from ui.render import doc_text, highlight

    assert doc_text("<script>x</script> [a](javascript:1) `x`") == (
        "&lt;script&gt;x&lt;/script&gt; [a](javascript:1) `x`"
    )  # inert: the chat and panels render HTML, never markdown
    assert highlight("a <b> c", ["<b>"]) == "a <mark><bdi>&lt;b&gt;</bdi></mark> c"
    shown = doc_text("is 0.5 mg, not 05\u202c")
    assert "0.5 mg, not 05" in shown and "[U+202C]" in shown and "\u202c" not in shown
    refused = Answer("refused", "", (), "", claims=(Claim("Not in \u202edocs", ()),))
    assert "\u202e" not in plain_text(refused) and "[U+202E]" in plain_text(refused)


def test_two_quotes_from_one_passage_share_one_card(assistant) -> None:
    from assistant.render import plain_text
    from ui.render import answer_html

    answer = assistant.ask("What are the side effects of melatonin?")
    assert len(answer.citations) >= 2
    same = [c for c in answer.citations if c.chunk_id == answer.citations[0].chunk_id]
    bubble = answer_html(answer, "a1")
    cards = len({c.chunk_id for c in answer.citations})
    assert bubble.count("class='src'") == cards  # one card per passage, never one per quote
    assert bubble.count("<mark>") == len(answer.citations)
    assert bubble.count("class='doc-title'") == len({c.source for c in answer.citations})
    text = plain_text(answer)
    assert "<" not in text and "*" not in text and "Sources:" in text and len(same) >= 1


@pytest.mark.slow
def test_twenty_concurrent_sessions_get_whole_answers_and_only_their_own_history(
    app_url: str,
) -> None:
    from evals.load import report, run

    result = run(app_url, sessions=20, questions=4)  # `make load` runs 20 x 10
    print(report(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["completed"] == 80
    assert result["answered"] >= 20  # every session's opening question at least
    assert result["answered_with_citations"] == result["answered"]
    assert result["with_disclaimer"] == 80
    assert result["cross_talk"] == []


# The element drawn at the centre of a locator's box: is it the locator's own (not covered)?
UNCOVERED = """(el) => {
  const r = el.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 10));
  return !!hit && (el === hit || el.contains(hit));
}"""


@pytest.mark.browser
def test_a_phone_sees_each_reply_from_its_start_uncovered_with_the_answer_first(
    app_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(app_url)
        expect(phone.locator("#disclaimer")).to_contain_text(DISCLAIMER)  # in full, once, on top
        head = phone.evaluate(
            "document.querySelector('#disclaimer').getBoundingClientRect().bottom"
        )
        assert head <= 0.25 * 844, f"header and disclaimer take {head / 844:.0%} of the screen"

        _ask(phone, "What are the side effects of melatonin?")
        reply = _replies(phone).last
        expect(reply.locator("details.sources")).to_have_count(1, timeout=20_000)
        phone.wait_for_timeout(500)
        first_line = reply.locator("ul.claims li").first
        expect(first_line).to_be_in_viewport()  # the answer's start, not its end
        assert first_line.evaluate(UNCOVERED), "something covers the answer's first line"
        ref = reply.locator("a.ref").first  # a citation reads as a link
        style = ref.evaluate(
            "(a) => { const s = getComputedStyle(a), body = getComputedStyle(a.closest('li'));"
            " return [s.color, body.color, s.textDecorationLine, s.backgroundColor]; }"
        )
        assert style[0] != style[1] and "underline" in style[2], style
        assert style[3] not in ("rgba(0, 0, 0, 0)", "transparent"), style
        text = reply.inner_text()
        assert DISCLAIMER not in text and reply.locator(".disclaimer-line").count() == 1
        assert "not medical advice" in reply.locator(".disclaimer-line").inner_text().lower()
        assert reply.locator("button.suggest").count() <= 2
        actions = reply.locator(".actions")  # Copy and the short disclaimer: one row
        assert actions.evaluate("(e) => e.getBoundingClientRect().height") < 48

        ref.click()  # the source card opens; its "Open the document" is not covered
        card = reply.locator(".src").first
        expect(card).to_be_visible()
        assert ".txt" not in reply.locator(".doc-title").first.inner_text()  # a title, no file
        opener = card.locator("button.open-doc")
        opener.scroll_into_view_if_needed()
        assert opener.evaluate(UNCOVERED), "something covers 'Open the document'"
        commercial = reply.locator(".doc-group", has_text="commercial article")
        expect(commercial.locator("a.src-url")).to_have_attribute("href", ORIGINAL)  # sources.toml
        personal = reply.locator(".doc-group", has_text="personal account")
        assert personal.locator("a.src-url").count() == 0  # no address given: none invented

        _ask(phone, "My toddler swallowed a bottle of melatonin gummies")
        urgent = phone.locator("#chat .reply-urgent").last
        expect(urgent).to_contain_text("URGENT", timeout=20_000)
        phone.wait_for_timeout(500)
        urgent_head = urgent.locator(".urgent-head")
        expect(urgent_head).to_be_in_viewport()  # scrolled into view after the citation tap
        assert urgent_head.evaluate(UNCOVERED), "the label or a button covers ⚠ URGENT"
        expect(phone.locator("#announce")).to_contain_text("Urgent")
        for number in urgent.locator("a.tel").all():  # each number on one line, never broken
            assert number.evaluate("(a) => a.getClientRects().length") == 1, number.inner_text()
        phone.screenshot(path=str(tmp_path / "phone-urgent.png"))

        phone.locator("#new-chat").click()  # (triage reads the conversation: start afresh)
        expect(phone.locator("#chat .message")).to_have_count(0)
        _ask(phone, "hi!")  # a greeting: short, no document titles recited
        expect(_replies(phone)).to_have_count(1, timeout=20_000)
        expect(_replies(phone).last).not_to_contain_text("Looking in", timeout=20_000)
        hello = _replies(phone).last.locator(".said").inner_text()
        assert len(hello) < 160 and "“" not in hello, hello
        browser.close()


def test_suggested_questions_are_answered_when_asked(app_url: str) -> None:
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    shown: set[str] = set()
    for question in ("What are probiotics?", "Can melatonin treat cancer?", "hello"):
        result = client.predict(question, [], api_name="/ask")
        assert len(result.get("suggestions", [])) <= 2, result
        shown.update(result.get("suggestions", []))
    assert shown
    for suggestion in shown:  # every suggestion asked in a fresh chat is answered, with sources
        result = client.predict(suggestion, [], api_name="/ask")
        assert result["status"] == "answered" and result["citations"], (suggestion, result)
        assert "“" not in suggestion and "say about" not in suggestion  # in plain words


def test_the_console_keeps_to_the_apps_own_lines(served: tuple[str, Path]) -> None:
    from gradio_client import Client

    url, log = served
    Client(url, verbose=False).predict("What are probiotics?", [], api_name="/ask")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert any("ready in" in line and url.rstrip("/") in line for line in lines)
    noisy = [line for line in lines if " DEBUG " in line or "HTTP Request" in line]
    assert noisy == [], noisy[:5]


def test_each_chat_handler_works_without_a_browser(tmp_path: Path, seed_index, embedder) -> None:
    from types import SimpleNamespace

    from assistant.chain import Assistant
    from settings import Settings
    from ui.server import chat_ui

    shutil.copytree(seed_index[0], tmp_path / "index")
    settings = Settings(corpus_dir=CORPUS, index_dir=tmp_path / "index")
    helper = Assistant(settings, embedder=embedder)
    helper.warm_up()
    helper.check_suggestions()
    ui = chat_ui(settings, helper, embedder)
    local = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"))

    assert ui.examples() and all(helper.ask(q).status == "answered" for q in ui.examples())
    steps = list(ui.respond("What are probiotics?", [], [], {}))
    first, *_, last = steps
    assert first[0] == "" and "Looking in the documents" in first[1][-1]["content"]
    _, chat, history, answers, said = last
    assert "live beneficial bacteria" in chat[-1]["content"] and len(history) == 2
    assert answers["1"]["status"] == "answered" and said.startswith("Answer ready")
    chunk_id = answers["1"]["citations"][0]["chunk_id"]
    _, document = ui.open_document(f"{chunk_id}|1")
    assert "doc-target" in document and "Back to the answer" in document

    ui.judge(answers, SimpleNamespace(index=1, liked=False), local)
    assert ui.feedback.read()[0]["question"] == "What are probiotics?"
    assert "1 thumbs down" in ui.panel_for("", local)  # loopback: the curator's view
    note, view = ui.mark_reviewed("", local)
    assert "Marked reviewed" in note and "every document is reviewed" in view
    report, view = ui.reingest("", local, progress=lambda *a, **k: None)
    assert "Re-ingest done" in report and "2 unchanged" in report
    assert ui.new_chat()[:4] == ([], [], {}, "")
    assert ui.ask("Does magnesium help sleep?")["status"] == "refused"
    assert "quoted" not in ui.show_llm(True)  # no LLM configured: no status line

    exposed = chat_ui(settings.replace(host="0.0.0.0", admin_password="s3cret"), helper, embedder)
    stranger = SimpleNamespace(client=SimpleNamespace(host="203.0.113.9"))
    assert "thumbs" not in exposed.panel_for("", stranger)  # titles only
    assert "Refused" in exposed.run_evals("wrong", stranger)
    assert "Refused" in exposed.curator_view("", stranger)[0]
