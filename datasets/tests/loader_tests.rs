#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed set-up should panic the test"
)]
//! The training loader's windows, padding and coverage, checked against the
//! synthetic generator that wrote the data.

use std::collections::HashMap;
use std::path::PathBuf;

use sponge_datasets::loader::{Loader, LoaderConfig};
use sponge_datasets::synth::{joints, picture};
use sponge_datasets::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter, synth};

const LENGTHS: [u64; 3] = [9, 14, 6];

fn dataset(name: &str) -> PathBuf {
    dataset_of(name, &LENGTHS, true)
}

/// A dataset of synthetic episodes of `lengths` frames (the second named
/// "b", the others "a"), with an environment state or not.
fn dataset_of(name: &str, lengths: &[u64], environment: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-loader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = DatasetSpec::so100(30);
    spec.storage = CameraStorage::Png;
    if environment {
        spec.environment_state = vec!["progress".into(), "progress again".into()];
    }
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 16,
        height: 8,
    }];
    let mut writer = DatasetWriter::create(&dir, spec).unwrap();
    for (e, length) in lengths.iter().enumerate() {
        synth::write_episode(&mut writer, e as u64, *length, if e == 1 { "b" } else { "a" }).unwrap();
    }
    writer.close().unwrap();
    dir
}

#[test]
fn samples_are_windows_of_the_recorded_episodes() {
    let dir = dataset("windows");
    let config = LoaderConfig {
        batch_size: 7,
        observation_deltas: vec![-2, 0],
        action_horizon: 5,
        pool_episodes: 2,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&dir, config).unwrap();
    let total: u64 = LENGTHS.iter().sum();
    let mut seen: HashMap<(u64, usize), usize> = HashMap::new();
    let mut samples = 0;
    while samples < 2 * total as usize {
        let batch = loader.next_batch().unwrap();
        for (s, (episode, frame)) in batch.source.iter().enumerate() {
            *seen.entry((*episode, *frame)).or_default() += 1;
            let length = LENGTHS[*episode as usize] as usize;
            for (o, delta) in [-2i64, 0].iter().enumerate() {
                let wanted = *frame as i64 + delta;
                let j = wanted.clamp(0, length as i64 - 1) as u64;
                let state = &batch.state[(s * 2 + o) * 6..(s * 2 + o + 1) * 6];
                assert_eq!(
                    state,
                    joints(*episode, j, 6).as_slice(),
                    "episode {episode} frame {frame} delta {delta}"
                );
                assert_eq!(batch.state_is_pad[s * 2 + o], wanted < 0);
                // The synthetic scene's two entries: how far along the episode is.
                let scene = &batch.environment_state[(s * 2 + o) * 2..(s * 2 + o + 1) * 2];
                let progress = j as f32 / length as f32;
                assert_eq!(scene, [progress, progress].as_slice());
                let image = &batch.images["observation.images.front"]
                    [(s * 2 + o) * 3 * 128..(s * 2 + o + 1) * 3 * 128];
                let expected = picture(16, 8, j, *episode * 10);
                // Planar: red plane first, then green, then blue.
                assert_eq!(image[0], f32::from(expected[0]) / 255.0);
                assert_eq!(image[128 + 5], f32::from(expected[5 * 3 + 1]) / 255.0);
                assert_eq!(image[256 + 127], f32::from(expected[127 * 3 + 2]) / 255.0);
            }
            for h in 0..5 {
                let wanted = frame + h;
                let j = wanted.min(length - 1) as u64;
                let action = &batch.action[(s * 5 + h) * 6..(s * 5 + h + 1) * 6];
                // Synthetic actions are the next frame's joints.
                assert_eq!(action, joints(*episode, j + 1, 6).as_slice());
                assert_eq!(batch.action_is_pad[s * 5 + h], wanted >= length);
            }
            // What the scene held when the episode began: progress 0, whatever the frame.
            assert_eq!(
                &batch.environment_state_start[s * 2..s * 2 + 2],
                [0.0, 0.0].as_slice()
            );
            assert_eq!(batch.task_index[s], if *episode == 1 { 1 } else { 0 });
        }
        samples += batch.size;
    }
    for (e, length) in LENGTHS.iter().enumerate() {
        for f in 0..*length as usize {
            assert!(
                seen.contains_key(&(e as u64, f)),
                "episode {e} frame {f} never drawn"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_split_draws_only_its_episodes() {
    let dir = dataset("split");
    let config = LoaderConfig {
        batch_size: 4,
        action_horizon: 2,
        episodes: Some(vec![1]),
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&dir, config).unwrap();
    for _ in 0..10 {
        assert!(loader.next_batch().unwrap().source.iter().all(|(e, _)| *e == 1));
    }
    let bad = LoaderConfig {
        episodes: Some(vec![7]),
        ..LoaderConfig::default()
    };
    let err = Loader::new(&dir, bad).err().unwrap().to_string();
    assert!(err.contains("episode 7"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_training_pool_holds_as_many_episodes_as_fit_in_its_budget() {
    use sponge_datasets::Dataset;
    use sponge_datasets::loader::episodes_that_fit;
    let dir = dataset("pool");
    let data = Dataset::open(&dir).unwrap();
    let all = [0, 1, 2];
    // A frame: 16×8 RGB bytes plus the state and action vectors.
    let frame = 16 * 8 * 3;
    let mean_frames = LENGTHS.iter().sum::<u64>() as usize / LENGTHS.len();
    assert_eq!(
        episodes_that_fit(&data, &all, 1 << 30),
        3,
        "a large budget holds them all"
    );
    assert_eq!(
        episodes_that_fit(&data, &all, 1),
        1,
        "a pool holds at least one episode"
    );
    let two = episodes_that_fit(&data, &all, 2 * mean_frames * (frame + 100));
    assert!((1..3).contains(&two), "a budget of about two episodes held {two}");
    assert_eq!(
        episodes_that_fit(&data, &[1], 1 << 30),
        1,
        "no more than the episodes asked for"
    );
    // With the whole dataset in the pool, the first batches already mix
    // every episode (the batcher waits for a full pool before its first).
    let config = LoaderConfig {
        batch_size: 12,
        observation_deltas: vec![0],
        action_horizon: 2,
        pool_episodes: episodes_that_fit(&data, &all, 1 << 30),
        // One decoder: with two, a fast one may start the next epoch
        // before the slow one hands over, and the pool holds an episode twice.
        workers: 1,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&dir, config).unwrap();
    let batch = loader.next_batch().unwrap();
    let mut episodes: Vec<u64> = batch.source.iter().map(|(e, _)| *e).collect();
    episodes.sort_unstable();
    episodes.dedup();
    assert_eq!(episodes, vec![0, 1, 2], "the first batch drew from {episodes:?}");
}

/// Episodes of one frame (a dataset of scenes) are drawn far faster than
/// they are decoded once the first pool is spent: every batch is still
/// full, and over the epochs every scene is drawn.
#[test]
fn batches_of_one_frame_episodes_are_full() {
    let scenes = 40u64;
    let dir = dataset_of("scenes", &[1; 40], false);
    let config = LoaderConfig {
        batch_size: 16,
        observation_deltas: vec![0],
        action_horizon: 2,
        pool_episodes: scenes as usize,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&dir, config).unwrap();
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let batch = loader.next_batch().unwrap();
        assert_eq!(batch.size, 16, "batch {i} holds {} samples", batch.size);
        seen.extend(batch.source.iter().map(|(e, _)| *e));
    }
    assert_eq!(seen.len(), scenes as usize, "every scene is drawn");
    std::fs::remove_dir_all(&dir).unwrap();
}
