from .batching import (
    BatcherSettings as BatcherSettings,
    BatchTuner as BatchTuner,
    CurvePoint as CurvePoint,
    DynamicBatcher as DynamicBatcher,
    Flush as Flush,
    Reject as Reject,
    Wait as Wait,
)
from .caching import (
    BlobStore as BlobStore,
    CacheCodec as CacheCodec,
    CachedStream as CachedStream,
    CacheEntry as CacheEntry,
    CacheHit as CacheHit,
    CacheSettings as CacheSettings,
    CacheTier as CacheTier,
    ChainedResponseCache as ChainedResponseCache,
    ContentAddressedTier as ContentAddressedTier,
    DiskTier as DiskTier,
    ExactResponseCache as ExactResponseCache,
    InMemoryTier as InMemoryTier,
    IPFSCache as IPFSCache,
    KuboBlobStore as KuboBlobStore,
    LocalBlobStore as LocalBlobStore,
    MemoryCache as MemoryCache,
    MemoryTier as MemoryTier,
    MultiTierCache as MultiTierCache,
    RedisCache as RedisCache,
    RedisTier as RedisTier,
    RequestKeyer as RequestKeyer,
    ResponseCache as ResponseCache,
    SingleFlight as SingleFlight,
    SSEAssembler as SSEAssembler,
    assemble_sse as assemble_sse,
    build_response_cache as build_response_cache,
    build_tiers as build_tiers,
    render_sse as render_sse,
    replayable as replayable,
    request_key as request_key,
    tenant_prefix as tenant_prefix,
)
from .caching.semantic import (
    AutoIndex as AutoIndex,
    EntryStore as EntryStore,
    FlatIndex as FlatIndex,
    HNSWIndex as HNSWIndex,
    IVFIndex as IVFIndex,
    MemoryStore as MemoryStore,
    RedisStore as RedisStore,
    SemanticCache as SemanticCache,
    SemanticMatch as SemanticMatch,
    SemanticResponseCache as SemanticResponseCache,
    SemanticSettings as SemanticSettings,
    SQLiteStore as SQLiteStore,
    VectorIndex as VectorIndex,
    Verifier as Verifier,
    build_semantic_cache as build_semantic_cache,
)
from .clock import (
    Clock as Clock,
    ManualClock as ManualClock,
    SystemClock as SystemClock,
)
from .config import (
    PRSMConfig as PRSMConfig,
    load_config as load_config,
)
from .embeddings import (
    EMBEDDING_DIM as EMBEDDING_DIM,
    MODEL_NAME as MODEL_NAME,
    Embedder as Embedder,
    HashingEmbedder as HashingEmbedder,
    SentenceTransformerEmbedder as SentenceTransformerEmbedder,
    load_sentence_transformer as load_sentence_transformer,
    model_path as model_path,
)
from .errors import (
    AllocationError as AllocationError,
    AllocationTimeoutError as AllocationTimeoutError,
    AuthenticationError as AuthenticationError,
    CacheError as CacheError,
    CacheIntegrityError as CacheIntegrityError,
    CircuitBreakerOpenError as CircuitBreakerOpenError,
    ConfigError as ConfigError,
    DeadlineExceededError as DeadlineExceededError,
    DependencyMissingError as DependencyMissingError,
    InfeasibleAllocationError as InfeasibleAllocationError,
    NoCapableNodesError as NoCapableNodesError,
    NoGPUError as NoGPUError,
    OverloadedError as OverloadedError,
    PayloadTooLargeError as PayloadTooLargeError,
    PRSMError as PRSMError,
    RateLimitedError as RateLimitedError,
    RequestValidationError as RequestValidationError,
    RoutingError as RoutingError,
    UnknownModelError as UnknownModelError,
    UpstreamError as UpstreamError,
    UpstreamTimeoutError as UpstreamTimeoutError,
    UpstreamUnavailableError as UpstreamUnavailableError,
    WorkerError as WorkerError,
)
from .fakes import (
    SimSettings as SimSettings,
    UpstreamSimulator as UpstreamSimulator,
)
from .gateway import (
    GatewayApp as GatewayApp,
    GatewaySettings as GatewaySettings,
    MemoryRateLimitStore as MemoryRateLimitStore,
    RateLimitStore as RateLimitStore,
    RedisRateLimitStore as RedisRateLimitStore,
    TenantSettings as TenantSettings,
    create_app as create_app,
)
from .gpu import (
    NVML as NVML,
    ConsolidationAdvice as ConsolidationAdvice,
    FakeDevice as FakeDevice,
    FakeNVML as FakeNVML,
    GPUAllocation as GPUAllocation,
    GPUMemoryManager as GPUMemoryManager,
    GPUMonitor as GPUMonitor,
    GPUPlacement as GPUPlacement,
    GPUProcess as GPUProcess,
    GPUReading as GPUReading,
    GPURequirements as GPURequirements,
    GPUResourceManager as GPUResourceManager,
    GPUScheduler as GPUScheduler,
    ModelFootprint as ModelFootprint,
    PyNVML as PyNVML,
)
from .monitoring import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
    MetricsRegistry as MetricsRegistry,
)
from .optimize import (
    Allocation as Allocation,
    AllocationInput as AllocationInput,
    Conflict as Conflict,
    ConstraintSolver as ConstraintSolver,
    CostConstraints as CostConstraints,
    CostOptimizer as CostOptimizer,
    KindPerformance as KindPerformance,
    OptimizerSettings as OptimizerSettings,
    ReplicaPlan as ReplicaPlan,
    ResourceOptimizer as ResourceOptimizer,
    ResourceType as ResourceType,
    ResourceUsage as ResourceUsage,
    WorkloadAllocation as WorkloadAllocation,
    WorkloadProfile as WorkloadProfile,
    WorkloadProfiler as WorkloadProfiler,
    load_allocation_file as load_allocation_file,
)
from .orchestrator import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
    OrchestratorSettings as OrchestratorSettings,
    PerformanceOrchestrator as PerformanceOrchestrator,
)
from .resilience import (
    BreakerSet as BreakerSet,
    BreakerSettings as BreakerSettings,
    BreakerState as BreakerState,
    CircuitBreaker as CircuitBreaker,
    CircuitState as CircuitState,
)
from .routing import (
    ROUTING_STRATEGIES as ROUTING_STRATEGIES,
    AILoadBalancer as AILoadBalancer,
    BalancerSettings as BalancerSettings,
    NodeMetrics as NodeMetrics,
    NodeRegistry as NodeRegistry,
    NodeSpec as NodeSpec,
    NodeState as NodeState,
    NodeStats as NodeStats,
    PerformanceTracker as PerformanceTracker,
    node_from_mapping as node_from_mapping,
)
from .types import (
    AIRequest as AIRequest,
    ExecutionResult as ExecutionResult,
    JSONBody as JSONBody,
    RequestKind as RequestKind,
    Response as Response,
)
from .upstreams import (
    CallableUpstream as CallableUpstream,
    DispatchUpstream as DispatchUpstream,
    HttpUpstream as HttpUpstream,
    StreamingUpstream as StreamingUpstream,
    Upstream as Upstream,
)
from .workers import (
    EmbedBatch as EmbedBatch,
    LocalModelUpstream as LocalModelUpstream,
    LocalWorkerPool as LocalWorkerPool,
    WorkerProcess as WorkerProcess,
    WorkerSettings as WorkerSettings,
    start_default_workers as start_default_workers,
)

__version__: str
from .http import HttpPool as HttpPool
from .serve import (
    app_from_config as app_from_config,
    build_orchestrator as build_orchestrator,
)
