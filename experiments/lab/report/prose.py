"""The main text's prose, generated from the tests of :mod:`~lab.report.analysis`: the
summary, the verdict per dataset, the training curves, the qualitative and quantitative
comparisons and the KDE against the exact likelihood. Every comparing or judging sentence
words one test, and every number it quotes is printed in an evidence table
(:mod:`~lab.report.evidence`) or the results table with the same formatting. References are
written ``[@key]`` (see :func:`lab.report.text.typst_text`)."""

from __future__ import annotations

import dataclasses
import math

from flowlab.objectives import EQUILIBRIUM_D_LOSS, EQUILIBRIUM_G_LOSS

from ..results import Results
from . import analysis as an
from .evidence import claimed_differences, training_rows
from .text import cap, join, measure_value, num, pct, pm, words

TABLES = {
    "verdict": "tab:verdict",
    "differences": "tab:differences",
    "abnormal": "tab:abnormal",
    "training": "tab:training",
    "bounds": "tab:bounds",
    "kde": "tab:kde-check",
}
"""The labels of the evidence tables the prose refers to (the document places them)."""


def _l(res: Results, m: str) -> str:
    return words(res.label(m))


def _ref(key: str) -> str:
    return f"[@{TABLES[key]}]"


def _diff_phrase(d: an.Difference) -> str:
    """``difference ± SE`` as the differences table prints it (where the SE comes from is
    in the table)."""
    return f"{measure_value(d.col, d.diff, d.se)} SE"


def _test_sentence(res: Results, d: an.Difference) -> str:
    """One test in words: who is lower by the measure and whether the test resolves it."""
    what = an.MEASURE_WORDS[d.col]
    if not d.tested:
        return (
            f"by {what} {_l(res, d.a)} is lower than {_l(res, d.b)} (difference "
            f"{measure_value(d.col, d.diff)}), untested: this run saved no standard error for it"
        )
    if d.resolved:
        return (
            f"by {what} {_l(res, d.a)} is lower than {_l(res, d.b)} "
            f"(difference {_diff_phrase(d)}: resolved)"
        )
    return (
        f"by {what} {_l(res, d.a)} and {_l(res, d.b)} tie (difference {_diff_phrase(d)}: "
        "not resolved)"
    )


# -- the verdict -----------------------------------------------------------------------------


def _bound_only_text(res: Results, name: str, v: an.Verdict) -> str:
    """What minus a bound says against the best exact NLL (the bound is an upper bound)."""
    out = []
    for m in v.others:
        nb = res.stat(name, m, "neg_bound")
        if not math.isfinite(nb[0]):
            continue
        e = v.value
        se = math.hypot(*(s if math.isfinite(s) else 0.0 for s in (nb[1], e[1])))
        s = (
            f"{_l(res, m)} has no exact likelihood; minus its bound, {pm(*nb)} nats, is an upper "
            "bound on its NLL"
        )
        if v.col == "exact_nll" and nb[0] + an.Z_CRITICAL * se < e[0]:
            s += (
                f", below {_l(res, v.best)}'s exact NLL beyond both SEs, so it is the better "
                "model by likelihood"
            )
        elif v.col == "exact_nll":
            s += (
                f", which does not rank it against {_l(res, v.best)}: its NLL may lie anywhere "
                "below the bound"
            )
        out.append(s)
    return "; ".join(out)


def verdict_text(res: Results, name: str) -> str:
    """The verdict on ``name`` a reader can act on: the best model by exact likelihood (two
    or more models have one) or by energy distance, which differences the test resolves,
    and the winner's cost."""
    v = an.verdict(res, name)
    if v is None:
        return ""
    basis = (
        "by exact NLL, as more than one model has one"
        if v.col == "exact_nll"
        else "by energy distance, as fewer than two models have an exact likelihood"
    )
    value = f"{measure_value(v.col, *v.value)}{' nats' if v.col == 'exact_nll' else ''}"
    if not v.beats:  # lowest, but resolved ahead of nobody: no best model
        s = f"On {words(name)}, judged {basis}, {_l(res, v.best)} has the lowest value ({value})"
        if v.ties:
            s += (
                f", but the test does not separate it from {join([_l(res, m) for m in v.ties])}"
                ": a tie, so the run does not pick a best model"
            )
        v = dataclasses.replace(v, ties=[])
    else:  # best only when resolved ahead of every other model
        head = "is best" if not (v.ties or v.untested) else "has the lowest value"
        s = f"On {words(name)}, judged {basis}, {_l(res, v.best)} {head} ({value})"
    if v.beats and v.ties:
        s += (
            f"; the test resolves it ahead of {join([_l(res, m) for m in v.beats])}, and ties it "
            f"with {join([_l(res, m) for m in v.ties])}"
        )
    elif v.beats:
        beaten = join([_l(res, m) for m in v.beats])
        s += f"; the test resolves it ahead of every other model with the measure ({beaten})"
    if v.untested:
        s += (
            f"; its lead over {join([_l(res, m) for m in v.untested])} is untested (no "
            "standard error)"
        )
    c = v.cost
    if math.isfinite(c["nfe"]):
        s += (
            f". It costs {c['nfe']:.0f} network evaluations per sample, {num(c['sample_s'], 2)} s "
            f"to draw the samples and {num(c['train_s'], 0)} s to train"
        )
    s += "."
    extra = _bound_only_text(res, name, v)
    if extra:
        s += " " + extra[0].upper() + extra[1:] + "."
    others = [m for m in v.others if not math.isfinite(res.stat(name, m, "neg_bound")[0])]
    if v.col == "exact_nll" and others:
        s += (
            f" {cap(join([_l(res, m) for m in others]))} "
            f"{'has' if len(others) == 1 else 'have'} no likelihood and "
            f"{'is' if len(others) == 1 else 'are'} judged by samples only."
        )
    return s


def short_verdict(res: Results, name: str) -> str:
    """The verdict on ``name`` in one clause (the quantitative section has it in full)."""
    v = an.verdict(res, name)
    if v is None:
        return ""
    what = "exact NLL" if v.col == "exact_nll" else "energy distance"
    value = measure_value(v.col, *v.value)
    if not v.beats:
        return (
            f"on {words(name)}, no model is resolved best by {what} ({_l(res, v.best)} lowest at "
            f"{value}, tied with {join([_l(res, m) for m in v.ties]) or 'no model tested'})"
        )
    s = f"on {words(name)}, {_l(res, v.best)} by {what} ({value})"
    if v.tests:
        s += f", resolved ahead of {len(v.beats)} of the {len(v.tests)} others"
        if v.ties:
            s += f" and tied with {join([_l(res, m) for m in v.ties])}"
    return s


def headline(res: Results) -> str:
    """The summary paragraph: what was trained, each dataset's verdict, the overfitting
    test and the diagnostics in one sentence each."""
    n_fam, n_rows = len(res.families), len(res.models)
    rows = f" sampled as {n_rows} table rows" if n_rows != n_fam else ""
    text = (
        f"We train {n_fam} model families{rows} ({join([_l(res, m) for m in res.models])}) on "
        f"{join([words(n) for n in res.datasets])} and compare them by the best likelihood each "
        "has and by sample-based metrics; every comparison below is a test with its standard "
        f"error ({_ref('differences')}). Best model ({_ref('verdict')}): "
        + "; ".join(short_verdict(res, n) for n in res.datasets)
        + "."
    )
    flagged = [
        f"{_l(res, f)} on {words(n)}"
        for n in res.datasets
        for f in res.families
        if (t := an.overfitting(res, n, f)) is not None and t["overfits"]
    ]
    tested = any(an.overfitting(res, n, f) for n in res.datasets for f in res.families)
    if tested:
        text += (
            " The overfitting test flags " + join(flagged) + "."
            if flagged
            else " The overfitting test finds no evidence of overfitting in any run."
        )
    by_model: dict[str, list[str]] = {}
    for r in an.abnormality_rows(res):
        if r["flags"]:
            by_model.setdefault(r["model"], []).append(words(r["dataset"]))
    if by_model and len(res.datasets) > 2:  # a large grid: the qualitative section names them
        clean = [m for m in res.models if m not in by_model]
        text += (
            f" The sample diagnostics ({_ref('abnormal')}) flag abnormal samples for every row "
            "on at least one dataset"
            if not clean
            else f" The sample diagnostics ({_ref('abnormal')}) flag nothing on any dataset "
            f"for {join([_l(res, m) for m in clean])}, and abnormal samples for every other "
            "row on at least one dataset"
        ) + "; the qualitative comparison names each."
    elif by_model:
        text += (
            " The sample diagnostics flag abnormal samples "
            f"({_ref('abnormal')}) for "
            + join([f"{_l(res, m)} ({join(ds)})" for m, ds in by_model.items()])
            + "."
        )
    return text


# -- training ----------------------------------------------------------------------------------


def _ema_families(res: Results) -> tuple[list[str], list[str]]:
    ema = [f for f in res.families if res.hp(f).get("ema_decay")]
    live = [f for f in res.families if f not in ema and res.hp(f)]
    return ema, live


def training_text(res: Results) -> list[str]:
    """The training curves in words: the trend of the per-step loss (a test against its
    noise), which weights each curve uses, the overfitting test, and the GAN's game value."""
    rows = training_rows(res)
    if not rows:
        return []
    out = []
    flat = [r for r in rows if r["trend"] and not r["trend"]["decreased"]]
    trend = (
        "Every run's per-step training loss decreases from start to end beyond its noise"
        if not flat
        else "The per-step training loss does not decrease beyond its noise for "
        + join([f"{_l(res, r['family'])} on {words(r['dataset'])}" for r in flat])
    )
    ema, live = _ema_families(res)
    weights = (
        "The per-step loss uses the live weights of each minibatch; the train (eval) and "
        "hold-out losses score as many training points as there are hold-out points with the "
        "same weights and the same key, "
        + (
            f"the EMA weights for {join([_l(res, f) for f in ema])}"
            + (f" and the live weights for {join([_l(res, f) for f in live])}" if live else "")
            if ema
            else "the live weights"
        )
        + ", so their gap is the generalisation gap itself."
    )
    out.append(f"{trend} ({_ref('training')}: start and end). {weights}")
    tests = [r for r in rows if r["test"] is not None]
    if tests:
        over = [r for r in tests if r["test"]["overfits"]]
        k = tests[0]["test"]
        seeds = f", mean over {k['seeds']} seeds" if k["seeds"] > 1 else ""
        s = (
            "The overfitting test is the family's own training objective on the hold-out points "
            "minus on as many training points, with the same weights and key, with its SE over "
            f"{k['chunks']} paired chunks{seeds}; it flags a gap above {an.OVERFIT_Z:g} SE. "
        )
        if over:
            s += (
                "It flags "
                + join(
                    [
                        f"{_l(res, r['family'])} on {words(r['dataset'])} (gap "
                        f"{pm(r['test']['gap'], r['test']['se'])} SE, "
                        f"gap/SE {num(r['test']['z'], 1)})"
                        for r in over
                    ]
                )
                + ": these fit their training points better than new ones"
            )
            rest = [r for r in tests if not r["test"]["overfits"]]
            if rest:
                s += "; for every other run it finds no evidence of overfitting"
            s += "."
        else:
            s += "It finds no evidence of overfitting in any run."
        out.append(s)
    untested = [r for r in rows if r["test"] is None]
    if untested and not tests:
        out.append(
            "This results folder holds no overfitting test (a run written before the test "
            "existed), so the report makes no call on overfitting."
        )
    gan = [r for r in rows if r["trend"] and "game_value" in r["trend"]]
    if gan:
        out.append(gan_text(res, gan))
    return out


def gan_text(res: Results, rows: list[dict]) -> str:
    """The GAN's curves in the course's sign convention."""
    vals = join([f"{num(r['trend']['game_value'])} on {words(r['dataset'])}" for r in rows])
    return (
        "The GAN's curves are its players' losses, not a likelihood: its training loss is the "
        "discriminator's binary cross-entropy L~D~ plus the non-saturating generator loss "
        "L~G~. In the course's sign convention the value function V(D, G) = E log D(x) + "
        f"E log(1 − D(G(z))) equals −L~D~, which is −2 log 2 = {num(-EQUILIBRIUM_D_LOSS)} at "
        f"the equilibrium D = 1/2 (where L~G~ = log 2 = {num(EQUILIBRIUM_G_LOSS)}, so "
        f"L~D~ + L~G~ = {num(EQUILIBRIUM_D_LOSS + EQUILIBRIUM_G_LOSS)}). Its hold-out "
        f"V(D, G) ends at {vals} ({_ref('training')}). A loss that settles near the "
        "equilibrium is the game's fixed point, not a sign of overfitting, which only the "
        "test above can show."
    )


# -- samples -----------------------------------------------------------------------------------


def abnormality_text(res: Results, name: str) -> str:
    """Every flag of the diagnostics table on ``name``, grouped by what is flagged, with each
    model's number and the true samples'."""
    rows = [r for r in an.abnormality_rows(res) if r["dataset"] == name and r["model"] != "oracle"]
    if not rows:
        return ""
    groups: dict[str, list[str]] = {}
    baseline: dict[str, float] = {}
    modes: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        for f in r["flags"]:
            m = _l(res, r["model"])
            if f.kind in ("zero_density", "off_support", "outside_box"):
                groups.setdefault(f.words, []).append(f"{m} ({pct(f.value)})")
                baseline[f.words] = f.baseline
            elif f.kind == "spread":
                groups.setdefault(f.words, []).append(f"{m} (spread ratio {num(f.value, 2)})")
            elif f.kind == "non_finite":
                groups.setdefault(f.words, []).append(f"{m} ({r['diag']['non_finite']})")
            elif f.kind.startswith("mode_"):
                modes.setdefault((f.kind.split("_")[1], m), []).append(f.words.split(" ")[1])
            else:
                groups.setdefault(f.words, []).append(m)
    noun = {"pinwheel": "arm", "checkerboard": "square", "gaussian_mixture": "component"}
    for (kind, m), ks in modes.items():
        unit = noun.get(name, "mode") + ("s" if len(ks) > 1 else "")
        words_ = "dropped modes" if kind == "dropped" else "over-weighted modes"
        groups.setdefault(words_, []).append(f"{m} ({unit} {join(ks)})")
    clean = [_l(res, r["model"]) for r in rows if not r["flags"]]
    if not groups:
        return (
            "The diagnostics flag no abnormality (mass where the data has none, far-out, "
            "non-finite or collapsed samples, dropped or over-weighted modes, wrong spread)."
        )
    parts = []
    for words_, models in groups.items():
        p = f"{words_}: {join(models)}"
        if words_ in baseline:
            p += f", against {pct(baseline[words_])} for true samples"
        parts.append(p)
    s = f"The diagnostics ({_ref('abnormal')}) flag, by kind: " + " ".join(
        cap(p) + "." for p in parts
    )
    if clean:
        s += f" They flag nothing for {join(clean)}."
    return s


def qualitative_text(res: Results, checks: dict | None = None) -> list[str]:
    """Per dataset: which samples are closest by energy distance (the test against the
    runner-up, or the verdict's tests when the verdict is by energy distance) and every
    abnormality the diagnostics flag. ``checks`` is accepted for old callers and unused."""
    paras = []
    for name in res.datasets:
        order = an.ranking(res, name, "energy")
        s = ""
        if len(order) >= 2:
            d = an.difference(res, name, "energy", order[0], order[1])
            if d is not None:
                s = (
                    f"On {words(name)}, {_l(res, order[0])}'s samples have the lowest energy "
                    f"distance to fresh true samples; "
                    + (
                        f"the test resolves it from the runner-up {_l(res, order[1])} "
                        f"(difference {_diff_phrase(d)})"
                        if d.resolved
                        else f"it ties with the runner-up {_l(res, order[1])} (difference "
                        f"{_diff_phrase(d)}: not resolved)"
                    )
                    + ". "
                )
        elif order:
            s = f"On {words(name)}, "
        if not s:
            s = f"On {words(name)}: "
        s += abnormality_text(res, name)
        paras.append(s)
    return paras


# -- numbers -------------------------------------------------------------------------------------


def _bound_check_text(res: Results, name: str) -> str:
    out = []
    for m in res.models:
        b = an.bound_check(res, name, m)
        if b is None or "improvement" not in b:
            continue
        if b["tighter"]:
            out.append(
                f"{_l(res, m)}'s importance-weighted bound with K = {b['k']} [@burda2016] is "
                f"tighter than its ELBO by {pm(b['improvement'], b['improvement_se'])} nats "
                f"(SE), beyond its Monte Carlo error, so it narrows the gap to the exact NLL "
                f"({_ref('bounds')})"
            )
        else:
            out.append(
                f"{_l(res, m)}'s importance-weighted bound with K = {b['k']} [@burda2016] is not "
                f"tighter than its ELBO beyond its Monte Carlo error (ELBO − IWAE "
                f"{pm(b['improvement'], b['improvement_se'])} nats, SE), so it does not close "
                f"the gap to the exact NLL ({_ref('bounds')})"
            )
    return "; ".join(out)


def other_measures_text(res: Results) -> list[str]:
    """Per dataset, the tests of the measures other than the verdict's, in words (the
    appendix's companion to the differences table; the main text leaves them there)."""
    paras = []
    for name in res.datasets:
        v = an.verdict(res, name)
        shown = {(d.col, d.a, d.b) for d in v.tests} if v is not None else set()
        tests = [d for d in claimed_differences(res, name) if (d.col, d.a, d.b) not in shown]
        if tests:
            paras.append(
                f"On {words(name)}: " + "; ".join(_test_sentence(res, d) for d in tests) + "."
            )
    return paras


def bounds_text(res: Results) -> str:
    """Every dataset's bound checks (IWAE against ELBO) in one paragraph."""
    parts = [
        f"on {words(name)}, " + b for name in res.datasets if (b := _bound_check_text(res, name))
    ]
    return cap("; ".join(parts)) + "." if parts else ""


def quantitative_text(
    res: Results, *, other_measures: bool = True, kde: bool = True, bounds: bool = True
) -> list[str]:
    """Per dataset, every test of the differences table in words (the verdict's measure
    first; the other measures' tests only with ``other_measures``: the main text leaves
    them to the differences table), the bounds, and where the KDE and the exact likelihood
    disagree."""
    paras = []
    for name in res.datasets:
        v = an.verdict(res, name)
        shown = {(d.col, d.a, d.b) for d in v.tests} if v is not None else set()
        tests = [d for d in claimed_differences(res, name) if (d.col, d.a, d.b) not in shown]
        tests = tests if other_measures else []
        s = verdict_text(res, name)
        b = _bound_check_text(res, name) if bounds else ""
        if tests:
            s += (
                (" Other measures: " if s else f"On {words(name)}, ")
                + "; ".join(_test_sentence(res, d) for d in tests)
                + "."
            )
        if b:
            s += (" " if s else "") + cap(b) + "."
        if s:
            paras.append(s)
    kde_text = kde_vs_exact_text(res) if kde else ""
    if kde_text:
        paras.append(kde_text)
    return paras


def kde_vs_exact_text(res: Results) -> str:
    """The KDE's own bias and where its ranking and the exact likelihood's part."""
    parts = []
    for name in res.datasets:
        k = an.kde_check(res, name)
        if not math.isfinite(k["bias"]):
            continue
        s = (
            f"on {words(name)} the KDE of fresh true samples overstates their exact NLL by "
            f"{num(k['bias'])} nats"
        )
        if math.isfinite(k["spread"]):
            s += (
                f", more than the spread of the models' KDE NLLs ({num(k['spread'])}), so a "
                "comparison by the KDE says little there"
                if abs(k["bias"]) > k["spread"]
                else f", less than the spread of the models' KDE NLLs ({num(k['spread'])})"
            )
        if k["n_both"] >= 2 and k["best_exact"] != k["best_kde"]:
            t = k["test"]
            s += (
                f"; among the models with an exact NLL, the lowest KDE NLL is "
                f"{_l(res, k['best_kde'])}'s while the lowest exact NLL is "
                f"{_l(res, k['best_exact'])}'s"
                + (
                    ", and the KDE test resolves that order"
                    if t is not None and t.resolved
                    else ", though the KDE test does not resolve their difference"
                )
            )
        elif k["n_both"] >= 2:
            s += (
                "; the lowest exact NLL and the lowest KDE NLL among those models are both "
                f"{_l(res, k['best_exact'])}'s"
            )
        parts.append(s)
    if not parts:
        return ""
    return (
        f"Exact against KDE likelihood ({_ref('kde')}): "
        + "; ".join(parts)
        + ". Where a model has an exact NLL, that is the number to compare."
    )
