//! Figures for `sponge bench wm`: how long ranking K chunks and one monitor
//! check take, and training samples per second, on random inputs of the
//! default model's shape.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use sponge_policy::bench::Latency;

use sponge_robot::joint::NUM_JOINTS;

use crate::model::{WorldModel, WorldModelConfig};
use crate::monitor::{COLOUR_BINS, Calibration, Parts, Senses};
use crate::train::{Prepared, losses};

fn random_inputs(config: &WorldModelConfig, n: usize, device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let s = config.image_size;
    Ok((
        Tensor::rand(0f32, 1f32, (n, 3, s, s), device)?,
        Tensor::randn(0f32, 1f32, (n, config.state_dim), device)?,
        Tensor::ones((n, config.max_text_tokens), DType::U32, device)?,
    ))
}

/// Time to rank `k` chunks for one observation (encode it once, imagine
/// every chunk to its end in one batch, read progress and risk), and one
/// monitor check (encode, one dynamics step, decode three pictures, then
/// the parts from outside the model: a segment of joint readings and
/// gripper loads, the camera's registration against the first picture
/// and its colours against a calibration's), over `runs` runs after two
/// warm-up runs.
pub fn ranking_latency(
    config: &WorldModelConfig,
    k: usize,
    runs: usize,
    device: &Device,
) -> Result<(Latency, Latency)> {
    let varmap = VarMap::new();
    let model = WorldModel::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let (images, state, tokens) = random_inputs(config, 1, device)?;
    let chunks = Tensor::randn(0f32, 1f32, (k, config.horizon, config.action_dim), device)?;
    let segment = Tensor::randn(0f32, 1f32, (1, config.segment * config.action_dim), device)?;
    // A camera picture of noise: every pixel an edge, the registration's
    // worst case.
    let side = config.image_size;
    let frame = |seed: u32| -> Vec<u8> {
        (0..side * side * 3)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
            .collect()
    };
    let calibration = Calibration {
        colours: vec![1; COLOUR_BINS],
        ..Calibration::fit(&[Parts::default(); 10], 1).map_err(candle_core::Error::msg)?
    };
    let mut senses = Senses::so100(30.0);
    senses.first(&frame(0));
    let mut rank = Vec::with_capacity(runs);
    let mut check = Vec::with_capacity(runs);
    for i in 0..runs + 2 {
        let started = Instant::now();
        let text = model.text(&tokens)?;
        let z = model.encode(&images, &state, &text)?;
        let predicted = model.rollout(&z.broadcast_as((k, config.latent))?.contiguous()?, &chunks)?;
        let mut value = Vec::new();
        if let Some(end) = predicted.last() {
            value = model.progress(end)?.to_vec1::<f32>()?;
        }
        for p in &predicted {
            model.risk_logit(p)?.to_vec1::<f32>()?;
        }
        let ranked = started.elapsed().as_secs_f64() * 1e3;
        debug_assert_eq!(value.len(), k);

        let started = Instant::now();
        let now = model.encode(&images, &state, &text)?;
        let next = model.step(&z, &segment)?;
        let pictures = model.decode(&Tensor::cat(&[&now, &next, &z], 0)?)?;
        pictures.flatten_all()?.to_vec1::<f32>()?;
        model.state(&next)?.flatten_all()?.to_vec1::<f32>()?;
        for step in 0..config.segment {
            let q = [0.01 * step as f64; NUM_JOINTS];
            senses.command(&q);
            senses.measure(&q, Some(0.1));
        }
        let mut parts = Parts::default();
        senses.check(&mut parts, &frame(i as u32 + 1), Some(&calibration));
        let checked = started.elapsed().as_secs_f64() * 1e3;
        if i >= 2 {
            rank.push(ranked);
            check.push(checked);
        }
    }
    Ok((Latency::of(rank), Latency::of(check)))
}

/// Training samples per second at `batch`, over `steps` timed steps after one warm-up step.
pub fn training_throughput(
    config: &WorldModelConfig,
    batch: usize,
    steps: usize,
    device: &Device,
) -> Result<f64> {
    let varmap = VarMap::new();
    let model = WorldModel::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let mut optimizer = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
    let observations = config.segments() + 1;
    let (images, states, _) = random_inputs(config, batch * observations, device)?;
    let prepared = Prepared {
        images,
        states,
        tokens: Tensor::ones((batch, config.max_text_tokens), DType::U32, device)?,
        actions: Tensor::randn(0f32, 1f32, (batch, config.horizon, config.action_dim), device)?,
        progress: Tensor::rand(0f32, 1f32, (batch, observations), device)?,
        risk: Tensor::zeros((batch, config.segments()), DType::F32, device)?,
    };
    let mut started = Instant::now();
    for i in 0..steps + 1 {
        if i == 1 {
            started = Instant::now();
        }
        let loss = losses(&model, &prepared)?.total;
        optimizer.backward_step(&loss)?;
        loss.to_scalar::<f32>()?;
    }
    Ok((steps * batch) as f64 / started.elapsed().as_secs_f64())
}
