//! Figures for `sponge bench policy`: how long a chunk takes to infer and
//! how many samples per second training gets through, on random inputs of
//! the model's shape (the dataset loader has its own benchmark).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::tokenizer::tokenize;
use crate::{Observation, Policy, PolicyConfig, model::chunk_noise};

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `ms`, which must not be empty.
    pub fn of(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: at(1.0),
        }
    }
}

/// A random observation batch of the model's shape.
pub fn random_observation(config: &PolicyConfig, batch: usize, device: &Device) -> Result<Observation> {
    let s = config.image_size;
    let tokens: Vec<u32> = (0..batch)
        .flat_map(|_| tokenize("wipe up the coffee on the left", config.max_text_tokens))
        .collect();
    Ok(Observation {
        images: Tensor::rand(0f32, 1f32, (batch, config.cameras, 3, s, s), device)?,
        tokens: Tensor::from_vec(tokens, (batch, config.max_text_tokens), device)?,
        state: Tensor::randn(0f32, 1f32, (batch, config.state_inputs()), device)?,
    })
}

fn fresh_policy(config: &PolicyConfig, device: &Device) -> Result<(VarMap, Policy)> {
    let varmap = VarMap::new();
    let policy = Policy::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    Ok((varmap, policy))
}

/// Time to infer one chunk for one observation, and `k` chunks for one
/// observation at once (the observation encoded once), over `runs` runs
/// after two warm-up runs.
pub fn inference_latency(
    config: &PolicyConfig,
    k: usize,
    runs: usize,
    device: &Device,
) -> Result<(Latency, Latency)> {
    let (_, policy) = fresh_policy(config, device)?;
    let observation = random_observation(config, 1, device)?;
    let time = |k: usize| -> Result<Latency> {
        let mut ms = Vec::with_capacity(runs);
        for i in 0..runs + 2 {
            let started = Instant::now();
            let memory = policy.memory(&policy.encode(&observation)?)?.repeat(k)?;
            let chunk = policy.sample_from(&memory, &chunk_noise(config, k, device)?)?;
            // Reading the values back waits for a GPU to finish.
            chunk.flatten_all()?.to_vec1::<f32>()?;
            if i >= 2 {
                ms.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok(Latency::of(ms))
    };
    Ok((time(1)?, time(k)?))
}

/// Training samples per second: forward, backward and an AdamW step on
/// random batches of `batch` (each chunk with `flow_samples` noise draws),
/// over `steps` steps after one warm-up step.
pub fn training_throughput(
    config: &PolicyConfig,
    batch: usize,
    flow_samples: usize,
    steps: usize,
    device: &Device,
) -> Result<f64> {
    let (varmap, policy) = fresh_policy(config, device)?;
    let mut optimizer = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
    let observation = random_observation(config, batch, device)?;
    let actions = chunk_noise(config, batch, device)?;
    let mut started = Instant::now();
    for i in 0..=steps {
        if i == 1 {
            started = Instant::now();
        }
        let noise = chunk_noise(config, batch * flow_samples, device)?;
        let t = Tensor::rand(0f32, 1f32, batch * flow_samples, device)?;
        let loss = policy.flow_loss(&observation, &actions, &noise, &t)?;
        optimizer.backward_step(&loss)?;
        loss.to_scalar::<f32>()?;
    }
    Ok((steps * batch) as f64 / started.elapsed().as_secs_f64())
}
