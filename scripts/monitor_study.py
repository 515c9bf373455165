#!/usr/bin/env python3
"""Try anomaly-monitor detection rules offline, on `sponge eval --monitor --shadow` JSONs.

In shadow the monitor records its first alarm but the episode runs on, so
the JSON holds every check (`checks`, one every 10 control steps, check k
at (k + 1) / 3 s) of whole episodes. This scores each watched part as
`world_model/src/monitor.rs` does (from the calibration's mean and largest
value, with its least scales), applies a rule (a margin and a persistence
per part) and counts what `sponge eval` would report: faults caught within
1 s of their injection, and false alarms per 10 minutes of normal running
(an alarm ends the run it is in, as it would without --shadow).

    scripts/monitor_study.py --calibration WM/monitor.json \\
        --runs normal.json faults-a.json faults-b.json \\
        [--rule following=1.8x2 --rule shift=1.0x2 --rule view=off] [--parts] [--search]

The monitor's settling windows (`SETTLE_S`, `STATE_SETTLE_CHECKS`: the
first checks' `following`, `pan` and `state` recorded as 0) are in what the
runs hold: runs recorded before 2026-12-07 judged those checks.

A rule naming a part the monitor does not watch watches it too (e.g.
`--rule colour=1.25x2 --rule tint=off`, the rule before `tint`). Plain
Python 3, no packages. Keep WATCHED, MIN_SCALE, STRETCH, MARGIN and
PERSISTENCE in step with monitor.rs.
"""

import argparse
import gzip
import json
import sys

NAMES = ["latent", "state", "image", "expected_image", "change", "still", "still_patch",
         "following", "colour", "shift", "grip", "pan", "blind", "view", "tint"]
WATCHED = [1, 7, 9, 10, 11, 12, 13, 14]
MIN_SCALE = [0, 0, 0, 0, 0, 0, 0, 0, 0.0005, 0.5, 0.4, 0, 0, 0.5, 0.0005]
# How much wider than the calibration saw each part's normal range is taken (STRETCH).
STRETCH = [1, 1, 1, 1, 1, 1, 1, 1.2, 1, 1, 1, 1.2, 1.2, 1, 1]
MARGIN = 1.25
# Checks in a row each part must stay above its margin (PART_PERSISTENCE).
PERSISTENCE = {8: 2, 9: 2, 13: 2}
CHECKS_PER_S = 3.0
WITHIN_S = 1.0


def load_json(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def scales(calibration):
    # Calibrations and runs from before a part was added lack it: 0 there.
    mean, top, std = ([c[i] if i < len(c) else 0.0 for i in range(len(NAMES))]
                      for c in (calibration["mean"], calibration["max"], calibration["std"]))
    return mean, [max((top[i] - mean[i]) * STRETCH[i], 0.01 * std[i], MIN_SCALE[i], 1e-12)
                  for i in range(len(NAMES))]


class Rule:
    """A margin and a persistence (checks in a row above it) per watched part."""

    def __init__(self, margin=None, persist=None):
        self.margin = dict(margin or {})
        self.persist = {**PERSISTENCE, **(persist or {})}

    def watched(self):
        """The monitor's watched parts, and any other part the rule names."""
        return WATCHED + sorted(i for i in self.margin if i not in WATCHED)

    def describe(self):
        changed = [f"{NAMES[i]}={self.margin.get(i, MARGIN)}x{self.persist.get(i, 1)}"
                   for i in self.watched()
                   if i not in WATCHED or self.margin.get(i, MARGIN) != MARGIN
                   or self.persist.get(i, 1) != PERSISTENCE.get(i, 1)]
        return ", ".join(changed) or "the monitor's rule"

    def first_alarm(self, scores):
        run = {}
        watched = self.watched()
        for k, z in enumerate(scores):
            for i in watched:
                above = z[i] > self.margin.get(i, MARGIN)
                run[i] = run.get(i, 0) + 1 if above else 0
                if run[i] >= self.persist.get(i, 1):
                    return (k + 1) / CHECKS_PER_S, NAMES[i]
        return None, None


def prepare(episodes, mean, scale):
    for e in episodes:
        e["_z"] = [[(c.get(NAMES[i], 0.0) - mean[i]) / scale[i] for i in range(len(NAMES))] for c in e["checks"]]
    return episodes


def evaluate(rule, episodes):
    """What `sponge eval` would count with `rule` (its monitor_summary)."""
    out = {"caught": 0, "faults": 0, "false": 0, "normal_s": 0.0, "per": {}, "false_alarms": [], "missed": []}
    for e in episodes:
        alarm, cause = rule.first_alarm(e["_z"])
        fault = e.get("fault_at_s")
        if fault is not None and (alarm is None or alarm >= fault - 1e-9):
            out["faults"] += 1
            out["normal_s"] += fault
            per = out["per"].setdefault(e["fault"], [0, 0])
            per[1] += 1
            if alarm is not None and alarm - fault <= WITHIN_S + 1e-9:
                out["caught"] += 1
                per[0] += 1
            else:
                out["missed"].append((e["seed"], e["fault"], round(fault, 2), alarm))
        elif alarm is not None:
            out["false"] += 1
            out["normal_s"] += alarm
            out["false_alarms"].append((e["seed"], e.get("fault"), round(alarm, 2), cause))
        else:
            out["normal_s"] += e["duration_s"]
    out["per_10_min"] = out["false"] * 600.0 / max(out["normal_s"], 1e-9)
    return out


def summary(name, r):
    share = 100.0 * r["caught"] / max(r["faults"], 1)
    per = ", ".join(f"{k} {c}/{n}" for k, (c, n) in sorted(r["per"].items()))
    return (f"{name}: {r['caught']}/{r['faults']} faults within {WITHIN_S:g} s ({share:.1f}%; {per}); "
            f"{r['false']} false alarms in {r['normal_s']:.0f} s ({r['per_10_min']:.2f} per 10 min)")


def parts_report(episodes):
    """Per part: normal runs' largest score per episode, and each fault's largest score within 1 s."""
    normal = [e for e in episodes if e.get("fault_at_s") is None and e["_z"]]
    faults = [e for e in episodes if e.get("fault_at_s") is not None]
    kinds = sorted({e["fault"] for e in faults})
    print("part        normal episodes' largest score: median / 90% / max | faults' largest within 1 s")
    for i in WATCHED:
        tops = sorted(max(z[i] for z in e["_z"]) for e in normal) or [0.0]
        q = lambda p: tops[min(len(tops) - 1, int(p * len(tops)))]
        line = f"{NAMES[i]:<11} {q(0.5):6.2f} {q(0.9):6.2f} {tops[-1]:6.2f} |"
        for kind in kinds:
            top = []
            for e in (e for e in faults if e["fault"] == kind):
                f = e["fault_at_s"]
                window = [z[i] for k, z in enumerate(e["_z"]) if f - 1e-9 <= (k + 1) / CHECKS_PER_S <= f + WITHIN_S + 1e-9]
                top.append(max(window, default=0.0))
            line += f" {kind}: " + ",".join(f"{v:.1f}" for v in sorted(top))
        print(line)


def search(episodes, per_10_min=1.0, rounds=3):
    """Coordinate search over margins (1.0-4.0) and persistence (1-2) per part, for the most
    faults caught with false alarms at most `per_10_min` (beyond it each 0.1 per 10 min costs
    5 points). Fits the runs it is given: judge what it finds on other seeds."""
    def score(rule):
        r = evaluate(rule, episodes)
        return r["caught"] / max(r["faults"], 1) - 5.0 * max(0.0, r["per_10_min"] - per_10_min), r
    rule = Rule()
    best, _ = score(rule)
    for _ in range(rounds):
        improved = False
        for i in WATCHED:
            for m in [round(1.0 + 0.1 * k, 2) for k in range(31)]:
                for p in (1, 2):
                    trial = Rule(rule.margin, rule.persist)
                    trial.margin[i], trial.persist[i] = m, p
                    s, _ = score(trial)
                    if s > best + 1e-9:
                        best, rule, improved = s, trial, True
        if not improved:
            break
    return rule


def parse_rule(items):
    rule = Rule()
    for item in items:
        name, _, spec = item.partition("=")
        if name not in NAMES:
            sys.exit(f"--rule {item}: {name!r} is no part ({', '.join(NAMES)})")
        margin, _, persist = spec.partition("x")
        try:
            # "off": the part is not watched (it never passes its margin).
            rule.margin[NAMES.index(name)] = float("inf") if margin == "off" else float(margin)
            rule.persist[NAMES.index(name)] = int(persist or 1)
        except ValueError:
            sys.exit(f"--rule {item}: expected PART=MARGINxPERSISTENCE or PART=off, e.g. following=1.8x2")
    return rule


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", required=True, help="the world model's monitor.json")
    ap.add_argument("--runs", nargs="+", required=True, help="sponge eval --shadow JSONs (.json or .json.gz)")
    ap.add_argument("--rule", action="append", default=[], help="PART=MARGINxPERSISTENCE or PART=off (repeatable)")
    ap.add_argument("--parts", action="store_true", help="print each part's scores on normal runs and faults")
    ap.add_argument("--search", action="store_true", help="search margins and persistence on these runs")
    args = ap.parse_args()
    mean, scale = scales(load_json(args.calibration))
    episodes = []
    for path in args.runs:
        runs = load_json(path)
        if not any(e.get("checks") for e in runs["episodes"]):
            sys.exit(f"{path}: no checks (run sponge eval with --world-model W --monitor --shadow)")
        episodes += prepare(runs["episodes"], mean, scale)
    base = evaluate(Rule(), episodes)
    print(summary("monitor's rule", base))
    for what in ("false_alarms", "missed"):
        for row in base[what]:
            print(f"  {what.replace('_', ' ')}: {row}")
    if args.rule:
        rule = parse_rule(args.rule)
        tried = evaluate(rule, episodes)
        print(summary(rule.describe(), tried))
        # What the rule changes: alarms and misses it adds (+) or takes away (-).
        for what in ("false_alarms", "missed"):
            for sign, rows in (("+", set(tried[what]) - set(base[what])), ("-", set(base[what]) - set(tried[what]))):
                for row in sorted(rows):
                    print(f"  {sign} {what.replace('_', ' ')}: {row}")
    if args.parts:
        parts_report(episodes)
    if args.search:
        rule = search(episodes)
        print(summary("searched " + rule.describe(), evaluate(rule, episodes)))


if __name__ == "__main__":
    main()
