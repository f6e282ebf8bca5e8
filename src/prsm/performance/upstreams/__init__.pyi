from ._base import (
    CallableUpstream as CallableUpstream,
)
from ._base import (
    StreamingUpstream as StreamingUpstream,
)
from ._base import (
    Upstream as Upstream,
)
from ._dispatch import DispatchUpstream as DispatchUpstream
from ._http import HttpUpstream as HttpUpstream
