from ._detector import AnomalyDetector as AnomalyDetector
from ._detector import AnomalySettings as AnomalySettings
from ._nab import PROFILES as PROFILES
from ._nab import NabProfile as NabProfile
from ._nab import NabResult as NabResult
from ._nab import NabSeries as NabSeries
from ._nab import load_nab as load_nab
from ._nab import score_corpus as score_corpus
