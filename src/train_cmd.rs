//! `sponge train`: the policy on a dataset, into a run folder.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sponge_policy::PolicyConfig;
use sponge_policy::train::{LogLine, TrainConfig, TrainError, train};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU (build with --features cuda).
    Cuda,
}

/// The image encoder trained from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderArg {
    /// Patch merges: each of 36 tokens sees its own 16×16 patch (the default).
    Patch,
    /// 3×3 convolutions between patch merges, plus 8 spatial-softmax keypoint
    /// tokens (slower; no better in closed loop so far, see README).
    Conv,
    /// As conv, plus 4 keypoints placed by the instruction: where the map
    /// best matches queries drawn from its words, to find the named spill.
    ConvText,
}

impl EncoderArg {
    /// The policy's vision for this encoder, with `keypoints` free
    /// keypoints (8 when not given; only the conv encoders have them).
    pub fn vision(self, keypoints: Option<u64>) -> anyhow::Result<sponge_policy::pretrained::Vision> {
        let conv = |instructed| sponge_policy::pretrained::Vision::Conv {
            keypoints: keypoints.map_or(8, |n| n as usize),
            instructed,
        };
        Ok(match self {
            EncoderArg::Patch if keypoints.is_some() => {
                bail!("--keypoints is for --encoder conv or conv-text")
            }
            EncoderArg::Patch => sponge_policy::pretrained::Vision::Scratch,
            EncoderArg::Conv => conv(0),
            EncoderArg::ConvText => conv(4),
        })
    }
}

/// `sponge train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The LeRobot v3 dataset (e.g. from `sponge sim generate`).
    #[arg(long)]
    dataset: PathBuf,
    /// The run folder: config.json, model.safetensors, log.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate (after warm-up; cosine decay to a tenth).
    #[arg(long, default_value_t = 6e-4)]
    lr: f64,
    /// Seed of the initialisation, the noise and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// How the policy produces chunks: flow (flow matching, the default) or l1 (ACT-style baseline).
    #[arg(long, default_value = "flow")]
    head: sponge_policy::Head,
    /// What the policy's actions are: absolute (joint goals, as the dataset
    /// stores them) or relative (offsets from the joint state each chunk is
    /// drawn for; the policy adds the state back when it acts).
    #[arg(long, default_value = "absolute")]
    actions: sponge_policy::ActionFrame,
    /// Let the policy see how the joints moved over the last N frames (the
    /// state less the state N frames before, as a second input to the state
    /// token; 0: the state alone). One frame does not show which way a sweep
    /// goes or whether the sponge is going down or coming up.
    #[arg(long, default_value_t = PolicyConfig::default().motion_frames)]
    motion_frames: usize,
    /// Hide the joint state from the model (its state token's inputs are
    /// zero): for a perception run (`--aux-weight`, used by `sponge eval
    /// --perception`) that must find the target in the pictures, not read it
    /// from where the demonstrator's arm was heading.
    #[arg(long)]
    blind_state: bool,
    /// Actions per chunk (at the dataset's rate: 50 is 1.7 s at 30 Hz).
    #[arg(long, default_value_t = PolicyConfig::default().horizon)]
    horizon: usize,
    /// Consecutive actions the action expert handles as one token (divides
    /// --horizon; fewer means more tokens, finer detail, slower sampling).
    #[arg(long, default_value_t = PolicyConfig::default().actions_per_token)]
    actions_per_token: usize,
    #[command(flatten)]
    size: TransformerSize,
    /// A pretrained ResNet (a local folder in the Hugging Face layout:
    /// config.json and model.safetensors, e.g. a download of
    /// microsoft/resnet-18) as the image encoder instead of the small one
    /// trained from scratch.
    #[arg(long, value_name = "DIR")]
    vision_resnet: Option<PathBuf>,
    /// The image encoder trained from scratch (when no --vision-resnet).
    #[arg(long, value_enum, default_value_t = EncoderArg::Patch, conflicts_with = "vision_resnet")]
    encoder: EncoderArg,
    /// With --encoder conv or conv-text: spatial-softmax keypoints per
    /// camera (default 8). More give more chances that one settles on the
    /// spill rather than on the arm.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    keypoints: Option<u64>,
    /// Keep the pretrained image encoder's weights as they are.
    #[arg(long, requires = "vision_resnet")]
    freeze_vision: bool,
    /// A pretrained BERT-style text encoder (a local folder in the Hugging
    /// Face layout: config.json, vocab.txt and model.safetensors, e.g. a
    /// download of sentence-transformers/all-MiniLM-L6-v2) instead of the
    /// small one trained from scratch.
    #[arg(long, value_name = "DIR")]
    text_bert: Option<PathBuf>,
    /// Keep the pretrained text encoder's weights as they are.
    #[arg(long, requires = "text_bert")]
    freeze_text: bool,
    /// Largest random shift of the training images, pixels in each
    /// direction (edges repeated; 0: none). A shift moves the spill in the
    /// picture as much as it moves the arm's base.
    #[arg(long, default_value_t = sponge_policy::augment::Augment::default().shift_px)]
    shift_px: usize,
    /// Decay of the moving average of the weights that the checkpoint
    /// holds (0.999 averages about the last thousand steps; 0 keeps the raw
    /// weights).
    #[arg(long, default_value_t = 0.999, value_parser = crate::train_cmd::ema_decay)]
    ema_decay: f64,
    /// Noisy versions of each chunk the flow head learns from per step;
    /// the observation is encoded once for all of them, so 4 costs far
    /// less than 4 steps.
    #[arg(long, default_value_t = 1, value_parser = crate::train_cmd::flow_samples)]
    flow_samples: usize,
    /// How the flow's times are drawn: uniform, or beta (weighted towards
    /// the noisy end, as π0 does).
    #[arg(long, default_value = "uniform")]
    flow_times: sponge_policy::train::FlowTimes,
    /// Weight of an auxiliary loss: the policy also predicts, from what it
    /// sees, the dataset's observation.environment_state (in the twin's
    /// datasets: where the dirt left of the named spill lies, how much is
    /// left, the contact force), which teaches its encoders to find the
    /// spill. 0 leaves it out. Inference never needs the environment state.
    #[arg(long, default_value_t = 0.0, value_parser = crate::train_cmd::aux_weight)]
    aux_weight: f64,
    /// Weight of a place loss (needs --encoder conv-text and the twin's
    /// target.x_m and target.y_m): the first keypoint placed by the
    /// instruction learns where the named spill's dirt lies in the front
    /// camera's picture, as a small Gaussian over the places of its map
    /// (the twin's nominal camera pose turns metres into a place). Every
    /// place of the map is told whether the spill is there, which teaches
    /// "where" far faster than a regressed (x, y). Train with --shift-px 0:
    /// the place is not shifted with the picture. 0 leaves it out.
    #[arg(long, default_value_t = 0.0, value_parser = crate::train_cmd::place_weight)]
    place_weight: f64,
    /// A diagnostic, not a policy for the arm: the state token also takes
    /// the dataset's observation.environment_state (in the twin's datasets:
    /// target.x_m and target.y_m, where the dirt left of the named spill
    /// lies; target.dirt_left; contact.force_n), all of it or the entries
    /// named (comma-separated), which `sponge eval` hands it from the twin.
    /// How well it does against the same recipe without it tells how much
    /// of the failures is perception. `launch` refuses such a policy.
    #[arg(long, value_name = "ENTRIES", num_args = 0..=1, default_missing_value = "all")]
    privileged: Option<String>,
    /// With --privileged: Gaussian noise added to those entries in training
    /// batches, in units of each entry's standard deviation over the
    /// dataset, so that the policy learns to act on an imperfect perception
    /// of them (`sponge eval --perception`).
    #[arg(long, default_value_t = 0.0, requires = "privileged")]
    privileged_noise: f32,
    /// With --privileged: the entries as they were at the episode's first
    /// frame, kept through it (where the named spill lay when the episode
    /// began), not as they are now. A perception then has to find the
    /// spill once, before the arm moves over it (`sponge eval --perception`
    /// looks at the first frame only).
    #[arg(long, requires = "privileged")]
    privileged_start: bool,
    /// The dtype of the forward and backward passes: f32, or bf16 (mixed
    /// precision: the f32 weights are cast to bf16 for each step, layer
    /// norms, softmaxes and the loss stay f32; the checkpoint is f32).
    /// bf16 is for --device cuda, where the tensor cores run it fast; on
    /// the CPU it is slower than f32.
    #[arg(long, default_value = "f32")]
    precision: sponge_policy::train::Precision,
    /// Go on training the run in --out from its last checkpoint, up to
    /// --steps in all; the run keeps its own model (--horizon, --head,
    /// --actions, the sizes and the encoders are taken from its
    /// config.json).
    #[arg(long)]
    resume: bool,
}

impl DeviceArg {
    /// The candle device.
    pub fn device(self) -> anyhow::Result<candle_core::Device> {
        Ok(match self {
            DeviceArg::Cpu => candle_core::Device::Cpu,
            DeviceArg::Cuda => candle_core::Device::new_cuda(0)
                .context("no CUDA device: build with --features cuda on a machine with an NVIDIA GPU")?,
        })
    }
}

/// Parses `--ema-decay` (of `sponge train` and `sponge wm train`): a decay in [0, 1).
pub fn ema_decay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(decay) if (0.0..1.0).contains(&decay) => Ok(decay),
        _ => Err(format!("--ema-decay {text} is not in [0, 1)")),
    }
}

/// Parses `--aux-weight`: a finite weight of at least 0.
pub fn aux_weight(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => Err(format!("--aux-weight {text} is not a number of at least 0")),
    }
}

/// The twin's front camera at its nominal pose.
pub fn front_camera() -> sponge_policy::place::TableCamera {
    let (eye_m, aim_m, fov_deg) = sponge_sim::render::front_camera();
    sponge_policy::place::TableCamera {
        eye_m,
        aim_m,
        fov_deg,
    }
}

/// Parses `--place-weight`: a finite weight of at least 0.
pub fn place_weight(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => Err(format!("--place-weight {text} is not a number of at least 0")),
    }
}

/// Parses `--flow-samples`: 1 to 64 noise draws per chunk.
pub fn flow_samples(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(k) if (1..=64).contains(&k) => Ok(k),
        _ => Err(format!(
            "--flow-samples {text} is not a whole number from 1 to 64"
        )),
    }
}

/// Runs `sponge train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be at least 1");
    }
    if !(args.privileged_noise.is_finite() && args.privileged_noise >= 0.0) {
        bail!(
            "--privileged-noise {} is not a standard deviation of at least 0",
            args.privileged_noise
        );
    }
    let config = TrainConfig {
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.lr,
        warmup: (args.steps / 20).clamp(1, 500),
        seed: args.seed,
        ema_decay: args.ema_decay,
        flow_samples: args.flow_samples,
        flow_times: args.flow_times,
        aux_weight: args.aux_weight,
        augment: sponge_policy::augment::Augment {
            shift_px: args.shift_px,
            ..sponge_policy::augment::Augment::default()
        },
        privileged_noise: args.privileged_noise,
        privileged: args.privileged.as_deref().map(|list| match list {
            "all" => Vec::new(),
            names => names.split(',').map(|n| n.trim().to_owned()).collect(),
        }),
        precision: args.precision,
        place: (args.place_weight > 0.0).then(|| sponge_policy::train::PlaceTarget {
            weight: args.place_weight,
            camera: front_camera(),
            // A sixth of a place of the 1/4-size map at 96 pixels is 1/12
            // of the half-width: about one place.
            sigma: 1.0 / 12.0,
        }),
        ..TrainConfig::default()
    };
    if !args.resume && args.out.join("model.safetensors").exists() {
        bail!(
            "{} already holds a trained run: pass --resume to go on training it, or choose another --out",
            args.out.display()
        );
    }
    let vision = match &args.vision_resnet {
        Some(dir) => {
            sponge_policy::pretrained::Vision::resnet(dir, args.freeze_vision).map_err(anyhow::Error::msg)?
        }
        None => args.encoder.vision(args.keypoints)?,
    };
    let text = match &args.text_bert {
        Some(dir) => sponge_policy::bert::Text::bert(dir, args.freeze_text).map_err(anyhow::Error::msg)?,
        None => sponge_policy::bert::Text::Scratch,
    };
    if args.place_weight > 0.0
        && !args.resume
        && !matches!(
            vision,
            sponge_policy::pretrained::Vision::Conv { instructed: 1.., .. }
        )
    {
        bail!("--place-weight trains a keypoint placed by the instruction: it needs --encoder conv-text");
    }
    let policy = PolicyConfig {
        head: args.head,
        vision,
        text,
        actions: args.actions,
        motion_frames: args.motion_frames,
        blind_state: args.blind_state,
        privileged_start: args.privileged_start,
        horizon: args.horizon,
        actions_per_token: args.actions_per_token,
        ..args.size.of(PolicyConfig::default())
    };
    if !args.resume {
        policy.validate().map_err(anyhow::Error::msg)?;
    }
    let last = train_with_progress(&args.dataset, &args.out, &policy, &config, &device, args.resume)?;
    let aux = last
        .val_aux_loss
        .map(|a| format!(", auxiliary loss on held-out episodes {a:.4} (of the variance)"))
        .unwrap_or_default();
    let place = last
        .val_place_loss
        .map(|a| {
            format!(", place loss on held-out episodes {a:.3} (0: the keypoint's weights are the target's)")
        })
        .unwrap_or_default();
    println!(
        "{}{aux}{place}; run in {}",
        trained(
            last.step,
            args.batch,
            last.loss,
            last.val_loss,
            last.samples_per_s
        ),
        args.out.display()
    );
    print_perception_report(&args.out);
    Ok(())
}

/// For a run with an auxiliary head: how far off it is on the held-out
/// episodes, entry by entry (from the run's perception.json).
fn print_perception_report(run: &std::path::Path) {
    let path = run.join(sponge_policy::train::PERCEPTION_REPORT);
    let Some(report) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<sponge_policy::train::PerceptionReport>(&t).ok())
    else {
        return;
    };
    println!(
        "perception on {} held-out samples (the auxiliary head's entries; keypoint.*: where the keypoint \
         placed by the instruction finds the named spill), root mean square error (always guessing the mean):",
        report.samples
    );
    for entry in &report.entries {
        println!(
            "  {:<20} {:.4} ({:.4})",
            entry.name, entry.rms_error, entry.rms_spread
        );
    }
}

/// Trains with a progress bar (loss, validation loss, samples/s, eta).
pub fn train_with_progress(
    dataset: &std::path::Path,
    out: &std::path::Path,
    policy: &PolicyConfig,
    config: &TrainConfig,
    device: &candle_core::Device,
    resume: bool,
) -> anyhow::Result<LogLine> {
    with_progress_bar(config.steps, |progress| {
        train(dataset, out, policy, config, device, resume, progress)
    })
}

/// Runs a training loop (`train` calls its argument after every step)
/// under a progress bar.
pub fn with_progress_bar(
    steps: usize,
    train: impl FnOnce(&mut dyn FnMut(&LogLine)) -> Result<LogLine, TrainError>,
) -> anyhow::Result<LogLine> {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut val = None;
    let last = train(&mut |line: &LogLine| {
        if line.val_loss.is_some() {
            val = line.val_loss;
        }
        bar.set_position(line.step as u64);
        bar.set_message(format!(
            "loss {:.4}{}  {:.0} samples/s",
            line.loss,
            val.map(|v| format!("  val {v:.4}")).unwrap_or_default(),
            line.samples_per_s
        ));
    });
    bar.finish();
    Ok(last?)
}

/// "trained N steps of B samples: loss L, validation V, S samples/s".
pub fn trained(steps: usize, batch: usize, loss: f64, val_loss: Option<f64>, samples_per_s: f64) -> String {
    format!(
        "trained {steps} steps of {batch} samples: loss {loss:.4}{}, {samples_per_s:.0} samples/s",
        val_loss
            .map(|v| format!(", validation {v:.4}"))
            .unwrap_or_default()
    )
}

/// The transformers' size, as `sponge train` and `sponge bench policy` take it.
#[derive(Args, Debug, Clone)]
pub struct TransformerSize {
    /// Width of every token of the transformers (the compute grows with
    /// its square; a larger model is for a GPU run).
    #[arg(long, default_value_t = PolicyConfig::default().d_model)]
    pub width: usize,
    /// Attention heads (they divide --width).
    #[arg(long, default_value_t = PolicyConfig::default().heads)]
    pub heads: usize,
    /// Transformer blocks of the trunk, over the image, text and state tokens.
    #[arg(long, default_value_t = PolicyConfig::default().trunk_layers)]
    pub trunk_layers: usize,
    /// Blocks of the action expert.
    #[arg(long, default_value_t = PolicyConfig::default().expert_layers)]
    pub expert_layers: usize,
}

impl TransformerSize {
    /// `config` with this size.
    pub fn of(&self, config: PolicyConfig) -> PolicyConfig {
        PolicyConfig {
            d_model: self.width,
            heads: self.heads,
            trunk_layers: self.trunk_layers,
            expert_layers: self.expert_layers,
            ..config
        }
    }
}
