"""``benchmarks/vae_quadrature.py``: the rewritten quadrature kernel gives the numbers of the
one it replaced (kept in the benchmark as the reference), on the hold-out set and on a
density grid far into the tails."""

import json

import vae_quadrature


def test_vae_quadrature_matches_the_kernel_it_replaced(tmp_path):
    out = tmp_path / "vq.json"
    result = vae_quadrature.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["rows"].keys() == {"holdout_500", "grid_60x60"}
    for row in result["rows"].values():
        # float32 rounding of the same sums taken in another order: log p is O(1)-O(100) here
        assert row["max_abs_diff_log_prob"] < 1e-3, row
        assert row["max_abs_diff_error"] < 1e-3, row
        assert row["before_s"] > 0 and row["after_s"] > 0
