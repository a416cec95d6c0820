"""Is a message English? The documents and every model here read English only.

py3langid (BSD-3-Clause, its model ships in the wheel) gives the probability that a message is
English, among its 97 languages. A message is taken as not English only when that probability is
below NOT_ENGLISH and it holds at least MIN_LETTERS letters: very short messages ("ok", "thx",
an emoji) are too short to tell, and are read as English. Both settings were chosen on the
new triage authors' messages and the helpers' 794 lay rewrites (English typed as people type),
and `python -m evals.safety` measures them (`evals/reports/safety.md`).
"""

from __future__ import annotations

from typing import Any

NOT_ENGLISH = 0.02
MIN_LETTERS = 10


class LanguageCheck:
    """Says whether a message is in a language other than English; `warm_up()` loads."""

    def __init__(self, threshold: float = NOT_ENGLISH, min_letters: int = MIN_LETTERS) -> None:
        self.threshold = threshold
        self.min_letters = min_letters
        self._identifier: Any = None

    def warm_up(self) -> None:
        """Load the language model (about 4 MB, from the installed package)."""
        if self._identifier is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            self._identifier = LanguageIdentifier.from_modelpath(
                MODEL_DIR / MODEL_FILE, norm_probs=True
            )

    def english(self, text: str) -> float:
        """The probability that the text is English."""
        self.warm_up()
        return float(dict(self._identifier.rank(text)).get("en", 0.0))

    def foreign(self, text: str, before: str = "") -> bool:
        """Is this message, long enough to tell, in another language than English? A message
        too short to tell ("y ahora?") is read with the user's previous turn, `before`."""
        if sum(ch.isalpha() for ch in text) < self.min_letters:
            if not before:
                return False
            text = f"{before} {text}"
            if sum(ch.isalpha() for ch in text) < self.min_letters:
                return False
        return self.english(text) < self.threshold
