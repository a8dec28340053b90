"""``benchmarks/repeat_runs.py``: the main job run twice on one cache folder. The second
run loads every program the first compiled (none holds a host callback, which would keep it
out of JAX's cache)."""

import json

import repeat_runs


def test_a_second_run_of_the_main_job_compiles_nothing(tmp_path):
    out = tmp_path / "repeat.json"
    saved = repeat_runs.main(["--smoke", "--out", str(out)])
    (round_,) = saved["main_job"]
    cold, warm = round_["cold"], round_["warm"]
    assert cold["cache_hits"] == 0 and cold["compiled"] >= 20  # an empty cache at the start
    assert warm["cache_requests"] == cold["cache_requests"]  # the same programs again
    assert warm["compiled"] == 0, warm
    assert json.loads(out.read_text())["main_job_median_s"]["cold"] == cold["wall_s"]
