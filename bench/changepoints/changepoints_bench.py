"""bench/changepoints/changepoints_bench.py — `cpuledger changepoints` against
ruptures' Binseg and Pelt on generated series shaped like the daily and hourly
metrics a CPU-per-request monitor sees, each with its ground truth (issue 15,
item 1).

Families (each series 60-1000 points unless said otherwise, noise scale 1-5%
of a level drawn between 1e3 and 1e7; "sigma" below is that noise scale):
  no_change        nothing happens
  trend_no_change  a steady linear trend (3-15 sigma end to end), no change
  level_shift      1-3 shifts of 2.5-6 sigma
  slope_change     a continuous line with 1-2 kinks (the trend bends)
  (these four: half white Gaussian noise, a quarter AR(1) with phi 0.1-0.4, a
  quarter Student-t; the others: white Gaussian unless said otherwise)
  weekly_season    daily data with a weekday/weekend cycle (2-6 sigma), 0-2 shifts
  yearly_season    a yearly wave (1.5-4 sigma) over two years or more: daily
                   data (730-1000 days, with a weekly cycle) or weekly data
                   (104-520 weeks), 0-2 shifts
  holidays         daily data with 2-6 holidays (1-3 day dips of 4-10 sigma that
                   return: not changes), 0-1 shift
  heavy_tail       Student-t noise (3 or 4 degrees of freedom), 0-2 shifts
  outliers         1-3% wild points (6-20 sigma, some in pairs), 0-2 shifts
  missing          5-25% missing (single points and 1-3 gaps of 3-20), 0-2 shifts
Four more, of the kinds real annotated series (TCPD: economic, climate, web
series) have, 30-500 points unless said otherwise:
  exp_growth       growth (or, a quarter of them, decay) by a steady factor,
                   1.6x-20x end to end, multiplicative noise of 1-5% (white or
                   AR(1) 0.1-0.4); no change: annotators do not mark compounding
  random_walk      wander with nothing abrupt, no change: half white noise plus
                   a random walk of 0.1-0.4 sigma steps, half an AR(1) with phi
                   0.9-0.99 alone
  short            20-60 points (years or months of figures), half with one
                   shift of 3-8 sigma at least 5 points from either end
  counts           Poisson counts with a mean of 2-30, 0-2 changes of the rate
                   by a factor of 2-3.3 up or down
No family changes only the variance: `cpuledger changepoints` reports changes
of level and of trend (its contract in src/stats/stats.h), annotators of real
series mark a variance change rarely and inconsistently, and a truth of
"change" there would score a property the command does not claim.
A change point is the index of the first point of the new segment.

Scores, as in the TCPD benchmark (van den Burg & Williams 2020, "An Evaluation
of Change Point Detection Algorithms"), with one annotator (the ground truth):
  F1     precision and recall of the change points with a margin of 5 points,
         index 0 counted as a change on both sides (so no change found in a
         series without changes scores 1, one false change 0.67)
  cover  the segmentation covering of the true partition by the predicted one
Per seed a family's figure is the mean over its series; the table gives the
worst and the median over seeds. FP is the share of the family's no-change
series where a method reported any change (target for ours: <= 5%).

Methods, all in one run on the same series:
  ours    the real CLI: `cpuledger changepoints --json -`, defaults, NaN for missing
  binseg  ruptures.Binseg(model="l2") and pelt ruptures.Pelt(model="l2") at
  pelt    ruptures' default min_size=2 and jump=5, with TCPD's "default"
          experiment settings for the R changepoint package: the series
          z-scored (TCPD's scale()), cpt.mean's Normal cost (l2 on unit
          variance), MBIC's 3 log(n) per change (its segment-length term has
          no ruptures counterpart and is left out), and for BinSeg at most
          Q = 5 changes (the number among 0-5 with the least penalised cost).
          Missing points are linearly interpolated for them (neither takes NaN).

Usage: python bench/changepoints/changepoints_bench.py [--cpuledger build/cpuledger]
           [--seeds 4-13] [--series 30] [--families a,b] [--jobs 2]
Tune on seeds 1-3; report on others.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ruptures as rpt

MARGIN = 5
METHODS = ("ours", "binseg", "pelt")


# ---- series with ground truth ----


@dataclass
class Series:
    family: str
    values: np.ndarray  # NaN: missing
    truth: list[int] = field(default_factory=list)
    on_scale: bool = False  # values already on a metric's scale (generate() leaves them)


def place_changes(rng: np.random.Generator, n: int, k: int, gap: int = 15) -> list[int]:
    """k change indices at least `gap` apart and from both ends (fewer if n is short)."""
    for _ in range(200):
        cps = sorted(int(c) for c in rng.integers(gap, n - gap, size=k))
        if all(b - a >= gap for a, b in zip([0] + cps, cps + [n])):
            return cps
    return []


def steps(rng: np.random.Generator, n: int, cps: list[int], low=2.5, high=6.0) -> np.ndarray:
    level = np.zeros(n)
    for c in cps:
        level[c:] += rng.choice([-1, 1]) * rng.uniform(low, high)
    return level


def gaussian(rng, n):
    return rng.standard_normal(n)


def ar1(rng, n, phi):
    e = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
    out = np.empty(n)
    out[0] = rng.standard_normal()
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def student_t(rng, n):
    df = int(rng.choice([3, 4]))
    q75 = {3: 0.7649, 4: 0.7407}[df]  # so the MAD matches a unit normal's
    return rng.standard_t(df, n) * 0.6745 / q75


def mixed_noise(rng, n):
    """Half white Gaussian, a quarter AR(1) (phi 0.1-0.4), a quarter Student-t."""
    u = rng.random()
    if u < 0.5:
        return gaussian(rng, n)
    return ar1(rng, n, rng.uniform(0.1, 0.4)) if u < 0.75 else student_t(rng, n)


def weekly_cycle(rng, n):
    """A weekday/weekend pattern: weekends down by 2-6 sigma, weekdays wobble."""
    amp = rng.uniform(2, 6)
    pattern = rng.uniform(-0.5, 0.5, 7)
    pattern[5:] -= amp
    start = int(rng.integers(7))
    return pattern[(np.arange(n) + start) % 7]


def length(rng, low=60, high=1000) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def gen_no_change(rng):
    n = length(rng)
    return Series("no_change", mixed_noise(rng, n), [])


def gen_trend_no_change(rng):
    n = length(rng)
    drift = rng.choice([-1, 1]) * rng.uniform(3, 15)
    return Series("trend_no_change", drift * np.arange(n) / n + mixed_noise(rng, n), [])


def gen_level_shift(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(1, 4)))
    return Series("level_shift", steps(rng, n, cps) + mixed_noise(rng, n), cps)


def gen_slope_change(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(1, 3)), gap=max(20, n // 8))
    bounds = [0] + cps + [n]
    slope = rng.choice([0.0, rng.uniform(-1, 1) * 5 / n])
    signal = np.zeros(n)
    value = 0.0
    for i, (b, e) in enumerate(zip(bounds, bounds[1:])):
        if i > 0:  # the trend bends enough to move 4-12 sigma over the new segment
            slope += rng.choice([-1, 1]) * rng.uniform(4, 12) / (e - b)
        signal[b:e] = value + slope * np.arange(1, e - b + 1)
        value = signal[e - 1]
    return Series("slope_change", signal + mixed_noise(rng, n), cps)


def gen_weekly_season(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(0, 3)))
    signal = steps(rng, n, cps) + weekly_cycle(rng, n)
    return Series("weekly_season", signal + gaussian(rng, n), cps)


def gen_yearly_season(rng):
    """Two or more years: daily (730-1000 points, with a weekly cycle too) or
    weekly (104-520 points), so the wave can be told from a trend by its return."""
    if rng.random() < 0.5:
        n, period = int(rng.integers(730, 1001)), 365.25
        extra = weekly_cycle(rng, n)
    else:
        n, period = int(rng.integers(104, 521)), 52.18
        extra = np.zeros(n)
    cps = place_changes(rng, n, int(rng.integers(0, 3)))
    wave = rng.uniform(1.5, 4) * np.sin(2 * math.pi * (np.arange(n) / period + rng.random()))
    signal = steps(rng, n, cps) + wave + extra
    return Series("yearly_season", signal + gaussian(rng, n), cps)


def gen_holidays(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(0, 2)))
    signal = steps(rng, n, cps)
    for _ in range(int(rng.integers(2, 7))):
        start, days = int(rng.integers(0, n - 3)), int(rng.integers(1, 4))
        signal[start : start + days] -= rng.uniform(4, 10)
    return Series("holidays", signal + gaussian(rng, n), cps)


def gen_heavy_tail(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(0, 3)))
    return Series("heavy_tail", steps(rng, n, cps) + student_t(rng, n), cps)


def gen_outliers(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(0, 3)))
    values = steps(rng, n, cps) + gaussian(rng, n)
    for _ in range(max(1, int(n * rng.uniform(0.01, 0.03)))):
        i = int(rng.integers(n))
        width = 2 if rng.random() < 0.2 else 1
        values[i : i + width] += rng.choice([-1, 1]) * rng.uniform(6, 20)
    return Series("outliers", values, cps)


def gen_missing(rng):
    n = length(rng)
    cps = place_changes(rng, n, int(rng.integers(0, 3)))
    values = steps(rng, n, cps) + gaussian(rng, n)
    values[rng.random(n) < rng.uniform(0.03, 0.15)] = np.nan
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, n - 3))
        values[start : start + int(rng.integers(3, 21))] = np.nan
    return Series("missing", values, cps)


def gen_exp_growth(rng):
    """Multiplicative growth (or decay) with multiplicative noise: a user base
    or a price index compounding at a steady rate. A straight line in logs, a
    steepening curve on the raw scale; annotators mark no change."""
    n = length(rng, 30, 500)
    rate = rng.uniform(0.5, 3) * (1 if rng.random() < 0.75 else -1)  # log-change end to end
    level, rel = 10 ** rng.uniform(1, 7), rng.uniform(0.01, 0.05)
    noise = gaussian(rng, n) if rng.random() < 0.5 else ar1(rng, n, rng.uniform(0.1, 0.4))
    values = level * np.exp(rate * np.arange(n) / n) * (1 + rel * noise)
    return Series("exp_growth", values, [], on_scale=True)


def gen_random_walk(rng):
    """Wander with no annotated change: half white noise plus a random walk of
    small steps (0.1-0.4 sigma each), half an AR(1) with phi 0.9-0.99 alone
    (an exchange rate, a temperature anomaly). Nothing is abrupt."""
    n = length(rng, 30, 500)
    if rng.random() < 0.5:
        values = np.cumsum(rng.uniform(0.1, 0.4) * rng.standard_normal(n)) + gaussian(rng, n)
    else:
        values = ar1(rng, n, rng.uniform(0.9, 0.99))
    return Series("random_walk", values, [])


def gen_short(rng):
    """20-60 points (a few years of yearly or monthly figures), half with one
    shift of 3-8 sigma at least 5 points from either end."""
    n = int(rng.integers(20, 61))
    cps = place_changes(rng, n, int(rng.integers(0, 2)), gap=5)
    return Series("short", steps(rng, n, cps, 3, 8) + mixed_noise(rng, n), cps)


def gen_counts(rng):
    """Event counts: Poisson with a mean of 2-30, 0-2 changes of the rate by a
    factor of 2-3.3 up or down (visible by eye in 15 points or more)."""
    n = length(rng, 30, 500)
    cps = place_changes(rng, n, int(rng.integers(0, 3)), gap=min(15, n // 4))
    log_rate = np.full(n, math.log(10 ** rng.uniform(0.3, 1.5)))
    for c in cps:
        log_rate[c:] += rng.choice([-1, 1]) * rng.uniform(0.7, 1.2)
    return Series("counts", rng.poisson(np.exp(log_rate)).astype(float), cps, on_scale=True)


FAMILIES = {
    "no_change": gen_no_change,
    "trend_no_change": gen_trend_no_change,
    "level_shift": gen_level_shift,
    "slope_change": gen_slope_change,
    "weekly_season": gen_weekly_season,
    "yearly_season": gen_yearly_season,
    "holidays": gen_holidays,
    "heavy_tail": gen_heavy_tail,
    "outliers": gen_outliers,
    "missing": gen_missing,
    "exp_growth": gen_exp_growth,
    "random_walk": gen_random_walk,
    "short": gen_short,
    "counts": gen_counts,
}


def generate(family: str, seed: int, count: int) -> list[Series]:
    """`count` series of a family; the same (family, seed) always gives the same series."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    out = []
    for _ in range(count):
        s = FAMILIES[family](rng)
        level, rel = 10 ** rng.uniform(3, 7), rng.uniform(0.01, 0.05)
        if not s.on_scale:
            s.values = level * (1 + rel * s.values)  # on a metric's scale; NaN stays NaN
        out.append(s)
    return out


# ---- methods ----


def run_ours(cpuledger: str, values: np.ndarray) -> list[int]:
    text = "\n".join("nan" if math.isnan(v) else repr(float(v)) for v in values) + "\n"
    proc = subprocess.run(
        [cpuledger, "changepoints", "--json", "-"], input=text, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cpuledger changepoints failed: {proc.stderr}")
    return [c["index"] for c in json.loads(proc.stdout)["changes"]]


def tcpd_signal(values: np.ndarray) -> np.ndarray:
    """Missing points interpolated, then z-scored as TCPD's load.dataset() does."""
    v = values.copy()
    idx = np.arange(len(v))
    ok = ~np.isnan(v)
    v[~ok] = np.interp(idx[~ok], idx[ok], v[ok])
    sd = v.std(ddof=1)
    return ((v - v.mean()) / (sd if sd > 0 else 1)).reshape(-1, 1)


def run_pelt(values: np.ndarray) -> list[int]:
    signal = tcpd_signal(values)
    bkps = rpt.Pelt(model="l2").fit(signal).predict(pen=3 * math.log(len(signal)))
    return bkps[:-1]


def run_binseg(values: np.ndarray) -> list[int]:
    signal = tcpd_signal(values)
    algo = rpt.Binseg(model="l2").fit(signal)
    pen = 3 * math.log(len(signal))
    best, best_cost = [], algo.cost.sum_of_costs([len(signal)])
    for k in range(1, 6):
        try:
            bkps = algo.predict(n_bkps=k)
        except rpt.exceptions.BadSegmentationParameters:
            break
        cost = algo.cost.sum_of_costs(bkps) + k * pen
        if cost < best_cost:
            best, best_cost = bkps[:-1], cost
    return best


# ---- scores (TCPD's definitions, one annotator) ----


def true_positives(truth: set[int], found: set[int]) -> int:
    found = set(found)
    hits = 0
    for tau in sorted(truth):
        close = sorted((abs(tau - x), x) for x in found if abs(tau - x) <= MARGIN)
        if close:
            hits += 1
            found.remove(close[0][1])
    return hits


def f1(truth: list[int], found: list[int]) -> float:
    t, x = set(truth) | {0}, set(found) | {0}
    p = true_positives(t, x) / len(x)
    r = true_positives(t, x) / len(t)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def partition(cps: list[int], n: int) -> list[tuple[int, int]]:
    bounds = [0] + sorted(c for c in set(cps) if 0 < c < n) + [n]
    return list(zip(bounds, bounds[1:]))


def cover(truth: list[int], found: list[int], n: int) -> float:
    predicted = partition(found, n)
    total = 0.0
    for a, b in partition(truth, n):
        best = 0.0
        for c, d in predicted:
            inter = max(0, min(b, d) - max(a, c))
            if inter:
                best = max(best, inter / (max(b, d) - min(a, c)))
        total += (b - a) * best
    return total / n


# ---- the run ----


def score_one(job):
    cpuledger, series = job
    n = len(series.values)
    found = {
        "ours": run_ours(cpuledger, series.values),
        "binseg": run_binseg(series.values),
        "pelt": run_pelt(series.values),
    }
    return {
        m: (f1(series.truth, cps), cover(series.truth, cps, n), not series.truth, bool(cps))
        for m, cps in found.items()
    }


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpuledger", default="build/cpuledger")
    ap.add_argument("--seeds", default="4-13", help="e.g. 4-13 or 1,2,3 (tune on 1-3)")
    ap.add_argument("--series", type=int, default=30, help="series per family per seed")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.cpuledger).exists():
        print(f"no {args.cpuledger}: build it first (make build)", file=sys.stderr)
        return 1
    seeds, families = parse_seeds(args.seeds), args.families.split(",")

    # figures[family][method] -> per-seed (mean F1, mean cover); fp counts.
    figures = {f: {m: [] for m in METHODS} for f in families}
    fp = {f: {m: [0, 0] for m in METHODS} for f in families}
    with multiprocessing.Pool(args.jobs) as pool:
        for family in families:
            for seed in seeds:
                jobs = [(args.cpuledger, s) for s in generate(family, seed, args.series)]
                results = pool.map(score_one, jobs)
                for m in METHODS:
                    figures[family][m].append(
                        (
                            statistics.fmean(r[m][0] for r in results),
                            statistics.fmean(r[m][1] for r in results),
                        )
                    )
                    for r in results:
                        if r[m][2]:
                            fp[family][m][0] += r[m][3]
                            fp[family][m][1] += 1
    print_table(figures, fp, seeds, args.series)
    return 0


def print_table(figures, fp, seeds, count) -> None:
    print(
        f"change points: {count} series per family per seed, seeds {seeds[0]}..{seeds[-1]} "
        f"({len(seeds)}); F1 (margin {MARGIN}) and cover: worst / median over seeds of the "
        "per-seed mean; FP: share of no-change series with any change"
    )
    header = f"{'family':<16} {'method':<7} {'F1 worst':>8} {'F1 med':>7} {'cov worst':>9} {'cov med':>8} {'FP':>12}  ahead"
    print(header)
    print("-" * len(header))
    total_fp = {m: [0, 0] for m in METHODS}
    ahead_all = True
    for family, by_method in figures.items():
        summary = {}
        for m, per_seed in by_method.items():
            f1s, covers = [p[0] for p in per_seed], [p[1] for p in per_seed]
            summary[m] = (min(f1s), statistics.median(f1s), min(covers), statistics.median(covers))
        for m in METHODS:
            hits, total = fp[family][m]
            total_fp[m][0] += hits
            total_fp[m][1] += total
            fp_text = f"{hits}/{total} {100 * hits / total:.0f}%" if total else "-"
            ahead = ""
            if m == "ours":
                peers = [summary[p] for p in METHODS if p != "ours"]
                wins = all(summary[m][i] >= max(p[i] for p in peers) for i in range(4))
                ahead = "yes" if wins else "NO"
                ahead_all &= wins
            w1, m1, wc, mc = summary[m]
            print(f"{family if m == 'ours' else '':<16} {m:<7} {w1:8.3f} {m1:7.3f} {wc:9.3f} {mc:8.3f} {fp_text:>12}  {ahead}")
    print()
    for m in METHODS:
        hits, total = total_fp[m]
        if total:
            print(f"no-change series with no change point, {m:<6}: {100 * (1 - hits / total):5.1f}% of {total}"
                  + ("   (target >= 95%)" if m == "ours" else ""))
    nc = fp.get("no_change", {}).get("ours")
    if nc and nc[1]:
        print(f"no_change family alone, ours: {100 * (1 - nc[0] / nc[1]):5.1f}% with no change point (target >= 95%)")
    print(f"ours ahead of both peers on every family (F1 and cover, worst and median): {'yes' if ahead_all else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
