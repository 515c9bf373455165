//! Training on a small synthetic dataset: the loss falls, the run folder
//! holds what it should, and held-out episodes give a validation loss.

use candle_core::Device;
use sponge_datasets::synth::write_episode;
use sponge_datasets::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter};
use sponge_policy::PolicyConfig;
use sponge_policy::train::{LogLine, TrainConfig, train};

#[test]
fn the_flow_loss_falls_and_the_run_is_written() {
    let root = std::env::temp_dir().join(format!("sponge-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dataset = root.join("dataset");
    let mut spec = DatasetSpec::so100(30);
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 32,
        height: 32,
    }];
    spec.storage = CameraStorage::Png;
    let mut writer = DatasetWriter::create(&dataset, spec).expect("writer");
    for episode in 0..4 {
        write_episode(&mut writer, episode, 40, "wipe up the ink").expect("episode");
    }
    writer.close().expect("close");

    let policy = PolicyConfig {
        d_model: 32,
        heads: 2,
        trunk_layers: 1,
        expert_layers: 1,
        max_text_tokens: 16,
        horizon: 8,
        actions_per_token: 2,
        flow_steps: 2,
        ..PolicyConfig::default()
    };
    let config = TrainConfig {
        steps: 60,
        batch: 8,
        learning_rate: 2e-3,
        warmup: 5,
        validation_every: 20,
        validation_every_nth_episode: 4,
        ..TrainConfig::default()
    };
    let run = root.join("run");
    let mut lines: Vec<LogLine> = Vec::new();
    train(&dataset, &run, &policy, &config, &Device::Cpu, false, |l| {
        lines.push(*l)
    })
    .expect("train");

    let mean = |ls: &[LogLine]| ls.iter().map(|l| l.loss).sum::<f64>() / ls.len() as f64;
    let (first, last) = (mean(&lines[..10]), mean(&lines[50..]));
    assert!(last < 0.6 * first, "loss went from {first:.3} to {last:.3}");
    let validated: Vec<f64> = lines.iter().filter_map(|l| l.val_loss).collect();
    assert_eq!(validated.len(), 3, "validation at steps 20, 40, 60");
    assert!(validated.iter().all(|v| v.is_finite()));
    assert!(
        lines[0].lr < lines[5].lr && lines[59].lr < lines[10].lr,
        "warm-up then decay"
    );
    for file in ["config.json", "model.safetensors", "log.jsonl"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let log = std::fs::read_to_string(run.join("log.jsonl")).expect("log");
    assert_eq!(log.lines().count(), 60);
    let _ = std::fs::remove_dir_all(&root);
}
