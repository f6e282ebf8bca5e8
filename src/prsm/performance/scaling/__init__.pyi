from ._burst import (
    BurstQuantiles as BurstQuantiles,
    BurstSettings as BurstSettings,
    fit_burst_quantiles as fit_burst_quantiles,
)
from ._controller import (
    ActionReport as ActionReport,
    ControllerSettings as ControllerSettings,
    InMemoryBackend as InMemoryBackend,
    PlannedAction as PlannedAction,
    ReplicaStatus as ReplicaStatus,
    ScalingBackend as ScalingBackend,
    ScalingController as ScalingController,
)
from ._history import load_from_store as load_from_store
from ._kube_fake import FakeKubernetesAPI as FakeKubernetesAPI
from ._kubernetes import (
    KubernetesBackend as KubernetesBackend,
    KubernetesScalingSettings as KubernetesScalingSettings,
    kubernetes_api_client as kubernetes_api_client,
)
from ._local import LocalProcessBackend as LocalProcessBackend
from ._loop import LoopStep as LoopStep, ScalingLoop as ScalingLoop
from ._models import (
    ExponentialSmoothing as ExponentialSmoothing,
    HoltWinters as HoltWinters,
    LinearTrend as LinearTrend,
    SeasonalNaive as SeasonalNaive,
)
from ._peers import (
    HPAPolicy as HPAPolicy,
    HPASettings as HPASettings,
    HPAState as HPAState,
    KPAPolicy as KPAPolicy,
    KPASettings as KPASettings,
    KPAState as KPAState,
    RayServePolicy as RayServePolicy,
    RayServeSettings as RayServeSettings,
    RayServeState as RayServeState,
)
from ._predictive import (
    PredictivePolicy as PredictivePolicy,
    PredictiveState as PredictiveState,
)
from ._predictive_settings import PredictiveSettings as PredictiveSettings
from ._predictor import (
    FittedPredictor as FittedPredictor,
    LoadForecast as LoadForecast,
    LoadPredictor as LoadPredictor,
    PredictorSettings as PredictorSettings,
    fit_predictor as fit_predictor,
)
from ._queueing import replicas_for as replicas_for
from ._ray import RayBackend as RayBackend, RayScalingSettings as RayScalingSettings
from ._scaler import PredictiveScaler as PredictiveScaler
from ._score import (
    CPUMetric as CPUMetric,
    ErrorMetric as ErrorMetric,
    LatencyMetric as LatencyMetric,
    MemoryMetric as MemoryMetric,
    MultiDimensionalScaler as MultiDimensionalScaler,
    QueueMetric as QueueMetric,
    ScalingMetric as ScalingMetric,
    ScoreResult as ScoreResult,
    ScoreSettings as ScoreSettings,
    score_signals as score_signals,
)
from ._seasonal import (
    SeasonalSettings as SeasonalSettings,
    seasonal_burst as seasonal_burst,
    seasonal_replicas as seasonal_replicas,
)
from ._sessions import (
    SessionSnapshot as SessionSnapshot,
    SessionTracker as SessionTracker,
    session_window as session_window,
)
from ._tracked import TrackedUpstream as TrackedUpstream, request_user as request_user
from ._tracker import LoadTracker as LoadTracker, LoadWindow as LoadWindow
from ._types import (
    LoadSeries as LoadSeries,
    ScalingAction as ScalingAction,
    ScalingContext as ScalingContext,
    ScalingDecision as ScalingDecision,
    ScalingPolicy as ScalingPolicy,
    ScalingSignals as ScalingSignals,
)
