from ._compare import (
    SIM_POLICIES as SIM_POLICIES,
    Scenario as Scenario,
    make_policy as make_policy,
    run_policies as run_policies,
    summary_rows as summary_rows,
)
from ._engine import SimulationSettings as SimulationSettings, simulate as simulate
from ._oracle import OraclePolicy as OraclePolicy, busy_per_second as busy_per_second
from ._plot import plot_comparison as plot_comparison
from ._result import SimulationResult as SimulationResult
from ._traces import (
    ServiceModel as ServiceModel,
    TokenModel as TokenModel,
    Trace as Trace,
    detect_format as detect_format,
    read_alibaba_lora as read_alibaba_lora,
    read_alibaba_qps as read_alibaba_qps,
    read_azure_llm as read_azure_llm,
    read_counts_per_minute as read_counts_per_minute,
    read_counts_per_second as read_counts_per_second,
    read_trace as read_trace,
)
