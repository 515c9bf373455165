//! `sponge wm` as a user runs it: perturbed twin data, a world model
//! trained on it, its monitor calibrated on a policy's normal runs, then an
//! evaluation that ranks proposed chunks, catches an injected fault and
//! records the policy's rollouts as new training data, and the side-by-side
//! rollout GIF.

mod common;

use common::{sponge, text};

fn ok(args: &[&str]) -> String {
    let output = sponge(args);
    assert!(
        output.status.success(),
        "sponge {}: {}",
        args.join(" "),
        text(&output)
    );
    text(&output)
}

#[test]
fn world_model_from_twin_data_to_ranking_and_a_caught_fault() {
    let dir = common::scratch("wm-cli", "all");
    std::fs::create_dir_all(&dir).expect("scratch");
    let path = |name: &str| dir.join(name).to_str().expect("utf-8").to_owned();
    let (data, run, wm) = (path("data"), path("run"), path("wm"));
    ok(&[
        "sim",
        "generate",
        "--out",
        &data,
        "--episodes",
        "2",
        "--image-size",
        "32",
        "--time-limit",
        "3",
        "--keep-failures",
        "--perturb",
        "1",
    ]);
    ok(&[
        "train",
        "--dataset",
        &data,
        "--out",
        &run,
        "--steps",
        "3",
        "--batch",
        "4",
    ]);

    // Ranking needs a world model, and says so.
    let refused = sponge(&["eval", "--policy", &run, "--episodes", "1", "--samples", "4"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--world-model"), "{}", text(&refused));

    let trained = ok(&[
        "wm",
        "train",
        "--dataset",
        &data,
        "--out",
        &wm,
        "--steps",
        "4",
        "--batch",
        "4",
    ]);
    assert!(trained.contains("trained 4 steps"), "{trained}");
    assert!(dir.join("wm/loss.png").is_file());

    // Without a calibration the monitor cannot run.
    let one_monitored = [
        "eval",
        "--policy",
        &run,
        "--world-model",
        &wm,
        "--monitor",
        "--episodes",
        "1",
    ];
    // Shadow is a way of running the monitor: alone it is refused.
    let unmonitored = sponge(&["eval", "--policy", &run, "--world-model", &wm, "--shadow"]);
    assert!(!unmonitored.status.success());
    assert!(text(&unmonitored).contains("--monitor"), "{}", text(&unmonitored));
    let uncalibrated = sponge(&one_monitored);
    assert!(!uncalibrated.status.success());
    assert!(
        text(&uncalibrated).contains("sponge wm calibrate"),
        "{}",
        text(&uncalibrated)
    );

    let calibrated = ok(&[
        "wm",
        "calibrate",
        "--world-model",
        &wm,
        "--policy",
        &run,
        "--episodes",
        "2",
        "--envs",
        "2",
        // The evaluation's own scenes: a 4-step model's surprise differs
        // more between scenes than a covered camera moves it, and a
        // threshold set on other scenes can alarm before the fault (CI
        // saw it once).
        "--seed",
        "1000000",
    ]);
    assert!(calibrated.contains("threshold"), "{calibrated}");
    let monitor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wm/monitor.json")).expect("monitor.json"))
            .expect("json");
    // Two episodes of at most 20 s, a check every 10 steps after the first:
    // at most 2 × 59. An episode ends early only if the barely trained
    // policy wipes its spill (2 runs in 17 saw fewer than 100 checks), and
    // no wipe takes less than 3.5 s: at least 2 × 10.
    let checks = monitor["checks"].as_u64().expect("checks");
    assert!((20..=118).contains(&checks), "{checks} checks\n{calibrated}");
    assert!(monitor["threshold"].as_f64().expect("threshold") >= monitor["max_seen"].as_f64().expect("max"));

    // Ranking 3 proposals, with the camera covered at 0.1 s, before the
    // monitor's first check at 1/3 s: the episode ends at the alarm. (A
    // 4-step model's surprise is mostly noise: with the cover at 1 s, a
    // check before it alarmed in about 1 run of 4, and the episode ended
    // before its fault.)
    let (json, record) = (path("eval.json"), path("rollouts"));
    let report = ok(&[
        "eval",
        "--policy",
        &run,
        "--world-model",
        &wm,
        "--samples",
        "3",
        "--monitor",
        "--episodes",
        "2",
        "--envs",
        "2",
        "--fault",
        "cover-camera",
        "--fault-window",
        "0.1-0.1",
        "--json",
        &json,
        "--record",
        &record,
    ]);
    assert!(report.contains("monitor: "), "{report}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("eval json")).expect("json");
    assert_eq!(figures["summary"]["samples"], 3);
    for episode in figures["episodes"].as_array().expect("episodes") {
        assert_eq!(episode["fault"], "cover-camera");
        assert_eq!(episode["fault_at_s"], 0.1, "{episode}");
        let alarm = episode["alarm_at_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("no alarm: {episode}"));
        // After the cover, within a few checks (a 4-step model on an
        // unseeded CPU is not the trained model whose 1 s figure the README gives).
        assert!((0.1..=5.0).contains(&alarm), "alarm at {alarm} s: {episode}");
        assert!(episode["duration_s"].as_f64().expect("duration") <= alarm + 1e-9);
    }
    assert_eq!(figures["summary"]["monitor"]["faults"], 2);

    // A sponge dropped at 0.1 s: the gripper's servo loses its load, which
    // the first check (1/3 s) sees whatever the world model makes of it.
    // In shadow the monitor only records its alarm: the episode runs on.
    // One episode in shadow with `fault` at 0.1 s: its JSON.
    let shadow_fault = |fault: &str| -> serde_json::Value {
        let json = path(&format!("{fault}.json"));
        let args = [
            "--shadow",
            "--fault",
            fault,
            "--fault-window",
            "0.1-0.1",
            "--json",
            &json,
        ];
        ok(&[&one_monitored[..], &args[..]].concat());
        serde_json::from_str(&std::fs::read_to_string(&json).expect("eval json")).expect("json")
    };
    let dropped = shadow_fault("drop-sponge");
    let episode = &dropped["episodes"][0];
    let grip = episode["checks"][0]["grip"].as_f64().expect("grip part");
    // 8 of the 10 readings since the start at no load: the median is none,
    // whatever the barely trained policy squeezed before the drop.
    assert_eq!(grip, 1.0, "grip {grip}: {episode}");
    let alarm = episode["alarm_at_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("no alarm: {episode}"));
    assert!(alarm < 0.34, "alarm at {alarm} s: {episode}");
    let duration = episode["duration_s"].as_f64().expect("duration");
    let checks = episode["checks"].as_array().expect("checks").len();
    // Without its sponge the policy wipes nothing, so the episode runs to
    // its 20 s limit.
    assert!(duration > alarm + 1.0, "shadow ended at {duration} s: {episode}");
    assert!(
        checks as f64 >= 3.0 * duration - 2.0,
        "{checks} checks in {duration} s"
    );

    // The spills turned paint at 0.1 s (on this seed's scene the paint is
    // not the sponge's colour): `tint` counts their pixels from the second
    // check that shows them (2/3 s), however the world model sees it.
    let painted = shadow_fault("unseen-spill");
    let episode = &painted["episodes"][0];
    let tint = |k: usize| episode["checks"][k]["tint"].as_f64().expect("tint part");
    assert_eq!(tint(0), 0.0, "the first check after the paint: {episode}");
    assert!(tint(1) > 0.0, "the second: {episode}");

    // The policy's rollouts, recorded up to the alarm, are a dataset the
    // world model trains on.
    let valid = ok(&["dataset", "validate", &record]);
    assert!(!valid.is_empty());
    let info = ok(&["dataset", "info", &record]);
    let frames: f64 = figures["episodes"]
        .as_array()
        .expect("episodes")
        .iter()
        .map(|e| e["duration_s"].as_f64().expect("duration") * 30.0)
        .sum();
    assert!(info.contains("episodes     2"), "{info}");
    assert!(
        info.contains(&format!("frames       {} at 30 fps", frames.round())),
        "{info}"
    );
    let again = sponge(&["eval", "--policy", &run, "--episodes", "1", "--record", &record]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    ok(&[
        "wm",
        "train",
        "--dataset",
        &record,
        "--out",
        &path("wm-rollouts"),
        "--steps",
        "1",
        "--batch",
        "2",
    ]);

    let gif = path("rollout.gif");
    let rolled = ok(&[
        "wm",
        "rollout",
        "--world-model",
        &wm,
        "--policy",
        &run,
        "--out",
        &gif,
        "--seconds",
        "1",
        "--fault",
        "drop-sponge",
        "--at",
        "0.5",
    ]);
    assert!(rolled.contains("fault: drop-sponge"), "{rolled}");
    let bytes = std::fs::read(&gif).expect("gif");
    assert!(bytes.starts_with(b"GIF8"));
    let _ = std::fs::remove_dir_all(&dir);
}
