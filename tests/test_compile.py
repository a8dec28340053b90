"""The compile clock (seconds from JAX's compile events, overlaps counted once) and the
persistent compilation cache (a second process loads what the first compiled)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import flowlab
from flowlab._compile import COMPILE_EVENTS, CompileClock


def test_overlapping_compile_spans_count_once():
    clock = CompileClock()
    for start, end in [(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.7)]:
        clock._listen(COMPILE_EVENTS[0], start, end)
    clock._listen("/jax/something/else", 10.0, 20.0)
    assert clock.seconds == pytest.approx(4.0)


def test_the_clock_sees_a_compile_and_not_a_cached_call():
    @jax.jit
    def f(x):
        return jnp.sin(x) @ jnp.cos(x).T + 17.25  # a program no other test compiles

    x = jnp.ones((3, 3))
    with CompileClock() as first:
        f(x).block_until_ready()
    with CompileClock() as second:
        f(x).block_until_ready()
    assert first.count == 1 and first.seconds > 0
    assert second.count == 0 and second.seconds == 0


def test_fit_reports_its_compile_time_within_its_wall_time():
    train, holdout = flowlab.datasets.split("pinwheel", jax.random.key(0))
    model = flowlab.CNF(flowlab.nn.MLPVectorField(2, width=8, depth=1, key=jax.random.key(1)))
    _, history = flowlab.fit(
        model,
        flowlab.FlowMatching(),
        train,
        holdout,
        key=jax.random.key(2),
        steps=20,
        batch_size=32,
        eval_every=10,
        progress=False,
    )
    assert 0 < history.compile_time < history.wall_time[-1]


CACHED = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp
    from jax import monitoring
    import flowlab
    folder = flowlab.enable_compile_cache(sys.argv[1])
    hits = []
    monitoring.register_event_listener(
        lambda e, **k: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
    f = jax.jit(lambda x: jnp.tanh(x) * 3.5 + x @ x.T)
    with flowlab.CompileClock() as clock:
        f(jnp.ones((4, 4))).block_until_ready()
    print(json.dumps({"folder": str(folder), "hits": len(hits), "compiles": clock.count}))
    """
)


def _two_processes(code: str, folder) -> list[dict]:
    """Run ``code`` in two processes one after the other, both with the cache in ``folder``
    (the environment's own cache setting removed); the JSON each prints last."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWLAB_COMPILE_CACHE"}
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def test_a_second_process_loads_the_cached_program(tmp_path):
    runs = _two_processes(CACHED, tmp_path / "cache")
    assert runs[0]["hits"] == 0 and runs[1]["hits"] >= 1  # the jit and its small helpers
    assert runs[0]["folder"] == str(tmp_path / "cache") and any((tmp_path / "cache").iterdir())


def test_the_cache_folder_is_the_users_to_choose(tmp_path, monkeypatch):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("FLOWLAB_COMPILE_CACHE", "off")
        assert flowlab.enable_compile_cache() is None
        assert jax.config.jax_compilation_cache_dir is None
        monkeypatch.setenv("FLOWLAB_COMPILE_CACHE", str(tmp_path / "mine"))
        assert flowlab.enable_compile_cache() == tmp_path / "mine"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")
        # the cache moved: the next compile lands in the new folder
        jax.jit(lambda x: x * 41.5 - 2)(jnp.ones(7)).block_until_ready()
        assert any((tmp_path / "mine").iterdir())
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ValueError, match="cannot be created"):
            flowlab.enable_compile_cache(blocker / "sub")
    finally:
        if before:
            flowlab.enable_compile_cache(before)


EVERY_PROGRAM = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp
    from jax import monitoring
    import flowlab
    from flowlab import samplers
    flowlab.enable_compile_cache(sys.argv[1])
    seen = []  # a program the cache could not serve is a request without a hit
    monitoring.register_event_listener(lambda e, **k: seen.append(e))
    key = jax.random.key(0)
    x = jax.random.normal(key, (9, 2))
    cnf = flowlab.CNF(flowlab.nn.MLPVectorField(2, width=8, depth=1, key=key))
    energy = flowlab.ebm.energy_mlp(2, width=8, depth=1, key=key)
    ebm = flowlab.EBM(energy, ((-3.0, 3.0), (-3.0, 3.0)), quadrature_panels=4)
    cnf.log_prob(x); cnf.sample(key, 9); cnf.sample_and_log_prob(key, 9)
    cnf.trajectories(key, 9, num_times=5)
    ebm.log_prob(x); ebm.sample(key, 9, sampler=samplers.Langevin(steps=3))
    requests = seen.count("/jax/compilation_cache/compile_requests_use_cache")
    print(json.dumps({"misses": requests - seen.count("/jax/compilation_cache/cache_hits")}))
    """
)


def test_every_sampling_and_likelihood_program_is_cached(tmp_path):
    """A second process loads all of the first's sampling and likelihood programs from the
    cache: none holds a host callback (JAX never caches those; failures raise on the host),
    ``trajectories`` included (its states are read off the dense output, not saved with a
    traced ``SaveAt(ts=...)``, which Diffrax checks with a callback of its own)."""
    misses = [run["misses"] for run in _two_processes(EVERY_PROGRAM, tmp_path / "cache")]
    assert misses[0] >= 7 and misses[1] == 0, misses
