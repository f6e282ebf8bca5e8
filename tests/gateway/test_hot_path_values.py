"""The hot path's own constructors make what the classes make: ``types.checked_request`` (the
gateway's request, no ``__post_init__``) equals ``AIRequest(...)`` for every value the gateway
can hand it, field by field (a field added to ``AIRequest`` and not set by it fails here), and
``types.passed_on`` (an HTTP node's 200 answer) equals ``Response(...)`` slot by slot."""

from __future__ import annotations

import dataclasses

from hypothesis import given, strategies as st

from prsm.performance.gateway._asgi import KINDS, cache_mode
from prsm.performance.gateway._settings import GatewaySettings
from prsm.performance.types import AIRequest, JSONBody, Response, checked_request, passed_on

# what the gateway's settings accept as a request timeout (its __post_init__ checks it):
# unset, or > 0 (ints and inf included)
TIMEOUTS = st.one_of(
    st.none(),
    st.floats(min_value=0.0, exclude_min=True),  # up to inf
    st.integers(min_value=1, max_value=10**12),
).map(lambda t: GatewaySettings(request_timeout=t).request_timeout)


def _fields(r: AIRequest) -> list[tuple[str, object, type]]:
    return [(f.name, getattr(r, f.name), type(getattr(r, f.name))) for f in
            dataclasses.fields(AIRequest)]  # fmt: skip


@given(
    path=st.sampled_from(sorted(KINDS)),
    model=st.text(),
    body=st.binary(max_size=64),
    tenant=st.text(min_size=1),
    timeout=TIMEOUTS,
    stream=st.booleans(),
    cache_control=st.one_of(
        st.none(),
        st.binary(max_size=40),
        st.sampled_from(
            [b"no-store", b"No-Cache", b"max-age=0, no-cache", b"no-cache, no-store", b""]
        ),
    ),
    rid=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
)
def test_checked_request_is_the_request_the_class_makes(  # noqa: PLR0917
    path: str,
    model: str,
    body: bytes,
    tenant: str,
    timeout: float | None,
    stream: bool,
    cache_control: bytes | None,
    rid: str,
) -> None:
    kind, mode, payload = KINDS[path], cache_mode(cache_control), JSONBody(body)
    made = checked_request(model, payload, kind, tenant, timeout, stream, mode, rid)
    by_class = AIRequest(
        model, payload, frozenset(), kind, tenant, 0, timeout, 0, stream, mode, rid
    )  # fmt: skip
    assert _fields(made) == _fields(by_class)
    assert made == by_class
    assert made.capabilities_needed == by_class.capabilities_needed


def _slots(r: Response) -> list[tuple[str, object]]:
    return [(name, getattr(r, name)) for name in Response.__slots__]


@given(
    raw=st.binary(max_size=64),
    usage=st.one_of(st.none(), st.tuples(*[st.integers(0, 2**63)] * 3)),
)
def test_passed_on_is_the_answer_the_class_makes(
    raw: bytes, usage: tuple[int, int, int] | None
) -> None:
    total, prompt, completion = usage or (0, 0, 0)
    made = passed_on(raw, total, prompt, completion)
    if usage is None:  # (the two calls upstreams/_http.py made before)
        by_class = Response(status=200, raw=raw)
    else:
        by_class = Response(
            status=200, tokens=total, raw=raw, input_tokens=prompt, output_tokens=completion
        )
    assert _slots(made) == _slots(by_class)
    assert made.headers is not by_class.headers  # (each its own mapping, as before)
