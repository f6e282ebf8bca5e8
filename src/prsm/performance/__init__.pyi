from .batching import (
    BatcherSettings as BatcherSettings,
)
from .batching import (
    BatchTuner as BatchTuner,
)
from .batching import (
    CurvePoint as CurvePoint,
)
from .batching import (
    DynamicBatcher as DynamicBatcher,
)
from .batching import (
    Flush as Flush,
)
from .batching import (
    Reject as Reject,
)
from .batching import (
    Wait as Wait,
)
from .caching import (
    BlobStore as BlobStore,
)
from .caching import (
    CacheCodec as CacheCodec,
)
from .caching import (
    CachedStream as CachedStream,
)
from .caching import (
    CacheEntry as CacheEntry,
)
from .caching import (
    CacheHit as CacheHit,
)
from .caching import (
    CacheSettings as CacheSettings,
)
from .caching import (
    CacheTier as CacheTier,
)
from .caching import (
    ChainedResponseCache as ChainedResponseCache,
)
from .caching import (
    ContentAddressedTier as ContentAddressedTier,
)
from .caching import (
    DiskTier as DiskTier,
)
from .caching import (
    ExactResponseCache as ExactResponseCache,
)
from .caching import (
    InMemoryTier as InMemoryTier,
)
from .caching import (
    KuboBlobStore as KuboBlobStore,
)
from .caching import (
    LocalBlobStore as LocalBlobStore,
)
from .caching import (
    MemoryTier as MemoryTier,
)
from .caching import (
    MultiTierCache as MultiTierCache,
)
from .caching import (
    RedisTier as RedisTier,
)
from .caching import (
    RequestKeyer as RequestKeyer,
)
from .caching import (
    ResponseCache as ResponseCache,
)
from .caching import (
    SingleFlight as SingleFlight,
)
from .caching import (
    SSEAssembler as SSEAssembler,
)
from .caching import (
    assemble_sse as assemble_sse,
)
from .caching import (
    build_response_cache as build_response_cache,
)
from .caching import (
    build_tiers as build_tiers,
)
from .caching import (
    render_sse as render_sse,
)
from .caching import (
    replayable as replayable,
)
from .caching import (
    request_key as request_key,
)
from .caching import (
    tenant_prefix as tenant_prefix,
)
from .caching.semantic import (
    AutoIndex as AutoIndex,
)
from .caching.semantic import (
    EntryStore as EntryStore,
)
from .caching.semantic import (
    FlatIndex as FlatIndex,
)
from .caching.semantic import (
    HNSWIndex as HNSWIndex,
)
from .caching.semantic import (
    IVFIndex as IVFIndex,
)
from .caching.semantic import (
    MemoryStore as MemoryStore,
)
from .caching.semantic import (
    RedisStore as RedisStore,
)
from .caching.semantic import (
    SemanticCache as SemanticCache,
)
from .caching.semantic import (
    SemanticMatch as SemanticMatch,
)
from .caching.semantic import (
    SemanticResponseCache as SemanticResponseCache,
)
from .caching.semantic import (
    SemanticSettings as SemanticSettings,
)
from .caching.semantic import (
    SQLiteStore as SQLiteStore,
)
from .caching.semantic import (
    VectorIndex as VectorIndex,
)
from .caching.semantic import (
    Verifier as Verifier,
)
from .caching.semantic import (
    build_semantic_cache as build_semantic_cache,
)
from .clock import (
    Clock as Clock,
)
from .clock import (
    ManualClock as ManualClock,
)
from .clock import (
    SystemClock as SystemClock,
)
from .config import (
    PRSMConfig as PRSMConfig,
)
from .config import (
    load_config as load_config,
)
from .embeddings import (
    EMBEDDING_DIM as EMBEDDING_DIM,
)
from .embeddings import (
    MODEL_NAME as MODEL_NAME,
)
from .embeddings import (
    Embedder as Embedder,
)
from .embeddings import (
    HashingEmbedder as HashingEmbedder,
)
from .embeddings import (
    SentenceTransformerEmbedder as SentenceTransformerEmbedder,
)
from .embeddings import (
    load_sentence_transformer as load_sentence_transformer,
)
from .embeddings import (
    model_path as model_path,
)
from .errors import (
    AuthenticationError as AuthenticationError,
)
from .errors import (
    CacheError as CacheError,
)
from .errors import (
    CacheIntegrityError as CacheIntegrityError,
)
from .errors import (
    CircuitBreakerOpenError as CircuitBreakerOpenError,
)
from .errors import (
    ConfigError as ConfigError,
)
from .errors import (
    DeadlineExceededError as DeadlineExceededError,
)
from .errors import (
    DependencyMissingError as DependencyMissingError,
)
from .errors import (
    NoCapableNodesError as NoCapableNodesError,
)
from .errors import (
    NoGPUError as NoGPUError,
)
from .errors import (
    OverloadedError as OverloadedError,
)
from .errors import (
    PayloadTooLargeError as PayloadTooLargeError,
)
from .errors import (
    PRSMError as PRSMError,
)
from .errors import (
    RateLimitedError as RateLimitedError,
)
from .errors import (
    RequestValidationError as RequestValidationError,
)
from .errors import (
    RoutingError as RoutingError,
)
from .errors import (
    UnknownModelError as UnknownModelError,
)
from .errors import (
    UpstreamError as UpstreamError,
)
from .errors import (
    UpstreamTimeoutError as UpstreamTimeoutError,
)
from .errors import (
    UpstreamUnavailableError as UpstreamUnavailableError,
)
from .errors import (
    WorkerError as WorkerError,
)
from .fakes import (
    SimSettings as SimSettings,
)
from .fakes import (
    UpstreamSimulator as UpstreamSimulator,
)
from .gateway import (
    GatewayApp as GatewayApp,
)
from .gateway import (
    GatewaySettings as GatewaySettings,
)
from .gateway import (
    MemoryRateLimitStore as MemoryRateLimitStore,
)
from .gateway import (
    RateLimitStore as RateLimitStore,
)
from .gateway import (
    RedisRateLimitStore as RedisRateLimitStore,
)
from .gateway import (
    TenantSettings as TenantSettings,
)
from .gateway import (
    create_app as create_app,
)
from .gpu import (
    NVML as NVML,
)
from .gpu import (
    ConsolidationAdvice as ConsolidationAdvice,
)
from .gpu import (
    FakeDevice as FakeDevice,
)
from .gpu import (
    FakeNVML as FakeNVML,
)
from .gpu import (
    GPUAllocation as GPUAllocation,
)
from .gpu import (
    GPUMemoryManager as GPUMemoryManager,
)
from .gpu import (
    GPUMonitor as GPUMonitor,
)
from .gpu import (
    GPUPlacement as GPUPlacement,
)
from .gpu import (
    GPUProcess as GPUProcess,
)
from .gpu import (
    GPUReading as GPUReading,
)
from .gpu import (
    GPUResourceManager as GPUResourceManager,
)
from .gpu import (
    GPUScheduler as GPUScheduler,
)
from .gpu import (
    PyNVML as PyNVML,
)
from .monitoring import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
)
from .monitoring import (
    MetricsRegistry as MetricsRegistry,
)
from .orchestrator import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
)
from .orchestrator import (
    OrchestratorSettings as OrchestratorSettings,
)
from .orchestrator import (
    PerformanceOrchestrator as PerformanceOrchestrator,
)
from .resilience import (
    BreakerSet as BreakerSet,
)
from .resilience import (
    BreakerSettings as BreakerSettings,
)
from .resilience import (
    BreakerState as BreakerState,
)
from .resilience import (
    CircuitBreaker as CircuitBreaker,
)
from .resilience import (
    CircuitState as CircuitState,
)
from .routing import (
    ROUTING_STRATEGIES as ROUTING_STRATEGIES,
)
from .routing import (
    AILoadBalancer as AILoadBalancer,
)
from .routing import (
    BalancerSettings as BalancerSettings,
)
from .routing import (
    NodeMetrics as NodeMetrics,
)
from .routing import (
    NodeRegistry as NodeRegistry,
)
from .routing import (
    NodeSpec as NodeSpec,
)
from .routing import (
    NodeState as NodeState,
)
from .routing import (
    NodeStats as NodeStats,
)
from .routing import (
    PerformanceTracker as PerformanceTracker,
)
from .routing import (
    node_from_mapping as node_from_mapping,
)
from .types import (
    AIRequest as AIRequest,
)
from .types import (
    ExecutionResult as ExecutionResult,
)
from .types import (
    JSONBody as JSONBody,
)
from .types import (
    RequestKind as RequestKind,
)
from .types import (
    Response as Response,
)
from .upstreams import (
    CallableUpstream as CallableUpstream,
)
from .upstreams import (
    DispatchUpstream as DispatchUpstream,
)
from .upstreams import (
    HttpUpstream as HttpUpstream,
)
from .upstreams import (
    StreamingUpstream as StreamingUpstream,
)
from .upstreams import (
    Upstream as Upstream,
)
from .workers import (
    EmbedBatch as EmbedBatch,
)
from .workers import (
    LocalModelUpstream as LocalModelUpstream,
)
from .workers import (
    LocalWorkerPool as LocalWorkerPool,
)
from .workers import (
    WorkerProcess as WorkerProcess,
)
from .workers import (
    WorkerSettings as WorkerSettings,
)
from .workers import (
    start_default_workers as start_default_workers,
)

__version__: str
from .analytics import (
    PROFILES as PROFILES,
)
from .analytics import (
    AnomalyDetector as AnomalyDetector,
)
from .analytics import (
    AnomalySettings as AnomalySettings,
)
from .analytics import (
    NabProfile as NabProfile,
)
from .analytics import (
    NabResult as NabResult,
)
from .analytics import (
    NabSeries as NabSeries,
)
from .analytics import (
    load_nab as load_nab,
)
from .analytics import (
    score_corpus as score_corpus,
)
from .http import HttpPool as HttpPool
from .serve import (
    app_from_config as app_from_config,
)
from .serve import (
    build_orchestrator as build_orchestrator,
)
