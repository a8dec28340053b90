"""Shape-annotated array aliases used across flowlab (jaxtyping)."""

from jaxtyping import Array, Float, PRNGKeyArray, Scalar

Point = Float[Array, " d"]
"""One example, shape ``(d,)``."""
Points = Float[Array, "n d"]
"""A batch of examples, shape ``(n, d)``."""
Values = Float[Array, " n"]
"""One number per example, shape ``(n,)``."""
Time = float | Float[Scalar, ""]
"""A scalar time."""
Key = PRNGKeyArray

__all__ = ["Array", "Key", "Point", "Points", "Time", "Values"]
