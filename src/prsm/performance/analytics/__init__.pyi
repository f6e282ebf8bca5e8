from ._analytics import PerformanceAnalytics as PerformanceAnalytics
from ._anomaly_settings import AnomalySettings as AnomalySettings
from ._capacity import (
    CapacityModel as CapacityModel,
    CpuCost as CpuCost,
    UslFit as UslFit,
    erlang_c as erlang_c,
    fit_cpu_cost as fit_cpu_cost,
    fit_usl as fit_usl,
    replicas_for_slo as replicas_for_slo,
    wait_quantile as wait_quantile,
)
from ._detector import AnomalyDetector as AnomalyDetector
from ._nab import (
    PROFILES as PROFILES,
    NabProfile as NabProfile,
    NabResult as NabResult,
    NabSeries as NabSeries,
    load_nab as load_nab,
    score_corpus as score_corpus,
    score_held_out_groups as score_held_out_groups,
)
from ._outcomes import (
    FileFalsePositives as FileFalsePositives,
    WindowOutcome as WindowOutcome,
    window_outcomes as window_outcomes,
)
from ._settings import AnalyticsSettings as AnalyticsSettings
from ._trend import Trend as Trend, TrendDetector as TrendDetector, TrendSettings as TrendSettings
