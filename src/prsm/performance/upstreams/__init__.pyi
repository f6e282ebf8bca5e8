from ._base import (
    CallableUpstream as CallableUpstream,
    StreamingUpstream as StreamingUpstream,
    Upstream as Upstream,
)
from ._dispatch import DispatchUpstream as DispatchUpstream
from ._http import HttpUpstream as HttpUpstream
