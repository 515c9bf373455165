//! `validate` on good datasets and on each kind of damage: it must name the
//! file and the problem.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed set-up should panic the test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sponge_datasets::validate::{Problem, validate};
use sponge_datasets::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter, FrameInput};

fn make(name: &str, storage: CameraStorage) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-val-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = DatasetSpec::so100(30);
    spec.storage = storage;
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 64,
        height: 64,
    }];
    let mut writer = DatasetWriter::create(&dir, spec).unwrap();
    for (e, length) in [10usize, 14].iter().enumerate() {
        writer.start_episode("wipe the table").unwrap();
        for f in 0..*length {
            let image = vec![((e * 50 + f * 5) % 256) as u8; 64 * 64 * 3];
            let s = [f as f32; 6];
            writer
                .add_frame(&FrameInput {
                    state: &s,
                    action: &s,
                    images: &[&image],
                    reward: 0.0,
                    done: false,
                    environment_state: &[],
                })
                .unwrap();
        }
        writer.finish_episode().unwrap();
    }
    writer.close().unwrap();
    assert_eq!(validate(&dir), Vec::<Problem>::new(), "fresh dataset is valid");
    dir
}

fn expect_problem(dir: &Path, file: &str, words: &[&str]) {
    let problems = validate(dir);
    let found = problems
        .iter()
        .any(|p| p.path == Path::new(file) && words.iter().all(|w| p.message.contains(w)));
    assert!(
        found,
        "expected a problem in {file} mentioning {words:?}, got {problems:#?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const DATA: &str = "data/chunk-000/file-000.parquet";
const VIDEO: &str = "videos/observation.images.front/chunk-000/file-000.mp4";

#[test]
fn truncated_parquet_is_named() {
    let dir = make("truncated", CameraStorage::Png);
    let path = dir.join(DATA);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    expect_problem(&dir, DATA, &["parquet"]);
}

#[test]
fn missing_video_is_named() {
    let dir = make("novideo", CameraStorage::Video);
    std::fs::remove_file(dir.join(VIDEO)).unwrap();
    expect_problem(&dir, VIDEO, &["missing"]);
}

#[test]
fn video_one_frame_short_is_named() {
    let dir = make("shortvideo", CameraStorage::Video);
    let path = dir.join(VIDEO);
    let short = dir.join("short.mp4");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(&path)
        .args(["-frames:v", "23", "-c", "copy"])
        .arg(&short)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(&short, &path).unwrap();
    expect_problem(&dir, VIDEO, &["23 frames", "24"]);
}

#[test]
fn video_frames_shown_off_their_timestamps_are_named() {
    let dir = make("drift", CameraStorage::Video);
    let path = dir.join(VIDEO);
    let late = dir.join("late.mp4");
    // Every frame a frame late, as an older sponge's joins drifted.
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-itsoffset", "0.0333333", "-i"])
        .arg(&path)
        .args(["-c", "copy"])
        .arg(&late)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(&late, &path).unwrap();
    expect_problem(
        &dir,
        VIDEO,
        &["episode 0's first frame is shown at 0.03", "from the wrong place"],
    );
}

#[test]
fn frame_total_off_by_one_is_named() {
    let dir = make("offbyone", CameraStorage::Png);
    let info_path = dir.join("meta/info.json");
    let text = std::fs::read_to_string(&info_path).unwrap();
    std::fs::write(
        &info_path,
        text.replace("\"total_frames\": 24", "\"total_frames\": 25"),
    )
    .unwrap();
    expect_problem(&dir, "data", &["24 rows", "25 frames"]);
}

#[test]
fn bad_info_json_is_named() {
    let dir = make("badinfo", CameraStorage::Png);
    std::fs::write(dir.join("meta/info.json"), "{ \"codebase_version\": ").unwrap();
    expect_problem(&dir, "meta/info.json", &["not valid info.json"]);
}

#[test]
fn wrong_timestamps_are_named() {
    let dir = make("timestamps", CameraStorage::Png);
    let info_path = dir.join("meta/info.json");
    let text = std::fs::read_to_string(&info_path).unwrap();
    // The same frames claimed at 25 fps: every timestamp is off.
    std::fs::write(&info_path, text.replace("\"fps\": 30", "\"fps\": 25")).unwrap();
    expect_problem(&dir, DATA, &["timestamp"]);
}
