//! Training the world model on a LeRobot v3 dataset with rewards (expert
//! episodes and perturbed ones from `sponge sim generate --perturb`).
//!
//! Each sample is an observation, the chunk of actions after it, and the
//! observations at the end of each segment of that chunk. The model is
//! trained to predict the later latents from the first one and the actions
//! (against the encoder's own latents, held fixed), to read the progress,
//! the risk and the joint state off every latent, and to draw the first
//! and predicted latents. The run folder is laid out as the policy's:
//! `config.json`, `model.safetensors`, `log.jsonl`, `loss.png`.

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use sponge_datasets::Dataset;
use sponge_datasets::loader::{
    Batch, Loader, LoaderConfig, TRAINING_POOL_BYTES, VALIDATION_BATCHES, episodes_that_fit,
};
use sponge_datasets::stats::FeatureStats;
use sponge_policy::tokenizer::tokenize;
use sponge_policy::train::{
    LogLine, Normalizer, Precision, TrainConfig, TrainError, average_of, cast_model, clip, learning_rate,
    load_weights, read_log, run_error, save_weights, vars_for_cast,
};

use crate::model::{WorldModel, WorldModelConfig, half_size};

/// The reward the twin gives a step that pressed too hard is the fraction
/// cleaned minus this.
const FORCE_PENALTY: f32 = 0.5;

/// The run's `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WmRunConfig {
    /// Model shape.
    pub model: WorldModelConfig,
    /// State normalisation.
    pub state: Normalizer,
    /// Action normalisation.
    pub action: Normalizer,
    /// The camera feature the model sees.
    pub camera: String,
    /// Training settings.
    pub train: TrainConfig,
    /// Frames per second of the dataset.
    pub fps: u32,
}

/// The parts of the loss, for the log and for tests.
#[derive(Debug, Clone)]
pub struct Losses {
    /// Weighted sum.
    pub total: Tensor,
    /// Predicted against encoded latents.
    pub latent: Tensor,
    /// Decoded pictures against the camera's, halved.
    pub image: Tensor,
    /// Joint state read off the latents.
    pub state: Tensor,
    /// Fraction cleaned read off the latents.
    pub progress: Tensor,
    /// Pressing too hard within each segment.
    pub risk: Tensor,
}

/// A batch as tensors.
pub struct Prepared {
    /// `[B·O, 3, S, S]`: each sample's observations at the chunk's start
    /// and at the end of each segment (O = segments + 1).
    pub images: Tensor,
    /// `[B·O, state_dim]`, normalised.
    pub states: Tensor,
    /// `[B, max_text_tokens]`.
    pub tokens: Tensor,
    /// `[B, horizon, action_dim]`, normalised.
    pub actions: Tensor,
    /// `[B, O]`: fraction of the named spill cleaned at each observation.
    pub progress: Tensor,
    /// `[B, segments]`: 1 where the segment pressed too hard.
    pub risk: Tensor,
}

/// Reads the fraction cleaned and the force violations back from rewards
/// (fraction cleaned, minus [`FORCE_PENALTY`] in a step that pressed too
/// hard): the fraction never falls within an episode, so a drop means a
/// penalty.
pub fn decode_rewards(rewards: &[f32]) -> (Vec<f32>, Vec<bool>) {
    let mut fractions = Vec::with_capacity(rewards.len());
    let mut violations = Vec::with_capacity(rewards.len());
    let mut previous: Option<f32> = None;
    for &r in rewards {
        let violation = r < -1e-4 || previous.is_some_and(|p| r < p - 0.5 * FORCE_PENALTY);
        let fraction = if violation { r + FORCE_PENALTY } else { r }.clamp(0.0, 1.0);
        fractions.push(fraction);
        violations.push(violation);
        previous = Some(fraction);
    }
    (fractions, violations)
}

/// The loader's observation offsets for `config`: 0 and the end of each segment.
pub fn observation_deltas(config: &WorldModelConfig) -> Vec<i64> {
    (0..=config.segments())
        .map(|k| (k * config.segment) as i64)
        .collect()
}

/// Turns a loader batch into tensors (`tasks`: the dataset's task texts).
pub fn prepare(
    batch: &Batch,
    run: &WmRunConfig,
    tasks: &[String],
    device: &Device,
) -> Result<Prepared, TrainError> {
    let config = &run.model;
    let b = batch.size;
    let observations = config.segments() + 1;
    let size = config.image_size;
    let images = batch
        .images
        .get(&run.camera)
        .ok_or_else(|| TrainError::Mismatch(format!("the batch has no {}", run.camera)))?;
    if images.len() != b * observations * 3 * size * size {
        return Err(TrainError::Mismatch(format!(
            "{} images are not {size}x{size} with {observations} observations per sample",
            run.camera
        )));
    }
    if batch.reward.len() != b * config.horizon {
        return Err(TrainError::Mismatch(
            "the dataset has no next.reward: the world model learns progress from it (generate with `sponge sim generate`)"
                .into(),
        ));
    }
    let segments = config.segments();
    let mut progress = Vec::with_capacity(b * observations);
    let mut risk = Vec::with_capacity(b * segments);
    for rewards in batch.reward.chunks_exact(config.horizon) {
        let (fractions, violations) = decode_rewards(rewards);
        progress.push(fractions[0]);
        for k in 1..=segments {
            progress.push(fractions[k * config.segment - 1]);
        }
        for k in 0..segments {
            let window = &violations[k * config.segment..(k + 1) * config.segment];
            risk.push(if window.iter().any(|v| *v) { 1f32 } else { 0.0 });
        }
    }
    let texts: Vec<&str> = batch
        .task_index
        .iter()
        .map(|i| tasks.get(*i as usize).map_or("", String::as_str))
        .collect();
    Ok(Prepared {
        images: Tensor::from_slice(images, (b * observations, 3, size, size), device)?,
        states: Tensor::from_vec(
            run.state.normalize(&batch.state),
            (b * observations, config.state_dim),
            device,
        )?,
        tokens: task_tokens(&texts, config, device)?,
        actions: Tensor::from_vec(
            run.action.normalize(&batch.action),
            (b, config.horizon, config.action_dim),
            device,
        )?,
        progress: Tensor::from_vec(progress, (b, observations), device)?,
        risk: Tensor::from_vec(risk, (b, segments), device)?,
    })
}

/// Tokens of each sample's instruction, `[B, max_text_tokens]`.
pub fn task_tokens(
    texts: &[&str],
    config: &WorldModelConfig,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let tokens: Vec<u32> = texts
        .iter()
        .flat_map(|t| tokenize(t, config.max_text_tokens))
        .collect();
    Tensor::from_vec(tokens, (texts.len(), config.max_text_tokens), device)
}

fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let (logits, targets) = (&logits.to_dtype(DType::F32)?, targets.to_dtype(DType::F32)?);
    // softplus(x) − y·x, written stably.
    let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    (softplus - (targets * logits)?)?.mean_all()
}

/// The mean squared difference of `a` and `b`, in f32 whatever their dtype.
fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.to_dtype(DType::F32)?.sqr()?.mean_all()
}

impl Prepared {
    /// The batch with its floating-point tensors in `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> candle_core::Result<Prepared> {
        Ok(Prepared {
            images: self.images.to_dtype(dtype)?,
            states: self.states.to_dtype(dtype)?,
            tokens: self.tokens.clone(),
            actions: self.actions.to_dtype(dtype)?,
            progress: self.progress.to_dtype(dtype)?,
            risk: self.risk.to_dtype(dtype)?,
        })
    }
}

/// The loss of a prepared batch (in the model's dtype); the losses in f32.
pub fn losses(model: &WorldModel, prepared: &Prepared) -> candle_core::Result<Losses> {
    let config = model.config();
    let b = prepared.actions.dim(0)?;
    let segments = config.segments();
    let observations = segments + 1;
    let text = model.text(&prepared.tokens)?;
    let text = text
        .unsqueeze(1)?
        .broadcast_as((b, observations, config.text_dim))?
        .reshape((b * observations, config.text_dim))?;
    let encoded = model
        .encode(&prepared.images, &prepared.states, &text)?
        .reshape((b, observations, config.latent))?;
    let first = encoded.i((.., 0))?;
    let predicted = Tensor::stack(&model.rollout(&first, &prepared.actions)?, 1)?;
    let target = encoded.narrow(1, 1, segments)?.detach();
    let latent = mse(&predicted, &target)?;

    // Heads on every latent, encoded and predicted.
    let all =
        Tensor::cat(&[&encoded, &predicted], 1)?.reshape((b * (observations + segments), config.latent))?;
    let states = prepared.states.reshape((b, observations, config.state_dim))?;
    let state_targets = Tensor::cat(&[&states, &states.narrow(1, 1, segments)?], 1)?
        .reshape((b * (observations + segments), config.state_dim))?;
    let state = mse(&model.state(&all)?, &state_targets)?;
    let progress_targets = Tensor::cat(
        &[&prepared.progress, &prepared.progress.narrow(1, 1, segments)?],
        1,
    )?
    .reshape(b * (observations + segments))?;
    let progress = mse(&model.progress(&all)?, &progress_targets)?;
    let risk = bce_with_logits(
        &model.risk_logit(&predicted.reshape((b * segments, config.latent))?)?,
        &prepared.risk.reshape(b * segments)?,
    )?;

    // Pictures of the first latent and the predicted ones.
    let drawn =
        Tensor::cat(&[&first.unsqueeze(1)?, &predicted], 1)?.reshape((b * observations, config.latent))?;
    let image = mse(&model.decode(&drawn)?, &half_size(&prepared.images)?)?;

    let total = (((&latent + (&image * 10.0)?)? + &state)? + ((&progress * 10.0)? + &risk)?)?;
    Ok(Losses {
        total,
        latent,
        image,
        state,
        progress,
        risk,
    })
}

/// Trains a world model on `dataset` into the run folder `out`, calling
/// `progress` after every step; returns the last log line. `resume` goes on
/// from the run's checkpoint.
pub fn train(
    dataset: &Path,
    out: &Path,
    model_config: &WorldModelConfig,
    config: &TrainConfig,
    device: &Device,
    resume: bool,
    mut progress: impl FnMut(&LogLine),
) -> Result<LogLine, TrainError> {
    let data = Dataset::open(dataset)?;
    let info = data.info();
    let cameras = info.cameras()?;
    let Some((camera, feature)) = cameras.first() else {
        return Err(TrainError::Mismatch(format!(
            "{} has no camera",
            dataset.display()
        )));
    };
    let mut model_config = model_config.clone();
    match feature.shape.as_slice() {
        [h, w, 3] if h == w && h % 16 == 0 => model_config.image_size = *h,
        shape => {
            return Err(TrainError::Mismatch(format!(
                "camera frames of shape {shape:?}: the world model takes square images, a multiple of 16 pixels"
            )));
        }
    }
    let config_path = out.join("config.json");
    let checkpoint = out.join("model.safetensors");
    if resume {
        let earlier: WmRunConfig = std::fs::read_to_string(&config_path)
            .map_err(|e| run_error(&config_path, e))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| run_error(&config_path, e)))?;
        if !checkpoint.exists() {
            return Err(run_error(&checkpoint, "no checkpoint to resume from"));
        }
        model_config = earlier.model;
    }
    model_config.validate().map_err(TrainError::Mismatch)?;
    let stats_path = sponge_datasets::layout::stats_path(dataset);
    let stats: serde_json::Value = std::fs::read_to_string(&stats_path)
        .map_err(|e| run_error(&stats_path, e))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| run_error(&stats_path, e)))?;
    let feature = |name: &str| {
        FeatureStats::from_json(&stats[name]).ok_or_else(|| {
            TrainError::Mismatch(format!("{} has no statistics for {name}", stats_path.display()))
        })
    };
    let run = WmRunConfig {
        model: model_config.clone(),
        state: Normalizer::from_stats(&feature("observation.state")?),
        action: Normalizer::from_stats(&feature("action")?),
        camera: camera.clone(),
        train: config.clone(),
        fps: info.fps,
    };
    std::fs::create_dir_all(out).map_err(|e| run_error(out, e))?;
    let json = serde_json::to_string_pretty(&run).map_err(|e| run_error(&config_path, e))?;
    std::fs::write(&config_path, json).map_err(|e| run_error(&config_path, e))?;

    let episodes = data.episodes().len();
    let nth = config.validation_every_nth_episode;
    let (val, train_eps): (Vec<usize>, Vec<usize>) =
        (0..episodes).partition(|e| nth > 0 && episodes > 1 && e % nth == nth - 1);
    // Every batch draws from as many episodes as fit in memory (all of a
    // typical dataset), not from a few at a time.
    let loader_config = |eps: Vec<usize>, seed: u64| LoaderConfig {
        pool_episodes: episodes_that_fit(&data, &eps, TRAINING_POOL_BYTES),
        batch_size: config.batch,
        observation_deltas: observation_deltas(&model_config),
        action_horizon: model_config.horizon,
        episodes: Some(eps),
        seed,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(dataset, loader_config(train_eps, config.seed))?;
    let mut val_loader = if val.is_empty() {
        None
    } else {
        Some(Loader::new(dataset, loader_config(val, config.seed + 1))?)
    };
    let tasks = data.tasks().to_vec();
    if device.is_cuda() {
        device.set_seed(config.seed)?;
    }
    let mut varmap = VarMap::new();
    let model = WorldModel::new(
        &model_config,
        VarBuilder::from_varmap(&varmap, DType::F32, device),
    )?;
    let log_path = out.join("log.jsonl");
    let mut history = if resume {
        load_weights(out, &mut varmap)?;
        read_log(&log_path)?
    } else {
        Vec::new()
    };
    let first_step = history
        .iter()
        .map(|l| l.step)
        .max()
        .unwrap_or(0)
        .min(config.steps);
    let averaged = average_of(config, out, &varmap, resume, device, |vb| {
        WorldModel::new(&model_config, vb)
    })?;
    let save = || save_weights(out, &varmap, averaged.as_ref().map(|(shadow, _, _)| shadow));
    let judged = averaged.as_ref().map_or(&model, |(_, model, _)| model);
    let vars: Vec<Var> = varmap.all_vars();
    let named = vars_for_cast(&varmap, config.precision)?;
    let mut optimizer = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resume)
        .truncate(!resume)
        .open(&log_path)
        .map_err(|e| run_error(&log_path, e))?;
    let started = std::time::Instant::now();
    let mut last = None;
    for step in first_step..config.steps {
        let lr = learning_rate(config, step);
        optimizer.set_learning_rate(lr);
        let prepared = prepare(&loader.next_batch()?, &run, &tasks, device)?;
        let parts = match config.precision {
            Precision::F32 => losses(&model, &prepared)?,
            Precision::Bf16 => {
                let cast = cast_model(&named, config.precision.dtype(), device, |vb| {
                    WorldModel::new(&model_config, vb)
                })?;
                losses(&cast, &prepared.to_dtype(config.precision.dtype())?)?
            }
        };
        let mut grads = parts.total.backward()?;
        let grad_norm = clip(&mut grads, &vars, config.grad_clip)?;
        optimizer.step(&grads)?;
        if let Some((_, _, ema)) = &averaged {
            ema.update(step)?;
        }
        let val_loss = match val_loader.as_mut() {
            Some(v) if (step + 1) % config.validation_every == 0 || step + 1 == config.steps => {
                let mut total = 0.0;
                for _ in 0..VALIDATION_BATCHES {
                    let prepared = prepare(&v.next_batch()?, &run, &tasks, device)?;
                    total += f64::from(losses(judged, &prepared)?.total.to_scalar::<f32>()?);
                }
                Some(total / VALIDATION_BATCHES as f64)
            }
            _ => None,
        };
        let line = LogLine {
            step: step + 1,
            loss: f64::from(parts.total.to_scalar::<f32>()?),
            lr,
            grad_norm,
            val_loss,
            samples_per_s: ((step + 1 - first_step) * config.batch) as f64 / started.elapsed().as_secs_f64(),
            aux_loss: None,
            val_aux_loss: None,
            place_loss: None,
            val_place_loss: None,
        };
        let text = serde_json::to_string(&line).map_err(|e| run_error(&log_path, e))?;
        writeln!(log, "{text}").map_err(|e| run_error(&log_path, e))?;
        history.push(line);
        if val_loss.is_some() {
            save()?;
            let png = out.join("loss.png");
            sponge_policy::plot::loss_curve(&history, &png).map_err(|e| run_error(&png, e))?;
        }
        progress(&line);
        last = Some(line);
    }
    save()?;
    let png = out.join("loss.png");
    sponge_policy::plot::loss_curve(&history, &png).map_err(|e| run_error(&png, e))?;
    last.ok_or_else(|| {
        TrainError::Mismatch(format!(
            "no steps left to train: the run is at step {first_step} of {}",
            config.steps
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_give_back_fractions_and_force_violations() {
        // Fractions 0.1, 0.2, 0.2 pressed too hard, 0.3, 0.8, 0.8 pressed too hard, 0.9.
        let rewards = [0.1, 0.2, 0.2 - FORCE_PENALTY, 0.3, 0.8, 0.8 - FORCE_PENALTY, 0.9];
        let (fractions, violations) = decode_rewards(&rewards);
        let expected = [0.1, 0.2, 0.2, 0.3, 0.8, 0.8, 0.9];
        for (f, e) in fractions.iter().zip(expected) {
            assert!((f - e).abs() < 1e-6, "{fractions:?}");
        }
        assert_eq!(violations, [false, false, true, false, false, true, false]);
    }
}
