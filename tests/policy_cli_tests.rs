//! `sponge train` and `sponge eval` as a user runs them: a run folder from
//! a small dataset, a refusal to overwrite it, an evaluation in the twin
//! with its JSON and GIF, and a clear error for a folder that is no run.

mod common;
#[path = "common/twin_labelled.rs"]
mod twin_labelled;

use std::path::PathBuf;

use common::{sponge, text};
use twin_labelled::{PLACE_PERCEPTION, train_briefly, twin_labelled_dataset};

fn scratch(name: &str) -> PathBuf {
    let dir = common::scratch("policy-cli", name);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

#[test]
fn train_then_eval_in_the_twin_writes_figures_and_a_gif() {
    let dir = scratch("run");
    let dataset = dir.join("dataset");
    sponge_datasets::synth::write_small_dataset(&dataset, 32, &[(30, "wipe up the ink"); 3])
        .expect("dataset");
    let (data, run) = (dataset.to_str().expect("utf-8"), dir.join("run"));
    let run = run.to_str().expect("utf-8");
    let train = [
        "train",
        "--dataset",
        data,
        "--out",
        run,
        "--steps",
        "4",
        "--batch",
        "4",
    ];
    let output = sponge(&train);
    assert!(output.status.success(), "{}", text(&output));
    assert!(dir.join("run/loss.png").is_file());

    // A trained run is not overwritten by accident.
    let again = sponge(&train);
    assert!(!again.status.success());
    assert!(text(&again).contains("--resume"), "{}", text(&again));

    let json = dir.join("eval.json");
    let gifs = dir.join("gifs");
    let output = sponge(&[
        "eval",
        "--policy",
        run,
        "--episodes",
        "2",
        "--envs",
        "2",
        "--json",
        json.to_str().expect("utf-8"),
        "--video",
        gifs.to_str().expect("utf-8"),
        "--videos",
        "1",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("success: "), "{}", text(&output));
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let episodes = figures["episodes"].as_array().expect("episodes");
    assert_eq!(episodes.len(), 2);
    let seeds: Vec<u64> = episodes
        .iter()
        .map(|e| e["seed"].as_u64().expect("seed"))
        .collect();
    assert_eq!(seeds, [1_000_000, 1_000_001], "held-out seeds by default");
    for e in episodes {
        let fraction = e["target_fraction"].as_f64().expect("fraction");
        assert!((0.0..=1.0).contains(&fraction), "{e}");
        assert!(e["duration_s"].as_f64().expect("duration") > 0.0);
    }
    let gif = std::fs::read(gifs.join("episode_1000000.gif")).expect("gif written");
    assert!(gif.starts_with(b"GIF8"), "not a GIF");
    // The settings that shaped the figures are in the JSON.
    assert_eq!(figures["summary"]["noise"], "chunk");
    assert_eq!(figures["summary"]["replan"], 10);

    // One episode, evaluated with `extra` settings: its JSON.
    let once = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec!["eval", "--policy", run, "--episodes", "1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", path.to_str().expect("utf-8")]);
        let output = sponge(&args);
        assert!(output.status.success(), "{}", text(&output));
        let figures: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("json")).expect("valid json");
        figures
    };

    // One noise per episode: the same run and seed give the same episode.
    let (a, b) = (
        once("a.json", &["--noise", "episode"]),
        once("b.json", &["--noise", "episode"]),
    );
    assert_eq!(a["summary"]["noise"], "episode");
    let (a, b) = (&a["episodes"][0], &b["episodes"][0]);
    assert_eq!(a["target_fraction"], b["target_fraction"]);
    assert_eq!(a["peak_force_n"], b["peak_force_n"]);

    // Each episode draws its policy noise from its own generator: the second
    // episode of the batch of two above plays out the same alone.
    let alone = once("alone.json", &["--seed", "1000001"]);
    let (alone, batched) = (&alone["episodes"][0], &episodes[1]);
    assert_eq!(alone["seed"], batched["seed"]);
    // (The peak force is a float of the contact's detail: equal only for the same moves.)
    for key in [
        "target_fraction",
        "peak_force_n",
        "arm_on_table_steps",
        "force_violation_steps",
    ] {
        assert_eq!(
            alone[key], batched[key],
            "{key}: alone {alone}, batched {batched}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_short_small_run_keeps_its_shape_and_eval_checks_the_replan_against_it() {
    let dir = scratch("horizon");
    let dataset = dir.join("dataset");
    sponge_datasets::synth::write_small_dataset(&dataset, 32, &[(30, "wipe up the ink"); 2])
        .expect("dataset");
    let run = dir.join("run");
    let run = run.to_str().expect("utf-8");
    let output = sponge(&[
        "train",
        "--dataset",
        dataset.to_str().expect("utf-8"),
        "--out",
        run,
        "--steps",
        "2",
        "--batch",
        "2",
        "--horizon",
        "10",
        "--actions-per-token",
        "2",
        "--width",
        "48",
        "--heads",
        "3",
        "--trunk-layers",
        "1",
        "--expert-layers",
        "1",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/config.json")).expect("config.json"))
            .expect("valid json");
    assert_eq!(config["policy"]["horizon"], 10);
    assert_eq!(config["policy"]["actions_per_token"], 2);
    assert_eq!(config["policy"]["d_model"], 48);
    assert_eq!(config["policy"]["heads"], 3);
    assert_eq!(config["policy"]["trunk_layers"], 1);
    assert_eq!(config["policy"]["expert_layers"], 1);
    let weights =
        candle_core::safetensors::load(dir.join("run/model.safetensors"), &candle_core::Device::Cpu)
            .expect("weights");
    assert!(
        weights
            .keys()
            .all(|k| !k.contains("trunk.1.") && !k.contains("expert.1.")),
        "a second block was saved: {:?}",
        weights.keys().filter(|k| k.contains(".1.")).collect::<Vec<_>>()
    );

    // Replanning after more actions than a chunk holds is refused by name.
    let eval = |replan: &str| {
        sponge(&[
            "eval",
            "--policy",
            run,
            "--episodes",
            "1",
            "--replan",
            replan,
            "--blend",
            "2",
        ])
    };
    let refused = eval("12");
    assert!(!refused.status.success());
    assert!(text(&refused).contains("(10 actions)"), "{}", text(&refused));
    let output = eval("5");
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("success: "), "{}", text(&output));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_that_is_no_run_is_refused_by_name() {
    let dir = scratch("missing");
    let output = sponge(&[
        "eval",
        "--policy",
        dir.to_str().expect("utf-8"),
        "--episodes",
        "1",
    ]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("config.json") && message.contains("sponge train"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_training_settings_are_refused_by_name_before_anything_is_written() {
    let dir = scratch("flow");
    let out = dir.join("run");
    let refused: [(&[&str], &str); 19] = [
        (&["--ema-decay", "1.5"], "--ema-decay 1.5"),
        (&["--flow-samples", "0"], "--flow-samples 0"),
        (&["--flow-samples", "65"], "--flow-samples 65"),
        (&["--flow-samples", "two"], "--flow-samples two"),
        (&["--flow-times", "gauss"], "uniform or beta"),
        (&["--actions", "sideways"], "absolute or relative"),
        (
            &["--horizon", "16", "--actions-per-token", "3"],
            "horizon 16 is not a multiple of actions_per_token 3",
        ),
        (&["--actions-per-token", "0"], "actions_per_token 0"),
        (&["--horizon", "0"], "horizon 0"),
        (&["--aux-weight", "nan"], "--aux-weight nan"),
        (&["--precision", "f16"], "unknown precision 'f16' (f32 or bf16)"),
        (
            &["--width", "100", "--heads", "3"],
            "d_model 100 is not divisible by 3 heads",
        ),
        (&["--expert-layers", "0"], "expert_layers 0"),
        (
            &["--keypoints", "4"],
            "--keypoints is for --encoder conv or conv-text",
        ),
        (&["--encoder", "conv", "--keypoints", "0"], "--keypoints"),
        (&["--privileged-start"], "--privileged"),
        (&["--place-weight", "1"], "needs --encoder conv-text"),
        (
            &["--encoder", "conv", "--place-weight", "1"],
            "needs --encoder conv-text",
        ),
        (&["--place-weight", "nan"], "--place-weight nan"),
    ];
    let no_dataset = dir.join("no-dataset");
    for (flags, named) in refused {
        let mut args = vec![
            "train",
            "--dataset",
            no_dataset.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(flags);
        let output = sponge(&args);
        assert!(!output.status.success(), "{flags:?} was accepted");
        let message = text(&output);
        assert!(message.contains(named), "{flags:?}: {message}");
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_bench_sizes_and_precisions_are_refused_by_name_before_timing() {
    let refused: [(&[&str], &str); 4] = [
        (&["--precision", "f16"], "unknown precision 'f16' (f32 or bf16)"),
        (
            &["--width", "100", "--heads", "3"],
            "d_model 100 is not divisible by 3 heads",
        ),
        (&["--expert-layers", "0"], "expert_layers 0"),
        (&["--horizon", "0"], "horizon 0"),
    ];
    for (flags, named) in refused {
        let mut args = vec!["bench", "policy"];
        args.extend_from_slice(flags);
        let output = sponge(&args);
        assert!(!output.status.success(), "{flags:?} was accepted");
        let message = text(&output);
        assert!(message.contains(named), "{flags:?}: {message}");
        assert!(
            !message.contains("inference, 1 chunk"),
            "{flags:?} timed: {message}"
        );
    }
}

#[test]
fn a_privileged_policy_runs_on_the_twins_knowledge_or_on_a_perception_run() {
    let dir = scratch("privileged");
    // Synthetic episodes with an environment state named as the twin names its.
    let dataset = twin_labelled_dataset(&dir.join("dataset"));
    let data = dataset.to_str().expect("utf-8");
    let train = |name: &str, extra: &[&str]| train_briefly(&dataset, &dir.join(name), extra);
    let privileged = train("privileged", &["--privileged", "target.x_m,target.y_m"]);
    let perception = train("perception", &["--aux-weight", "1"]);
    let plain = train("plain", &[]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("privileged/config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["policy"]["privileged"], serde_json::json!([0, 1]));

    // An entry the dataset lacks is refused, naming those it has.
    let refused = sponge(&[
        "train",
        "--dataset",
        data,
        "--out",
        dir.join("bad").to_str().expect("utf-8"),
        "--privileged",
        "target.z_m",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("\"target.z_m\"") && text(&refused).contains("contact.force_n"),
        "{}",
        text(&refused)
    );

    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--episodes", "1"];
        args.extend_from_slice(extra);
        sponge(&args)
    };
    // On the twin's knowledge.
    let output = eval(&["--policy", &privileged]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("perception:"), "{}", text(&output));
    // On what the perception run makes of the frames: how far off it was
    // is reported, and lands in the JSON.
    let perceived = |policy: &str, name: &str| {
        let json = dir.join(name);
        let output = eval(&[
            "--policy",
            policy,
            "--perception",
            &perception,
            "--json",
            json.to_str().expect("utf-8"),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let figures: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
        let error = figures["summary"]["perception_error_m"]
            .as_f64()
            .expect("perception error");
        assert!(error.is_finite() && error > 0.0, "{error}");
        output
    };
    let output = perceived(&privileged, "perceived.json");
    assert!(
        text(&output).contains("perception: the target it saw lay"),
        "{}",
        text(&output)
    );
    // On the twin's knowledge moved 5 cm; not for a policy that takes none, nor with --perception.
    let json = dir.join("off.json");
    let output = eval(&[
        "--policy",
        &privileged,
        "--perception-error",
        "0.05",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(figures["perception_error_m"], 0.05);
    let refused = eval(&["--policy", &plain, "--perception-error", "0.05"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--privileged"), "{}", text(&refused));
    let refused = eval(&["--policy", &privileged, "--perception-error", "-1"]);
    assert!(!refused.status.success());
    // A policy that takes no environment state, or a run without a head to perceive with, is refused.
    let refused = eval(&["--policy", &plain, "--perception", &perception]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--privileged"), "{}", text(&refused));
    let refused = eval(&["--policy", &privileged, "--perception", &plain]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--aux-weight"), "{}", text(&refused));

    // Tracking the spill needs a perception run whose keypoint finds it
    // (--place-weight); a tracking run records each episode's error.
    let refused = eval(&[
        "--policy",
        &privileged,
        "--perception",
        &perception,
        "--perception-track",
        "0.02",
    ]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--place-weight"), "{}", text(&refused));
    let place = train("place", PLACE_PERCEPTION);
    for (bad, named) in [
        (
            ["--perception-track=-0.01", "--perception-release=0"],
            "--perception-track",
        ),
        (
            ["--perception-track=0.02", "--perception-release=1.5"],
            "--perception-release",
        ),
    ] {
        let mut args = vec!["--policy", &privileged, "--perception", &place];
        args.extend_from_slice(&bad);
        let refused = eval(&args);
        assert!(!refused.status.success(), "{args:?} was accepted");
        assert!(text(&refused).contains(named), "{}", text(&refused));
    }
    let json = dir.join("tracked.json");
    let output = eval(&[
        "--policy",
        &privileged,
        "--perception",
        &place,
        "--perception-track",
        "0.03",
        "--perception-release",
        "0.1",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let read = |json: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(json).expect("json")).expect("valid json")
    };
    let figures = read(&json);
    assert_eq!(figures["perception_track_m"], 0.03);
    // Unasked, a place-trained perception tracks within 2 cm, one without
    // a place keypoint looks everywhere.
    let json = dir.join("tracked-by-default.json");
    let output = eval(&[
        "--policy",
        &privileged,
        "--perception",
        &place,
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(read(&json)["perception_track_m"], 0.02);
    assert_eq!(read(&dir.join("perceived.json"))["perception_track_m"], 0.0);
    let episode = figures["episodes"][0]["perception_error_m"]
        .as_f64()
        .expect("the episode's perception error");
    assert!(episode.is_finite() && episode > 0.0, "{episode}");

    // A policy that keeps the entries the episode began with, and sees
    // motion: a perception run without motion needs no history of its own
    // and serves it.
    let start = train(
        "start",
        &[
            "--privileged",
            "target.x_m,target.y_m",
            "--privileged-start",
            "--motion-frames",
            "2",
        ],
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("start/config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["policy"]["privileged_start"], true);
    perceived(&start, "start.json");
    let _ = std::fs::remove_dir_all(&dir);
}
