//! `sponge eval`: a trained policy in closed loop in the twin, on seeds
//! never used for generation, with its success rate, the fraction of the
//! named spill cleaned, the time to success and the limits it broke.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sponge_policy::agent::{Agent, Chunk, Input};
use sponge_robot::JointVector;
use sponge_robot::joint::clamp_to_limits;
use sponge_robot::units::{dataset_f32_to_joints, joints_to_dataset_f32};
use sponge_sim::{Env, EnvConfig, Observation, VecEnv};

use crate::train_cmd::DeviceArg;

/// Where evaluation seeds start by default: far above the seeds
/// `sponge sim generate` uses (0 upwards), so no scene was seen in training.
pub const EVAL_SEED: u64 = 1_000_000;

/// `sponge eval`.
#[derive(Args, Clone)]
pub struct EvalArgs {
    /// The run folder written by `sponge train`.
    #[arg(long)]
    pub policy: PathBuf,
    /// Episodes to run.
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// Seed of the first episode (episodes use consecutive seeds; keep them
    /// away from the seeds the training data was generated from).
    #[arg(long, default_value_t = EVAL_SEED)]
    pub seed: u64,
    /// Write every episode's figures and the totals as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write GIFs of the first few episodes (see --videos) into this folder.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// How many episodes --video records.
    #[arg(long, default_value_t = 3)]
    pub videos: usize,
    /// Twins run (and the policy batched) together.
    #[arg(long, default_value_t = 8)]
    pub envs: usize,
    /// Actions of each chunk executed before the next chunk is inferred.
    #[arg(long, default_value_t = 10)]
    pub replan: usize,
    /// Steps over which a new chunk is blended in from the previous one.
    #[arg(long, default_value_t = 5)]
    pub blend: usize,
    /// Only scenes with two spills and an instruction naming one of them
    /// (the language test: is the named spill the one wiped?).
    #[arg(long)]
    pub two_spills: bool,
    /// Give the policy this instruction instead of the scene's (e.g. "" to
    /// see what it does without language); success is still the scene's.
    #[arg(long)]
    pub instruction: Option<String>,
    /// Where the policy runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// One episode's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeResult {
    /// Scene seed.
    pub seed: u64,
    /// The scene's instruction.
    pub task: String,
    /// Whether the named spills were cleaned within the limits.
    pub success: bool,
    /// Fraction of the named spills cleaned at the end.
    pub target_fraction: f64,
    /// Largest fraction cleaned of a spill that was not named (None: none).
    pub other_fraction: Option<f64>,
    /// Seconds to success.
    pub time_to_success_s: Option<f64>,
    /// Control steps that pressed harder than the force limit.
    pub force_violation_steps: usize,
    /// Control steps where an arm link touched the table.
    pub arm_on_table_steps: usize,
    /// Largest sponge force, newtons.
    pub peak_force_n: f64,
    /// Episode length, seconds.
    pub duration_s: f64,
}

/// The totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Episodes run.
    pub episodes: usize,
    /// Fraction that succeeded.
    pub success_rate: f64,
    /// Mean fraction of the named spills cleaned.
    pub mean_fraction_cleaned: f64,
    /// Mean seconds to success, over the successes.
    pub mean_time_to_success_s: Option<f64>,
    /// Episodes with at least one force-limit violation.
    pub episodes_with_force_violations: usize,
    /// Two-spill scenes: fraction of episodes where the named spill was
    /// cleaned more than the other one.
    pub named_spill_wiped_rate: Option<f64>,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// GIFs written.
    pub videos: Vec<PathBuf>,
}

/// The front camera's frames of an episode, for its GIF.
type Frames = Vec<Vec<u8>>;

struct Running {
    ordinal: usize,
    task: String,
    chunk: Option<Chunk>,
    index: usize,
    steps: usize,
    result: EpisodeResult,
    frames: Option<Frames>,
}

/// Seeds for the evaluation: consecutive from `first`, or, for the
/// language test, the next ones whose scene has two spills and names one.
fn eval_seeds(args: &EvalArgs, config: &EnvConfig) -> Vec<u64> {
    if !args.two_spills {
        return (args.seed..args.seed + args.episodes as u64).collect();
    }
    let mut seeds = Vec::new();
    let mut seed = args.seed;
    while seeds.len() < args.episodes {
        let env = Env::new(config.clone(), seed);
        let scene = env.scene();
        if scene.spills.len() == 2 && scene.targets.len() == 1 {
            seeds.push(seed);
        }
        seed += 1;
    }
    seeds
}

/// Runs `sponge eval` and prints the summary.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (summary, _) = evaluate(args, true)?;
    println!(
        "success: {}/{} episodes ({:.0}%), named spill cleaned {:.1}% on average{}{}, force-limit violations in {} episodes; {:.0} s",
        (summary.success_rate * summary.episodes as f64).round(),
        summary.episodes,
        100.0 * summary.success_rate,
        100.0 * summary.mean_fraction_cleaned,
        summary
            .mean_time_to_success_s
            .map(|t| format!(", {t:.1} s to success"))
            .unwrap_or_default(),
        summary
            .named_spill_wiped_rate
            .map(|r| format!(", the named spill was the one wiped in {:.0}%", 100.0 * r))
            .unwrap_or_default(),
        summary.episodes_with_force_violations,
        summary.wall_s
    );
    for path in &summary.videos {
        println!("video: {}", path.display());
    }
    Ok(())
}

/// Evaluates the policy; returns the summary and every episode.
pub fn evaluate(args: &EvalArgs, show_progress: bool) -> anyhow::Result<(Summary, Vec<EpisodeResult>)> {
    if args.episodes == 0 || args.envs == 0 || args.replan == 0 {
        bail!("--episodes, --envs and --replan must be at least 1");
    }
    let device = args.device.device()?;
    let mut agent = Agent::load(&args.policy, &device, args.seed)
        .with_context(|| format!("loading the policy from {}", args.policy.display()))?;
    let run = agent.run_config().clone();
    if run.policy.state_dim != 6 || run.policy.action_dim != 6 {
        bail!("the policy is not for the SO-100's six joints");
    }
    let config = EnvConfig {
        fps: run.fps,
        image_size: run.policy.image_size as u32,
        wrist_camera: run.cameras.len() > 1,
        ..EnvConfig::default()
    };
    config.validate().map_err(anyhow::Error::msg)?;
    if args.replan > run.policy.horizon {
        bail!(
            "--replan {} is longer than a chunk ({} actions)",
            args.replan,
            run.policy.horizon
        );
    }
    let seeds = eval_seeds(args, &config);
    let workers = args.envs.min(seeds.len());
    let mut batch = VecEnv::new(config.clone(), workers, true)?;
    let fps = f64::from(run.fps);
    let bar = if show_progress {
        ProgressBar::new(seeds.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut slots: Vec<Option<Running>> = (0..workers).map(|_| None).collect();
    let mut observations: Vec<Observation> = vec![Observation::default(); workers];
    let mut next = 0usize;
    let mut done: BTreeMap<usize, (EpisodeResult, Option<Frames>)> = BTreeMap::new();
    loop {
        let mut reset_any = false;
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && next < seeds.len() {
                let env = &mut batch.envs_mut()[i];
                env.reset(seeds[next]);
                let task = env.scene().instruction.clone();
                *slot = Some(Running {
                    ordinal: next,
                    task: task.clone(),
                    chunk: None,
                    index: 0,
                    steps: 0,
                    result: EpisodeResult {
                        seed: seeds[next],
                        task,
                        success: false,
                        target_fraction: 0.0,
                        other_fraction: None,
                        time_to_success_s: None,
                        force_violation_steps: 0,
                        arm_on_table_steps: 0,
                        peak_force_n: 0.0,
                        duration_s: 0.0,
                    },
                    frames: (args.video.is_some() && next < args.videos).then(Vec::new),
                });
                next += 1;
                reset_any = true;
            }
        }
        if slots.iter().all(Option::is_none) {
            break;
        }
        if reset_any {
            for (i, observation) in batch.observe()?.into_iter().enumerate() {
                if slots[i].as_ref().is_some_and(|r| r.steps == 0) {
                    observations[i] = observation;
                }
            }
        }
        // Infer new chunks, in one batch, for the twins whose chunk is used up.
        let due: Vec<usize> = (0..workers)
            .filter(|&i| {
                slots[i]
                    .as_ref()
                    .is_some_and(|r| r.chunk.is_none() || r.index >= args.replan)
            })
            .collect();
        if !due.is_empty() {
            let states: Vec<Vec<f32>> = due
                .iter()
                .map(|&i| joints_to_dataset_f32(&observations[i].state).to_vec())
                .collect();
            let views: Vec<Vec<&[u8]>> = due
                .iter()
                .map(|&i| observations[i].images.iter().map(Vec::as_slice).collect())
                .collect();
            let inputs: Vec<Input> = due
                .iter()
                .enumerate()
                .map(|(j, &i)| Input {
                    images: &views[j],
                    state: &states[j],
                    task: args
                        .instruction
                        .as_deref()
                        .unwrap_or_else(|| slots[i].as_ref().map_or("", |r| r.task.as_str())),
                })
                .collect();
            let chunks = agent.act(&inputs, 1)?;
            for (&i, mut drawn) in due.iter().zip(chunks) {
                let Some(running) = slots[i].as_mut() else {
                    continue;
                };
                let mut fresh = drawn.swap_remove(0);
                // Blend: the first steps lean on what the previous chunk planned for them.
                if let Some(old) = &running.chunk {
                    for (t, action) in fresh.iter_mut().enumerate().take(args.blend) {
                        let Some(previous) = old.get(running.index + t) else {
                            break;
                        };
                        let w = 1.0 - (t + 1) as f32 / (args.blend + 1) as f32;
                        for (a, p) in action.iter_mut().zip(previous) {
                            *a = w * p + (1.0 - w) * *a;
                        }
                    }
                }
                running.chunk = Some(fresh);
                running.index = 0;
            }
        }
        let actions: Vec<JointVector> = slots
            .iter()
            .zip(batch.envs())
            .map(
                |(slot, env)| match slot.as_ref().and_then(|r| r.chunk.as_ref().map(|c| (c, r.index))) {
                    Some((chunk, index)) => dataset_f32_to_joints(&chunk[index.min(chunk.len() - 1)])
                        .map_or(*env.arm().goal(), |q| clamp_to_limits(&q)),
                    None => *env.arm().goal(),
                },
            )
            .collect();
        let steps = batch.step(&actions)?;
        for (i, step) in steps.into_iter().enumerate() {
            let Some(running) = slots[i].as_mut() else {
                continue;
            };
            if let Some(frames) = running.frames.as_mut()
                && let Some(front) = observations[i].images.first()
            {
                frames.push(front.clone());
            }
            running.index += 1;
            running.steps += 1;
            let info = &step.info;
            let r = &mut running.result;
            r.force_violation_steps += usize::from(info.force_violation);
            r.arm_on_table_steps += usize::from(info.arm_on_table);
            r.peak_force_n = r.peak_force_n.max(info.max_force_n);
            r.target_fraction = info.target_fraction;
            let targets = &batch.envs()[i].scene().targets;
            r.other_fraction = info
                .spill_fractions
                .iter()
                .enumerate()
                .filter(|(s, _)| !targets.contains(s))
                .map(|(_, f)| *f)
                .reduce(f64::max);
            observations[i] = step.observation;
            if step.done {
                r.success = info.success;
                r.duration_s = running.steps as f64 / fps;
                if info.success {
                    r.time_to_success_s = Some(r.duration_s);
                }
                if let Some(finished) = slots[i].take() {
                    done.insert(finished.ordinal, (finished.result, finished.frames));
                }
                let successes = done.values().filter(|(r, _)| r.success).count();
                bar.set_position(done.len() as u64);
                bar.set_message(format!("{successes}/{} succeeded", done.len()));
            }
        }
    }
    bar.finish_and_clear();
    let mut videos = Vec::new();
    let mut episodes = Vec::new();
    for (result, frames) in done.into_values() {
        if let (Some(frames), Some(dir)) = (frames, args.video.as_ref()) {
            let path = dir.join(format!("episode_{}.gif", result.seed));
            write_gif(&path, &frames, config.image_size as usize, run.fps)?;
            videos.push(path);
        }
        episodes.push(result);
    }
    let n = episodes.len();
    let successes: Vec<f64> = episodes.iter().filter_map(|e| e.time_to_success_s).collect();
    let named = args.two_spills.then(|| {
        episodes
            .iter()
            .filter(|e| e.other_fraction.is_some_and(|o| e.target_fraction > o))
            .count() as f64
            / n as f64
    });
    let summary = Summary {
        episodes: n,
        success_rate: episodes.iter().filter(|e| e.success).count() as f64 / n as f64,
        mean_fraction_cleaned: episodes.iter().map(|e| e.target_fraction).sum::<f64>() / n as f64,
        mean_time_to_success_s: (!successes.is_empty())
            .then(|| successes.iter().sum::<f64>() / successes.len() as f64),
        episodes_with_force_violations: episodes.iter().filter(|e| e.force_violation_steps > 0).count(),
        named_spill_wiped_rate: named,
        wall_s: started.elapsed().as_secs_f64(),
        videos,
    };
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "policy": args.policy,
            "first_seed": args.seed,
            "two_spills": args.two_spills,
            "instruction_override": args.instruction,
            "replan": args.replan,
            "summary": summary,
            "episodes": episodes,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((summary, episodes))
}

/// Writes RGB8 frames as an animated GIF, three times larger, with ffmpeg.
fn write_gif(path: &Path, frames: &[Vec<u8>], size: usize, fps: u32) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let scaled = size * 3;
    let mut child = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{size}x{size}"), "-r", &fps.to_string(), "-i", "-"])
        .args([
            "-vf",
            &format!(
                "fps=15,scale={scaled}:{scaled}:flags=neighbor,split[a][b];[a]palettegen[p];[b][p]paletteuse"
            ),
        ])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .context("running ffmpeg (install it: sudo apt-get install ffmpeg)")?;
    if let Some(stdin) = child.stdin.as_mut() {
        for frame in frames {
            stdin.write_all(frame).context("writing frames to ffmpeg")?;
        }
    }
    drop(child.stdin.take());
    let status = child.wait().context("waiting for ffmpeg")?;
    if !status.success() {
        bail!("ffmpeg could not write {}", path.display());
    }
    Ok(())
}
