"""Type stubs of the greenbench package (see greenbench/__init__.py for the docs)."""

from typing import Any, Callable, ContextManager, Optional, Sequence, TypeVar

from ._native import GreenbenchError as GreenbenchError

__version__: str
F = TypeVar("F", bound=Callable[..., Any])

class Measurement:
    label: str
    examples: int
    seconds: float
    cpu_seconds: Optional[float]
    joules_gross: Optional[float]
    joules_net: Optional[float]
    energy_kind: Optional[str]
    energy_source: str
    kwh: Optional[float]
    co2e_g: Optional[float]
    usd: Optional[float]
    peak_rss_bytes: Optional[int]
    per_example: dict[str, Optional[float]]
    windows: list[dict[str, Any]]
    power_series: list[tuple[float, float]]
    failed: Optional[str]
    warnings: list[str]
    path: Optional[str]
    def to_dict(self) -> dict[str, Any]: ...
    def save(self, path: str) -> str: ...

class Tracker:
    label: Optional[str]
    out: Optional[str]
    examples: Optional[int]
    measurement: Optional[Measurement]
    def __init__(
        self,
        label: Optional[str] = None,
        out: Optional[str] = None,
        examples: Optional[int] = None,
        interval: float = 1.0,
        idle_s: Optional[float] = None,
        sysfs_root: Optional[str] = None,
        cpu_tdp_w: Optional[float] = None,
        grid_g_per_kwh: Optional[float] = None,
        price_usd_per_kwh: Optional[float] = None,
        nvml: bool = True,
    ) -> None: ...
    def start(self) -> Tracker: ...
    def stop(self, failed: Optional[str] = None) -> Measurement: ...
    def window(self, name: str) -> ContextManager[dict[str, Any]]: ...
    def __enter__(self) -> Tracker: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...
    def __call__(self, fn: F) -> F: ...

class RunResult:
    path: str
    cells: list[dict[str, Any]]
    environment: dict[str, Any]
    def save(self, path: str) -> str: ...
    def to_pandas(self) -> Any: ...

def inspect(model: str, dims: Optional[dict[str, int]] = None) -> dict[str, Any]: ...
def run(
    models: str | Sequence[str],
    backends: Sequence[str] = ("cpu",),
    batch: Sequence[int] = (1, 32),
    profile: str = "quick",
    threads: Optional[int] = None,
    seed: int = 0,
    precision: Sequence[str] = ("fp32",),
    out: Optional[str] = None,
    peak: bool = True,
) -> RunResult: ...
def price(
    source: Any,
    runs: Optional[int] = None,
    examples: Optional[int] = None,
    epochs: Optional[int] = None,
    model: Optional[str] = None,
    pue: float = 1.0,
    grid_g_per_kwh: Optional[float] = None,
    price_usd_per_kwh: Optional[float] = None,
    energy: str = "gross",
) -> dict[str, Any]: ...
