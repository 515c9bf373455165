//! Figures for `sponge bench policy`: how long a chunk takes to infer and
//! how many samples per second training gets through, on random inputs of
//! the model's shape (the dataset loader has its own benchmark).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::tokenizer::tokenize;
use crate::train::{Precision, cast_model, vars_for_cast};
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

/// The named variables a bf16 model is cast from (none for f32).
fn cast_from(varmap: &VarMap, precision: Precision) -> Result<Vec<(String, Var)>> {
    vars_for_cast(varmap, precision).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// The model in `precision` from `named` ([`cast_from`]): none for f32
/// (the model itself), or its weights cast to bf16, as training casts them
/// each step.
fn in_precision(
    named: &[(String, Var)],
    config: &PolicyConfig,
    precision: Precision,
    device: &Device,
) -> Result<Option<Policy>> {
    Ok(match precision {
        Precision::F32 => None,
        Precision::Bf16 => Some(cast_model(named, precision.dtype(), device, |vb| {
            Policy::new(config, vb)
        })?),
    })
}

/// `observation` with its images and state in `dtype` (the tokens stay ids).
fn observation_in(observation: &Observation, dtype: DType) -> Result<Observation> {
    Ok(Observation {
        images: observation.images.to_dtype(dtype)?,
        tokens: observation.tokens.clone(),
        state: observation.state.to_dtype(dtype)?,
    })
}

/// Time to infer one chunk for one observation, and `k` chunks for one
/// observation at once (the observation encoded once), over `runs` runs
/// after two warm-up runs, with the weights in `precision`.
pub fn inference_latency(
    config: &PolicyConfig,
    k: usize,
    runs: usize,
    precision: Precision,
    device: &Device,
) -> Result<(Latency, Latency)> {
    let (varmap, f32_policy) = fresh_policy(config, device)?;
    let cast = in_precision(&cast_from(&varmap, precision)?, config, precision, device)?;
    let policy = cast.as_ref().unwrap_or(&f32_policy);
    let dtype = precision.dtype();
    let observation = observation_in(&random_observation(config, 1, device)?, dtype)?;
    let time = |k: usize| -> Result<Latency> {
        let mut ms = Vec::with_capacity(runs);
        for i in 0..runs + 2 {
            let started = Instant::now();
            let memory = policy.memory(&policy.encode(&observation)?)?.repeat(k)?;
            let chunk = policy.sample_from(&memory, &chunk_noise(config, k, device)?.to_dtype(dtype)?)?;
            // Reading the values back waits for a GPU to finish.
            chunk.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
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
/// over `steps` steps after one warm-up step, the passes in `precision`
/// (bf16: the f32 weights cast each step, as `sponge train` does).
pub fn training_throughput(
    config: &PolicyConfig,
    batch: usize,
    flow_samples: usize,
    steps: usize,
    precision: Precision,
    device: &Device,
) -> Result<f64> {
    let (varmap, policy) = fresh_policy(config, device)?;
    let mut optimizer = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
    let named = cast_from(&varmap, precision)?;
    let dtype = precision.dtype();
    let observation = observation_in(&random_observation(config, batch, device)?, dtype)?;
    let actions = chunk_noise(config, batch, device)?.to_dtype(dtype)?;
    let mut started = Instant::now();
    for i in 0..=steps {
        if i == 1 {
            started = Instant::now();
        }
        let cast = in_precision(&named, config, precision, device)?;
        let stepped = cast.as_ref().unwrap_or(&policy);
        let noise = chunk_noise(config, batch * flow_samples, device)?.to_dtype(dtype)?;
        let t = Tensor::rand(0f32, 1f32, batch * flow_samples, device)?;
        let loss = stepped
            .flow_loss(&observation, &actions, &noise, &t)?
            .to_dtype(DType::F32)?;
        optimizer.backward_step(&loss)?;
        loss.to_scalar::<f32>()?;
    }
    Ok((steps * batch) as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bf16_model_is_the_f32_model_cast_and_draws_nearly_the_same_chunk() {
        let config = PolicyConfig {
            d_model: 32,
            heads: 4,
            trunk_layers: 1,
            expert_layers: 1,
            horizon: 10,
            ..PolicyConfig::default()
        };
        let device = Device::Cpu;
        let (varmap, policy) = fresh_policy(&config, &device).expect("policy");
        assert!(
            in_precision(&[], &config, Precision::F32, &device)
                .expect("f32")
                .is_none()
        );
        let named = cast_from(&varmap, Precision::Bf16).expect("variables");
        let cast = in_precision(&named, &config, Precision::Bf16, &device)
            .expect("bf16")
            .expect("a cast model");
        let observation = random_observation(&config, 1, &device).expect("observation");
        let noise = chunk_noise(&config, 1, &device).expect("noise");
        let draw = |policy: &Policy, dtype: DType| -> Vec<f32> {
            let observation = observation_in(&observation, dtype).expect("cast");
            let memory = policy
                .memory(&policy.encode(&observation).expect("encode"))
                .expect("memory");
            let chunk = policy
                .sample_from(&memory, &noise.to_dtype(dtype).expect("noise"))
                .expect("chunk");
            chunk
                .flatten_all()
                .and_then(|c| c.to_dtype(DType::F32))
                .and_then(|c| c.to_vec1::<f32>())
                .expect("values")
        };
        let (full, half) = (draw(&policy, DType::F32), draw(&cast, DType::BF16));
        let size = full.iter().map(|v| v.abs()).sum::<f32>() / full.len() as f32;
        let apart = full.iter().zip(&half).map(|(a, b)| (a - b).abs()).sum::<f32>() / full.len() as f32;
        // bf16 keeps 8 bits of mantissa: the chunks differ by a few percent,
        // while another model's (or noise's) would differ by their size.
        assert!(size > 0.1, "{size}");
        assert!(apart < 0.1 * size, "{apart} against {size}");
        let (_, other) = fresh_policy(&config, &device).expect("policy");
        let stranger = draw(&other, DType::F32);
        let far = full
            .iter()
            .zip(&stranger)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / full.len() as f32;
        assert!(far > 3.0 * apart, "{far} against {apart}");
    }
}
