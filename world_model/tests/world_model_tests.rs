//! The world model learns: every weight gets a gradient from the loss, a
//! short training run on a small dataset with rewards lowers the loss and
//! leaves a run folder that loads, scores chunks and draws what it expects.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sponge_datasets::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter};
use sponge_policy::train::TrainConfig;
use sponge_world_model::train::{Prepared, losses, train};
use sponge_world_model::{WorldModel, WorldModelConfig, WorldModelRun};

fn small() -> WorldModelConfig {
    WorldModelConfig {
        image_size: 32,
        d_model: 16,
        latent: 32,
        hidden: 32,
        horizon: 20,
        segment: 5,
        ..WorldModelConfig::default()
    }
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = Device::Cpu;
    let config = small();
    let varmap = VarMap::new();
    let model =
        WorldModel::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &device)).expect("model");
    let b = 3;
    let o = config.segments() + 1;
    let prepared = Prepared {
        images: Tensor::rand(0f32, 1f32, (b * o, 3, 32, 32), &device).expect("images"),
        states: Tensor::randn(0f32, 1f32, (b * o, 6), &device).expect("states"),
        tokens: Tensor::from_vec(
            (0..b * config.max_text_tokens)
                .map(|i| (i % 5) as u32)
                .collect::<Vec<u32>>(),
            (b, config.max_text_tokens),
            &device,
        )
        .expect("tokens"),
        actions: Tensor::randn(0f32, 1f32, (b, config.horizon, 6), &device).expect("actions"),
        progress: Tensor::rand(0f32, 1f32, (b, o), &device).expect("progress"),
        risk: Tensor::from_vec(
            (0..b * config.segments())
                .map(|i| (i % 2) as f32)
                .collect::<Vec<f32>>(),
            (b, config.segments()),
            &device,
        )
        .expect("risk"),
    };
    let parts = losses(&model, &prepared).expect("loss");
    for (name, part) in [
        ("latent", &parts.latent),
        ("image", &parts.image),
        ("state", &parts.state),
        ("progress", &parts.progress),
        ("risk", &parts.risk),
    ] {
        let v = part.to_scalar::<f32>().expect("scalar");
        assert!(v.is_finite() && v > 0.0, "{name} loss {v}");
    }
    let grads = parts.total.backward().expect("backward");
    let data = varmap.data().lock().expect("vars");
    assert!(data.len() > 20, "only {} variables", data.len());
    for (name, var) in data.iter() {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = grad
            .sqr()
            .and_then(|g| g.sum_all())
            .and_then(|g| g.to_scalar::<f32>())
            .expect("norm");
        assert!(norm > 0.0, "{name} has a zero gradient");
    }
}

/// Two short episodes with rewards that rise as the "spill" is wiped.
fn dataset_with_rewards(root: &std::path::Path) {
    let mut spec = DatasetSpec::so100(30);
    spec.cameras = vec![CameraSpec {
        name: "front".into(),
        width: 32,
        height: 32,
    }];
    spec.storage = CameraStorage::Png;
    spec.reward_done = true;
    let mut writer = DatasetWriter::create(root, spec).expect("writer");
    for episode in 0..3 {
        sponge_datasets::synth::write_episode(&mut writer, episode, 60, "wipe up the coffee")
            .expect("episode");
    }
    writer.close().expect("close");
}

/// 60 steps of 4 samples, validated every 20 on one episode in three.
fn short_run() -> TrainConfig {
    TrainConfig {
        steps: 60,
        batch: 4,
        learning_rate: 2e-3,
        warmup: 5,
        validation_every: 20,
        validation_every_nth_episode: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn mixed_precision_training_lowers_the_loss_and_saves_f32_weights() {
    let dir = std::env::temp_dir().join(format!("sponge-wm-bf16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    dataset_with_rewards(&data);
    let out = dir.join("wm");
    let config = TrainConfig {
        validation_every: 30,
        precision: sponge_policy::train::Precision::Bf16,
        ..short_run()
    };
    let mut losses = Vec::new();
    train(&data, &out, &small(), &config, &Device::Cpu, false, |l| {
        losses.push(l.loss)
    })
    .expect("trains in bf16");
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let end: f64 = losses[50..].iter().sum::<f64>() / 10.0;
    assert!(end < 0.7 * first, "bf16: loss went from {first:.3} to {end:.3}");
    let weights =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).expect("weights");
    assert!(weights.values().all(|w| w.dtype() == candle_core::DType::F32));
    // The f32 model it saved loads and encodes.
    let run = WorldModelRun::load(&out, &Device::Cpu).expect("loads");
    let frame = sponge_datasets::synth::picture(32, 32, 0, 0);
    let latent = run
        .encode(&[&frame], &[&[0f32; 6]], &["wipe up the coffee"])
        .expect("encodes");
    assert_eq!(latent.dims(), &[1, 32]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_lowers_the_loss_and_the_run_scores_and_imagines() {
    let dir = std::env::temp_dir().join(format!("sponge-wm-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    dataset_with_rewards(&data);
    let out = dir.join("wm");
    let config = short_run();
    let mut losses = Vec::new();
    let last = train(&data, &out, &small(), &config, &Device::Cpu, false, |l| {
        losses.push(l.loss)
    })
    .expect("trains");
    assert_eq!(last.step, 60);
    assert!(last.val_loss.is_some());
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let end: f64 = losses[50..].iter().sum::<f64>() / 10.0;
    assert!(end < 0.7 * first, "loss went from {first:.3} to {end:.3}");
    for file in ["config.json", "model.safetensors", "log.jsonl", "loss.png"] {
        assert!(out.join(file).is_file(), "no {file}");
    }

    let run = WorldModelRun::load(&out, &Device::Cpu).expect("loads");
    let frame = sponge_datasets::synth::picture(32, 32, 0, 0);
    let state = [0f32; 6];
    let latent = run
        .encode(&[&frame], &[&state], &["wipe up the coffee"])
        .expect("encodes");
    assert_eq!(latent.dims(), &[1, 32]);
    let chunk = |v: f32| vec![vec![v; 6]; 20];
    let scores = run
        .score(&latent, &[vec![chunk(0.0), chunk(10.0), chunk(-10.0)]])
        .expect("scores");
    assert_eq!(scores[0].len(), 3);
    for s in &scores[0] {
        assert!(
            (0.0..=1.0).contains(&s.progress) && (0.0..=1.0).contains(&s.risk),
            "{s:?}"
        );
        assert!((s.value - (s.progress - 0.5 * s.risk)).abs() < 1e-6);
    }
    let pictures = run.imagine(&latent, &chunk(0.0)).expect("imagines");
    assert_eq!(pictures.len(), 4);
    assert!(pictures.iter().all(|p| p.len() == 16 * 16 * 3));
    // The monitor carries the last picture over and sees it changed where
    // nothing was to move: three quarters of the picture painted white
    // (so that some of it lies in the still half, wherever that is).
    let anchor = run
        .anchor(&[&frame], &[&state], &["wipe up the coffee"])
        .expect("anchors");
    let executed = vec![vec![0f32; 6]; 5];
    let check = |frame: &[u8]| {
        let (parts, next) = run
            .surprise(
                &anchor,
                &[&executed],
                &[frame],
                &[&state],
                &["wipe up the coffee"],
            )
            .expect("checks");
        assert_eq!(next.latent().dims(), &[1, 32]);
        parts[0]
    };
    let calm = check(&frame);
    let mut painted = frame.clone();
    for y in 0..32 {
        for x in 0..32 {
            if x < 16 && y < 16 {
                continue;
            }
            let at = (y * 32 + x) * 3;
            painted[at..at + 3].fill(255);
        }
    }
    let seen = check(&painted);
    assert!(seen.change > calm.change, "{calm:?} → {seen:?}");
    assert!(seen.still > calm.still, "{calm:?} → {seen:?}");
    assert!(seen.still_patch >= seen.still && seen.change >= seen.still);
    // A frame of the wrong size is refused with a reason.
    let err = run
        .encode(&[&frame[..10]], &[&state], &["x"])
        .expect_err("short frame");
    assert!(err.to_string().contains("32x32"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
