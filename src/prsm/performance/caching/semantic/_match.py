"""What a semantic lookup returns, and the default judge of explored lookups."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_KEYS = ("result", "similarity_score", "original_query", "similarity", "score", "namespace", "key")


@dataclass(frozen=True, slots=True)
class SemanticMatch(Mapping[str, Any]):
    """A semantic hit: the cached result, its cosine similarity, the query it answered, and
    the verifier's probability. Also a mapping, as the source post returns it:
    ``hit["result"]``, ``hit["similarity_score"]``, ``hit["original_query"]``."""

    result: Any
    similarity: float
    original_query: str
    namespace: str
    key: int
    score: float

    @property
    def similarity_score(self) -> float:
        return self.similarity

    def __getitem__(self, name: str) -> Any:
        if name in _KEYS:
            return getattr(self, name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


def same_answer(a: Any, b: Any) -> bool:
    """Default judge for explored lookups: equal after folding case and white space."""

    def norm(x: Any) -> Any:
        return " ".join(x.lower().split()) if isinstance(x, str) else x

    return bool(norm(a) == norm(b))
