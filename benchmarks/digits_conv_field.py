"""Does a small convolutional field pay on the digits? Time per flow-matching step of
experiments/digits.py's MLP field and of nn.ConvVectorField, on this CPU.

    python benchmarks/digits_conv_field.py      # writes benchmarks/digits_conv_field_results.json

Both are timed in one jitted lax.scan of `steps` (5) steps (flowlab.Trainer.run), after a
compiling call, batch 256, on the dequantised, logit-transformed digits; the median of 3.
Timings on a shared 2-core CPU are inflated by other jobs: compare the two, not the values.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import flowlab
from flowlab.datasets import digits as D
from flowlab.nn import ConvVectorField, MLPVectorField, num_parameters

FREQS = (1.0, 2.0, 4.0, 8.0, 16.0)


def main(steps: int = 5) -> dict:
    s = D.split_digits()
    y, _ = D.LogitTransform().forward(D.dequantize(s.train, jax.random.key(0)))
    std = flowlab.Standardize.fit(y)
    nets = {
        "mlp (width 256, depth 3)": MLPVectorField(
            64, 256, 3, time_frequencies=FREQS, key=jax.random.key(1)
        ),
        "conv (48 channels, 4 convs)": ConvVectorField(64, 48, 4, FREQS, key=jax.random.key(1)),
    }
    out = {"steps_per_call": steps, "batch_size": 256, "note": "shared 2-core CPU, loaded"}
    for name, net in nets.items():
        model = flowlab.CNF(net, standardize=std)
        params, static = eqx.partition(model, model.trainable())
        trainer = flowlab.Trainer(
            flowlab.FlowMatching(), flowlab.default_optimizer(1000), static, 256
        )
        state = trainer.init(params, y, jax.random.key(2))
        jax.block_until_ready(trainer.run(state, y, jax.random.key(3), steps))
        times = []
        for r in range(3):
            t = time.perf_counter()
            jax.block_until_ready(trainer.run(state, y, jax.random.key(4 + r), steps))
            times.append(time.perf_counter() - t)
        ms = 1000 * float(np.median(times)) / steps
        out[name] = {"ms_per_step": ms, "parameters": num_parameters(net)}
        print(f"{name}: {ms:.1f} ms per step, {num_parameters(net)} parameters", flush=True)
    Path(__file__).with_name("digits_conv_field_results.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )
    return out


if __name__ == "__main__":
    main()
