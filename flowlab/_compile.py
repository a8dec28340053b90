r"""Compilation: JAX's persistent compilation cache, and a clock of time spent compiling.

Every flowlab program (a training chunk, a likelihood solve, a sampler) is compiled by XLA
the first time it runs with given shapes. :func:`enable_compile_cache` keeps the compiled
programs on disk, so that a second run of a script, a re-run notebook cell, the comparison
grid's many trainings and CI's smoke runs load them instead of compiling again.
:class:`CompileClock` measures how much of a stretch of wall time went to tracing, lowering
and compiling (or loading from the cache), from JAX's own monitoring events, so that
timings can report compile time apart from run time.

Public through :mod:`flowlab` (``flowlab.enable_compile_cache``, ``flowlab.CompileClock``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import jax
from jax import monitoring
from jax.experimental.compilation_cache import compilation_cache as _jax_cache

__all__ = ["CompileClock", "compile_cache_dir", "enable_compile_cache"]

#: JAX's monitoring events that cover a program's compilation: tracing to a jaxpr,
#: lowering to MLIR, and XLA's compile or the persistent cache's load.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

ENV_DIR = "FLOWLAB_COMPILE_CACHE"


def _default_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "flowlab" / "jax"


def compile_cache_dir() -> Path | None:
    """The folder the persistent compilation cache uses now, or ``None`` when it is off."""
    path = jax.config.jax_compilation_cache_dir
    return Path(path) if path else None


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path``; return the folder (``None``
    when turned off).

    Called again with another folder (or turned off), the cache moves there from the next
    compile on. Without ``path``: the environment variable ``FLOWLAB_COMPILE_CACHE`` when
    set (``0`` or ``off`` turns the cache off; anything else is the folder), else JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` when set, else ``~/.cache/flowlab/jax`` (under
    ``XDG_CACHE_HOME`` when that is set). Every program is cached, however quick its
    compile (JAX's default skips those under a second, which on a CPU is most of
    flowlab's). Tracing and lowering are not cached: a warm run still spends about a third
    of a cold run's compile time (the main job: 1.9-2.3 s against 3.5 s).

    The experiment scripts, the comparison grid and the test suite call this at start-up.
    """
    if path is None:
        env = os.environ.get(ENV_DIR)
        if env is not None and env.strip().lower() in ("0", "off", "false", "no", ""):
            _use(None)
            return None
        path = env or os.environ.get("JAX_COMPILATION_CACHE_DIR") or _default_dir()
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"the compilation cache folder {str(folder)!r} cannot be created ({err}); "
            f"pass another path or set {ENV_DIR}=off"
        ) from err
    _use(str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def _use(folder: str | None) -> None:
    """Point JAX's cache at ``folder`` (``None``: off), re-opening it when it moves (JAX
    opens its cache once, at the first compile)."""
    if jax.config.jax_compilation_cache_dir != folder:
        jax.config.update("jax_compilation_cache_dir", folder)
        _jax_cache.reset_cache()


class CompileClock:
    """Seconds spent compiling while the clock runs (a context manager).

    Counts the wall time covered by JAX's compile events (``COMPILE_EVENTS``: tracing,
    lowering, XLA compile or persistent-cache load), with overlapping spans (a jit traced
    inside another's trace) counted once. Only events of the thread that started the
    clock are counted.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = jax.jit(lambda x: jnp.sin(x) * 2.5)
        >>> x = jnp.ones(3)
        >>> with CompileClock() as clock:
        ...     y = f(x).block_until_ready()
        >>> clock.count, clock.seconds > 0
        (1, True)
    """

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []
        self.count = 0  # backend compiles (or cache loads) seen: one per program
        self._thread = threading.get_ident()
        self._running = False

    def _listen(self, event: str, start: float, end: float, **_) -> None:
        if event in COMPILE_EVENTS and threading.get_ident() == self._thread:
            self._spans.append((start, end))
            self.count += event == COMPILE_EVENTS[-1]

    def __enter__(self) -> CompileClock:
        self._thread = threading.get_ident()
        monitoring.register_event_time_span_listener(self._listen)
        self._running = True
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._running:
            monitoring.unregister_event_time_span_listener(self._listen)
            self._running = False

    @property
    def seconds(self) -> float:
        """Seconds of wall time covered by compile events so far."""
        return sum(end - start for start, end in self._merged())

    def _merged(self) -> list[tuple[float, float]]:
        merged: list[tuple[float, float]] = []
        for start, end in sorted(self._spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged
