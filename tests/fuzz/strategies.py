"""Hypothesis strategies shared by the fuzz suites: JSON values, request bodies near the
OpenAI shapes, and request headers."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)

VALID = {
    "chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "completion": {"model": "m", "prompt": "hi"},
    "embedding": {"model": "m", "input": "hi"},
}
FIELDS = {
    "chat": ["model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature",
             "top_p", "n", "stop", "user", "tools", "seed"],
    "completion": ["model", "prompt", "stream", "max_tokens", "temperature", "top_p", "n", "stop"],
    "embedding": ["model", "input", "encoding_format", "dimensions", "user"],
}  # fmt: skip


def dumps(value: Any) -> bytes:
    """JSON as a lax client writes it: big integers, and NaN/Infinity (not JSON) as is."""
    return json.dumps(value).encode()


@st.composite
def near_valid(draw: st.DrawFn, kind: str) -> bytes:
    """A valid body of ``kind`` with one to three fields replaced, dropped or added."""
    body: dict[str, Any] = dict(VALID[kind])
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from([*FIELDS[kind], draw(st.text(max_size=8))]))
        action = draw(st.sampled_from(["replace", "drop", "nest"]))
        if action == "drop":
            body.pop(field, None)
        elif action == "nest" and kind == "chat":
            body["messages"] = [draw(st.dictionaries(
                st.sampled_from(["role", "content", "name", "tool_calls", "x"]), JSON,
                max_size=4,
            ))]  # fmt: skip
        else:
            body[field] = draw(JSON)
    return dumps(body)


def bodies(kind: str) -> st.SearchStrategy[bytes]:
    """Anything a client might send as a body of ``kind``."""
    return st.one_of(
        st.binary(max_size=200),
        JSON.map(dumps),
        near_valid(kind),
        st.just(dumps(VALID[kind])),
        st.text(max_size=100).map(str.encode),
    )


HEADER_VALUE = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60
).map(str.strip)
HEADERS = st.dictionaries(
    st.sampled_from([
        "authorization", "x-api-key", "cache-control", "x-request-id", "content-type",
        "accept", "origin", "user-agent", "x-forwarded-for", "x-prsm-anything",
    ]),
    st.one_of(HEADER_VALUE, HEADER_VALUE.map(lambda v: f"Bearer {v}".strip())),
    max_size=5,
)  # fmt: skip
