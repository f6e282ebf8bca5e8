"""Upstreams: how requests reach nodes: in-process callables, OpenAI-compatible HTTP servers
(``HttpUpstream`` over a pooled HTTP/1.1 client), and a dispatcher that sends each node to the
upstream its ``meta.upstream`` names (e.g. local model workers)."""

from .base import CallableUpstream, StreamingUpstream, Upstream
from .dispatch import DispatchUpstream
from .http import HttpUpstream

__all__ = ["CallableUpstream", "DispatchUpstream", "HttpUpstream", "StreamingUpstream", "Upstream"]
