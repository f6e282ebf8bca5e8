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
#: joins a namespace and a context hash (a character no tenant or model name holds)
SEP = "\x1f"


def context_hash(context: str, position: str) -> str:
    folded = " ".join(context.split())
    return hashlib.sha256(f"{position}\x00{folded}".encode()).hexdigest()[:20]


def split_prompt(text: str, *, long_words: int, question_words: int) -> tuple[str | None, str]:
    """``(context hash, question)`` of a long prompt; ``(None, text)`` of a short one."""
    words = text.split()
    if len(words) <= long_words:
        return None, text
    paragraphs = [p.strip() for p in _PARAGRAPH.split(text.strip()) if p.strip()]
    if len(paragraphs) > 1 and len(paragraphs[-1].split()) <= question_words:
        return context_hash("\n\n".join(paragraphs[:-1]), "last"), paragraphs[-1]
    if len(paragraphs) > 1 and len(paragraphs[0].split()) <= question_words:
        return context_hash("\n\n".join(paragraphs[1:]), "first"), paragraphs[0]
    last = _SENTENCE.split(paragraphs[-1])[-1]
    question = " ".join(last.split()[-question_words:])
    context = " ".join(words[: len(words) - len(question.split())])
    return context_hash(context, "tail"), question


def scoped(namespace: str, context: str | None) -> str:
    """The namespace entries of ``context`` live in."""
    return namespace if context is None else f"{namespace}{SEP}{context}"
