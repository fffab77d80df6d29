"""greenbench from Python: the price tag of a training run or a model, measured.

The figures come from the same library code as the ``greenbench`` command line (a Rust
extension, ``greenbench._native``), and results are the same result files the CLI writes, so
``greenbench report``, ``merge``, ``compare`` and ``cost`` read them.

- ``Tracker``: measure a block of Python (a training loop): wall time, CPU time, energy
  (RAPL/NVML/hwmon counters with idle power subtracted, or the labelled estimate), a power
  time series, CO2e and money. A context manager, a decorator, or ``start()``/``stop()``;
  named windows (``with t.window("epoch-3"):``).
- ``inspect(model)``: per-layer and total MACs, FPO and parameters of a zoo model, a model
  JSON or an ONNX file.
- ``run(models, ...)``: measure models on the CPU backend, as ``greenbench run`` does.
- ``price(...)``: the Green AI price tag E x D x H of measured runs.

Errors are ``GreenbenchError`` with the CLI's messages.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from typing import Any, Callable, Iterator, Sequence

from ._native import GreenbenchError, Session, __version__, inspect_json, price_json, run_json

__all__ = [
    "GreenbenchError",
    "Measurement",
    "RunResult",
    "Tracker",
    "__version__",
    "inspect",
    "price",
    "run",
]


class Measurement:
    """What a ``Tracker`` measured: attributes, ``to_dict()``, and the result file.

    ``seconds`` (wall), ``cpu_seconds`` (this process and the children it waited for),
    ``joules_gross`` and ``joules_net`` (net of idle power for counters; the estimate has no
    idle, so both are one figure), ``energy_kind`` (``measured`` or ``estimated``),
    ``energy_source`` (the meters, or the estimate's model and constants), ``co2e_g`` and
    ``usd`` (at the grid intensity and price recorded), ``examples``, ``per_example`` (a dict
    of time and energy per example), ``windows`` (named windows), ``power_series`` (list of
    ``(seconds, watts)``), ``failed`` (why, when the tracked code raised), ``path`` (the
    result file, when written).
    """

    def __init__(self, file: dict[str, Any], windows: list[dict[str, Any]], path: str | None):
        self._file = file
        cell = file["cells"][0]
        self._cell = cell
        env = file["environment"]
        n = cell.get("train_passes") or 1
        per = cell["time_per_example_s"]["median"]
        self.label: str = cell["model"]
        self.examples: int = n
        self.seconds: float = per * n
        self.cpu_seconds: float | None = cell.get("cpu_s")
        gross = cell.get("energy_gross_per_example_j")
        net = cell.get("energy_net_per_example_j")
        self.joules_gross: float | None = None if gross is None else gross * n
        self.joules_net: float | None = None if net is None else net * n
        self.energy_kind: str | None = cell.get("energy_kind")
        self.energy_source: str = cell["energy_source"]
        prices = (env.get("energy") or {}).get("prices") or {}
        joules = cell.get("energy_per_example_j")
        kwh = None if joules is None else joules * n / 3.6e6
        self.kwh: float | None = kwh
        self.co2e_g: float | None = None if kwh is None else kwh * prices.get("grid_g_co2e_per_kwh", 0.0)
        self.usd: float | None = None if kwh is None else kwh * prices.get("usd_per_kwh", 0.0)
        self.peak_rss_bytes: int | None = cell.get("peak_rss_bytes")
        self.per_example = {
            "seconds": per,
            "joules": cell.get("energy_per_example_j"),
        }
        self.windows = windows
        self.power_series = [tuple(p) for p in cell.get("power_series_w", [])]
        self.failed: str | None = cell.get("error")
        self.warnings: list[str] = list(cell.get("warnings", []))
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        """The measurement as plain Python values (JSON-serialisable)."""
        return {
            "label": self.label,
            "examples": self.examples,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "joules_gross": self.joules_gross,
            "joules_net": self.joules_net,
            "energy_kind": self.energy_kind,
            "energy_source": self.energy_source,
            "kwh": self.kwh,
            "co2e_g": self.co2e_g,
            "usd": self.usd,
            "peak_rss_bytes": self.peak_rss_bytes,
            "per_example": dict(self.per_example),
            "windows": [dict(w) for w in self.windows],
            "power_series": [list(p) for p in self.power_series],
            "failed": self.failed,
            "warnings": list(self.warnings),
            "path": self.path,
        }

    def save(self, path: str) -> str:
        """Write the result file (refuses to replace one); returns the path."""
        _write_new(path, self._file)
        self.path = path
        return path

    def __repr__(self) -> str:
        j = self.joules_net if self.joules_net is not None else self.joules_gross
        energy = "n/a" if j is None else f"{j:.4g} J"
        est = " (est.)" if self.energy_kind == "estimated" else ""
        return f"<Measurement {self.label!r}: {self.seconds:.3f} s, {energy}{est}>"


def _write_new(path: str, data: dict[str, Any]) -> None:
    if os.path.exists(path):
        raise GreenbenchError(
            f"{path} exists: greenbench does not replace a result file; give another path"
        )
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


class Tracker:
    """Measure a block of Python: a context manager, a decorator, or ``start()``/``stop()``.

    >>> with Tracker(label="train", examples=60000 * 3) as t:  # doctest: +SKIP
    ...     with t.window("epoch-1"):
    ...         train_one_epoch()
    >>> t.measurement.co2e_g  # doctest: +SKIP

    ``out``: a result file to write at ``stop()`` (``greenbench report``/``cost`` read it).
    ``examples``: examples processed (D x epochs) for per-example figures. ``interval``:
    seconds between power samples. ``idle_s``: seconds of idle power measured at ``start()``
    when a counter is readable (default 2). The energy flags of the CLI: ``sysfs_root``,
    ``cpu_tdp_w``, ``grid_g_per_kwh``, ``price_usd_per_kwh``, ``nvml``.
    """

    def __init__(
        self,
        label: str | None = None,
        out: str | None = None,
        examples: int | None = None,
        interval: float = 1.0,
        idle_s: float | None = None,
        sysfs_root: str | None = None,
        cpu_tdp_w: float | None = None,
        grid_g_per_kwh: float | None = None,
        price_usd_per_kwh: float | None = None,
        nvml: bool = True,
    ):
        if examples is not None and examples < 1:
            raise GreenbenchError(f"examples {examples}: give a whole number of at least 1")
        if out is not None and os.path.exists(out):
            raise GreenbenchError(
                f"{out} exists: greenbench does not replace a result file; give another out"
            )
        self.label = label
        self.out = out
        self.examples = examples
        self._opts = dict(
            idle_s=idle_s,
            interval=interval,
            sysfs_root=sysfs_root,
            cpu_tdp_w=cpu_tdp_w,
            grid_g_per_kwh=grid_g_per_kwh,
            price_usd_per_kwh=price_usd_per_kwh,
            nvml=nvml,
        )
        self._session: Session | None = None
        self._windows: list[dict[str, Any]] = []
        self.measurement: Measurement | None = None

    def start(self) -> "Tracker":
        """Start measuring (idle power is measured first when a counter is readable)."""
        if self._session is not None:
            raise GreenbenchError("this Tracker is already running: stop() it first")
        self._windows = []
        self.measurement = None
        self._session = Session(**self._opts)
        return self

    def stop(self, failed: str | None = None) -> Measurement:
        """Stop measuring; the ``Measurement`` (also kept as ``.measurement``)."""
        if self._session is None:
            raise GreenbenchError("this Tracker is not running: start() it first")
        session, self._session = self._session, None
        label = self.label or "python"
        text = session.finish(label, self.examples, failed, self.out)
        self.measurement = Measurement(json.loads(text), self._windows, self.out)
        return self.measurement

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[dict[str, Any]]:
        """Measure a named part (an epoch): seconds, gross and net joules, in ``windows``."""
        if self._session is None:
            raise GreenbenchError("start the Tracker before opening a window")
        w: dict[str, Any] = {"name": name}
        a = self._session.reading()
        try:
            yield w
        finally:
            b = self._session.reading()
            seconds, gross, net = self._session.between(a, b)
            w.update(
                seconds=seconds,
                joules_gross=gross,
                joules_net=net,
                energy_kind=self._session.kind,
            )
            self._windows.append(w)

    def __enter__(self) -> "Tracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        failed = None if exc_type is None else f"{exc_type.__name__}: {exc}"
        self.stop(failed)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Use as a decorator: each call of ``fn`` is measured (``.measurement``: the last)."""

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapped


def inspect(model: str, dims: dict[str, int] | None = None) -> dict[str, Any]:
    """Per-layer and total work of ``model`` (a zoo name, a model JSON or an ONNX file).

    Returns ``{"name", "input_shape", "output_shape", "total": {...}, "layers": [...]}``,
    each with ``params``, ``macs``, ``fpo`` (= 2 x MACs + other FPO, shared/FPO.md) and
    ``transcendentals``; layers also ``name``, ``op`` and ``output_shape``.
    """
    if dims:
        raise GreenbenchError(
            "dims: greenbench binds no symbolic dimensions yet (models with fixed shapes only)"
        )
    v = json.loads(inspect_json(str(model)))
    return {
        "name": v["name"],
        "input_shape": v["input_shape"],
        "output_shape": v["output_shape"],
        "total": v["total"],
        "layers": [
            dict(name=n["name"], op=n["op"], output_shape=n["output_shape"], **n["cost"])
            for n in v["layers"]
        ],
    }


class RunResult:
    """Cells measured by ``run``: ``.cells`` (plain dicts, as in the result file),
    ``.path`` (the result file), ``.save(path)``, ``.to_pandas()``."""

    def __init__(self, file: dict[str, Any], path: str):
        self._file = file
        self.path = path
        self.cells: list[dict[str, Any]] = file["cells"]
        self.environment: dict[str, Any] = file["environment"]

    def save(self, path: str) -> str:
        """Write the result file to ``path`` (refuses to replace one); returns it."""
        _write_new(path, self._file)
        return path

    def to_pandas(self):
        """The cells as a pandas DataFrame, one row per cell (time and energy per example
        as columns ``time_per_example_s`` (the median), ``time_ci95_low_s``,
        ``time_ci95_high_s``, ``energy_per_example_j``, ...)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError(
                "to_pandas() needs pandas: pip install pandas (or pip install 'greenbench[pandas]')"
            ) from e
        rows = []
        for c in self.cells:
            r = {k: v for k, v in c.items() if not isinstance(v, (list, dict))}
            t = c.get("time_per_example_s") or {}
            r["time_per_example_s"] = t.get("median")
            r["time_ci95_low_s"] = t.get("ci95_low")
            r["time_ci95_high_s"] = t.get("ci95_high")
            rows.append(r)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"<RunResult: {len(self.cells)} cell(s) in {self.path}>"


def run(
    models: str | Sequence[str],
    backends: Sequence[str] = ("cpu",),
    batch: Sequence[int] = (1, 32),
    profile: str = "quick",
    threads: int | None = None,
    seed: int = 0,
    precision: Sequence[str] = ("fp32",),
    out: str | None = None,
    peak: bool = True,
) -> RunResult:
    """Measure ``models`` (zoo names, model JSON or ONNX files) as ``greenbench run`` does.

    From Python the backend is the CPU (``backends=("cpu",)``); the CLI runs the GPU too.
    ``out``: the result file (default: a new file in the temporary directory). The GIL is
    released while it runs; Ctrl-C stops after the cell in hand and raises
    ``KeyboardInterrupt``, the finished cells kept in ``out``.
    """
    if isinstance(models, str):
        models = [models]
    bad = [b for b in backends if b != "cpu"]
    if bad:
        raise GreenbenchError(
            f"backend(s) {', '.join(bad)}: from Python, run() measures the CPU backend; "
            "use the CLI (greenbench run --backends cpu,gpu) for the GPU"
        )
    if out is None:
        fd, out = tempfile.mkstemp(prefix="greenbench-run-", suffix=".json")
        os.close(fd)
        os.remove(out)
    text = run_json(
        [str(m) for m in models],
        [int(b) for b in batch],
        profile,
        out,
        threads=threads,
        seed=seed,
        precisions=[str(p) for p in precision],
        peak=peak,
    )
    return RunResult(json.loads(text), out)


def price(
    source: Any,
    runs: int | None = None,
    examples: int | None = None,
    epochs: int | None = None,
    model: str | None = None,
    pue: float = 1.0,
    grid_g_per_kwh: float | None = None,
    price_usd_per_kwh: float | None = None,
    energy: str = "gross",
) -> dict[str, Any]:
    """The Green AI price tag E x D x H, as ``greenbench cost`` computes it.

    ``source``: a ``Measurement``, a ``RunResult``, a result file's path, or a list of them.
    Without ``examples``: the measured runs (training or tracked) in it, ``runs`` = H runs
    like them (default: the runs present). With ``examples`` (D), ``epochs`` and ``runs``:
    ``model``'s experiment priced from its cheapest cell. Returns ``text`` (every figure
    traced, as the CLI prints it), ``runs``, ``total_fpo``, ``seconds``, ``joules``, ``kwh``,
    ``co2e_g``, ``usd``.
    """
    items = source if isinstance(source, (list, tuple)) else [source]
    files: list[str] = []
    temps: list[str] = []
    try:
        for it in items:
            if isinstance(it, (Measurement, RunResult)) and it.path and os.path.exists(it.path):
                files.append(it.path)
            elif isinstance(it, (Measurement, RunResult)):
                fd, p = tempfile.mkstemp(prefix="greenbench-price-", suffix=".json")
                os.close(fd)
                os.remove(p)
                _write_new(p, it._file)
                temps.append(p)
                files.append(p)
            else:
                files.append(os.fspath(it))
        return json.loads(
            price_json(
                files,
                model=model,
                runs=runs,
                examples=examples,
                epochs=epochs,
                pue=pue,
                grid_g_per_kwh=grid_g_per_kwh,
                price_usd_per_kwh=price_usd_per_kwh,
                energy=energy,
            )
        )
    finally:
        for p in temps:
            with contextlib.suppress(OSError):
                os.remove(p)
