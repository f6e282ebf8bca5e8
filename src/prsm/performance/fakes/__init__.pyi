from ._server import UpstreamSimulator as UpstreamSimulator
from ._settings import SimSettings as SimSettings
