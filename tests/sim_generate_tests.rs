//! `sponge sim generate` as a user runs it: a valid LeRobot dataset whose
//! files are identical when the same command runs twice, and clear errors
//! for bad settings.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{sponge, text};

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("sim-gen", name)
}

#[test]
fn same_command_writes_the_same_valid_dataset() {
    let a = scratch("a");
    let b = scratch("b");
    for out in [&a, &b] {
        let output = sponge(&[
            "sim",
            "generate",
            "--out",
            out.to_str().expect("utf-8"),
            "--episodes",
            "2",
            "--seed",
            "3",
            "--image-size",
            "48",
            "--workers",
            "2",
            "--wrist",
            "--png",
        ]);
        assert!(output.status.success(), "generate failed:\n{}", text(&output));
        assert!(text(&output).contains("wrote 2 episodes"), "{}", text(&output));
    }
    let validate = sponge(&["dataset", "validate", a.to_str().expect("utf-8")]);
    assert!(validate.status.success(), "validate failed:\n{}", text(&validate));

    let info = sponge(&["dataset", "info", a.to_str().expect("utf-8")]);
    let info = text(&info);
    for feature in [
        "observation.images.front",
        "observation.images.wrist",
        "next.reward",
        "next.done",
        "observation.environment_state",
    ] {
        assert!(info.contains(feature), "{feature} missing from:\n{info}");
    }
    // What the twin knew of the scene, frame by frame: where the dirt left
    // of the spill being wiped is, how much of it is left, the force.
    let show = sponge(&[
        "dataset",
        "show",
        a.to_str().expect("utf-8"),
        "--episode",
        "0",
        "--json",
    ]);
    assert!(show.status.success(), "{}", text(&show));
    let episode: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let states = episode["observation.state"].as_array().expect("states").len();
    let scene: Vec<Vec<f64>> = serde_json::from_value(episode["observation.environment_state"].clone())
        .expect("environment state rows");
    assert_eq!(scene.len(), states);
    for row in &scene {
        assert_eq!(row.len(), 4, "{row:?}");
        assert!(
            row[0].abs() < 0.6 && row[1].abs() < 0.6,
            "target off the table: {row:?}"
        );
        assert!((0.0..=1.0).contains(&row[2]), "dirt left {row:?}");
        assert!(row[3] >= 0.0, "force {row:?}");
    }
    assert!(scene[0][2] > 0.9, "the spill starts dirty: {:?}", scene[0]);
    let least = scene.iter().map(|r| r[2]).fold(f64::MAX, f64::min);
    assert!(
        least < 0.1,
        "the expert's episode never wiped its target: {least}"
    );
    assert!(scene.iter().any(|r| r[3] > 1.0), "the sponge never pressed");

    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa, fb);
    assert!(fa.iter().any(|f| f.to_string_lossy().ends_with(".parquet")));
    for f in &fa {
        let (x, y) = (
            std::fs::read(a.join(f)).expect("readable"),
            std::fs::read(b.join(f)).expect("readable"),
        );
        assert!(
            x == y,
            "{} differs between two runs of the same command",
            f.display()
        );
    }
    // A reader that goes away (`| head`) ends the printing quietly, as
    // with any Unix tool, rather than in a panic.
    for command in ["info", "show", "validate"] {
        let mut child = Command::new(common::SPONGE)
            .args(["dataset", command, a.to_str().expect("utf-8")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sponge runs");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("sponge ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "dataset {command}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "dataset {command}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// `--frames 1`: a dataset of scenes, each seed's first picture and where
/// its named spill lies, kept whatever the expert would have done.
#[test]
fn cut_episodes_make_a_dataset_of_scenes() {
    let out = scratch("scenes");
    let path = out.to_str().expect("utf-8");
    let output = sponge(&[
        "sim",
        "generate",
        "--out",
        path,
        "--episodes",
        "3",
        "--frames",
        "1",
        "--seed",
        "5",
        "--image-size",
        "32",
        "--workers",
        "3",
        "--png",
    ]);
    assert!(output.status.success(), "generate failed:\n{}", text(&output));
    assert!(
        text(&output).contains("wrote 3 episodes (3 frames"),
        "{}",
        text(&output)
    );
    let validate = sponge(&["dataset", "validate", path]);
    assert!(validate.status.success(), "validate failed:\n{}", text(&validate));
    let mut targets = Vec::new();
    for e in 0..3 {
        let show = sponge(&["dataset", "show", path, "--episode", &e.to_string(), "--json"]);
        assert!(show.status.success(), "{}", text(&show));
        let episode: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
        let scene: Vec<Vec<f64>> = serde_json::from_value(episode["observation.environment_state"].clone())
            .expect("environment state rows");
        assert_eq!(scene.len(), 1, "episode {e}: {scene:?}");
        assert!(
            scene[0][2] > 0.9,
            "the spill is untouched at the start: {:?}",
            scene[0]
        );
        targets.push([scene[0][0], scene[0][1]]);
    }
    // Three seeds, three scenes.
    assert!(
        targets[0] != targets[1] && targets[1] != targets[2],
        "{targets:?}"
    );
    let zero = sponge(&[
        "sim",
        "generate",
        "--out",
        &format!("{path}-0"),
        "--episodes",
        "1",
        "--frames",
        "0",
    ]);
    assert!(!zero.status.success());
    assert!(text(&zero).contains("--frames"), "{}", text(&zero));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_settings_are_refused_with_a_clear_error() {
    let out = scratch("bad");
    let path = out.to_str().expect("utf-8");
    let fps = sponge(&["sim", "generate", "--out", path, "--episodes", "1", "--fps", "7"]);
    assert!(!fps.status.success());
    assert!(text(&fps).contains("fps 7"), "{}", text(&fps));
    assert!(!out.exists(), "nothing should be written for a refused command");

    let size = sponge(&[
        "sim",
        "generate",
        "--out",
        path,
        "--episodes",
        "1",
        "--image-size",
        "4000",
    ]);
    assert!(!size.status.success());
    assert!(text(&size).contains("image size 4000"), "{}", text(&size));

    let noise = sponge(&[
        "sim",
        "generate",
        "--out",
        path,
        "--episodes",
        "1",
        "--noise=-0.1",
    ]);
    assert!(!noise.status.success());
    assert!(text(&noise).contains("--noise -0.1"), "{}", text(&noise));
    assert!(!out.exists(), "nothing should be written for a refused command");

    std::fs::create_dir_all(&out).expect("scratch");
    let exists = sponge(&["sim", "generate", "--out", path, "--episodes", "1"]);
    assert!(!exists.status.success());
    assert!(text(&exists).contains("already exists"), "{}", text(&exists));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn rendering_without_a_session_runtime_folder_prints_no_error() {
    let dir = scratch("frame");
    std::fs::create_dir_all(&dir).expect("scratch");
    let prefix = dir.join("seed");
    let output = std::process::Command::new(common::SPONGE)
        .args(["sim", "frame", "--seed", "5", "--image-size", "32", "--out"])
        .arg(&prefix)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("sponge runs");
    assert!(output.status.success(), "{}", text(&output));
    assert!(dir.join("seed-front.png").is_file(), "{}", text(&output));
    let said = text(&output);
    assert!(!said.contains("XDG_RUNTIME_DIR"), "{said}");
    assert!(!said.contains("error"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
