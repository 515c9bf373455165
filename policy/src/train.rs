//! Training the policy on a LeRobot v3 dataset: flow matching with AdamW,
//! linear warm-up then cosine decay, gradient clipping, a validation loss
//! on held-out episodes, and a run folder with checkpoints and a log.
//!
//! The run folder holds `config.json` (model shape, normalisation, tasks,
//! training settings), `model.safetensors` (the latest checkpoint: the
//! exponential moving average of the weights, which is what inference
//! uses), `training.safetensors` (the optimiser's own weights, for
//! `--resume`), `log.jsonl` (one line per logged step) and `loss.png` (the
//! loss curve).

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use sponge_datasets::Dataset;
use sponge_datasets::loader::{
    Batch, Loader, LoaderConfig, TRAINING_POOL_BYTES, VALIDATION_BATCHES, episodes_that_fit,
};
use sponge_datasets::stats::FeatureStats;

use crate::augment::Augment;
use crate::model::{Losses, Targets};
use crate::tokenizer::Tokenizer;
use crate::{ActionFrame, Observation, Policy, PolicyConfig};

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset could not be used.
    #[error("dataset: {0}")]
    Dataset(#[from] sponge_datasets::Error),
    /// candle failed.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The run folder could not be written or read.
    #[error("{path}: {reason}")]
    Run {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The dataset does not fit the policy.
    #[error("{0}")]
    Mismatch(String),
}

/// A [`TrainError::Run`] naming the file at `path`.
pub fn run_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Run {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Mean and standard deviation per entry, to bring values near N(0, 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Means.
    pub mean: Vec<f32>,
    /// Standard deviations (at least 1e-3).
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Mean and standard deviation from a feature's dataset statistics.
    pub fn from_stats(stats: &FeatureStats) -> Normalizer {
        Normalizer {
            mean: stats.mean.iter().map(|v| *v as f32).collect(),
            std: stats.std.iter().map(|v| (*v as f32).max(1e-3)).collect(),
        }
    }

    /// Normalises rows of `values` (each `mean.len()` long).
    pub fn normalize(&self, values: &[f32]) -> Vec<f32> {
        let n = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (v - self.mean[i % n]) / self.std[i % n])
            .collect()
    }

    /// Mean and standard deviation of the offsets a relative policy learns:
    /// every action of every chunk less the state the chunk starts from
    /// (`episodes` as `(states, actions)` per frame; a chunk running past
    /// its episode's end repeats the last action, as the loader does).
    pub fn of_offsets(episodes: &[StatesAndActions], horizon: usize) -> Normalizer {
        let mut moments = Moments::default();
        for (states, actions) in episodes {
            let Some(last) = actions.len().checked_sub(1) else {
                continue;
            };
            for (t, state) in states.iter().enumerate() {
                for h in 0..horizon {
                    let action = &actions[(t + h).min(last)];
                    moments.add(action.iter().zip(state).map(|(a, s)| a - s));
                }
            }
        }
        moments.normalizer()
    }

    /// Mean and standard deviation of the motion a policy sees: each
    /// state less the state `frames` before it in its episode (the first
    /// state, before the episode had gone that far, as the loader does).
    pub fn of_motion(episodes: &[StatesAndActions], frames: usize) -> Normalizer {
        let mut moments = Moments::default();
        for (states, _) in episodes {
            for (t, state) in states.iter().enumerate() {
                let earlier = &states[t.saturating_sub(frames)];
                moments.add(state.iter().zip(earlier).map(|(s, e)| s - e));
            }
        }
        moments.normalizer()
    }

    /// Undoes [`normalize`](Self::normalize).
    pub fn denormalize(&self, values: &[f32]) -> Vec<f32> {
        let n = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| v * self.std[i % n] + self.mean[i % n])
            .collect()
    }
}

/// Running sums for a mean and standard deviation per entry.
#[derive(Default)]
struct Moments {
    n: f64,
    sum: Vec<f64>,
    square: Vec<f64>,
}

impl Moments {
    fn add(&mut self, row: impl Iterator<Item = f32>) {
        for (i, v) in row.enumerate() {
            if i >= self.sum.len() {
                self.sum.push(0.0);
                self.square.push(0.0);
            }
            let v = f64::from(v);
            self.sum[i] += v;
            self.square[i] += v * v;
        }
        self.n += 1.0;
    }

    fn normalizer(&self) -> Normalizer {
        let n = self.n.max(1.0);
        let mean: Vec<f64> = self.sum.iter().map(|v| v / n).collect();
        Normalizer {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std: self
                .square
                .iter()
                .zip(&mean)
                .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt() as f32).max(1e-3))
                .collect(),
        }
    }
}

/// An episode's states and actions, one row per frame.
pub type StatesAndActions = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear warm-up.
    pub warmup: usize,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm.
    pub grad_clip: f64,
    /// Measure the validation loss (and save a checkpoint) every this many steps.
    pub validation_every: usize,
    /// Episodes held out for validation: every n-th (0: none).
    pub validation_every_nth_episode: usize,
    /// Seed of the initialisation, the noise and the batches.
    pub seed: u64,
    /// Image augmentation of training batches (validation batches are left as they are).
    #[serde(default)]
    pub augment: Augment,
    /// Decay of the exponential moving average of the weights that the
    /// checkpoint holds (0: the checkpoint holds the raw weights). The
    /// average smooths the last steps' noise out of the weights, as
    /// diffusion and flow policies commonly do.
    #[serde(default)]
    pub ema_decay: f64,
    /// Noisy versions of each chunk the flow head learns from per step
    /// (the observation is encoded once for all of them).
    #[serde(default = "one")]
    pub flow_samples: usize,
    /// How the flow's times are drawn.
    #[serde(default)]
    pub flow_times: FlowTimes,
    /// Weight of the auxiliary loss: the policy predicts the dataset's
    /// `observation.environment_state` (normalised) from what it sees
    /// (0: no auxiliary head).
    #[serde(default)]
    pub aux_weight: f64,
    /// Whether the state token also takes entries of the dataset's
    /// `observation.environment_state` (see [`PolicyConfig::privileged`]),
    /// a diagnostic that runs only in the twin: `None` not, `Some` of no
    /// names all of them, else those named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<Vec<String>>,
    /// Standard deviation of the Gaussian noise added to a privileged
    /// policy's environment entries in training batches, in units of each
    /// entry's own standard deviation over the dataset: it teaches the
    /// policy to act on an imperfect perception of them (0: none).
    #[serde(default)]
    pub privileged_noise: f32,
    /// The dtype of the forward and backward passes.
    #[serde(default)]
    pub precision: Precision,
    /// Teaching the first instructed keypoint where the named spill lies
    /// in the first camera's picture (`None`: not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceTarget>,
}

/// How the first instructed keypoint learns where the named spill lies:
/// the dataset's `target.x_m` and `target.y_m` (where the dirt left of the
/// named spill lies on the table) seen through the camera become a small
/// Gaussian over the places of the keypoint's map, and the keypoint's
/// weights over the places learn it (dense supervision, as pose
/// estimators train heatmaps: every place of the map is told whether the
/// thing is there, where one regressed number tells little).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaceTarget {
    /// Weight of its loss (the Kullback-Leibler divergence of the
    /// keypoint's weights from the Gaussian) in the training loss.
    pub weight: f64,
    /// The first camera as the twin sets it up (its nominal pose).
    pub camera: crate::place::TableCamera,
    /// The Gaussian's standard deviation, in −1..1 units of the picture.
    pub sigma: f64,
}

/// The environment state entries a [`PlaceTarget`] is made from.
pub const PLACE_ENTRIES: [&str; 2] = ["target.x_m", "target.y_m"];

/// The dtype training computes in. The weights, the optimiser's moments
/// and the checkpoints stay f32 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// Mixed precision: each step runs the model on a bf16 copy of the f32
    /// weights (the copy's gradients flow back to them), with layer-norm
    /// statistics, softmaxes and the loss in f32. Meant for the GPU, whose
    /// tensor cores run bf16 products several times faster; the CPU has
    /// no fast bf16 and is slower with it.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision '{other}' (f32 or bf16)")),
        }
    }
}

impl Precision {
    /// The dtype of the forward pass.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// The model `build` makes from `vars` (`(name, variable)` pairs) cast to
/// `dtype`: every weight is a differentiable cast of its f32 variable, so
/// a loss computed with it sends its gradients to the variables.
pub fn cast_model<M>(
    vars: &[(String, Var)],
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> candle_core::Result<M> {
    let tensors: std::collections::HashMap<String, Tensor> = vars
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    // The map backend casts each weight to `dtype` as the model asks for it.
    build(VarBuilder::from_tensors(tensors, dtype, device))
}

/// Every variable of `varmap` by name, for [`cast_model`] each step; none
/// when training in f32, which needs no copy.
pub fn vars_for_cast(varmap: &VarMap, precision: Precision) -> Result<Vec<(String, Var)>, TrainError> {
    Ok(match precision {
        Precision::F32 => Vec::new(),
        Precision::Bf16 => varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Mismatch("the variable map is poisoned".into()))?
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect(),
    })
}

fn one() -> usize {
    1
}

/// How training draws the flow's times t (0 = noise, 1 = data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowTimes {
    /// Uniform on [0, 1).
    #[default]
    Uniform,
    /// Weighted towards the noisy end, as π0 does: t = 0.999·(1 − u) with u ~ Beta(1.5, 1).
    Beta,
}

impl std::str::FromStr for FlowTimes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(FlowTimes::Uniform),
            "beta" => Ok(FlowTimes::Beta),
            other => Err(format!("unknown flow times '{other}' (uniform or beta)")),
        }
    }
}

impl FlowTimes {
    /// `n` times on `device`.
    pub fn draw(self, n: usize, device: &Device) -> candle_core::Result<Tensor> {
        let u = Tensor::rand(0f32, 1f32, n, device)?;
        match self {
            FlowTimes::Uniform => Ok(u),
            // Inverse of the Beta(1.5, 1) distribution function u^1.5.
            FlowTimes::Beta => u.powf(1.0 / 1.5)?.affine(-0.999, 0.999),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 2000,
            batch: 32,
            learning_rate: 6e-4,
            warmup: 100,
            weight_decay: 1e-4,
            grad_clip: 1.0,
            validation_every: 100,
            validation_every_nth_episode: 10,
            seed: 0,
            augment: Augment::default(),
            ema_decay: 0.999,
            flow_samples: 1,
            flow_times: FlowTimes::Uniform,
            aux_weight: 0.0,
            privileged: None,
            privileged_noise: 0.0,
            precision: Precision::F32,
            place: None,
        }
    }
}

/// The run's `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// Model shape.
    pub policy: PolicyConfig,
    /// State normalisation.
    pub state: Normalizer,
    /// Action normalisation.
    pub action: Normalizer,
    /// Camera features, in the order the model takes them.
    pub cameras: Vec<String>,
    /// The dataset's tasks (index → text).
    pub tasks: Vec<String>,
    /// Training settings.
    pub train: TrainConfig,
    /// Frames per second of the dataset.
    pub fps: u32,
    /// Normalisation of the auxiliary head's targets (runs with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Normalizer>,
    /// Normalisation of the motion the state token sees (runs with
    /// `motion_frames` > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<Normalizer>,
    /// The indices of [`PLACE_ENTRIES`] in the dataset's environment
    /// state (runs with a [`PlaceTarget`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_entries: Option<[usize; 2]>,
}

impl RunConfig {
    /// The run folder `run`'s `config.json`, checked.
    pub fn read(run: &Path) -> Result<RunConfig, TrainError> {
        let config_path = run.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| TrainError::Run {
            path: config_path.clone(),
            reason: format!("{e} (is this a run folder written by `sponge train`?)"),
        })?;
        let config: RunConfig = serde_json::from_str(&text).map_err(|e| TrainError::Run {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        config.policy.validate().map_err(TrainError::Mismatch)?;
        Ok(config)
    }

    /// Whether this run, as a perception (`sponge train --aux-weight`,
    /// optionally `--place-weight`), can hand `policy` (a run trained with
    /// `--privileged`) its environment entries: it perceives as many as
    /// the policy takes, from the same cameras at the same size, and, when
    /// it sees motion, over the same frames. The error says what differs.
    pub fn serves(&self, policy: &RunConfig) -> Result<(), String> {
        let needed = policy.environment.as_ref().map_or(0, |n| n.mean.len());
        if policy.policy.privileged.is_empty() {
            return Err(
                "the policy takes no environment state (it was not trained with --privileged)".into(),
            );
        }
        if self.policy.aux_targets != needed {
            return Err(format!(
                "the perception perceives {} environment state entries (sponge train --aux-weight); the policy takes the dataset's {needed}",
                self.policy.aux_targets
            ));
        }
        if self.cameras != policy.cameras || self.policy.image_size != policy.policy.image_size {
            return Err(format!(
                "the perception sees {:?} at {} px, the policy {:?} at {} px",
                self.cameras, self.policy.image_size, policy.cameras, policy.policy.image_size
            ));
        }
        // A perception run that sees no motion needs no history of its own.
        let motion_differs =
            self.policy.motion_frames != policy.policy.motion_frames || self.fps != policy.fps;
        if self.policy.motion_frames > 0 && motion_differs {
            return Err(format!(
                "the perception sees motion over {} frames at {} fps, the policy over {} at {}: they would need two histories",
                self.policy.motion_frames, self.fps, policy.policy.motion_frames, policy.fps
            ));
        }
        Ok(())
    }

    /// The state token's inputs for one observation, normalised: the
    /// state (dataset units), then, for a policy that sees motion, the
    /// state less `earlier`, the state `motion_frames` before, then, for a
    /// privileged policy, its entries of the twin's `environment` state
    /// (all the twin's entries, as the dataset records them).
    pub fn state_input(
        &self,
        state: &[f32],
        earlier: &[f32],
        environment: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        let mut values = self.state.normalize(state);
        if self.policy.motion_frames > 0 {
            let motion = self.motion.as_ref().ok_or_else(|| {
                TrainError::Mismatch("the policy sees motion and the run has no motion statistics".into())
            })?;
            if earlier.len() != state.len() {
                return Err(TrainError::Mismatch(format!(
                    "an earlier state of {} values for a state of {}",
                    earlier.len(),
                    state.len()
                )));
            }
            let change: Vec<f32> = state.iter().zip(earlier).map(|(s, e)| s - e).collect();
            values.extend(motion.normalize(&change));
        }
        if !self.policy.privileged.is_empty() {
            let normalizer = self.environment.as_ref().ok_or_else(|| {
                TrainError::Mismatch(
                    "the policy is privileged and the run has no environment statistics".into(),
                )
            })?;
            if environment.len() != normalizer.mean.len() {
                return Err(TrainError::Mismatch(format!(
                    "the policy is privileged: it takes the twin's environment state ({} values) and was given {}; \
                     such a policy runs only in the twin (sponge eval)",
                    normalizer.mean.len(),
                    environment.len()
                )));
            }
            let all = normalizer.normalize(environment);
            for &i in &self.policy.privileged {
                values.push(*all.get(i).ok_or_else(|| {
                    TrainError::Mismatch(format!(
                        "the policy takes environment state entry {i}, and the environment state has {}",
                        all.len()
                    ))
                })?);
            }
        }
        if self.policy.blind_state {
            values.iter_mut().for_each(|v| *v = 0.0);
        }
        Ok(values)
    }

    /// The frame offsets of the observations a training sample needs:
    /// the earlier state's, then the current one.
    pub fn observation_deltas(&self) -> Vec<i64> {
        match self.policy.motion_frames {
            0 => vec![0],
            k => vec![-(k as i64), 0],
        }
    }
}

/// One logged step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Step (1-based).
    pub step: usize,
    /// Training loss of this step.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Validation loss, when measured at this step.
    pub val_loss: Option<f64>,
    /// Samples per second since the start.
    pub samples_per_s: f64,
    /// The auxiliary loss of this step (runs with an auxiliary head; not
    /// in `loss`, which stays the flow's alone so runs compare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_loss: Option<f64>,
    /// The auxiliary loss on the held-out episodes, when measured at this
    /// step: whether what the head learned holds on scenes it never saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_aux_loss: Option<f64>,
    /// The place loss of this step (runs with a [`PlaceTarget`]; not in `loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_loss: Option<f64>,
    /// The place loss on the held-out episodes, when measured at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_place_loss: Option<f64>,
}

/// The learning rate at `step` (0-based): linear warm-up, then cosine to 10%.
pub fn learning_rate(config: &TrainConfig, step: usize) -> f64 {
    let peak = config.learning_rate;
    if step < config.warmup {
        return peak * (step + 1) as f64 / config.warmup as f64;
    }
    let span = config.steps.saturating_sub(config.warmup).max(1) as f64;
    let progress = ((step - config.warmup) as f64 / span).min(1.0);
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

struct Prepared {
    observation: Observation,
    actions: Tensor,
    /// Normalised auxiliary targets, `[B, aux_targets]` (runs with an auxiliary head).
    environment: Option<Tensor>,
    /// Where the named spill lies in the first camera's picture, as
    /// weights over the places of the 1/4-size map (runs with a [`PlaceTarget`]).
    place: Option<Tensor>,
    /// Where the named spill lies on the table, metres, `[x, y]` per
    /// sample (runs with a [`PlaceTarget`]).
    place_on_table: Vec<[f64; 2]>,
}

impl Prepared {
    /// The observation with its images and state in `dtype` (the tokens are ids).
    fn observation_as(&self, dtype: DType) -> candle_core::Result<Observation> {
        Ok(Observation {
            images: self.observation.images.to_dtype(dtype)?,
            tokens: self.observation.tokens.clone(),
            state: self.observation.state.to_dtype(dtype)?,
        })
    }
}

fn prepare(
    batch: &Batch,
    run: &RunConfig,
    tokenizer: &Tokenizer,
    device: &Device,
    augment: Option<(&Augment, &mut StdRng)>,
) -> Result<Prepared, TrainError> {
    let config = &run.policy;
    let mut augment = augment;
    let b = batch.size;
    let size = config.image_size;
    // Each sample holds its observations oldest first; the last is now.
    let observations = run.observation_deltas().len();
    let now = |values: &[f32]| -> Vec<f32> {
        let per_sample = values.len() / b.max(1);
        let width = per_sample / observations;
        values
            .chunks(per_sample.max(1))
            .flat_map(|sample| sample[(observations - 1) * width..].iter().copied())
            .collect()
    };
    let mut images = Vec::with_capacity(run.cameras.len());
    for camera in &run.cameras {
        let data = batch
            .images
            .get(camera)
            .ok_or_else(|| TrainError::Mismatch(format!("the batch has no {camera}")))?;
        if data.len() != b * observations * 3 * size * size {
            return Err(TrainError::Mismatch(format!(
                "{camera} images are not {size}x{size} (the model's image size)"
            )));
        }
        let mut data = now(data);
        if let Some((augment, rng)) = augment.as_mut() {
            augment.apply(&mut data, size, *rng);
        }
        images.push(Tensor::from_vec(data, (b, 1, 3, size, size), device)?);
    }
    let images = Tensor::cat(&images, 1)?;
    let tokens: Vec<u32> = batch
        .task_index
        .iter()
        .flat_map(|i| {
            let text = run.tasks.get(*i as usize).map_or("", String::as_str);
            tokenizer.encode(text, config.max_text_tokens)
        })
        .collect();
    let states = now(&batch.state);
    let entries = run.environment.as_ref().map_or(0, |n| n.mean.len());
    let place = run.train.place.as_ref().zip(run.place_entries);
    let environment_now = if !config.privileged.is_empty() || config.aux_targets > 0 || place.is_some() {
        let values = now(&batch.environment_state);
        if values.len() != b * entries {
            return Err(TrainError::Mismatch(format!(
                "the batch has {} environment state values for {b} samples of {entries}",
                values.len(),
            )));
        }
        values
    } else {
        Vec::new()
    };
    // A policy that takes the entries as the episode began sees those of its first frame.
    let privileged_values = match config.privileged_start {
        true => &batch.environment_state_start,
        false => &environment_now,
    };
    if !config.privileged.is_empty() && config.privileged_start && privileged_values.len() != b * entries {
        return Err(TrainError::Mismatch(format!(
            "the batch has {} environment state values for {b} samples of {entries}",
            privileged_values.len(),
        )));
    }
    let mut state = Vec::with_capacity(b * config.state_inputs());
    for (i, (sample, current)) in batch
        .state
        .chunks(observations * config.state_dim)
        .zip(states.chunks(config.state_dim))
        .enumerate()
    {
        let environment = match config.privileged.is_empty() {
            true => &[][..],
            false => &privileged_values[i * entries..(i + 1) * entries],
        };
        let mut values = run.state_input(current, &sample[..config.state_dim], environment)?;
        let noise = run.train.privileged_noise;
        if let (Some((_, rng)), true) = (augment.as_mut(), noise > 0.0) {
            let from = values.len() - config.privileged.len();
            for v in &mut values[from..] {
                *v +=
                    noise * rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut **rng);
            }
        }
        state.extend(values);
    }
    // Padded actions beyond an episode's end repeat its last action: the arm stays.
    let actions = match config.actions {
        ActionFrame::Absolute => run.action.normalize(&batch.action),
        ActionFrame::Relative => run
            .action
            .normalize(&offsets(&batch.action, &states, config.state_dim)),
    };
    let environment = match &run.environment {
        Some(normalizer) if config.aux_targets > 0 => Some(Tensor::from_vec(
            normalizer.normalize(&environment_now),
            (b, config.aux_targets),
            device,
        )?),
        _ => None,
    };
    let place_on_table: Vec<[f64; 2]> = match place {
        Some((_, [x, y])) => environment_now
            .chunks(entries.max(1))
            .map(|e| [f64::from(e[x]), f64::from(e[y])])
            .collect(),
        None => Vec::new(),
    };
    let place = match place {
        Some((target, _)) => {
            let side = size / 4;
            let mut weights = Vec::with_capacity(b * side * side);
            for &[x, y] in &place_on_table {
                let at = target.camera.project([x, y, 0.0]).ok_or_else(|| {
                    TrainError::Mismatch(format!("the named spill at ({x}, {y}) m lies behind the camera"))
                })?;
                weights.extend(crate::place::place_weights(at, side, target.sigma));
            }
            Some(Tensor::from_vec(weights, (b, side * side), device)?)
        }
        None => None,
    };
    Ok(Prepared {
        place,
        place_on_table,
        environment,
        observation: Observation {
            images,
            tokens: Tensor::from_vec(tokens, (b, config.max_text_tokens), device)?,
            state: Tensor::from_vec(state, (b, config.state_inputs()), device)?,
        },
        actions: Tensor::from_vec(actions, (b, config.horizon, config.action_dim), device)?,
    })
}

/// The indices of [`PLACE_ENTRIES`] in `info`'s environment state, for a
/// policy whose first instructed keypoint can learn them.
fn place_entries(
    info: &sponge_datasets::info::Info,
    policy: &PolicyConfig,
    dataset: &Path,
) -> Result<[usize; 2], TrainError> {
    if !matches!(
        policy.vision,
        crate::pretrained::Vision::Conv { instructed: 1.., .. }
    ) {
        return Err(TrainError::Mismatch(
            "a place target trains the first keypoint placed by the instruction: it needs the conv-text encoder"
                .into(),
        ));
    }
    let names = PLACE_ENTRIES.map(String::from);
    let found = privileged_entries(info, &names, dataset)?;
    Ok([found[0], found[1]])
}

/// The indices of the environment state entries a privileged policy
/// takes: all the dataset's for no `names`, else those named.
fn privileged_entries(
    info: &sponge_datasets::info::Info,
    names: &[String],
    dataset: &Path,
) -> Result<Vec<usize>, TrainError> {
    let feature = info
        .features()?
        .into_iter()
        .find(|(name, _)| name == sponge_datasets::writer::ENVIRONMENT_STATE)
        .map(|(_, f)| f)
        .filter(|f| f.shape.iter().product::<usize>() > 0)
        .ok_or_else(|| {
            TrainError::Mismatch(format!(
                "a privileged policy needs {} in the dataset, and {} has none (sponge sim generate records it)",
                sponge_datasets::writer::ENVIRONMENT_STATE,
                dataset.display()
            ))
        })?;
    let entries: usize = feature.shape.iter().product();
    if names.is_empty() {
        return Ok((0..entries).collect());
    }
    let known = environment_names(info, entries)?;
    names
        .iter()
        .map(|name| {
            known.iter().position(|k| k == name).ok_or_else(|| {
                TrainError::Mismatch(format!(
                    "{} has no environment state entry {name:?}; it has {}",
                    dataset.display(),
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// The file in a run with an auxiliary head that says how well the head
/// perceives each entry on the held-out episodes ([`PerceptionReport`]).
pub const PERCEPTION_REPORT: &str = "perception.json";

/// How well the auxiliary head perceives the environment state on the
/// held-out episodes, entry by entry, in the dataset's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceptionReport {
    /// Held-out samples judged.
    pub samples: usize,
    /// One per entry of `observation.environment_state`.
    pub entries: Vec<EntryError>,
}

/// The head's error on one environment state entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryError {
    /// The entry's name in the dataset.
    pub name: String,
    /// Root mean square of perceived less true, in the entry's units.
    pub rms_error: f64,
    /// Root mean square of the truth less the dataset's mean: the error of
    /// always guessing the mean.
    pub rms_spread: f64,
}

/// The names of the dataset's `entries` environment state entries (their
/// indices where the dataset names none).
fn environment_names(info: &sponge_datasets::info::Info, entries: usize) -> Result<Vec<String>, TrainError> {
    let names = info
        .features()?
        .into_iter()
        .find(|(name, _)| name == sponge_datasets::writer::ENVIRONMENT_STATE)
        .and_then(|(_, f)| f.names.as_array().cloned())
        .unwrap_or_default();
    Ok((0..entries)
        .map(|i| {
            names
                .get(i)
                .and_then(|n| n.as_str())
                .map_or_else(|| i.to_string(), str::to_owned)
        })
        .collect())
}

/// The auxiliary head's error on `VALIDATION_BATCHES` held-out batches.
fn held_out_perception(
    policy: &Policy,
    loader: &mut Loader,
    run: &RunConfig,
    tokenizer: &Tokenizer,
    device: &Device,
    normalizer: &Normalizer,
    names: &[String],
) -> Result<PerceptionReport, TrainError> {
    let n = normalizer.mean.len();
    let (mut error, mut spread, mut samples) = (vec![0.0f64; n], vec![0.0f64; n], 0);
    // The keypoint's place on the table: x and y error, and spread.
    let (mut place_error, mut place_spread, mut placed) = ([0.0f64; 2], [0.0f64; 2], 0);
    let camera = run.train.place.map(|p| p.camera);
    let mean = |i: usize| {
        run.place_entries
            .map_or(0.0, |e| f64::from(normalizer.mean[e[i]]))
    };
    for _ in 0..VALIDATION_BATCHES {
        let prepared = prepare(&loader.next_batch()?, run, tokenizer, device, None)?;
        // One encoding for the head and the keypoint.
        let (context, logits) = policy.encode_with_place(&prepared.observation_as(policy.dtype())?)?;
        if let (Some(truth), Some(perceived)) = (&prepared.environment, policy.perceive(&context)?) {
            let perceived: Vec<Vec<f32>> = perceived.to_dtype(DType::F32)?.to_vec2()?;
            let truth: Vec<Vec<f32>> = truth.to_vec2()?;
            for (p, t) in perceived.iter().zip(&truth) {
                for i in 0..n {
                    // Normalised values times the entry's deviation: the dataset's units.
                    let std = f64::from(normalizer.std[i]);
                    error[i] += (f64::from(p[i] - t[i]) * std).powi(2);
                    spread[i] += (f64::from(t[i]) * std).powi(2);
                }
                samples += 1;
            }
        }
        if let (Some(camera), Some(logits)) = (camera, logits) {
            for (place, truth) in crate::model::places_at_peak(&logits)?
                .iter()
                .zip(&prepared.place_on_table)
            {
                // A place above the horizon counts as the far edge of the work area.
                let seen = camera
                    .on_table([f64::from(place[0]), f64::from(place[1])])
                    .unwrap_or([truth[0], truth[1] + 1.0]);
                for i in 0..2 {
                    place_error[i] += (seen[i] - truth[i]).powi(2);
                    place_spread[i] += (truth[i] - mean(i)).powi(2);
                }
                placed += 1;
            }
        }
    }
    let rms = |sum: f64, samples: usize| (sum / samples.max(1) as f64).sqrt();
    let mut entries: Vec<EntryError> = match samples {
        0 => Vec::new(),
        _ => names
            .iter()
            .enumerate()
            .map(|(i, name)| EntryError {
                name: name.clone(),
                rms_error: rms(error[i], samples),
                rms_spread: rms(spread[i], samples),
            })
            .collect(),
    };
    if placed > 0 {
        for (i, name) in PLACE_KEYPOINT_ENTRIES.iter().enumerate() {
            entries.push(EntryError {
                name: (*name).to_owned(),
                rms_error: rms(place_error[i], placed),
                rms_spread: rms(place_spread[i], placed),
            });
        }
    }
    Ok(PerceptionReport {
        samples: samples.max(placed),
        entries,
    })
}

/// The names [`PerceptionReport`] gives the place the first instructed
/// keypoint finds, turned into metres on the table, for runs with a
/// [`PlaceTarget`].
pub const PLACE_KEYPOINT_ENTRIES: [&str; 2] = ["keypoint.x_m", "keypoint.y_m"];

/// Each sample's chunk less the sample's state (`actions` `[B, H, dims]`,
/// `states` `[B, dims]`).
pub fn offsets(actions: &[f32], states: &[f32], dims: usize) -> Vec<f32> {
    let per_sample = actions.len() / states.len().max(1) * dims;
    actions
        .chunks(per_sample.max(1))
        .zip(states.chunks(dims))
        .flat_map(|(chunk, state)| {
            chunk
                .chunks(dims)
                .flat_map(move |action| action.iter().zip(state).map(|(a, s)| a - s))
        })
        .collect()
}

/// The flow loss of a prepared batch with fresh noise and times
/// (`config.flow_samples` draws per chunk), and the auxiliary loss when
/// the batch carries its targets.
fn loss(
    policy: &Policy,
    prepared: &Prepared,
    config: &TrainConfig,
    device: &Device,
) -> Result<Losses, TrainError> {
    let (b, h, a) = prepared.actions.dims3()?;
    let rows = b * config.flow_samples.max(1);
    let dtype = policy.dtype();
    let noise = Tensor::randn(0f32, 1f32, (rows, h, a), device)?.to_dtype(dtype)?;
    // The times stay f32: the time features are computed from them in f32.
    let t = config.flow_times.draw(rows, device)?;
    let observation = prepared.observation_as(dtype)?;
    let environment = match &prepared.environment {
        Some(e) => Some(e.to_dtype(dtype)?),
        None => None,
    };
    let losses = policy.losses(
        &observation,
        &prepared.actions.to_dtype(dtype)?,
        &noise,
        &t,
        Targets {
            environment: environment.as_ref(),
            place: prepared.place.as_ref(),
        },
    )?;
    // Losses are reported, summed and differentiated from f32.
    let f32 = |t: Option<Tensor>| t.map(|t| t.to_dtype(DType::F32)).transpose();
    Ok(Losses {
        flow: losses.flow.to_dtype(DType::F32)?,
        aux: f32(losses.aux)?,
        place: f32(losses.place)?,
    })
}

/// Scales the gradients so their global norm is at most `max`; returns the norm before.
pub fn clip(grads: &mut candle_core::backprop::GradStore, vars: &[Var], max: f64) -> Result<f64, TrainError> {
    let mut total = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += f64::from(g.sqr()?.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        }
    }
    let norm = total.sqrt();
    if norm > max && norm.is_finite() {
        let scale = max / norm;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

/// Writes the variables to `path` through a temporary file, so that a
/// crash while saving leaves the previous checkpoint whole.
pub fn save_checkpoint(varmap: &VarMap, path: &Path) -> Result<(), TrainError> {
    let partial = path.with_extension("safetensors.partial");
    varmap.save(&partial).map_err(|e| run_error(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| run_error(path, e))
}

/// Saves a run's weights in `out`: with an `average`, the average in
/// `model.safetensors` (what inference loads) and the live weights in
/// `training.safetensors` (what `--resume` goes on from); without, the
/// live weights in `model.safetensors`.
pub fn save_weights(out: &Path, live: &VarMap, average: Option<&VarMap>) -> Result<(), TrainError> {
    match average {
        Some(average) => {
            save_checkpoint(live, &out.join(TRAINING_WEIGHTS))?;
            save_checkpoint(average, &out.join(MODEL_WEIGHTS))
        }
        None => save_checkpoint(live, &out.join(MODEL_WEIGHTS)),
    }
}

/// Loads the weights a resumed run in `out` goes on from into `live`.
pub fn load_weights(out: &Path, live: &mut VarMap) -> Result<(), TrainError> {
    let training = out.join(TRAINING_WEIGHTS);
    // A run without an average (or from an older sponge) has only the model file.
    let raw = if training.exists() {
        training
    } else {
        out.join(MODEL_WEIGHTS)
    };
    live.load(&raw).map_err(|e| run_error(&raw, e))
}

/// With a decay in `config`, the moving average of `live`'s weights, in a
/// second copy of the model that `build` makes (validation judges it, the
/// checkpoint holds it): its variables, the model and the average, started
/// from the live weights or, when resuming a run that kept an average, from
/// that average.
pub fn average_of<M>(
    config: &TrainConfig,
    out: &Path,
    live: &VarMap,
    resume: bool,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> Result<Option<(VarMap, M, Ema)>, TrainError> {
    if config.ema_decay <= 0.0 {
        return Ok(None);
    }
    let mut shadow = VarMap::new();
    let model = build(VarBuilder::from_varmap(&shadow, DType::F32, device))?;
    let ema = Ema::new(live, &shadow, config.ema_decay)?;
    if resume && out.join(TRAINING_WEIGHTS).exists() {
        let average = out.join(MODEL_WEIGHTS);
        shadow.load(&average).map_err(|e| run_error(&average, e))?;
    }
    Ok(Some((shadow, model, ema)))
}

/// The checkpoint inference loads.
pub const MODEL_WEIGHTS: &str = "model.safetensors";
/// The optimiser's own weights, beside an averaged checkpoint.
pub const TRAINING_WEIGHTS: &str = "training.safetensors";

/// An exponential moving average of a model's weights, kept in a second
/// copy of the model (its `shadow` variables, paired with the live ones by name).
pub struct Ema {
    decay: f64,
    pairs: Vec<(Var, Var)>,
}

impl Ema {
    /// Pairs `shadow`'s variables with `live`'s and starts the average at the live weights.
    pub fn new(live: &VarMap, shadow: &VarMap, decay: f64) -> Result<Ema, TrainError> {
        let poisoned = || TrainError::Mismatch("the variable map is poisoned".into());
        let live = live.data().lock().map_err(|_| poisoned())?;
        let shadow = shadow.data().lock().map_err(|_| poisoned())?;
        let mut pairs = Vec::with_capacity(live.len());
        for (name, var) in live.iter() {
            let twin = shadow
                .get(name)
                .ok_or_else(|| TrainError::Mismatch(format!("the averaged model has no {name}")))?;
            twin.set(&var.as_tensor().detach())?;
            pairs.push((twin.clone(), var.clone()));
        }
        Ok(Ema { decay, pairs })
    }

    /// Moves the average towards the live weights after optimiser step
    /// `step` (0-based). Early on the decay is lower, (1 + step) / (10 +
    /// step), so that the average does not remember the initialisation.
    pub fn update(&self, step: usize) -> Result<(), TrainError> {
        let decay = self.decay.min((1 + step) as f64 / (10 + step) as f64);
        for (average, live) in &self.pairs {
            let next =
                ((average.as_tensor().detach() * decay)? + (live.as_tensor().detach() * (1.0 - decay))?)?;
            average.set(&next)?;
        }
        Ok(())
    }
}

/// The lines of a run's `log.jsonl` (none when it does not exist; a line
/// cut by a crash is skipped).
pub fn read_log(log_path: &Path) -> Result<Vec<LogLine>, TrainError> {
    let text = match std::fs::read_to_string(log_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(run_error(log_path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .collect())
}

/// Redraws the run's `loss.png` from its log.
fn plot_log(out: &Path, history: &[LogLine]) -> Result<(), TrainError> {
    let png = out.join("loss.png");
    crate::plot::loss_curve(history, &png).map_err(|e| run_error(&png, e))
}

/// Trains a policy on the dataset at `dataset` into the run folder `out`,
/// calling `progress` after every step. Returns the last log line.
///
/// With `resume`, the run in `out` goes on from its checkpoint: its model
/// shape is kept, the weights are loaded, and the schedule continues from
/// the step of the checkpoint up to `config.steps`. (AdamW's moment
/// estimates are not saved; they restart, which the warm-up absorbs.)
pub fn train(
    dataset: &Path,
    out: &Path,
    policy_config: &PolicyConfig,
    config: &TrainConfig,
    device: &Device,
    resume: bool,
    mut progress: impl FnMut(&LogLine),
) -> Result<LogLine, TrainError> {
    let data = Dataset::open(dataset)?;
    let info = data.info();
    let camera_features = info.cameras()?;
    let mut policy_config = policy_config.clone();
    policy_config.cameras = camera_features.len();
    let Some((_, first)) = camera_features.first() else {
        return Err(TrainError::Mismatch(format!(
            "{} has no camera",
            dataset.display()
        )));
    };
    // The model takes the dataset's (square) image size.
    match first.shape.as_slice() {
        [h, w, 3] if h == w && h % 16 == 0 => policy_config.image_size = *h,
        shape => {
            return Err(TrainError::Mismatch(format!(
                "camera frames of shape {shape:?}: the policy takes square images, a multiple of 16 pixels"
            )));
        }
    }
    let cameras: Vec<String> = camera_features.into_iter().map(|(name, _)| name).collect();
    let config_path = out.join("config.json");
    let checkpoint = out.join(MODEL_WEIGHTS);
    if resume {
        let earlier: RunConfig = std::fs::read_to_string(&config_path)
            .map_err(|e| run_error(&config_path, e))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| run_error(&config_path, e)))?;
        if earlier.cameras != cameras {
            return Err(TrainError::Mismatch(format!(
                "the run was trained on cameras {:?}, the dataset has {cameras:?}",
                earlier.cameras
            )));
        }
        if !checkpoint.exists() {
            return Err(run_error(&checkpoint, "no checkpoint to resume from"));
        }
        policy_config = earlier.policy;
    }
    let environment_entries = info
        .features()?
        .into_iter()
        .find(|(name, _)| name == sponge_datasets::writer::ENVIRONMENT_STATE)
        .map_or(0, |(_, f)| f.shape.iter().product());
    if config.aux_weight > 0.0 {
        if environment_entries == 0 {
            return Err(TrainError::Mismatch(format!(
                "an auxiliary loss needs {} in the dataset, and {} has none (sponge sim generate records it)",
                sponge_datasets::writer::ENVIRONMENT_STATE,
                dataset.display()
            )));
        }
        if resume && policy_config.aux_targets != environment_entries {
            return Err(TrainError::Mismatch(format!(
                "the run's auxiliary head predicts {} entries, the dataset's environment state has {environment_entries}",
                policy_config.aux_targets
            )));
        }
        policy_config.aux_targets = environment_entries;
    } else if !resume {
        policy_config.aux_targets = 0;
    }
    if let (Some(names), false) = (&config.privileged, resume) {
        policy_config.privileged = privileged_entries(info, names, dataset)?;
    } else if !resume {
        policy_config.privileged = Vec::new();
        policy_config.privileged_start = false;
    }
    policy_config.validate().map_err(TrainError::Mismatch)?;
    let place_entries = match &config.place {
        Some(_) => Some(place_entries(info, &policy_config, dataset)?),
        None => None,
    };
    let stats_path = sponge_datasets::layout::stats_path(dataset);
    let stats: serde_json::Value = std::fs::read_to_string(&stats_path)
        .map_err(|e| run_error(&stats_path, e))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| run_error(&stats_path, e)))?;
    let feature = |name: &str| {
        FeatureStats::from_json(&stats[name]).ok_or_else(|| {
            TrainError::Mismatch(format!("{} has no statistics for {name}", stats_path.display()))
        })
    };
    let values = if policy_config.actions == ActionFrame::Relative || policy_config.motion_frames > 0 {
        (0..data.episodes().len())
            .map(|i| data.read_episode_values(i).map(|e| (e.state, e.action)))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let action = match policy_config.actions {
        ActionFrame::Absolute => Normalizer::from_stats(&feature("action")?),
        ActionFrame::Relative => Normalizer::of_offsets(&values, policy_config.horizon),
    };
    let motion = (policy_config.motion_frames > 0)
        .then(|| Normalizer::of_motion(&values, policy_config.motion_frames));
    let run = RunConfig {
        policy: policy_config.clone(),
        state: Normalizer::from_stats(&feature("observation.state")?),
        action,
        cameras,
        tasks: data.tasks().to_vec(),
        train: config.clone(),
        fps: info.fps,
        environment: if config.aux_weight > 0.0
            || !policy_config.privileged.is_empty()
            || place_entries.is_some()
        {
            Some(Normalizer::from_stats(&feature(
                sponge_datasets::writer::ENVIRONMENT_STATE,
            )?))
        } else {
            None
        },
        motion,
        place_entries,
    };
    std::fs::create_dir_all(out).map_err(|e| run_error(out, e))?;
    let json = serde_json::to_string_pretty(&run).map_err(|e| run_error(&config_path, e))?;
    std::fs::write(&config_path, json).map_err(|e| run_error(&config_path, e))?;

    // Episodes: every n-th held out for validation.
    let episodes = data.episodes().len();
    let nth = config.validation_every_nth_episode;
    let (val, train_eps): (Vec<usize>, Vec<usize>) =
        (0..episodes).partition(|e| nth > 0 && episodes > 1 && e % nth == nth - 1);
    // Every batch draws from as many episodes as fit in memory (all of a
    // typical dataset), not from a few at a time.
    let loader_config = |eps: Vec<usize>, seed: u64| LoaderConfig {
        pool_episodes: episodes_that_fit(&data, &eps, TRAINING_POOL_BYTES),
        batch_size: config.batch,
        observation_deltas: run.observation_deltas(),
        action_horizon: policy_config.horizon,
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

    // The CUDA generator takes a seed; candle's CPU generator cannot be seeded.
    if device.is_cuda() {
        device.set_seed(config.seed)?;
    }
    let mut varmap = VarMap::new();
    let policy = Policy::new(
        &policy_config,
        VarBuilder::from_varmap(&varmap, DType::F32, device),
    )?;
    let log_path = out.join("log.jsonl");
    // The log so far (for the loss curve), and the step to go on from.
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
    if !resume && let crate::pretrained::Vision::Resnet { path, .. } = &policy_config.vision {
        crate::pretrained::load_into(&varmap, path).map_err(TrainError::Mismatch)?;
    }
    if !resume && let crate::bert::Text::Bert { path, .. } = &policy_config.text {
        crate::pretrained::load_weights(&varmap, path, crate::bert::BERT_PREFIX, "bert.")
            .map_err(TrainError::Mismatch)?;
        // The run keeps the vocabulary, so that it runs without the folder.
        let vocab = out.join("vocab.txt");
        std::fs::copy(path.join("vocab.txt"), &vocab).map_err(|e| run_error(&vocab, e))?;
    }
    let tokenizer = Tokenizer::for_run(out, &policy_config.text).map_err(TrainError::Mismatch)?;
    // Frozen pretrained encoders are left out of the optimiser.
    let vars: Vec<Var> = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Mismatch("the variable map is poisoned".into()))?
        .iter()
        .filter(|(name, _)| {
            !(policy_config.vision.frozen() && name.starts_with(crate::pretrained::BACKBONE_PREFIX)
                || policy_config.text.frozen() && name.starts_with(crate::bert::BERT_PREFIX))
        })
        .map(|(_, var)| var.clone())
        .collect();
    let named = vars_for_cast(&varmap, config.precision)?;
    let averaged = average_of(config, out, &varmap, resume, device, |vb| {
        Policy::new(&policy_config, vb)
    })?;
    let save = || save_weights(out, &varmap, averaged.as_ref().map(|(shadow, _, _)| shadow));
    let judged = averaged.as_ref().map_or(&policy, |(_, model, _)| model);
    let mut optimizer = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = StdRng::seed_from_u64(config.seed);
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
        let prepared = prepare(
            &loader.next_batch()?,
            &run,
            &tokenizer,
            device,
            Some((&config.augment, &mut rng)),
        )?;
        let cast;
        let stepped = match config.precision {
            Precision::F32 => &policy,
            Precision::Bf16 => {
                cast = cast_model(&named, config.precision.dtype(), device, |vb| {
                    Policy::new(&policy_config, vb)
                })?;
                &cast
            }
        };
        let losses = loss(stepped, &prepared, config, device)?;
        let mut total = losses.flow.clone();
        if let Some(aux) = &losses.aux {
            total = (total + (aux * config.aux_weight)?)?;
        }
        if let (Some(place), Some(target)) = (&losses.place, &config.place) {
            total = (total + (place * target.weight)?)?;
        }
        let mut grads = total.backward()?;
        let grad_norm = clip(&mut grads, &vars, config.grad_clip)?;
        optimizer.step(&grads)?;
        if let Some((_, _, ema)) = &averaged {
            ema.update(step)?;
        }
        let (val_loss, val_aux_loss, val_place_loss) = match val_loader.as_mut() {
            Some(v) if (step + 1) % config.validation_every == 0 || step + 1 == config.steps => {
                let (mut total, mut aux_total, mut place_total) = (0.0, None, None);
                let add = |sum: &mut Option<f64>, t: Option<Tensor>| -> Result<(), TrainError> {
                    if let Some(t) = t {
                        *sum.get_or_insert(0.0) += f64::from(t.to_scalar::<f32>()?);
                    }
                    Ok(())
                };
                for _ in 0..VALIDATION_BATCHES {
                    let prepared = prepare(&v.next_batch()?, &run, &tokenizer, device, None)?;
                    let losses = loss(judged, &prepared, config, device)?;
                    total += f64::from(losses.flow.to_scalar::<f32>()?);
                    add(&mut aux_total, losses.aux)?;
                    add(&mut place_total, losses.place)?;
                }
                let batches = VALIDATION_BATCHES as f64;
                (
                    Some(total / batches),
                    aux_total.map(|a: f64| a / batches),
                    place_total.map(|a: f64| a / batches),
                )
            }
            _ => (None, None, None),
        };
        let line = LogLine {
            step: step + 1,
            loss: f64::from(losses.flow.to_scalar::<f32>()?),
            lr,
            grad_norm,
            val_loss,
            samples_per_s: ((step + 1 - first_step) * config.batch) as f64 / started.elapsed().as_secs_f64(),
            aux_loss: losses
                .aux
                .map(|a| a.to_scalar::<f32>().map(f64::from))
                .transpose()?,
            val_aux_loss,
            place_loss: losses
                .place
                .map(|a| a.to_scalar::<f32>().map(f64::from))
                .transpose()?,
            val_place_loss,
        };
        let text = serde_json::to_string(&line).map_err(|e| run_error(&log_path, e))?;
        writeln!(log, "{text}").map_err(|e| run_error(&log_path, e))?;
        history.push(line);
        if val_loss.is_some() {
            save()?;
            plot_log(out, &history)?;
        }
        progress(&line);
        last = Some(line);
    }
    save()?;
    plot_log(out, &history)?;
    if let (Some(v), Some(normalizer)) = (val_loader.as_mut(), run.environment.as_ref())
        && (policy_config.aux_targets > 0 || run.place_entries.is_some())
    {
        let names = environment_names(info, normalizer.mean.len())?;
        let report = held_out_perception(judged, v, &run, &tokenizer, device, normalizer, &names)?;
        let path = out.join(PERCEPTION_REPORT);
        let json = serde_json::to_string_pretty(&report).map_err(|e| run_error(&path, e))?;
        std::fs::write(&path, json).map_err(|e| run_error(&path, e))?;
    }
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

    /// One joint, state and action both 0, 1, 2: with a horizon of 2 the
    /// offsets are a[min(t+h, 2)] - s[t] = 0, 1 | 0, 1 | 0, 0 (the last
    /// frame repeats), mean 1/3, variance 1/3 - 1/9 = 2/9.
    #[test]
    fn offsets_are_taken_from_each_chunks_first_state() {
        let ramp: Vec<Vec<f32>> = (0..3).map(|v| vec![v as f32]).collect();
        let normalizer = Normalizer::of_offsets(&[(ramp.clone(), ramp)], 2);
        assert!((normalizer.mean[0] - 1.0 / 3.0).abs() < 1e-6);
        assert!((normalizer.std[0] - (2.0f32 / 9.0).sqrt()).abs() < 1e-6);
        // Two samples of two dims, horizon 2.
        let actions = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(
            offsets(&actions, &[1.0, 1.0, 10.0, 20.0], 2),
            vec![0.0, 1.0, 2.0, 3.0, -5.0, -14.0, -3.0, -12.0]
        );
    }

    /// Two samples of one episode, at its first frame and later: a policy
    /// that takes its privileged entry as the episode began sees the first
    /// frame's value in both; one that takes it now sees each its own.
    #[test]
    fn a_policy_privileged_at_the_start_sees_the_first_frames_entries() {
        let identity = |n: usize| Normalizer {
            mean: vec![0.0; n],
            std: vec![1.0; n],
        };
        let run = |privileged_start: bool| RunConfig {
            policy: PolicyConfig {
                image_size: 16,
                horizon: 2,
                actions_per_token: 1,
                privileged: vec![1],
                privileged_start,
                ..PolicyConfig::default()
            },
            state: identity(6),
            action: identity(6),
            cameras: vec!["front".into()],
            tasks: vec!["wipe up the ink".into()],
            train: TrainConfig::default(),
            fps: 30,
            environment: Some(identity(2)),
            motion: None,
            place_entries: None,
        };
        let batch = Batch {
            size: 2,
            state: vec![0.0; 12],
            state_is_pad: vec![false; 2],
            action: vec![0.0; 24],
            action_is_pad: vec![false; 4],
            reward: Vec::new(),
            // (x, y) of the target now, then as the episode began.
            environment_state: vec![0.1, 0.2, 0.3, 0.4],
            environment_state_start: vec![0.1, 0.2, 0.1, 0.2],
            images: [("front".to_owned(), vec![0.5; 2 * 3 * 16 * 16])]
                .into_iter()
                .collect(),
            task_index: vec![0, 0],
            source: vec![(0, 0), (0, 7)],
        };
        let privileged_of = |run: &RunConfig| -> Vec<f32> {
            let prepared = prepare(&batch, run, &Tokenizer::Words, &Device::Cpu, None).expect("prepare");
            let state: Vec<Vec<f32>> = prepared.observation.state.to_vec2().expect("state");
            state.iter().map(|row| row[6]).collect()
        };
        assert_eq!(privileged_of(&run(false)), vec![0.2, 0.4]);
        assert_eq!(privileged_of(&run(true)), vec![0.2, 0.2]);
    }

    fn mean_and_range(times: FlowTimes) -> (f64, f32, f32) {
        let t: Vec<f32> = times
            .draw(20_000, &Device::Cpu)
            .expect("draw")
            .to_vec1()
            .expect("vec");
        let mean = t.iter().map(|&x| f64::from(x)).sum::<f64>() / t.len() as f64;
        let min = t.iter().copied().fold(f32::MAX, f32::min);
        let max = t.iter().copied().fold(f32::MIN, f32::max);
        (mean, min, max)
    }

    #[test]
    fn beta_flow_times_lean_towards_the_noise() {
        // u ~ Beta(1.5, 1) has mean 0.6, so t = 0.999 (1 − u) has mean about 0.4.
        let (mean, min, max) = mean_and_range(FlowTimes::Beta);
        assert!((mean - 0.3996).abs() < 0.01, "beta mean {mean}");
        assert!(min >= 0.0 && max <= 0.999, "beta range {min}..{max}");
        // More of them below 0.2 than a uniform draw gives (P = 1 − (0.8/0.999)^1.5 ≈ 0.28).
        let t: Vec<f32> = FlowTimes::Beta
            .draw(20_000, &Device::Cpu)
            .expect("draw")
            .to_vec1()
            .expect("vec");
        let low = t.iter().filter(|&&x| x < 0.2).count() as f64 / t.len() as f64;
        assert!((low - 0.283).abs() < 0.02, "share below 0.2: {low}");
        let (mean, ..) = mean_and_range(FlowTimes::Uniform);
        assert!((mean - 0.5).abs() < 0.01, "uniform mean {mean}");
    }

    #[test]
    fn flow_times_parse_by_name() {
        assert_eq!("beta".parse::<FlowTimes>(), Ok(FlowTimes::Beta));
        assert_eq!("uniform".parse::<FlowTimes>(), Ok(FlowTimes::Uniform));
        assert!(
            "gauss"
                .parse::<FlowTimes>()
                .unwrap_err()
                .contains("uniform or beta")
        );
    }
}
