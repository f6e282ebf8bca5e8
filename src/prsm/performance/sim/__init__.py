"""Simulators: an OpenAI-compatible upstream server for load and fault tests."""

from .upstream_server import UpstreamSimulator
from .upstream_settings import SimSettings

__all__ = ["SimSettings", "UpstreamSimulator"]
