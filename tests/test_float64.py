"""float64 is available for reference computations: with JAX_ENABLE_X64 the same code solves
the likelihood ODE in double precision to tolerances float32 cannot reach."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import linear_flow_logpdf

SCRIPT = """
import json, jax, jax.numpy as jnp, equinox as eqx
from flowlab import CNF

class Linear(eqx.Module):
    a: jax.Array
    data_size: int = 2
    def __call__(self, t, x):
        return self.a @ x

a = jnp.array([[0.3, -0.8], [0.5, -0.2]])
x = 1.5 * jax.random.normal(jax.random.key(0), (50, 2), jnp.float64)
lp = CNF(Linear(a), rtol=1e-11, atol=1e-11).log_prob(x)
print(json.dumps({"dtype": str(lp.dtype), "x": x.tolist(), "lp": lp.tolist(), "a": a.tolist()}))
"""


def test_float64_log_prob_matches_closed_form_to_1e9():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "float64"
    expected = linear_flow_logpdf(np.array(out["x"]), np.array(out["a"]))
    np.testing.assert_allclose(out["lp"], expected, atol=1e-9, rtol=0)
