"""Upstreams: how requests reach nodes (in-process callables here; HTTP in ``http``)."""

from .base import CallableUpstream, StreamingUpstream, Upstream

__all__ = ["CallableUpstream", "StreamingUpstream", "Upstream"]
