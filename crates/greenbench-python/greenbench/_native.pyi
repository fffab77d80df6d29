"""Type stubs of greenbench's Rust extension (greenbench._native)."""

from os import PathLike
from typing import Optional, Sequence, Tuple

__version__: str

class GreenbenchError(RuntimeError):
    """An error greenbench reports, with the message the CLI gives for it."""

Reading = Tuple[float, Optional[float], float]

class Session:
    """A tracking session: idle measured at its start (counters), power sampled in the
    background, windows read on demand, the result file at its end."""

    def __init__(
        self,
        idle_s: Optional[float] = None,
        interval: float = 1.0,
        sysfs_root: Optional[str | PathLike[str]] = None,
        cpu_tdp_w: Optional[float] = None,
        grid_g_per_kwh: Optional[float] = None,
        price_usd_per_kwh: Optional[float] = None,
        nvml: bool = True,
    ) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def idle_w(self) -> Optional[float]: ...
    def reading(self) -> Reading: ...
    def between(self, a: Reading, b: Reading) -> Tuple[float, Optional[float], Optional[float]]: ...
    def finish(
        self,
        label: str,
        examples: Optional[int] = None,
        failed: Optional[str] = None,
        out: Optional[str | PathLike[str]] = None,
    ) -> str: ...

def inspect_json(model: str) -> str: ...
def run_json(
    models: Sequence[str],
    batch: Sequence[int],
    profile: str,
    out: str | PathLike[str],
    threads: Optional[int] = None,
    seed: int = 0,
    precisions: Sequence[str] = ...,
    peak: bool = True,
) -> str: ...
def price_json(
    files: Sequence[str | PathLike[str]],
    model: Optional[str] = None,
    runs: Optional[int] = None,
    examples: Optional[int] = None,
    epochs: Optional[int] = None,
    pue: float = 1.0,
    grid_g_per_kwh: Optional[float] = None,
    price_usd_per_kwh: Optional[float] = None,
    energy: str = "gross",
) -> str: ...
