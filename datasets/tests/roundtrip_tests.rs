//! Episodes written and read back: state and action identical, PNG images
//! identical, video images at PSNR ≥ 35 dB.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed set-up should panic the test"
)]

use std::path::{Path, PathBuf};

use sponge_datasets::video::Codec;
use sponge_datasets::{CameraSpec, CameraStorage, Dataset, DatasetSpec, DatasetWriter, FrameInput};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-ds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The synthetic generator's picture (smooth, moving with the frame).
fn picture(width: u32, height: u32, frame: usize, seed: usize) -> Vec<u8> {
    sponge_datasets::synth::picture(width, height, frame as u64, seed as u64)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

fn state(episode: usize, frame: usize) -> [f32; 6] {
    std::array::from_fn(|j| (episode * 100 + frame) as f32 * 0.25 + j as f32)
}

/// What the scene held at a frame (`observation.environment_state`).
fn scene(episode: usize, frame: usize, length: usize) -> [f32; 3] {
    [episode as f32 * 0.1, -0.05, 1.0 - frame as f32 / length as f32]
}

fn write(dir: &Path, storage: CameraStorage, lengths: &[usize]) -> DatasetSpec {
    write_with(dir, storage, None, lengths)
}

fn write_with(dir: &Path, storage: CameraStorage, codec: Option<Codec>, lengths: &[usize]) -> DatasetSpec {
    let mut spec = DatasetSpec::so100(30);
    spec.storage = storage;
    spec.codec = codec;
    spec.reward_done = true;
    spec.environment_state = vec!["target.x_m".into(), "target.y_m".into(), "target.dirt".into()];
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 96,
        height: 96,
    }];
    let mut writer = DatasetWriter::create(dir, spec.clone()).unwrap();
    for (e, length) in lengths.iter().enumerate() {
        writer
            .start_episode(if e % 2 == 0 {
                "wipe up the coffee"
            } else {
                "clean the ink on the left"
            })
            .unwrap();
        for f in 0..*length {
            let image = picture(96, 96, f, e);
            let s = state(e, f);
            let a = s.map(|v| v + 0.5);
            writer
                .add_frame(&FrameInput {
                    state: &s,
                    action: &a,
                    images: &[&image],
                    reward: f as f32 / *length as f32,
                    done: f + 1 == *length,
                    environment_state: &scene(e, f, *length),
                })
                .unwrap();
        }
        writer.finish_episode().unwrap();
    }
    writer.close().unwrap();
    spec
}

fn check(dir: &Path, lengths: &[usize], min_psnr: f64) {
    assert_eq!(
        sponge_datasets::validate::validate(dir),
        Vec::new(),
        "the dataset validates"
    );
    let dataset = Dataset::open(dir).unwrap();
    assert_eq!(dataset.info().total_episodes, lengths.len() as u64);
    assert_eq!(dataset.info().total_frames, lengths.iter().sum::<usize>() as u64);
    assert_eq!(
        dataset.tasks(),
        ["wipe up the coffee", "clean the ink on the left"]
    );
    let mut worst: f64 = f64::INFINITY;
    for (e, length) in lengths.iter().enumerate() {
        let episode = dataset.read_episode(e).unwrap();
        assert_eq!(episode.state.len(), *length);
        assert_eq!(episode.task, dataset.tasks()[e % 2]);
        for f in 0..*length {
            assert_eq!(episode.state[f], state(e, f).to_vec(), "episode {e} frame {f}");
            assert_eq!(episode.action[f], state(e, f).map(|v| v + 0.5).to_vec());
            assert_eq!(
                episode.environment_state.as_ref().map(|rows| rows[f].clone()),
                Some(scene(e, f, *length).to_vec()),
                "episode {e} frame {f}"
            );
            assert!((episode.timestamps[f] - f as f32 / 30.0).abs() < 1e-6);
            let image = &episode.images["observation.images.front"][f];
            if min_psnr.is_infinite() {
                assert!(
                    *image == picture(96, 96, f, e),
                    "episode {e} frame {f} image differs"
                );
            } else {
                let here = psnr(image, &picture(96, 96, f, e));
                // Decoded in step: each frame is closest to its own original.
                for other in [f.wrapping_sub(1), f + 1].into_iter().filter(|o| *o < *length) {
                    assert!(
                        here > psnr(image, &picture(96, 96, other, e)),
                        "episode {e} frame {f} matches frame {other} better"
                    );
                }
                worst = worst.min(here);
            }
        }
        assert_eq!(episode.done.as_ref().unwrap().iter().filter(|d| **d).count(), 1);
    }
    if min_psnr.is_finite() {
        println!("worst PSNR {worst:.1} dB");
        assert!(worst >= min_psnr, "worst PSNR {worst:.1} dB");
    }
}

#[test]
fn png_episodes_round_trip_exactly() {
    let dir = temp_dir("png");
    let lengths = [12, 7, 20];
    write(&dir, CameraStorage::Png, &lengths);
    check(&dir, &lengths, f64::INFINITY);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn video_episodes_round_trip_within_35_db() {
    let dir = temp_dir("video");
    let lengths = [25, 9, 31, 16];
    write(&dir, CameraStorage::Video, &lengths);
    check(&dir, &lengths, 35.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forty_joined_episodes_are_shown_exactly_at_their_timestamps() {
    // Each episode is encoded on its own and joined to the camera's file;
    // the joins must not drift (mp4 rounds a file's duration up to the
    // millisecond: 0.7 ms a join, a frame after 50 joins).
    let dir = temp_dir("joins");
    let lengths = [7; 40];
    write(&dir, CameraStorage::Video, &lengths);
    let times = sponge_datasets::video::frame_times(
        &dir.join("videos/observation.images.front/chunk-000/file-000.mp4"),
    )
    .unwrap();
    assert_eq!(times.len(), 280);
    for (f, shown) in times.iter().enumerate() {
        let due = f as f64 / 30.0;
        assert!(
            (shown - due).abs() < 1e-4,
            "frame {f} shown at {shown:.6} s, due at {due:.6} s"
        );
    }
    check(&dir, &lengths, 35.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn h264_episodes_round_trip_within_35_db() {
    let dir = temp_dir("h264");
    let lengths = [12, 20];
    write_with(&dir, CameraStorage::Video, Some(Codec::H264), &lengths);
    let info = Dataset::open(&dir).unwrap().info().clone();
    assert_eq!(
        info.features["observation.images.front"]["info"]["video.codec"],
        "h264"
    );
    check(&dir, &lengths, 35.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_appends_to_the_same_files() {
    let dir = temp_dir("resume");
    write(&dir, CameraStorage::Png, &[5, 6]);
    let mut writer = DatasetWriter::resume(&dir).unwrap();
    assert_eq!(writer.episodes(), 2);
    writer.start_episode("wipe up the coffee").unwrap();
    for f in 0..4 {
        let s = state(2, f);
        let image = picture(96, 96, f, 2);
        writer
            .add_frame(&FrameInput {
                state: &s,
                action: &s.map(|v| v + 0.5),
                images: &[&image],
                reward: 0.0,
                done: f == 3,
                environment_state: &scene(2, f, 4),
            })
            .unwrap();
    }
    writer.finish_episode().unwrap();
    let dataset = Dataset::open(&dir).unwrap();
    assert_eq!(dataset.info().total_frames, 15);
    assert_eq!(dataset.episodes()[2].dataset_from_index, 11);
    assert_eq!(
        dataset.episodes()[2].data_file,
        dataset.episodes()[0].data_file,
        "appended to the same data file"
    );
    assert_eq!(dataset.read_episode(2).unwrap().state[3], state(2, 3).to_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_leaves_a_live_writers_staged_files_alone_and_a_second_writer_is_refused() {
    let dir = temp_dir("live");
    write(&dir, CameraStorage::Png, &[5]);
    let writer = DatasetWriter::resume(&dir).unwrap();
    // What a commit in progress stages beside the file it replaces.
    let staged = dir.join("data/chunk-000/file-000.parquet.sponge-tmp");
    std::fs::write(&staged, b"half an episode").unwrap();
    let dataset = Dataset::open(&dir).unwrap();
    assert_eq!(dataset.episodes().len(), 1, "what is committed reads as before");
    assert!(staged.exists(), "a reader removed a live writer's staged file");
    let err = DatasetWriter::resume(&dir).err().unwrap().to_string();
    assert!(err.contains("being written by another process"), "{err}");
    writer.close().unwrap();
    // With the writer gone, a staged file is a crash's leftover: removed.
    Dataset::open(&dir).unwrap();
    assert!(!staged.exists(), "a crash's leftover was kept");
    std::fs::remove_dir_all(&dir).unwrap();
    // Resuming a folder that is no dataset names what is missing, and
    // writes nothing there.
    std::fs::create_dir_all(&dir).unwrap();
    let err = DatasetWriter::resume(&dir).err().unwrap().to_string();
    assert!(err.contains("no meta folder"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_frames_are_refused_and_nothing_is_saved() {
    let dir = temp_dir("refuse");
    let mut spec = DatasetSpec::so100(30);
    spec.storage = CameraStorage::Png;
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 96,
        height: 96,
    }];
    let mut writer = DatasetWriter::create(&dir, spec.clone()).unwrap();
    assert!(
        DatasetWriter::create(&dir, spec).is_err(),
        "refuses a non-empty folder"
    );
    writer.start_episode("task").unwrap();
    let small = vec![0u8; 10];
    let err = writer
        .add_frame(&FrameInput {
            state: &[0.0; 6],
            action: &[0.0; 6],
            images: &[&small],
            reward: 0.0,
            done: false,
            environment_state: &[],
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("front") && err.to_string().contains("27648"),
        "{err}"
    );
    let image = vec![0u8; 96 * 96 * 3];
    let err = writer
        .add_frame(&FrameInput {
            state: &[0.0; 6],
            action: &[0.0; 6],
            images: &[&image],
            reward: 0.0,
            done: false,
            environment_state: &[1.0, 2.0],
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("2 environment state values") && err.to_string().contains("has 0"),
        "{err}"
    );
    let err = writer
        .add_frame(&FrameInput {
            state: &[0.0; 6],
            action: &[0.0; 6],
            images: &[&small],
            reward: 0.0,
            done: false,
            environment_state: &[],
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("front") && err.to_string().contains("27648"),
        "{err}"
    );
    let err = writer.finish_episode().unwrap_err();
    assert!(err.to_string().contains("no frames"), "{err}");
    assert_eq!(Dataset::open(&dir).unwrap().info().total_episodes, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_cameras_fall_back_from_av1_and_explicit_av1_is_refused() {
    let dir = temp_dir("tiny");
    let mut spec = DatasetSpec::so100(30);
    spec.cameras = vec![CameraSpec {
        name: "tiny".into(),
        width: 32,
        height: 32,
    }];
    drop(DatasetWriter::create(&dir, spec.clone()).unwrap());
    let info = Dataset::open(&dir).unwrap().info().clone();
    assert_eq!(
        info.features["observation.images.tiny"]["info"]["video.codec"],
        "h264"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    spec.codec = Some(Codec::Av1);
    let err = DatasetWriter::create(&dir, spec).err().unwrap().to_string();
    assert!(err.contains("at least 64"), "{err}");
}

#[test]
fn merged_dataset_holds_both_in_order_and_validates() {
    let (a, b, out) = (temp_dir("merge-a"), temp_dir("merge-b"), temp_dir("merge-out"));
    write(&a, CameraStorage::Png, &[5, 6]);
    write(&b, CameraStorage::Png, &[4]);
    sponge_datasets::merge::merge(&[&a, &b], &out, |_, _| {}).unwrap();
    assert_eq!(sponge_datasets::validate::validate(&out), Vec::new());
    let merged = Dataset::open(&out).unwrap();
    assert_eq!(merged.info().total_episodes, 3);
    assert_eq!(merged.info().total_frames, 15);
    let source = Dataset::open(&b).unwrap().read_episode(0).unwrap();
    let copied = merged.read_episode(2).unwrap();
    assert_eq!(copied.state, source.state);
    assert_eq!(copied.action, source.action);
    assert_eq!(copied.images, source.images);
    assert!(source.environment_state.is_some());
    assert_eq!(copied.environment_state, source.environment_state);
    assert_eq!(copied.task, source.task);
    for dir in [a, b, out] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn merging_copies_video_as_it_is_and_encodes_only_another_codec_again() {
    let (a, b, c, out) = (
        temp_dir("vmerge-a"),
        temp_dir("vmerge-b"),
        temp_dir("vmerge-c"),
        temp_dir("vmerge-out"),
    );
    // Odd lengths: episodes start on odd frames of their files, between the
    // every-other-frame keyframes.
    write(&a, CameraStorage::Video, &[5, 7, 3]);
    write(&b, CameraStorage::Video, &[9]);
    write_with(&c, CameraStorage::Video, Some(Codec::H264), &[6, 5]);
    let merged = sponge_datasets::merge::merge(&[&a, &b, &c], &out, |_, _| {}).unwrap();
    assert_eq!(merged.episodes, 6);
    assert_eq!(merged.reencoded, 2, "only the H.264 episodes are encoded again");
    assert_eq!(sponge_datasets::validate::validate(&out), Vec::new());
    let merged = Dataset::open(&out).unwrap();
    assert_eq!(merged.info().total_frames, 35);
    let sources = [(&a, 0), (&a, 1), (&a, 2), (&b, 0), (&c, 0), (&c, 1)];
    for (e, (dir, index)) in sources.into_iter().enumerate() {
        let source = Dataset::open(dir).unwrap().read_episode(index).unwrap();
        let copied = merged.read_episode(e).unwrap();
        assert_eq!(copied.state, source.state, "episode {e}");
        assert_eq!(copied.environment_state, source.environment_state);
        let (was, now) = (
            &source.images["observation.images.front"],
            &copied.images["observation.images.front"],
        );
        assert_eq!(was.len(), now.len());
        for (f, (was, now)) in was.iter().zip(now).enumerate() {
            if e < 4 {
                // The same bits, decoded the same: no second loss of quality.
                assert!(was == now, "episode {e} frame {f} changed in the copy");
            } else {
                assert!(
                    psnr(was, now) > 35.0,
                    "episode {e} frame {f}: {:.1} dB",
                    psnr(was, now)
                );
            }
        }
    }
    for dir in [a, b, c, out] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn encoded_videos_that_do_not_fit_the_episode_are_refused_and_nothing_is_saved() {
    let (a, out) = (temp_dir("encoded-src"), temp_dir("encoded-out"));
    let spec = write(&a, CameraStorage::Video, &[5]);
    let source = a.join("videos/observation.images.front/chunk-000/file-000.mp4");
    let mut writer = DatasetWriter::create(&out, spec).unwrap();

    let err = writer
        .start_episode_with_videos("wipe up the coffee", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0 encoded videos") && err.contains("1 cameras"),
        "{err}"
    );

    // A copy one frame short of the episode it is given to.
    let short = writer.scratch_path("short.mp4").unwrap();
    sponge_datasets::video::extract(&source, 0.0, 4, 30, &short).unwrap();
    writer
        .start_episode_with_videos("wipe up the coffee", vec![short.clone()])
        .unwrap();
    for f in 0..5 {
        let image = picture(96, 96, f, 0);
        let s = state(0, f);
        writer
            .add_frame(&FrameInput {
                state: &s,
                action: &s,
                images: &[&image],
                reward: 0.0,
                done: false,
                environment_state: &scene(0, f, 5),
            })
            .unwrap();
    }
    let err = writer.finish_episode().unwrap_err().to_string();
    assert!(
        err.contains("camera front") && err.contains("4 frames") && err.contains("5 frames"),
        "{err}"
    );
    assert_eq!(writer.episodes(), 0, "nothing was saved");
    assert!(!short.exists(), "the writer removed the file it was given");
    writer.close().unwrap();
    assert_eq!(Dataset::open(&out).unwrap().info().total_episodes, 0);
    for dir in [a, out] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn recomputed_stats_equal_those_written_while_recording() {
    let dir = temp_dir("restat");
    write(&dir, CameraStorage::Png, &[8, 13]);
    let stats_path = dir.join("meta/stats.json");
    let written = std::fs::read_to_string(&stats_path).unwrap();
    let episodes_before = Dataset::open(&dir).unwrap().episodes().to_vec();
    std::fs::write(&stats_path, "{}").unwrap();
    assert!(
        !sponge_datasets::validate::validate(&dir).is_empty(),
        "damaged stats are noticed"
    );
    sponge_datasets::restat::recompute_stats(&dir, |_, _| {}).unwrap();
    assert_eq!(std::fs::read_to_string(&stats_path).unwrap(), written);
    assert_eq!(
        Dataset::open(&dir).unwrap().episodes(),
        episodes_before.as_slice()
    );
    assert_eq!(sponge_datasets::validate::validate(&dir), Vec::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn disk_full_is_a_clear_error_and_the_dataset_stays_valid() {
    let dir = temp_dir("diskfull");
    let mut spec = DatasetSpec::so100(30);
    spec.storage = CameraStorage::Png;
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 96,
        height: 96,
    }];
    let mut writer = DatasetWriter::create(&dir, spec).unwrap();
    let record = |writer: &mut DatasetWriter, e: usize| {
        writer.start_episode("wipe up the coffee").unwrap();
        for f in 0..6 {
            let s = state(e, f);
            let image = picture(96, 96, f, e);
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
        writer.finish_episode()
    };
    record(&mut writer, 0).unwrap();
    // The next data file write lands on /dev/full: ENOSPC, as on a full disk.
    let staged = dir.join("data/chunk-000/file-000.parquet.sponge-tmp");
    std::os::unix::fs::symlink("/dev/full", &staged).unwrap();
    let err = record(&mut writer, 1).unwrap_err().to_string();
    assert!(err.contains("No space left"), "{err}");
    assert!(
        std::fs::symlink_metadata(&staged).is_err(),
        "the failed commit cleaned up its staged files"
    );
    assert_eq!(sponge_datasets::validate::validate(&dir), Vec::new());
    assert_eq!(Dataset::open(&dir).unwrap().info().total_episodes, 1);
    // Space again: recording carries on.
    record(&mut writer, 1).unwrap();
    assert_eq!(Dataset::open(&dir).unwrap().info().total_episodes, 2);
    assert_eq!(sponge_datasets::validate::validate(&dir), Vec::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_roll_over_at_the_size_limits() {
    let dir = temp_dir("rollover");
    write(&dir, CameraStorage::Video, &[5]);
    // Limits of 0 MB: every episode starts new data, video and metadata files.
    let info_path = dir.join("meta/info.json");
    let text = std::fs::read_to_string(&info_path).unwrap();
    let text = text
        .replace("\"data_files_size_in_mb\": 100", "\"data_files_size_in_mb\": 0")
        .replace("\"video_files_size_in_mb\": 200", "\"video_files_size_in_mb\": 0");
    std::fs::write(&info_path, text).unwrap();
    let mut writer = DatasetWriter::resume(&dir).unwrap();
    for e in 1..3 {
        sponge_datasets::synth::write_episode(&mut writer, e, 4, "wipe up the coffee").unwrap();
    }
    writer.close().unwrap();
    assert_eq!(sponge_datasets::validate::validate(&dir), Vec::new());
    let dataset = Dataset::open(&dir).unwrap();
    let files: Vec<u64> = dataset.episodes().iter().map(|e| e.data_file.file).collect();
    assert_eq!(files, [0, 1, 2]);
    let videos: Vec<u64> = dataset
        .episodes()
        .iter()
        .map(|e| e.videos["observation.images.front"].file.file)
        .collect();
    assert_eq!(videos, [0, 1, 2]);
    assert!(
        dir.join("videos/observation.images.front/chunk-000/file-002.mp4")
            .exists()
    );
    assert_eq!(dataset.read_episode(2).unwrap().state.len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn joint_plot_draws_every_joint_in_its_panel() {
    let dir = temp_dir("plot");
    write(&dir, CameraStorage::Png, &[30]);
    let episode = Dataset::open(&dir).unwrap().read_episode(0).unwrap();
    let (rgb, width, height) = sponge_datasets::plot::plot_joints(&episode, 300, 50);
    assert_eq!((width, height), (300, 300));
    for panel in 0..6 {
        let rows = &rgb[(panel * 50 * 300 * 3)..((panel + 1) * 50 * 300 * 3)];
        let has = |colour: [u8; 3]| rows.chunks_exact(3).any(|p| p == colour);
        assert!(
            has(sponge_datasets::plot::STATE_COLOUR),
            "panel {panel} has the state curve"
        );
        assert!(
            has(sponge_datasets::plot::ACTION_COLOUR),
            "panel {panel} has the action curve"
        );
    }
    let png = dir.join("plot.png");
    sponge_datasets::plot::write_png(&png, &rgb, width, height).unwrap();
    let decoded = sponge_datasets::reader::decode_png(&std::fs::read(&png).unwrap()).unwrap();
    assert_eq!(decoded, rgb);
    std::fs::remove_dir_all(&dir).unwrap();
}
