"""The two studies in words (:mod:`lab.studies`): what the KDE measures and how its
bandwidth moves the ranking; the samplers' discretisation against learning error; and both
in a few sentences for the main text."""

from __future__ import annotations

import math

from .. import studies
from ..results import Results
from .text import join, num, pm, sci, words


def kde_study_text(res: Results) -> list[str]:
    rows = res.kde or []
    if not rows:
        return []
    seed = res.seeds[0]
    paras = []
    bias = {}
    for r in rows:
        if r["model"] == "oracle" and r["seed"] == seed:
            bias[(r["dataset"], r["bandwidth"])] = (r["bias"], r["factor"])
    scott_eq = all(
        math.isclose(
            bias.get((n, "scott"), (0, 0))[1], bias.get((n, "silverman"), (0, 0))[1], rel_tol=1e-9
        )
        for n in res.datasets
    )
    parts = []
    for n in res.datasets:
        if (n, "scott") not in bias:
            continue
        cv = bias.get((n, "cv"), (math.nan, math.nan))
        half = bias.get((n, "half_scott"), (math.nan, math.nan))
        parts.append(
            f"{num(bias[(n, 'scott')][0])} nats on {n} with Scott's bandwidth (factor "
            f"{num(bias[(n, 'scott')][1], 3)}), {num(half[0])} with half of it and "
            f"{num(cv[0])} with the cross-validated factor {num(cv[1], 3)}"
        )
    paras.append(
        "The oracle rows measure the KDE itself ([@tab:kde] has every "
        "number): scored by the same KDE, fresh true samples overstate the true hold-out NLL by "
        + join(parts)
        + ". "
        + (
            "Silverman's rule gives exactly Scott's factor in two dimensions (both are "
            "n^(−1/6)) [@scott1992] [@silverman1986], so its column repeats Scott's. "
            if scott_eq
            else ""
        )
        + "The cross-validated factor maximises the leave-one-out likelihood of the samples "
        "themselves, never touching the hold-out set."
    )
    ranks = studies.rankings(rows)
    moved = []
    for n in res.datasets:
        base = ranks.get((n, seed, "scott"))
        if not base or len(base) < 2:
            continue
        for bw in ("half_scott", "cv"):
            other = ranks.get((n, seed, bw))
            if not other or other == base:
                continue
            bw_name = studies.BANDWIDTH_LABELS[bw]
            moved.append(
                f"on {words(n)} the {bw_name} bandwidth ranks {words(res.label(other[0]))} first "
                f"where Scott's ranks {words(res.label(base[0]))} first"
                if other[0] != base[0]
                else f"on {words(n)} the {bw_name} bandwidth keeps "
                f"{words(res.label(base[0]))} first but reorders the others"
            )
    if any(len(v) >= 2 for v in ranks.values()):
        paras.append(
            "The ranking of the models moves with the bandwidth: " + "; ".join(moved) + "."
            if moved
            else "The ranking of the models does not move with the bandwidth: every "
            "bandwidth orders them as Scott's does on every dataset."
        )
    return paras


STOCHASTIC = ("ddpm", "sde")
DETERMINISTIC = ("ddim", "ode_euler", "ode_adaptive")


def _gaussian_paragraph(summary: dict) -> str:
    """The closed-form half: each sampler's KL to one Gaussian, its slope and its limit."""
    sm, lab = summary["samplers"], studies.SAMPLER_LABELS
    g_parts = []
    for name in studies.SAMPLERS:
        d = sm.get(name, {})
        if "gaussian_kl_min_nfe" not in d:
            continue
        g_parts.append(
            f"{lab[name]} {sci(d['gaussian_kl_min_nfe'])} at {d['gaussian_min_nfe']} steps, "
            f"{sci(d['gaussian_kl_max_nfe'])} at {d['gaussian_max_nfe']} (log–log slope "
            f"{num(d['gaussian_slope'], 1)})"
        )
    lim = summary.get("gaussian_limits", {})
    return (
        "Closed form, one Gaussian component as the target: with the exact score every "
        "sampler is an affine map plus Gaussian noise, so its output is Gaussian and its KL "
        "is exact. KL(q ‖ p): " + "; ".join(g_parts) + ". A slope of −2 is first order in "
        "the step (KL is quadratic in the error of the moments). "
        f"The stochastic samplers converge to {sci(lim.get('limit_sde', math.nan))}, the cost "
        "of stopping at t = ε; DDIM and the Euler PF-ODE to "
        f"{sci(lim.get('limit_ode', math.nan))}, "
        "as a deterministic map also carries the mismatch between the N(0, I) prior and p₁ "
        "to the data, which the SDE forgets [@song2021sde] [@song2021ddim]."
    )


def _exact_score_paragraph(summary: dict) -> str:
    """The mixture with the exact score: the NFE from which each sampler is within the noise
    floor, and DDIM's exact KL."""
    sm, lab, floor = summary["samplers"], studies.SAMPLER_LABELS, summary["energy_floor"]
    reach, never = [], []
    for name in [*studies.SAMPLERS, "ode_adaptive"]:
        d = sm.get(name, {})
        if "exact_max_nfe" not in d:
            continue
        nfe = d.get("exact_nfe_to_floor")
        if nfe is not None and math.isfinite(nfe):
            reach.append(f"{lab[name]} from {nfe:.0f} NFE on")
        else:
            never.append(lab[name])
    para = (
        "On the Gaussian mixture with the exact score, the energy distance to fresh true "
        f"samples is within the noise floor ({sci(floor)}: three RMS of the distance between "
        "independent true sample sets of the same size) for " + (join(reach) or "no sampler")
    )
    if never:
        para += f", and not within the NFE tried for {join(never)}"
    para += "; below that NFE the error is discretisation error."
    ddim = sm.get("ddim", {})
    if "exact_kl_max_nfe" in ddim:
        para += (
            " DDIM's output density follows from the change of variables through its steps, "
            "so its KL to the mixture is measured exactly (up to Monte Carlo error): "
            f"{pm(ddim['exact_kl_max_nfe'], ddim['exact_kl_se_max_nfe'])} nats at "
            f"{ddim['exact_max_nfe']} steps with the exact score"
        )
        if "learned_kl_max_nfe" in ddim:
            para += (
                f", against {pm(ddim['learned_kl_max_nfe'], ddim['learned_kl_se_max_nfe'])} "
                "with the trained score"
            )
        para += "."
    return para


def _learned_score_paragraph(st: dict, learned: list[str]) -> str:
    """The mixture with the trained score (samplers ``learned``): which plateau above the
    noise floor (learning error) and which cannot run the trained model."""
    sm, lab = st["summary"]["samplers"], studies.SAMPLER_LABELS
    floor = st["summary"]["energy_floor"]
    at_floor = [n for n in learned if sm[n]["learned_energy_max_nfe"] <= floor]
    above = [n for n in learned if n not in at_floor]
    para = (
        f"With the trained score — {st.get('learned_source') or 'a trained model'} — at the "
        "largest NFE "
    )
    if above:
        para += (
            join([f"{lab[n]} plateaus at {sci(sm[n]['learned_energy_max_nfe'])}" for n in above])
            + (
                f", while {join([lab[n] for n in at_floor])} stay{'s' * (len(at_floor) == 1)} "
                "within the noise floor"
                if at_floor
                else ""
            )
            + ". A plateau that more steps do not lower is learning error."
        )
        if set(above) <= set(DETERMINISTIC) and set(at_floor) & set(STOCHASTIC):
            para += (
                " Here it shows in the deterministic samplers only: the noise the stochastic "
                "samplers inject lets them correct part of the trained score's error, whereas "
                "a deterministic map carries it to the samples."
            )
    else:
        para += (
            "every sampler stays within the noise floor: at this sample size the energy "
            "distance does not resolve the learning error"
            + (", which DDIM's exact KL does" if "learned_kl_max_nfe" in sm.get("ddim", {}) else "")
            + "."
        )
    missing = [
        n
        for n in studies.SAMPLERS
        if n not in learned and n in st["settings"].get("samplers", studies.SAMPLERS)
    ]
    if missing:
        para += (
            f" The trained model ({st.get('learned_kind', '')}) cannot run "
            + join([lab[n] for n in missing])
            + ", so those have the exact score only."
        )
    return para


def sampler_text(res: Results) -> list[str]:
    """The sampler study in words: closed-form convergence, the NFE each sampler needs with
    the exact score, and what the trained score adds."""
    st = res.samplers
    if not st:
        return []
    sm = st["summary"]["samplers"]
    paras = [_gaussian_paragraph(st["summary"]), _exact_score_paragraph(st["summary"])]
    learned = [n for n in [*studies.SAMPLERS, "ode_adaptive"] if "learned_max_nfe" in sm.get(n, {})]
    if not learned:
        paras.append(
            "This run has no trained score on the Gaussian mixture (a smoke run trains none), "
            "so the study has the exact score only."
        )
        return paras
    paras.append(_learned_score_paragraph(st, learned))
    return paras


def studies_summary(res: Results) -> str:
    """The two studies in a few sentences for the main text (the appendix has them whole):
    the KDE's own bias and whether the ranking moves with its bandwidth; the NFE at which
    each sampler reaches the noise floor with the exact score, and what the trained score
    adds."""
    parts = []
    if res.kde:
        seed = res.seeds[0]
        bias = {
            r["dataset"]: r["bias"]
            for r in res.kde
            if r["model"] == "oracle" and r["seed"] == seed and r["bandwidth"] == "scott"
        }
        if bias:
            lo, hi = min(bias.values()), max(bias.values())
            ranks = studies.rankings(res.kde)
            moved = [
                n
                for n in res.datasets
                if any(
                    ranks.get((n, seed, bw)) not in (None, ranks.get((n, seed, "scott")))
                    for bw in ("half_scott", "cv")
                )
                and len(ranks.get((n, seed, "scott")) or []) >= 2
            ]
            parts.append(
                "The KDE is biased by itself: fresh true samples scored by the same KDE "
                f"overstate the true NLL by {num(lo)}"
                + (f" to {num(hi)}" if not math.isclose(lo, hi, abs_tol=5e-4) else "")
                + " nats with Scott's bandwidth"
                + (
                    f", and on {join([words(n) for n in moved])} the ranking of the models changes "
                    "with the bandwidth"
                    if moved
                    else ", and no other bandwidth tried changes the ranking of the models"
                )
                + " ([@sec:kde])."
            )
    if res.samplers:
        sm = res.samplers["summary"]["samplers"]
        lab = studies.SAMPLER_LABELS
        reach = [
            f"{lab[n]} from {sm[n]['exact_nfe_to_floor']:.0f}"
            for n in [*studies.SAMPLERS, "ode_adaptive"]
            if sm.get(n, {}).get("exact_nfe_to_floor") is not None
            and math.isfinite(sm[n]["exact_nfe_to_floor"])
        ]
        floor = res.samplers["summary"]["energy_floor"]
        plateau = [
            n
            for n in [*studies.SAMPLERS, "ode_adaptive"]
            if "learned_energy_max_nfe" in sm.get(n, {}) and sm[n]["learned_energy_max_nfe"] > floor
        ]
        if reach:
            s = (
                "With the exact score of the course Gaussian mixture, the samplers' energy "
                "distance to true samples reaches the noise floor for "
                + join(reach)
                + " network evaluations"
            )
            if plateau:
                s += (
                    "; with a trained score "
                    + join([lab[n] for n in plateau])
                    + " plateau above it (learning error, not discretisation)"
                )
            parts.append(s + " ([@sec:samplers]).")
    return " ".join(parts)
