"""scripts/monitor_study.py counts as `sponge eval` does, on hand-made runs."""
import importlib.util
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("monitor_study", root / "scripts" / "monitor_study.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)

# Every part's mean 0 and largest normal value 1: a score is the raw value.
parts = len(study.NAMES)
mean, scale = study.scales({"mean": [0.0] * parts, "max": [1.0] * parts, "std": [1.0] * parts})


def episode(seed, checks, fault=None, fault_at_s=None, duration_s=20.0, **spikes):
    """`checks` zero checks; spikes: part=[(check index, value), ...]."""
    rows = [{name: 0.0 for name in study.NAMES} for _ in range(checks)]
    for name, points in spikes.items():
        for k, value in points:
            rows[k][name] = value
    return {"seed": seed, "fault": fault, "fault_at_s": fault_at_s, "duration_s": duration_s, "checks": rows}


runs = study.prepare([
    # A normal run whose view spikes for one check at 2 s (check 5).
    episode(1, 59, view=[(5, 2.0)]),
    # Caught: following above the margin (2.0 on a range stretched 1.2x) at the
    # first check after the fault (3.33 s).
    episode(2, 59, "block-arm", 3.0, following=[(9, 2.0)]),
    # Late: the first alarm 1.67 s after the fault.
    episode(3, 59, "push-arm", 3.0, pan=[(13, 3.0)]),
    # An alarm before its fault is a false alarm, and the fault does not count.
    episode(4, 59, "drop-sponge", 3.0, state=[(2, 2.0)], grip=[(9, 5.0)]),
    # A latent spike is not watched: no alarm, 20 s of normal running.
    episode(5, 59, latent=[(3, 50.0)]),
], mean, scale)

# The monitor's rule: view waits for a second check, so its spike is no alarm.
base = study.evaluate(study.Rule(), runs)
assert (base["caught"], base["faults"], base["false"]) == (1, 2, 1), base
assert abs(base["normal_s"] - (20.0 + 3.0 + 3.0 + 1.0 + 20.0)) < 1e-6, base
assert base["per"] == {"block-arm": [1, 1], "push-arm": [0, 1]}, base
assert [row[0] for row in base["missed"]] == [3], base

# Every part at once: the view spike alarms at 2 s.
eager = study.evaluate(study.parse_rule(["view=1.25x1"]), runs)
assert eager["false"] == 2 and abs(eager["normal_s"] - 29.0) < 1e-6, eager

# Two checks in a row for state too: the single spikes no longer alarm,
# the drop is caught (5 > 1.25 at 3.33 s).
rule = study.parse_rule(["state=1.25x2"])
held = study.evaluate(rule, runs)
assert (held["caught"], held["faults"], held["false"]) == (2, 3, 0), held
assert held["per_10_min"] == 0.0

# A part left unwatched ("off") alarms never: the drop is caught by grip.
unwatched = study.evaluate(study.parse_rule(["state=off"]), runs)
assert (unwatched["caught"], unwatched["faults"], unwatched["false"]) == (2, 3, 0), unwatched

# A margin above the spike also silences it.
assert study.evaluate(study.parse_rule(["view=2.5"]), runs)["false"] == 1
# A rule naming a part the monitor does not watch watches it: the latent
# spike alarms at 1.33 s.
latent = study.evaluate(study.parse_rule(["latent=2"]), runs)
assert latent["false"] == 2 and (5, None, 1.33, "latent") in latent["false_alarms"], latent
# A rule naming no part, or not a number, is refused with what was wrong.
for bad, says in (["lantern=2"], "is no part"), (["view=high"], "PART=MARGINxPERSISTENCE"):
    try:
        study.parse_rule(bad)
    except SystemExit as refused:
        assert says in str(refused), refused
    else:
        raise AssertionError(f"{bad} accepted")
print("monitor_study: ok", file=sys.stderr)
