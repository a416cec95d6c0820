"""Read each supported format into text plus structure (blocks), with clear errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
MAX_BYTES = 20 * 1024 * 1024
BULLET = re.compile(r"(?:[•◦▪‣·*–-]|\d{1,2}[.)])\s+")


class LoadError(Exception):
    """A document that cannot be ingested; the message is the skip reason."""


@dataclass(frozen=True)
class Block:
    """A run of text in the document: a heading, a paragraph or a list item.

    `start`/`end` index the document text; `plain` blocks come from formats without markup, whose
    headings are inferred later from the shape of the text.
    """

    kind: str  # "heading" | "text" | "item"
    start: int
    end: int
    indent: int = 0


@dataclass(frozen=True)
class LoadedDocument:
    """A document's text (the file itself for txt/md) and its blocks."""

    text: str
    blocks: tuple[Block, ...]
    title: str | None
    plain: bool


def load(path: Path) -> LoadedDocument:
    """Load one file; raises LoadError with a specific reason."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type '{suffix or path.name}'")
    try:
        check_size(path)
        data = path.read_bytes()
    except PermissionError as exc:
        raise LoadError(f"unreadable file ({exc.strerror})") from exc
    except OSError as exc:
        raise LoadError(f"unreadable file ({exc.strerror or exc})") from exc
    if not data.strip():
        raise LoadError("empty file")
    if suffix == ".pdf":
        return _load_pdf(data)
    text = decode(data)
    if suffix in (".html", ".htm"):
        return _load_html(text)
    if suffix in (".md", ".markdown"):
        return _load_markdown(text)
    return LoadedDocument(text=text, blocks=tuple(plain_blocks(text)), title=None, plain=True)


def check_size(path: Path) -> None:
    """LoadError when the file is over MAX_BYTES (checked before it is read)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise LoadError(f"file too large ({size / 1e6:.1f} MB; limit {MAX_BYTES // 2**20} MiB)")


def decode(data: bytes) -> str:
    """Decode UTF-8 text, refusing binary data with a reason that says where it went wrong."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def plain_blocks(text: str, base: int = 0) -> list[Block]:
    """Split plain text into blocks: blank-line paragraphs; each bullet line starts an item."""
    blocks: list[Block] = []
    current: list[int] | None = None  # [start, end, indent, is_item]
    pos = 0
    for line in text[base:].splitlines(keepends=True):
        start = base + pos
        pos += len(line)
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if not stripped:
            current = _close(blocks, current)
            continue
        indent = len(body) - len(body.lstrip())
        line_start = start + indent
        line_end = start + len(body.rstrip())
        bullet = BULLET.match(stripped)
        if bullet or current is None or (current[3] and indent <= current[2]):
            _close(blocks, current)
            current = [line_start, line_end, indent, 1 if bullet else 0]
        else:
            current[1] = line_end
    _close(blocks, current)
    return blocks


def _close(blocks: list[Block], current: list[int] | None) -> None:
    if current is not None:
        kind = "item" if current[3] else "text"
        blocks.append(Block(kind, current[0], current[1], current[2]))


def _load_markdown(text: str) -> LoadedDocument:
    """Blocks from markdown-it-py's parse: headings, paragraphs, list items, code and tables."""
    from markdown_it import MarkdownIt

    title = None
    parsed = text
    front = re.match(r"---\r?\n(.*?)\r?\n---\r?\n", text, re.S)
    if front:  # YAML front matter: read its title, and parse the rest with the same line numbers
        found = re.search(r"^title:\s*[\"']?(.+?)[\"']?\s*$", front.group(1), re.M)
        title = found.group(1) if found else None
        parsed = "\n" * front.group(0).count("\n") + text[front.end() :]
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    blocks: list[Block] = []
    tokens = MarkdownIt("commonmark").enable("table").parse(parsed)
    in_item = 0
    for i, token in enumerate(tokens):
        in_item += {"list_item_open": 1, "list_item_close": -1}.get(token.type, 0)
        if token.map is None or token.nesting == -1:
            continue
        first, last = token.map
        start, end = starts[first], starts[min(last, len(lines))]
        if token.type == "heading_open":
            heading = tokens[i + 1].content
            where = text.find(heading, start, end) if heading else -1
            if where != -1:
                blocks.append(Block("heading", where, where + len(heading)))
                title = title or heading
        elif token.type == "paragraph_open" and in_item:
            if not blocks or blocks[-1].kind != "item" or blocks[-1].start < start:
                blocks.append(_trimmed(text, "item", start, end))
        elif token.type in ("paragraph_open", "fence", "code_block", "table_open"):
            blocks.append(_trimmed(text, "text", start, end))
    return LoadedDocument(
        text=text, blocks=tuple(b for b in blocks if b.end > b.start), title=title, plain=False
    )


def _trimmed(text: str, kind: str, start: int, end: int) -> Block:
    """A block of these lines, without the surrounding whitespace."""
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    return Block(kind, start + lead, start + len(piece.rstrip()))


_HIDING_STYLE = re.compile(
    r"(display\s*:\s*none|visibility\s*:\s*(hidden|collapse)|font-size\s*:\s*0+(\.0+)?\s*"
    r"(px|pt|em|rem|%)?\s*(;|$|!)|opacity\s*:\s*0+(\.0+)?\s*(;|$|!))",
    re.I,
)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}  # fmt: skip
_SELF_CLOSING = {"p", "li", "dt", "dd", "tr", "td", "th", "option"}  # a new one ends the last


def hides(attrs: list[tuple[str, str | None]]) -> bool:
    """Does this element's markup keep it from a reader of the page? (`hidden`,
    `aria-hidden="true"`, or an inline style of display:none, visibility:hidden, font-size:0
    or opacity:0.) Stylesheets are not evaluated."""
    found = {k.lower(): (v or "") for k, v in attrs}
    return (
        "hidden" in found
        or found.get("aria-hidden", "").strip().lower() == "true"
        or bool(_HIDING_STYLE.search(found.get("style", "")))
    )


class _HtmlText(HTMLParser):
    """Collect visible text per block element. Dropped: script/style and page chrome, comments,
    and everything inside an element its markup hides (`hides`), so text a reader of the page
    never sees is never ingested."""

    BLOCKS: ClassVar = {
        "p",
        "div",
        "li",
        "td",
        "th",
        "blockquote",
        "pre",
        "section",
        "article",
        "dd",
        "dt",
    }
    HEADINGS: ClassVar = {"h1", "h2", "h3", "h4", "h5", "h6"}
    SKIP: ClassVar = {"script", "style", "noscript", "template", "nav", "footer", "svg", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[tuple[str, str]] = []
        self.buffer: list[str] = []
        self.kind = "text"
        self.skip_depth = 0
        self.title: str | None = None
        self.in_title = False
        self.open: list[tuple[str, bool]] = []  # open elements, and whether each hides
        self.hidden = 0  # how many open elements hide their content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            if tag in _SELF_CLOSING and self.open and self.open[-1][0] == tag:
                self._close(tag)
            self.open.append((tag, hides(attrs)))
            self.hidden += self.open[-1][1]
        if tag == "title":
            self.in_title = True
        elif tag in self.SKIP:
            self.skip_depth += 1
        elif tag in self.HEADINGS or tag in self.BLOCKS or tag == "br":
            self.flush()
            self.kind = "heading" if tag in self.HEADINGS else "item" if tag == "li" else "text"

    def _close(self, tag: str) -> None:
        if any(t == tag for t, _ in self.open):
            while self.open:
                top, hiding = self.open.pop()
                self.hidden -= hiding
                if top == tag:
                    break

    def handle_endtag(self, tag: str) -> None:
        self._close(tag)
        if tag == "title":
            self.in_title = False
        elif tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self.HEADINGS or tag in self.BLOCKS:
            self.flush()
            self.kind = "text"

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title = " ".join(((self.title or "") + " " + data).split())
        elif not self.skip_depth and not self.hidden:
            self.buffer.append(data)

    def flush(self) -> None:
        text = " ".join("".join(self.buffer).split())
        if text:
            self.parts.append((self.kind, text))
        self.buffer = []


def _load_html(source: str) -> LoadedDocument:
    parser = _HtmlText()
    parser.feed(source)
    parser.close()
    parser.flush()
    if not parser.parts:
        raise LoadError("HTML has no visible text")
    text, blocks = "", []
    for kind, part in parser.parts:
        blocks.append(Block(kind, len(text), len(text) + len(part)))
        text += part + "\n\n"
    title = parser.title or next((p for k, p in parser.parts if k == "heading"), None)
    return LoadedDocument(text=text, blocks=tuple(blocks), title=title, plain=False)


def _load_pdf(data: bytes) -> LoadedDocument:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (password required)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from exc
    except Exception as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise LoadError("PDF has no text layer (scanned image?)")
    return LoadedDocument(text=text, blocks=tuple(plain_blocks(text)), title=None, plain=True)
