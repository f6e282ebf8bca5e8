"""Long prompts: compare the question, require the rest to match exactly.

The embedding model reads the first 256 tokens of a text: two prompts with one long document
and different questions, or one question and documents that differ further on, embed alike.
So a prompt longer than ``long_words`` words is split into

* its **question**: the last paragraph when it is short (at most ``question_words`` words),
  else the first one (question-first prompts), else the last sentence (cut to
  ``question_words`` words) — the only part embedded and verified;
* its **context**: everything else, which must be *identical* (after folding white space)
  for a hit: its hash joins the namespace, so entries of other contexts are never candidates.

A semantic hit on a long prompt is then one where what differs — the question — is judged the
same, and the rest is provably the same. Cost is linear in the prompt's length.
"""

from __future__ import annotations

import hashlib
import re

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")
#: joins a namespace and a context hash (a character no tenant or model name holds)
SEP = "\x1f"


def context_hash(context: str, position: str) -> str:
    folded = _SPACE.sub(" ", context).strip()  # one string, not a list of every word
    return hashlib.sha256(f"{position}\x00{folded}".encode()).hexdigest()[:20]


def _more_words_than(text: str, n: int) -> bool:
    """Whether ``text`` has more than ``n`` words, reading at most ``n + 1`` of them."""
    if len(text) <= n:
        return False
    return any(i >= n for i, _ in enumerate(_WORD.finditer(text)))  # stops at the n+1-th


def split_prompt(text: str, *, long_words: int, question_words: int) -> tuple[str | None, str]:
    """``(context hash, question)`` of a long prompt; ``(None, text)`` of a short one."""
    if not _more_words_than(text, long_words):
        return None, text
    paragraphs = [p.strip() for p in _PARAGRAPH.split(text.strip()) if p.strip()]
    if len(paragraphs) > 1 and not _more_words_than(paragraphs[-1], question_words):
        return context_hash("\n\n".join(paragraphs[:-1]), "last"), paragraphs[-1]
    if len(paragraphs) > 1 and not _more_words_than(paragraphs[0], question_words):
        return context_hash("\n\n".join(paragraphs[1:]), "first"), paragraphs[0]
    tail = text.rstrip()[-question_words * 40 :]  # enough characters for the last sentence
    last = _SENTENCE.split(tail)[-1]
    question = " ".join(last.split()[-question_words:])
    cut = text.rstrip().rfind(question.split()[0], 0, len(text.rstrip()) - len(question) + 1)
    return context_hash(text[: max(cut, 0)], "tail"), question


def scoped(namespace: str, context: str | None) -> str:
    """The namespace entries of ``context`` live in."""
    return namespace if context is None else f"{namespace}{SEP}{context}"
