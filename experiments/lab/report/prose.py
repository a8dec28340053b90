"""The main text's prose, generated from the numbers: the summary, the training curves, the
qualitative and quantitative comparisons, and exact against KDE likelihood. Citations and
references are written ``[@key]`` (see :func:`lab.report.text.typst_text`)."""

from __future__ import annotations

import math

from flowlab import datasets

from ..results import Results
from .analysis import MEASURES, abnormalities, energy_noise, training_assessment, winners
from .text import join, num, pct, pm, sci


def headline(res: Results) -> str:
    """The summary paragraph at the top of the report."""
    parts = []
    for name in res.datasets:
        w = winners(res, name)
        h = datasets.entropy(name)
        bits = []
        for m in res.models:
            e = res.stat(name, m, "exact_nll")
            b = res.stat(name, m, "neg_bound")
            if math.isfinite(e[0]):
                bits.append((e[0], f"{res.label(m)} NLL {pm(*e)}"))
            elif math.isfinite(b[0]):
                bits.append((math.inf, f"{res.label(m)} −bound {pm(*b)}"))
        if res.compact:  # the lowest exact NLL and the second, for each dataset
            ranked = sorted((v, t) for v, t in bits if math.isfinite(v))
            bits = [t for _, t in ranked[:2]]
            if bits:
                bits[0] = "best " + bits[0]
                if len(bits) > 1:
                    bits[1] = "next " + bits[1]
        else:
            bits = [t for _, t in bits]
        s = f"on {name} (true entropy {num(h)} nats) " + join(bits)
        if "energy" in w:
            best, _, _, _, decisive = w["energy"]
            s += (
                f", and {res.label(best)} has the closer samples by energy distance"
                if decisive
                else ", and the energy distance does not separate the samples"
            )
        parts.append(s)
    models = join([res.label(m) for m in res.models])
    text = (
        f"We train {models} on {join(res.datasets)} (n = 2000 training points, 500 hold-out "
        f"points) and compare them by the best likelihood each has and by sample-based "
        f"metrics. In nats per point: " + "; ".join(parts) + "."
    )
    bias = [
        res.stat(n, "oracle", "kde_nll")[0] - res.stat(n, "oracle", "exact_nll")[0]
        for n in res.datasets
    ]
    bias = [b for b in bias if math.isfinite(b)]
    if bias:
        text += (
            f" The KDE likelihood the course suggests is biased by {num(min(bias))} to "
            f"{num(max(bias))} nats even for true samples, more than most differences between "
            "the models; where a model has an exact likelihood, that is the number to compare."
        )
    return text


def training_text(res: Results) -> list[str]:
    """One sentence per family on its training curves, and a verdict."""
    sentences, flat, overfit = [], [], []
    runs = []
    if res.compact:
        sentences.append(
            "Every run's losses and hold-out likelihood against steps are in the appendix "
            "figures, one per dataset."
        )
    for fam in res.families:
        ass = {}
        for name in res.datasets:
            h = res.histories.get((name, fam))
            if h is not None and h.step_losses:
                ass[name] = training_assessment(h)
                runs.append((fam, name))
        if not ass:
            continue
        names = list(ass)
        s = (
            f"{res.label(fam)}: training loss "
            + join([f"{num(a['start'])} → {num(a['end'])} ({n})" for n, a in ass.items()])
            + "; final hold-out loss "
            + join([f"{num(ass[n]['gap'], sign=True)}" for n in names])
            + " from the training loss"
        )
        for metric, words in (
            ("holdout_nll", "exact hold-out NLL"),
            ("holdout_neg_bound", "hold-out −bound"),
        ):
            pairs = [(n, ass[n][metric]) for n in names if metric in ass[n]]
            if pairs:
                s += f"; {words} " + join([f"{num(a)} → {num(b)}" for _, (a, b) in pairs]) + " nats"
        if not res.compact:
            sentences.append(s + ".")
        flat += [(fam, n) for n in names if not ass[n]["decreased"]]
        overfit += [(fam, n, ass[n]) for n in names if ass[n]["overfits"]]
    if runs:
        verdict = (
            "Every run decreases its training loss with a clear trend"
            if not flat
            else "The training loss shows no clear decrease for "
            + join([f"{res.label(f)} on {n}" for f, n in flat])
        )
        if overfit:
            verdict += (
                "; the hold-out loss turns up before the end for "
                + join(
                    [
                        f"{res.label(f)} on {n} (minimum {num(a['holdout_min'])} at step "
                        f"{a['holdout_min_step']}, final {num(a['holdout_end'])})"
                        for f, n, a in overfit
                    ]
                )
                + ", a sign of overfitting"
            )
        else:
            verdict += (
                ", and none overfits: every hold-out curve ends at or near its minimum, close "
                "to the training curve"
            )
        sentences.append(verdict + ".")
    return sentences


def _off_support_comparison(res: Results, dataset: str, checks: dict) -> str:
    fr = {
        m: (checks[(dataset, m)].get("off_support"), checks[(dataset, m)].get("n", 0))
        for m in res.models
        if (dataset, m) in checks and checks[(dataset, m)].get("off_support") is not None
    }
    if len(fr) < 2:
        return ""
    (a, (pa, na)), (b, (pb, nb)) = sorted(fr.items(), key=lambda t: t[1][0])[:2]
    se = math.sqrt(pa * (1 - pa) / max(na, 1) + pb * (1 - pb) / max(nb, 1))
    if pb - pa > 2 * se:
        return (
            f"{res.label(a)} leaves less mass off the support ({pct(pa)} of its samples "
            f"against {pct(pb)}; true samples: 1%)"
        )
    return (
        f"both leave about the same mass off the support ({pct(pa)} and {pct(pb)}, within "
        f"binomial noise; true samples: 1%)"
    )


def qualitative_text(res: Results, checks: dict) -> list[str]:
    """The assessment of the overlays: which model's samples are closer to the data by the
    sample metrics that summarise the plots (only where the difference exceeds their noise),
    the mass off the support, and any abnormality."""
    paras = []
    for name in res.datasets:
        models = [m for m in res.models if res.row(name, m) is not None]
        if not models:
            continue
        w = winners(res, name)
        noise = energy_noise(res, name)
        s = f"On {name}, "
        decisive = {c: w[c] for c in ("energy", "bhattacharyya") if c in w and w[c][4]}
        if decisive:
            parts = []
            for col, (best, second, _, r, _) in decisive.items():
                v = [res.stat(name, m, col)[0] for m in (best, second)]
                f = sci if col == "energy" else (lambda x: num(x, 4))
                parts.append(
                    f"{res.label(best)}'s samples are closer to the data by "
                    f"{dict(MEASURES)[col]} ({f(v[0])} against {f(v[1])}, a difference above "
                    f"its resolution {f(r)})"
                )
            s += "; ".join(parts) + "."
        elif len(models) >= 2:
            vals = {m: res.stat(name, m, "energy")[0] for m in models}
            vals = {m: v for m, v in vals.items() if math.isfinite(v)}
            best = min(vals, key=vals.get)
            tied = [m for m in vals if vals[m] - vals[best] <= 3 * noise]
            far = sorted((m for m in vals if m not in tied), key=vals.get)
            s += (
                "the sample metrics do not single out one model: by energy distance "
                + join([f"{res.label(m)} ({sci(vals[m])})" for m in tied])
                + f" are within three times the noise of two true sample sets (RMS "
                f"{sci(noise)}) of each other"
                + (
                    ", while "
                    + join([f"{res.label(m)} ({sci(vals[m])})" for m in far])
                    + f" {'is' if len(far) == 1 else 'are'} clearly further from the data"
                    if far
                    else ""
                )
                + "."
            )
        else:
            ed = sci(res.stat(name, models[0], "energy")[0])
            s += f"{res.label(models[0])} has energy distance {ed}."
        comp = _off_support_comparison(res, name, checks)
        if comp:
            s += f" By eye and by count, {comp}."
        issues = []
        for m in models:
            chk = checks.get((name, m))
            if chk is None:
                continue
            ab = abnormalities(chk, off_support=not comp)
            if ab:
                issues.append(f"for {res.label(m)}, {join(ab)}")
        if issues:
            s += " Abnormalities: " + "; ".join(issues) + "."
        else:
            s += " No abnormality (non-finite, collapsed or far-out samples, dropped modes) shows."
        paras.append(s)
    return paras


def _bound_text(res: Results, name: str, exact: list[str]) -> str:
    """Sentences on every model with a bound on ``name``: the bound beside its exact NLL
    (and the importance-weighted bound) where it has one, else what the bound says against
    the best exact NLL of the models in ``exact``."""
    s = ""
    for m in res.models:
        nb = res.stat(name, m, "neg_bound")
        if not math.isfinite(nb[0]):
            continue
        r = res.row(name, m) or {}
        bname = (r.get("bound_name") or "its bound").split(" (")[0]
        e = res.stat(name, m, "exact_nll")
        if math.isfinite(e[0]):
            gap = nb[0] - e[0]
            s += (
                f" {res.label(m)}'s −{bname} is {pm(*nb)} nats, {num(gap)} above "
                "its exact NLL (the gap of the bound)"
                if gap >= 0
                else f" {res.label(m)}'s −{bname} is {pm(*nb)} nats, {num(-gap)} below its "
                "exact NLL, which a bound cannot be in expectation: the Monte Carlo noise of "
                "the one-draw estimate, around a gap near zero"
            )
            iw = res.detail_stat(name, m, "holdout_neg_iwae")
            if math.isfinite(iw[0]):
                k = (res.detail(name, m) or {}).get("iwae_k")
                s += (
                    f"; the importance-weighted bound [@burda2016] with K = {k} closes it "
                    f"to {num(iw[0] - e[0])} (−IWAE {pm(*iw)})"
                )
            s += "."
            continue
        s += f" {res.label(m)} has only a bound ({bname}): −bound {pm(*nb)} nats"
        s += ", an upper bound on its NLL"
        if exact:
            o = min(exact, key=lambda o: res.stat(name, o, "exact_nll")[0])
            eo = res.stat(name, o, "exact_nll")[0]
            s += (
                f"; {res.label(o)}'s exact NLL {num(eo)} is lower, which does not rank "
                f"them: {res.label(m)}'s NLL may lie anywhere below {num(nb[0])}"
                if eo < nb[0]
                else f"; {res.label(o)}'s exact NLL {num(eo)} is higher even than that "
                f"bound, so {res.label(m)} is the better model by likelihood"
            )
        s += "."
    return s


def quantitative_text(res: Results) -> list[str]:
    """Which model wins by which measure (only where the difference exceeds the measure's
    resolution), and how the likelihoods compare."""
    paras = []
    for name in res.datasets:
        w = winners(res, name)
        h = datasets.entropy(name)
        s = f"On {name} (true entropy {num(h)} nats), "
        by_model: dict[str, list[str]] = {}
        ties = []
        for col, words in MEASURES:
            if col not in w:
                continue
            best, _, _, _, decisive = w[col]
            if decisive:
                by_model.setdefault(best, []).append(words)
            else:
                ties.append(words)
        if by_model:
            s += "; ".join(f"{res.label(m)} is better by {join(ws)}" for m, ws in by_model.items())
            if ties:
                s += f", while the models tie by {join(ties)} (differences within the noise)"
            s += "."
        elif ties:
            s += (
                f"the models tie by every measure they share ({join(ties)}): no difference "
                "exceeds its noise."
            )
        if "exact_nll" in w:
            best, second, diff, r, decisive = w["exact_nll"]
            s += (
                f" Exact NLL: {pm(*res.stat(name, best, 'exact_nll'))} ({res.label(best)}) "
                f"against {pm(*res.stat(name, second, 'exact_nll'))} ({res.label(second)})"
                + (f", {num(diff)} nats apart" if decisive else ", a tie")
                + "."
            )
        exact = [m for m in res.models if math.isfinite(res.stat(name, m, "exact_nll")[0])]
        for m in [] if res.compact else exact:  # compact: the table's KL-gap column says it
            kl = res.stat(name, m, "kl_gap")[0]
            if math.isfinite(kl):
                s += (
                    f" {res.label(m)} is {num(kl)} nats above the true entropy (its "
                    "KL(data ‖ model), up to hold-out noise)."
                )
        s += _bound_text(res, name, exact)
        paras.append(s)
    paras.append(kde_vs_exact_text(res))
    return [p for p in paras if p]


def kde_vs_exact_text(res: Results) -> str:
    """Where the KDE likelihood and the exact likelihood disagree."""
    parts = []
    for name in res.datasets:
        o_kde, o_se = res.stat(name, "oracle", "kde_nll")
        o_exact = res.stat(name, "oracle", "exact_nll")[0]
        bias = o_kde - o_exact
        exact = {m: res.stat(name, m, "exact_nll")[0] for m in res.models}
        kde = {m: res.stat(name, m, "kde_nll") for m in res.models}
        both = [m for m in res.models if math.isfinite(exact[m]) and math.isfinite(kde[m][0])]
        s = f"on {name} the KDE of fresh true samples overstates the true NLL by {num(bias)} nats"
        if both and not res.compact:  # compact: the per-model gaps are in the tables
            s += ", and for the models the KDE NLL exceeds the exact NLL by " + join(
                [f"{num(kde[m][0] - exact[m])} ({res.label(m)})" for m in both]
            )
        if len(both) >= 2:
            r_exact = sorted(both, key=lambda m: exact[m])
            r_kde = sorted(both, key=lambda m: kde[m][0])
            if r_exact[0] != r_kde[0]:
                s += (
                    f"; they disagree on the best model: the exact NLL prefers "
                    f"{res.label(r_exact[0])}, the KDE {res.label(r_kde[0])}"
                )
            elif r_exact != r_kde:
                s += f"; both put {res.label(r_exact[0])} first but order the others differently"
            else:
                s += "; both rank the models the same way"
        below = [
            m
            for m in res.models
            if math.isfinite(kde[m][0])
            and o_kde - kde[m][0]
            > 2
            * math.hypot(
                kde[m][1] if math.isfinite(kde[m][1]) else 0, o_se if math.isfinite(o_se) else 0
            )
        ]
        if below:
            s += (
                f"; {join([res.label(m) for m in below])} score{'s' * (len(below) == 1)} a "
                "better KDE NLL than the true samples themselves, which only a sample set "
                "smoother than the data can do: the KDE rewards blur"
            )
        parts.append(s)
    if not parts:
        return ""
    small, large = [], []
    for name in res.datasets:
        bias = res.stat(name, "oracle", "kde_nll")[0] - res.stat(name, "oracle", "exact_nll")[0]
        vals = [res.stat(name, m, "kde_nll")[0] for m in res.models]
        vals = [v for v in vals if math.isfinite(v)]
        if len(vals) >= 2 and math.isfinite(bias):
            (small if max(vals) - min(vals) < abs(bias) else large).append(name)
    end = ""
    if small:
        end += (
            f" On {join(small)} the KDE's bias is larger than the spread of the models' KDE "
            "NLLs, so a KDE comparison says little there."
        )
    if large:
        end += (
            f" On {join(large)} the models' KDE NLLs differ by more than the KDE's bias, so "
            "there the KDE separates them, though not by how much."
        )
    return (
        "Exact against KDE likelihood: "
        + "; ".join(parts)
        + "."
        + (end + " The exact NLL (and the KL gap) has no such floor." if end else "")
    )
