"""The closed-form Gaussian path the few-step tests measure against, and checks of it.

Base N(0, I) at t = 0, data N(m, diag(s^2)) at t = 1 (standardised coordinates), straight
conditional paths z_t = (1 - t) z_0 + t z_1 with independent z_0, z_1: the marginal at t is
N(t m, diag(sigma_t^2)), sigma_t^2 = (1 - t)^2 + t^2 s^2, the marginal (flow-matching)
velocity is v(t, z) = m + (t s^2 - (1 - t)) / sigma_t^2 (z - t m), and its flow map from r
to t is z -> t m + sigma_t / sigma_r (z - r m). Other test modules import ``GaussianPath``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


class GaussianPath:
    def __init__(self, m, s):
        self.m = jnp.asarray(m, jnp.float32)
        self.s = jnp.asarray(s, jnp.float32)

    def sigma(self, t):
        return jnp.sqrt((1.0 - t) ** 2 + t**2 * self.s**2)

    def velocity(self, t, z):
        return self.m + (t * self.s**2 - (1.0 - t)) / self.sigma(t) ** 2 * (z - t * self.m)

    def flow_map(self, r, t, z):
        return t * self.m + self.sigma(t) / self.sigma(r) * (z - r * self.m)

    def average_velocity(self, r, t, z):
        """(flow_map(r, t, z) - z) / (t - r), for t != r."""
        return (self.flow_map(r, t, z) - z) / (t - r)

    def network(self, r, span, z):
        """``network(r, span, z)`` as a flow-map model reads it; span = 0 gives the velocity."""
        safe = jnp.where(span == 0, 1.0, span)
        return jnp.where(span == 0, self.velocity(r, z), self.average_velocity(r, r + safe, z))

    def conditional_variance(self, t):
        """Var(z_1 - z_0 | z_t) per coordinate: the flow-matching loss floor at t."""
        cov = t * self.s**2 - (1.0 - t)
        return self.s**2 + 1.0 - cov**2 / self.sigma(t) ** 2


PATH = GaussianPath([1.0, -0.5], [0.5, 1.5])


def test_velocity_is_the_time_derivative_of_the_flow_map():
    z = jnp.array([0.3, -1.2])
    for t in (0.0, 0.3, 0.9):
        d = jax.jacfwd(lambda tt, t=t: PATH.flow_map(t, tt, z))(jnp.float32(t))
        np.testing.assert_allclose(d, PATH.velocity(t, z), rtol=1e-5, atol=1e-5)


def test_flow_map_composes_and_pushes_the_prior_to_the_data():
    z = jnp.array([0.7, 0.1])
    two = PATH.flow_map(0.4, 1.0, PATH.flow_map(0.0, 0.4, z))
    np.testing.assert_allclose(two, PATH.flow_map(0.0, 1.0, z), rtol=1e-6)
    np.testing.assert_allclose(PATH.flow_map(0.0, 1.0, z), PATH.m + PATH.s * z, rtol=1e-6)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.8])
def test_conditional_variance_is_the_flow_matching_floor(t):
    """Monte Carlo E||(z1 - z0) - v(t, z_t)||^2 against the closed form."""
    k0, k1 = jax.random.split(jax.random.key(0))
    n = 200_000
    z0 = jax.random.normal(k0, (n, 2))
    z1 = PATH.m + PATH.s * jax.random.normal(k1, (n, 2))
    zt = (1 - t) * z0 + t * z1
    res = (z1 - z0) - jax.vmap(lambda z: PATH.velocity(t, z))(zt)
    np.testing.assert_allclose(np.mean(res**2, 0), PATH.conditional_variance(t), rtol=0.02)
