//! `sponge sim`: the digital twin from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sponge_datasets::{CameraSpec, DatasetSpec, DatasetWriter, FrameInput};
use sponge_robot::joint::JointVector;
use sponge_robot::units::joints_to_dataset_f32;
use sponge_sim::expert::Expert;
use sponge_sim::perturb::{Jitter, Perturber};
use sponge_sim::render::{RenderConfig, Renderer};
use sponge_sim::{Env, EnvConfig, Observation, VecEnv};

/// `sponge sim`.
#[derive(Subcommand)]
pub enum SimCommand {
    /// Scripted-expert episodes as a LeRobot v3.0 dataset (state, action =
    /// joint goals in dataset units, camera videos, task text, reward, done).
    ///
    /// Episode k is drawn from seed S + k, so the same command writes the
    /// same dataset. Episodes the expert fails are left out unless
    /// --keep-failures (and more seeds are tried until N are written).
    Generate(GenerateArgs),
    /// Runs the scripted expert on many seeds (no rendering) and reports its success rate.
    Expert(ExpertArgs),
    /// Renders the front (and wrist) camera of one seed to PNG files.
    Frame(FrameArgs),
    /// The twin in a window: orbit camera (drag, scroll), the sponge driven
    /// with the keys (W/S, A/D, Q/E; R for the next seed), the task, the
    /// wiped fraction and the joints in the title bar. Needs a build with
    /// `--features viewer` and a display.
    View(ViewArgs),
}

/// Options of `sponge sim view`.
#[derive(Args)]
pub struct ViewArgs {
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save a screenshot here after --frames frames, then close (for checks).
    #[arg(long, hide = true)]
    screenshot: Option<PathBuf>,
    /// Frames before the screenshot.
    #[arg(long, hide = true, default_value_t = 60)]
    frames: u32,
    /// Hold the S key down the whole time (for checks: the sponge moves towards the base).
    #[arg(long, hide = true)]
    hold_s: bool,
}

/// Options of `sponge sim generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The new dataset's folder (must not exist yet).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Episodes to write.
    #[arg(long)]
    pub(crate) episodes: usize,
    /// Seed of the first episode.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Camera image width and height, pixels (16..=640).
    #[arg(long, default_value_t = 96)]
    pub(crate) image_size: u32,
    /// Environments run and rendered together (default: up to 16).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Control and camera rate, Hz (a divisor of 240).
    #[arg(long, default_value_t = 30)]
    pub(crate) fps: u32,
    /// Episode time limit, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) time_limit: f64,
    /// Record a wrist camera too (`observation.images.wrist`).
    #[arg(long)]
    pub(crate) wrist: bool,
    /// Keep the episodes the expert failed.
    #[arg(long)]
    pub(crate) keep_failures: bool,
    /// Store camera frames as PNG images in the parquet files instead of mp4 video.
    #[arg(long)]
    pub(crate) png: bool,
    /// Mix bad stretches into the expert's actions, about this many a
    /// second (jerks off course, pressing too hard, freezing, lifting off):
    /// data for the world model to learn what bad actions do. Use with
    /// --keep-failures.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) perturb: f64,
    /// Demonstrations as DART records them: the twin executes the expert's
    /// actions plus smooth random joint offsets of this standard deviation
    /// (radians; 0.02–0.05 is a few millimetres to a centimetre at the
    /// sponge), while the dataset keeps the expert's own actions, so that a
    /// policy learns how to steer back to the path from states slightly
    /// off it. The `action` column then is not what the arm was sent: use
    /// it for policies, not for the world model.
    #[arg(long, default_value_t = 0.0, conflicts_with = "perturb")]
    pub(crate) noise: f64,
    /// Cut each episode after this many frames and keep it, wiped or not:
    /// a dataset of scenes rather than demonstrations. With 1, each episode
    /// is the first picture of a seed and what the twin knows of it (where
    /// the named spill lies), to train a perception run on many more scenes
    /// than there are demonstrations (`sponge train --aux-weight`). Use
    /// with --png: thousands of one-frame videos are slow to append.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) frames: Option<u64>,
    /// Start each episode as if mid-wipe: the arm at rest at a random pose
    /// over the table and each spill partly wiped by a few random strokes,
    /// before the first frame. With --frames 1, scenes where the arm is
    /// not on its way to the named spill, so that a perception trained on
    /// them (`sponge train --place-weight`) cannot read the target from
    /// where the arm is; without it, demonstrations that start anywhere.
    #[arg(long)]
    pub(crate) scatter: bool,
}

/// Options of `sponge sim expert`.
#[derive(Args)]
pub struct ExpertArgs {
    /// Seeds to run.
    #[arg(long, default_value_t = 200)]
    episodes: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one line per episode.
    #[arg(long)]
    verbose: bool,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `sponge sim frame`.
#[derive(Args)]
pub struct FrameArgs {
    /// Output file prefix: writes PREFIX-front.png (and PREFIX-wrist.png).
    #[arg(long)]
    out: PathBuf,
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image width and height, pixels.
    #[arg(long, default_value_t = 320)]
    image_size: u32,
    /// Run the expert this many control steps first.
    #[arg(long, default_value_t = 0)]
    steps: usize,
    /// Render the wrist camera too.
    #[arg(long)]
    wrist: bool,
    /// Also write a numbered frame every this many steps along the way
    /// (PREFIX-front-0000.png …), e.g. to make a GIF with ffmpeg.
    #[arg(long)]
    every: Option<usize>,
}

/// Runs a `sponge sim` command.
pub fn run(command: &SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Generate(args) => generate(args).map(|_| ()),
        SimCommand::Expert(args) => expert(args),
        SimCommand::Frame(args) => frame(args),
        SimCommand::View(args) => view(args),
    }
}

/// One recorded frame, in dataset units.
pub(crate) struct Frame {
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    pub images: Vec<Vec<u8>>,
    pub reward: f32,
    pub done: bool,
    /// What the twin knew of the scene when the frame was seen
    /// (`observation.environment_state`).
    pub environment_state: [f32; 4],
}

/// The layout of the twin's datasets: the SO-100's joints, reward and done,
/// and the front camera (and the wrist camera) at `image_size`.
pub(crate) fn twin_spec(fps: u32, image_size: u32, wrist: bool) -> DatasetSpec {
    let mut spec = DatasetSpec::so100(fps);
    spec.reward_done = true;
    spec.environment_state = sponge_sim::env::ENVIRONMENT_STATE_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let cameras: &[&str] = if wrist { &["front", "wrist"] } else { &["front"] };
    spec.cameras = cameras
        .iter()
        .map(|name| CameraSpec {
            name: (*name).into(),
            width: image_size,
            height: image_size,
        })
        .collect();
    spec
}

/// Writes one finished episode.
pub(crate) fn write_episode(writer: &mut DatasetWriter, task: &str, frames: &[Frame]) -> anyhow::Result<()> {
    writer.start_episode(task)?;
    for f in frames {
        let views: Vec<&[u8]> = f.images.iter().map(Vec::as_slice).collect();
        writer.add_frame(&FrameInput {
            state: &f.state,
            action: &f.action,
            images: &views,
            reward: f.reward,
            done: f.done,
            environment_state: &f.environment_state,
        })?;
    }
    writer.finish_episode()?;
    Ok(())
}

/// An episode being run in one slot of the batch.
struct Running {
    ordinal: u64,
    task: String,
    expert: Expert,
    perturber: Perturber,
    jitter: Jitter,
    frames: Vec<Frame>,
    observation: Observation,
}

/// A finished episode waiting to be written in order.
struct Finished {
    task: String,
    frames: Vec<Frame>,
    success: bool,
}

/// What `generate` did.
pub struct GenerateSummary {
    /// Episodes written.
    pub episodes: usize,
    /// Episodes the expert ran.
    pub attempted: u64,
    /// Of those, how many succeeded.
    pub succeeded: u64,
    /// Frames written.
    pub frames: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

fn dataset_units(q: &JointVector) -> Vec<f32> {
    joints_to_dataset_f32(q).to_vec()
}

/// `sponge sim generate`.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<GenerateSummary> {
    if args.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    if !(args.noise >= 0.0 && args.noise.is_finite()) {
        bail!(
            "--noise {} is not a standard deviation (radians, 0 or more)",
            args.noise
        );
    }
    let config = EnvConfig {
        fps: args.fps,
        time_limit_s: args.time_limit,
        image_size: args.image_size,
        wrist_camera: args.wrist,
        end_on_success: true,
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid twin settings: {e}"))?;
    let workers = args.workers.unwrap_or(16).clamp(1, 64).min(args.episodes);
    if args.out.exists() {
        bail!(
            "{} already exists: choose a new folder for the dataset",
            args.out.display()
        );
    }

    let mut spec = twin_spec(args.fps, args.image_size, args.wrist);
    if args.png {
        spec.storage = sponge_datasets::CameraStorage::Png;
    }
    let mut writer = DatasetWriter::create(&args.out, spec)
        .with_context(|| format!("cannot create the dataset at {}", args.out.display()))?;

    eprintln!(
        "starting {workers} twins ({} px{}) ...",
        args.image_size,
        if args.wrist { ", front + wrist" } else { ", front" }
    );
    let mut batch = VecEnv::new(config.clone(), workers, true)?;
    let started = Instant::now();
    let progress = ProgressBar::new(args.episodes as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes  {msg}  (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // The writer runs on its own thread, taking finished episodes in order.
    let (to_writer, from_main) = mpsc::sync_channel::<Finished>(4);
    let writer_thread = std::thread::spawn(move || -> anyhow::Result<u64> {
        let mut frames = 0;
        for episode in from_main {
            write_episode(&mut writer, &episode.task, &episode.frames)?;
            frames += episode.frames.len() as u64;
        }
        writer.close()?;
        Ok(frames)
    });

    let max_attempts = (args.episodes as u64) * 4 + 16;
    // Cut episodes are kept whatever became of them.
    let keep_all = args.keep_failures || args.frames.is_some();
    let mut slots: Vec<Option<Running>> = (0..workers).map(|_| None).collect();
    let mut next_ordinal = 0u64;
    let mut pending: BTreeMap<u64, Finished> = BTreeMap::new();
    let mut next_to_write = 0u64;
    let (mut written, mut attempted, mut succeeded, mut failed) = (0usize, 0u64, 0u64, 0u64);
    let mut stepped = 0u64;
    let result = (|| -> anyhow::Result<()> {
        loop {
            // Fill free slots with new episodes while more may be needed.
            let mut reset_any = false;
            for (i, slot) in slots.iter_mut().enumerate() {
                let needed = next_ordinal - if keep_all { 0 } else { failed };
                if slot.is_none() && (needed as usize) < args.episodes && next_ordinal < max_attempts {
                    let env = &mut batch.envs_mut()[i];
                    env.reset(args.seed + next_ordinal);
                    if args.scatter {
                        env.scatter();
                    }
                    let expert = Expert::new(env);
                    *slot = Some(Running {
                        ordinal: next_ordinal,
                        task: env.scene().instruction.clone(),
                        expert,
                        perturber: Perturber::new(args.perturb, args.fps),
                        jitter: Jitter::new(args.noise),
                        frames: Vec::new(),
                        observation: Observation::default(),
                    });
                    next_ordinal += 1;
                    reset_any = true;
                }
            }
            if slots.iter().all(Option::is_none) {
                break;
            }
            if reset_any {
                let observations = batch.observe()?;
                for (slot, observation) in slots.iter_mut().zip(observations) {
                    if let Some(run) = slot
                        && run.frames.is_empty()
                    {
                        run.observation = observation;
                    }
                }
            }
            // (what the twin executes, what the dataset records)
            let (actions, recorded): (Vec<JointVector>, Vec<JointVector>) = slots
                .iter_mut()
                .zip(batch.envs_mut())
                .map(|(slot, env)| match slot {
                    Some(run) => {
                        let action = run.expert.act(env);
                        if args.perturb > 0.0 {
                            let spoiled = run.perturber.apply(&action, args.fps, env.noise_rng());
                            (spoiled, spoiled)
                        } else {
                            (run.jitter.apply(&action, args.fps, env.noise_rng()), action)
                        }
                    }
                    None => (*env.arm().goal(), *env.arm().goal()),
                })
                .unzip();
            // The scene as the observations saw it, before the step.
            let scenes: Vec<[f32; 4]> = slots
                .iter()
                .zip(batch.envs())
                .map(|(slot, env)| {
                    slot.as_ref()
                        .map_or([0.0; 4], |run| env.environment_state(run.expert.target(env)))
                })
                .collect();
            let steps = batch.step(&actions)?;
            for (((slot, step), action), scene) in slots.iter_mut().zip(steps).zip(&recorded).zip(scenes) {
                let Some(run) = slot else { continue };
                let observation = std::mem::replace(&mut run.observation, step.observation);
                let cut = args.frames.is_some_and(|n| run.frames.len() as u64 + 1 >= n);
                run.frames.push(Frame {
                    state: dataset_units(&observation.state),
                    action: dataset_units(action),
                    images: observation.images,
                    reward: step.reward as f32,
                    done: step.done || cut,
                    environment_state: scene,
                });
                if step.done || cut {
                    let success = step.info.success;
                    let Some(run) = slot.take() else { continue };
                    attempted += 1;
                    succeeded += success as u64;
                    failed += !success as u64;
                    pending.insert(
                        run.ordinal,
                        Finished {
                            task: run.task,
                            frames: run.frames,
                            success,
                        },
                    );
                }
            }
            // Hand finished episodes to the writer in seed order.
            while let Some(episode) = pending.remove(&next_to_write) {
                next_to_write += 1;
                if (episode.success || keep_all) && written < args.episodes {
                    to_writer
                        .send(episode)
                        .map_err(|_| anyhow::anyhow!("the dataset writer stopped"))?;
                    written += 1;
                    progress.set_position(written as u64);
                }
            }
            stepped += slots.iter().filter(|s| s.is_some()).count() as u64;
            progress.set_message(format!(
                "expert {succeeded}/{attempted} ok, {:.0} frames/s",
                stepped as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        Ok(())
    })();
    drop(to_writer);
    let frames = writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the dataset writer panicked"))??;
    result?;
    progress.finish_and_clear();
    let summary = GenerateSummary {
        episodes: written,
        attempted,
        succeeded,
        frames,
        seconds: started.elapsed().as_secs_f64(),
    };
    let outcome = match args.frames {
        Some(n) => format!("each cut after {n} frame(s), as --frames asked"),
        None => format!(
            "expert succeeded on {}/{} seeds ({:.1}%)",
            summary.succeeded,
            summary.attempted,
            100.0 * summary.succeeded as f64 / summary.attempted.max(1) as f64
        ),
    };
    println!(
        "wrote {} episodes ({} frames, {:.1} s of robot time) to {} in {:.1} s ({:.0} frames/s); {outcome}",
        summary.episodes,
        summary.frames,
        summary.frames as f64 / args.fps as f64,
        args.out.display(),
        summary.seconds,
        summary.frames as f64 / summary.seconds.max(1e-9),
    );
    if summary.episodes < args.episodes {
        bail!(
            "only {} of {} episodes written: the expert failed too often (see --keep-failures)",
            summary.episodes,
            args.episodes
        );
    }
    Ok(summary)
}

/// How one expert episode went.
struct ExpertRun {
    seed: u64,
    success: bool,
    steps: usize,
    target_fraction: f64,
    max_force_n: f64,
    instruction: String,
}

fn run_expert(seed: u64) -> ExpertRun {
    let mut env = Env::new(EnvConfig::default(), seed);
    let mut expert = Expert::new(&mut env);
    let mut max_force_n: f64 = 0.0;
    loop {
        let action = expert.act(&mut env);
        let step = env.step(&action);
        max_force_n = max_force_n.max(step.info.mean_force_n);
        if step.done {
            return ExpertRun {
                seed,
                success: step.info.success,
                steps: env.steps(),
                target_fraction: step.info.target_fraction,
                max_force_n,
                instruction: env.scene().instruction.clone(),
            };
        }
    }
}

/// `sponge sim expert`.
fn expert(args: &ExpertArgs) -> anyhow::Result<()> {
    use rayon::prelude::*;
    let started = Instant::now();
    let progress = ProgressBar::new(args.episodes);
    let runs: Vec<ExpertRun> = (args.seed..args.seed + args.episodes)
        .into_par_iter()
        .map(|seed| {
            let run = run_expert(seed);
            progress.inc(1);
            run
        })
        .collect();
    progress.finish_and_clear();
    let fps = EnvConfig::default().fps as f64;
    for run in &runs {
        if args.verbose || !run.success {
            println!(
                "seed {:>5}: {} in {:>5.1} s, {:>5.1}% of the named spill(s) cleaned, peak force {:>4.1} N: '{}'",
                run.seed,
                if run.success { "success" } else { "FAILED " },
                run.steps as f64 / fps,
                100.0 * run.target_fraction,
                run.max_force_n,
                run.instruction
            );
        }
    }
    let ok = runs.iter().filter(|r| r.success).count();
    let mean_s = runs
        .iter()
        .filter(|r| r.success)
        .map(|r| r.steps as f64 / fps)
        .sum::<f64>()
        / ok.max(1) as f64;
    println!(
        "expert succeeded on {ok}/{} seeds ({:.1}%), {mean_s:.1} s per successful episode on average; {:.1} s wall",
        runs.len(),
        100.0 * ok as f64 / runs.len().max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "seeds": runs.len(),
            "first_seed": args.seed,
            "succeeded": ok,
            "success_rate": ok as f64 / runs.len().max(1) as f64,
            "mean_success_seconds": mean_s,
            "failed_seeds": runs.iter().filter(|r| !r.success).map(|r| r.seed).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `sponge sim frame`.
fn frame(args: &FrameArgs) -> anyhow::Result<()> {
    let config = EnvConfig {
        image_size: args.image_size,
        wrist_camera: args.wrist,
        end_on_success: false,
        ..EnvConfig::default()
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid twin settings: {e}"))?;
    let mut env = Env::new(config, args.seed);
    let mut expert = Expert::new(&mut env);
    let mut renderer = Renderer::new(RenderConfig {
        envs: 1,
        image_size: args.image_size,
        wrist_camera: args.wrist,
    })?;
    let names = ["front", "wrist"];
    let mut write = |env: &Env, suffix: String| -> anyhow::Result<()> {
        let images = renderer.render(&[env])?;
        for (camera, image) in images.iter().flatten().enumerate() {
            let path = PathBuf::from(format!("{}-{}{suffix}.png", args.out.display(), names[camera]));
            sponge_datasets::plot::write_png(&path, image, args.image_size, args.image_size)?;
        }
        Ok(())
    };
    for step in 0..args.steps {
        if let Some(every) = args.every.filter(|&k| k > 0)
            && step % every == 0
        {
            write(&env, format!("-{:04}", step / every))?;
        }
        let action = expert.act(&mut env);
        env.step(&action);
    }
    write(&env, String::new())?;
    println!(
        "wrote {}-front.png{} after {} steps ({:.0}% of the named spill(s) wiped)",
        args.out.display(),
        if args.wrist { " and -wrist.png" } else { "" },
        args.steps,
        100.0 * env.scene().target_fraction_cleaned()
    );
    println!("task: '{}'", env.scene().instruction);
    Ok(())
}

/// The expert's actions for one seed (recorded once, replayed open loop:
/// the twin is deterministic, so the replay presses and wipes the same).
fn expert_actions(seed: u64) -> Vec<JointVector> {
    let mut env = Env::new(EnvConfig::default(), seed);
    let mut expert = Expert::new(&mut env);
    let mut actions = Vec::new();
    loop {
        let action = expert.act(&mut env);
        actions.push(action);
        if env.step(&action).done {
            return actions;
        }
    }
}

/// Replays `episodes` on `threads` threads for a fixed time, each thread
/// cycling through them from its own starting point (so that no thread
/// idles at the end); returns physics steps per second over all threads.
fn physics_rate(episodes: &[Vec<JointVector>], threads: usize) -> f64 {
    let substeps = EnvConfig::default().substeps() as u64;
    let seconds = 3.0;
    let started = Instant::now();
    let steps: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut steps = 0u64;
                    let mut k = t * episodes.len() / threads.max(1);
                    'run: loop {
                        let mut env = Env::new(EnvConfig::default(), (k % episodes.len()) as u64);
                        for action in &episodes[k % episodes.len()] {
                            env.step(action);
                            steps += substeps;
                            if started.elapsed().as_secs_f64() >= seconds {
                                break 'run;
                            }
                        }
                        k += 1;
                    }
                    steps
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    steps as f64 / started.elapsed().as_secs_f64()
}

/// Renders `batch` environments at `size` for a few seconds; returns frames (images) per second.
fn render_rate(batch: usize, size: u32) -> anyhow::Result<(f64, String)> {
    let config = EnvConfig {
        image_size: size,
        ..EnvConfig::default()
    };
    let mut envs = VecEnv::new(config, batch, true)?;
    let seeds: Vec<u64> = (0..batch as u64).collect();
    envs.reset(&seeds)?;
    let mut experts: Vec<Expert> = envs.envs_mut().iter_mut().map(Expert::new).collect();
    let mut act = |envs: &mut VecEnv| -> Vec<JointVector> {
        envs.envs_mut()
            .iter_mut()
            .zip(&mut experts)
            .map(|(env, expert)| expert.act(env))
            .collect()
    };
    // Warm up (pipelines, first uploads).
    for _ in 0..5 {
        let actions = act(&mut envs);
        envs.step(&actions)?;
    }
    // Three windows of 1.5 s; the best one counts, as for physics, so that
    // a noisy neighbour on the host does not decide the figure.
    let mut best = 0.0f64;
    for _ in 0..3 {
        let (mut rendered, mut render_s) = (0usize, 0.0);
        let started = Instant::now();
        while started.elapsed().as_secs_f64() < 1.5 {
            let actions = act(&mut envs);
            for (env, action) in envs.envs_mut().iter_mut().zip(&actions) {
                env.step(action);
            }
            let t = Instant::now();
            envs.observe()?;
            render_s += t.elapsed().as_secs_f64();
            rendered += batch;
        }
        best = best.max(rendered as f64 / render_s.max(1e-9));
    }
    Ok((best, envs.adapter().unwrap_or_default()))
}

/// `sponge bench sim`.
pub fn bench(args: &crate::bench_cmd::SimBenchArgs) -> anyhow::Result<()> {
    use rayon::prelude::*;
    let machine = crate::bench_cmd::machine();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "recording {} expert episodes to replay ...",
        args.physics_episodes
    );
    let episodes: Vec<Vec<JointVector>> = (0..args.physics_episodes)
        .into_par_iter()
        .map(expert_actions)
        .collect();
    // Alternate the two measurements and keep each one's best, so that a
    // noisy neighbour or a frequency change does not skew the ratio.
    let (mut one, mut all) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        one = one.max(physics_rate(&episodes, 1));
        all = all.max(physics_rate(&episodes, cores));
    }
    println!("machine              {machine}");
    println!("physics, 1 core      {one:.0} steps/s (dt = 1/240 s; arm, table, sponge, spill grid)");
    println!("physics, {cores} cores     {all:.0} steps/s ({:.2}x)", all / one);
    eprintln!("rendering ...");
    let (r96, adapter) = render_rate(args.batch, 96)?;
    println!(
        "render 96x96         {r96:.0} frames/s (batches of {}, {adapter})",
        args.batch
    );
    let (r224, _) = render_rate(args.batch, 224)?;
    println!(
        "render 224x224       {r224:.0} frames/s (batches of {}, {adapter})",
        args.batch
    );
    let mut per_minute = None;
    let mut generate_summary = serde_json::Value::Null;
    if args.episodes > 0 {
        let dir = std::env::temp_dir().join(format!("sponge-bench-sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let summary = generate(&GenerateArgs {
            out: dir.clone(),
            episodes: args.episodes,
            seed: 0,
            image_size: 96,
            workers: None,
            fps: 30,
            time_limit: 20.0,
            wrist: false,
            keep_failures: false,
            png: false,
            perturb: 0.0,
            noise: 0.0,
            frames: None,
            scatter: false,
        });
        let _ = std::fs::remove_dir_all(&dir);
        let summary = summary?;
        let rate = summary.episodes as f64 / (summary.seconds / 60.0);
        println!(
            "end to end           {rate:.1} episodes/min ({} episodes, {} frames at 96x96, AV1 video, in {:.1} s)",
            summary.episodes, summary.frames, summary.seconds
        );
        per_minute = Some(rate);
        generate_summary = serde_json::json!({
            "episodes": summary.episodes,
            "frames": summary.frames,
            "seconds": summary.seconds,
            "expert_attempted": summary.attempted,
            "expert_succeeded": summary.succeeded,
        });
    }
    if let Some(path) = &args.json {
        let value = serde_json::json!({
            "bench": "sim",
            "machine": machine,
            "render_adapter": adapter,
            "physics_dt_s": 1.0 / 240.0,
            "physics_steps_per_s_1_core": one,
            "physics_steps_per_s_all_cores": all,
            "cores": cores,
            "physics_scaling": all / one,
            "render_batch": args.batch,
            "render_fps_96": r96,
            "render_fps_224": r224,
            "episodes_per_minute": per_minute,
            "generate": generate_summary,
        });
        crate::bench_cmd::write_figures(path, &value)?;
    }
    Ok(())
}

/// `sponge sim view`.
#[cfg(feature = "viewer")]
fn view(args: &ViewArgs) -> anyhow::Result<()> {
    sponge_sim::viewer::run(sponge_sim::viewer::ViewerOptions {
        seed: args.seed,
        screenshot: args.screenshot.clone(),
        frames: args.frames,
        hold: args.hold_s.then_some(sponge_sim::viewer::KeyCode::KeyS),
    })?;
    Ok(())
}

/// `sponge sim view` in a build without the viewer.
#[cfg(not(feature = "viewer"))]
fn view(args: &ViewArgs) -> anyhow::Result<()> {
    let _ = (args.seed, &args.screenshot, args.frames, args.hold_s);
    bail!(
        "this sponge was built without the viewer: rebuild with \
         `cargo build --release --features viewer` (needs a display; X11)"
    )
}
