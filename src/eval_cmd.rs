//! `sponge eval`: a trained policy in closed loop in the twin, on seeds
//! never used for generation, with its success rate, the fraction of the
//! named spill cleaned, the time to success and the limits it broke.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sponge_datasets::DatasetWriter;
use sponge_policy::agent::{Agent, Chunk, History, Input, Tracker};
use sponge_robot::JointVector;
use sponge_robot::joint::clamp_to_limits;
use sponge_robot::units::{dataset_f32_to_joints, joints_to_dataset_f32};
use sponge_sim::fault::{Fault, make_unfamiliar};
use sponge_sim::spill::{CELL_M, Spill};
use sponge_sim::{Env, EnvConfig, Observation, VecEnv};
use sponge_world_model::{Anchor, Calibration, ColourBins, Monitor, Parts, Senses, Traced, WorldModelRun};

use crate::sim_cmd::{Frame, twin_spec, write_episode};
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
    /// When the flow's starting noise is drawn: for every chunk, or once
    /// per episode (consecutive chunks then agree on how to do the task
    /// instead of possibly switching at every chunk).
    #[arg(long, value_enum, default_value_t = NoiseMode::Chunk)]
    pub noise: NoiseMode,
    /// Actions at the start of each new chunk held to what the previous
    /// chunk planned for those steps, the flow drawing the rest to follow
    /// on from them (0: off; flow head only).
    #[arg(long, default_value_t = 0)]
    pub inpaint: usize,
    /// Smooth every chunk with a centred moving average of this many
    /// actions (0: as drawn).
    #[arg(long, default_value_t = 0)]
    pub smooth: usize,
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
    /// A world model (from `sponge wm train`): with --samples K it picks the
    /// best of K proposed chunks by imagined outcome; with a calibrated
    /// monitor (`sponge wm calibrate`) it also watches for anomalies, and an
    /// alarm holds the arm and ends the episode (see --monitor, --shadow).
    #[arg(long, value_name = "WM")]
    pub world_model: Option<PathBuf>,
    /// Chunks the policy proposes per observation for the world model to
    /// rank (1: no ranking).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// When ranking: how much the predicted chance of pressing too hard
    /// costs against predicted progress (fraction cleaned).
    #[arg(long, default_value_t = sponge_world_model::run::RISK_WEIGHT)]
    pub risk_weight: f32,
    /// Run the anomaly monitor of --world-model (needs its monitor.json).
    #[arg(long, requires = "world_model")]
    pub monitor: bool,
    /// With --monitor: judge and record the first alarm but do not hold the
    /// arm, so every episode runs to its end and all its checks are written
    /// to --json (for studying detection rules on whole episodes).
    #[arg(long, requires = "monitor")]
    pub shadow: bool,
    /// For a policy trained with --privileged: hand it, instead of what the
    /// twin knows, what this run's auxiliary head (`sponge train
    /// --aux-weight`) makes of the same camera frames, instruction and
    /// joints, so that the pair runs on what a robot has. The summary gives
    /// how far the perceived target lay from the twin's. A policy trained
    /// with --privileged-start is handed what the run sees in each
    /// episode's first frame, kept through the episode. A run trained with
    /// --place-weight gives the target where its keypoint finds the named
    /// spill in the picture (through the camera, on the table) rather than
    /// what its auxiliary head regresses.
    #[arg(long, value_name = "RUN")]
    pub perception: Option<PathBuf>,
    /// With a --perception run trained with --place-weight: after the
    /// first frame, look for the named spill only within M metres (on the
    /// table) of where it was last seen, so that a look that strays to
    /// another spill, or to the arm, does not move the target (a tracker).
    /// 0: look over the whole picture at every replan. Without it, such a
    /// run tracks within 0.02 m (as the launch files' policy node does),
    /// and a run without a place keypoint looks everywhere.
    #[arg(long, value_name = "M", requires = "perception")]
    pub perception_track: Option<f64>,
    /// With --perception-track: look over the whole picture after all when
    /// the keypoint's strongest place near the last target weighs less
    /// than this fraction of its strongest anywhere (the spill tracked is
    /// wiped and the keypoint has found the next one named). 0: never.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION", requires = "perception")]
    pub perception_release: f32,
    /// For a policy trained with --privileged: move the twin's target
    /// (`target.x_m`, `target.y_m`) this many metres, in a direction drawn
    /// for each episode and kept through it, as a perception that is off
    /// by that much would see it. How fast success falls with it says how
    /// well a perception must find the dirt.
    #[arg(long, default_value_t = 0.0, value_name = "M", conflicts_with = "perception")]
    pub perception_error: f64,
    /// Scenes unlike the training data: unfamiliar spill colours, lighting
    /// outside the training range, the camera 3-5 cm off its place.
    #[arg(long)]
    pub ood: bool,
    /// Inject a fault into every episode (drop-sponge, block-arm, push-arm,
    /// cover-camera, shift-camera, unseen-spill, or all: each of these in
    /// turn; or spill-paint: a new spill of paint), at a random time within
    /// --fault-window.
    #[arg(long)]
    pub fault: Option<String>,
    /// Seconds within which faults are injected, "FROM-TO".
    #[arg(long, default_value = "3-8")]
    pub fault_window: String,
    /// Record every episode (the policy's own rollouts, with --ood scenes
    /// and --fault faults if asked) as a LeRobot v3 dataset in this new
    /// folder: training data for `sponge wm train` that holds the policy's
    /// mistakes, not only the expert's wipes. An episode ended by an alarm
    /// is recorded up to the alarm.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Keep each episode's joint steps and checks (`sponge wm calibrate`
    /// fits the servos' response on them).
    #[arg(skip)]
    pub keep_following_trace: bool,
}

impl EvalArgs {
    /// What `sponge eval --policy POLICY` runs: every other option at its
    /// command-line default, for commands that evaluate on the way.
    pub fn for_policy(policy: &Path) -> anyhow::Result<EvalArgs> {
        #[derive(clap::Parser)]
        struct Eval {
            #[command(flatten)]
            args: EvalArgs,
        }
        let argv = [
            OsString::from("eval"),
            "--policy".into(),
            policy.as_os_str().to_owned(),
        ];
        Ok(<Eval as clap::Parser>::try_parse_from(argv)?.args)
    }
}

/// When the flow's starting noise is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseMode {
    /// Fresh noise for every chunk.
    Chunk,
    /// One noise per episode, reused for each of its chunks.
    Episode,
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
    /// The fault injected, if any.
    pub fault: Option<String>,
    /// When it was injected, seconds.
    pub fault_at_s: Option<f64>,
    /// The dirt left on the table then, over all spills, as the area it
    /// would cover fully dirty (cm²): how much a recoloured spill shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirt_left_cm2_at_fault: Option<f64>,
    /// When the monitor raised an alarm (the episode ends there), seconds.
    pub alarm_at_s: Option<f64>,
    /// The most surprising part at the alarm.
    pub alarm_cause: Option<String>,
    /// The largest surprise of the episode.
    pub max_surprise: Option<f64>,
    /// With --perception: the mean distance, metres, between the target the
    /// perception run saw and the twin's, over this episode's replans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perception_error_m: Option<f64>,
    /// Every monitor check's parts, one per world-model segment (10 steps)
    /// from the second on (with --world-model; for calibration and for studying
    /// detection rules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Parts>,
    /// The camera's colours at each of those checks (for calibrating the
    /// `colour` part; not written out).
    #[serde(skip)]
    pub check_colours: Vec<ColourBins>,
    /// The joints' steps and the checks, with `keep_following_trace` (not
    /// written out).
    #[serde(skip)]
    pub following_trace: Vec<Traced>,
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
    /// Chunks proposed per observation.
    pub samples: usize,
    /// Actions executed per chunk (`--replan`).
    pub replan: usize,
    /// Steps of blending between chunks (`--blend`).
    pub blend: usize,
    /// When the flow's noise was drawn (`--noise`).
    pub noise: NoiseMode,
    /// Planned actions each new chunk continued (`--inpaint`).
    pub inpaint: usize,
    /// Moving-average window over each chunk (`--smooth`).
    pub smooth: usize,
    /// With the monitor: what it caught.
    pub monitor: Option<MonitorSummary>,
    /// With --perception: the mean distance, metres, between the target
    /// (`target.x_m`, `target.y_m`) the perception run saw and the twin's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perception_error_m: Option<f64>,
}

/// What the anomaly monitor did over an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorSummary {
    /// Episodes with a fault injected.
    pub faults: usize,
    /// Of those, alarms within 1 s of the fault.
    pub detected_within_1s: usize,
    /// Of those, alarms later than 1 s after the fault.
    pub detected_late: usize,
    /// Per fault: (injected, detected within 1 s).
    pub per_fault: BTreeMap<String, (usize, usize)>,
    /// Alarms with no fault under way (before the fault, or in normal episodes).
    pub false_alarms: usize,
    /// Seconds of running with no fault under way.
    pub normal_s: f64,
    /// False alarms per 10 minutes of normal running.
    pub false_alarms_per_10_min: f64,
}

/// An episode's frames for its GIF: its cameras' images side by side
/// (front, then wrist).
type Frames = Vec<Vec<u8>>;

struct Running {
    ordinal: usize,
    task: String,
    chunk: Option<Chunk>,
    /// With `--noise episode`: the flow's starting noise of this episode's chunks.
    noise: Option<Vec<f32>>,
    /// This episode's own noise generator, seeded by its seed: an episode's
    /// chunks do not depend on which episodes ran beside it, or when they
    /// ended, so two builds compare episode by episode.
    rng: StdRng,
    index: usize,
    steps: usize,
    result: EpisodeResult,
    frames: Option<Frames>,
    /// The fault to inject and the step to inject it at.
    fault: Option<(Fault, usize)>,
    /// What the world model kept of the last check, and the actions executed since.
    anchor: Option<Anchor>,
    executed: Vec<Vec<f32>>,
    /// The joint states so far, for a policy that sees motion.
    history: History,
    /// With --perception-error: how far, metres (x, y), this episode's
    /// privileged policy sees its target off the twin's.
    target_offset: [f32; 2],
    /// With --perception: where it last placed the target, and how near
    /// that it looks next.
    tracker: Tracker,
    /// With --perception: the summed distance, metres, between the target
    /// it saw and the twin's, and how many times it looked.
    perception_error: (f64, usize),
    /// For a policy that takes its privileged entries as the episode began:
    /// those it was handed at the first step, kept through the episode.
    privileged_at_start: Option<Vec<f32>>,
    /// The joints, the view and the colours against what came before.
    senses: Senses,
    monitor: Option<Monitor>,
    /// Every step, for --record.
    recorded: Option<Vec<Frame>>,
}

/// `--record`: finished episodes written in the order they were started.
struct Recorder {
    writer: DatasetWriter,
    waiting: BTreeMap<usize, (String, Vec<Frame>)>,
    next: usize,
}

impl Recorder {
    fn add(&mut self, ordinal: usize, task: String, mut frames: Vec<Frame>) -> anyhow::Result<()> {
        // An episode the monitor ended is done where it stopped.
        if let Some(last) = frames.last_mut() {
            last.done = true;
        }
        self.waiting.insert(ordinal, (task, frames));
        while let Some((task, frames)) = self.waiting.remove(&self.next) {
            if !frames.is_empty() {
                write_episode(&mut self.writer, &task, &frames)?;
            }
            self.next += 1;
        }
        Ok(())
    }
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
    if let Some(error) = summary.perception_error_m {
        println!(
            "perception: the target it saw lay {:.1} cm from the twin's on average",
            100.0 * error
        );
    }
    if let Some(m) = &summary.monitor {
        println!(
            "monitor: {}/{} faults detected within 1 s ({} later), {} false alarms in {:.0} s of normal running ({:.2} per 10 min)",
            m.detected_within_1s,
            m.faults,
            m.detected_late,
            m.false_alarms,
            m.normal_s,
            m.false_alarms_per_10_min
        );
        for (fault, (injected, detected)) in &m.per_fault {
            println!("  {fault:14} {detected}/{injected}");
        }
    }
    for path in &summary.videos {
        println!("video: {}", path.display());
    }
    Ok(())
}

/// The faults to inject in turn, from `--fault`.
fn fault_plan(args: &EvalArgs) -> anyhow::Result<Option<(Vec<Fault>, f64, f64)>> {
    let Some(name) = &args.fault else {
        return Ok(None);
    };
    let faults = if name == "all" {
        Fault::ALL.to_vec()
    } else {
        vec![name.parse::<Fault>().map_err(anyhow::Error::msg)?]
    };
    let window = args
        .fault_window
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
        .filter(|(a, b)| *a >= 0.0 && b >= a)
        .with_context(|| format!("--fault-window {:?} is not FROM-TO in seconds", args.fault_window))?;
    Ok(Some((faults, window.0, window.1)))
}

/// Ends a running episode: its figures go to `done`, its steps to the recorder.
fn finish(
    slot: &mut Option<Running>,
    done: &mut BTreeMap<usize, (EpisodeResult, Option<Frames>)>,
    recorder: &mut Option<Recorder>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    if let Some(mut finished) = slot.take() {
        finished.result.following_trace = finished.senses.take_trace();
        let (off, looks) = finished.perception_error;
        finished.result.perception_error_m = (looks > 0).then(|| off / looks as f64);
        if let (Some(recorder), Some(steps)) = (recorder.as_mut(), finished.recorded) {
            recorder.add(finished.ordinal, finished.task, steps)?;
        }
        done.insert(finished.ordinal, (finished.result, finished.frames));
    }
    let successes = done.values().filter(|(r, _)| r.success).count();
    bar.set_position(done.len() as u64);
    bar.set_message(format!("{successes}/{} succeeded", done.len()));
    Ok(())
}

/// Evaluates the policy; returns the summary and every episode.
pub fn evaluate(args: &EvalArgs, show_progress: bool) -> anyhow::Result<(Summary, Vec<EpisodeResult>)> {
    if args.episodes == 0 || args.envs == 0 || args.replan == 0 || args.samples == 0 {
        bail!("--episodes, --envs, --replan and --samples must be at least 1");
    }
    if !(args.perception_error.is_finite() && args.perception_error >= 0.0) {
        bail!(
            "--perception-error {} is not a distance of at least 0",
            args.perception_error
        );
    }
    if !(0.0..=1.0).contains(&args.perception_release) {
        bail!(
            "--perception-release {} is not a fraction from 0 to 1",
            args.perception_release
        );
    }
    if let Some(track) = args.perception_track
        && !(track.is_finite() && track >= 0.0)
    {
        bail!("--perception-track {track} is not a distance of at least 0");
    }
    let device = args.device.device()?;
    let mut agent = Agent::load(&args.policy, &device, args.seed)
        .with_context(|| format!("loading the policy from {}", args.policy.display()))?;
    agent.set_smoothing(args.smooth);
    let run = agent.run_config().clone();
    if run.policy.state_dim != 6 || run.policy.action_dim != 6 {
        bail!("the policy is not for the SO-100's six joints");
    }
    if run.policy.privileged.is_empty() {
        for (given, flag) in [
            (args.perception.is_some(), "--perception"),
            (args.perception_error > 0.0, "--perception-error"),
        ] {
            if given {
                bail!("{flag} is for a policy trained with --privileged, and this one was not");
            }
        }
    }
    let perception = match &args.perception {
        Some(dir) => {
            let perception = load_perception(dir, &run, &device, args.seed)?;
            if args.perception_track.is_some_and(|m| m > 0.0) && perception.run_config().train.place.is_none()
            {
                bail!(
                    "--perception-track needs a perception run trained with --place-weight; {} was not",
                    dir.display()
                );
            }
            Some(perception)
        }
        None => None,
    };
    // How near its last target the perception looks (0: anywhere).
    let track_m = match (&perception, args.perception_track) {
        (_, Some(m)) => m,
        (Some(p), None) if p.run_config().train.place.is_some() => sponge_policy::place::DEFAULT_TRACK_M,
        _ => 0.0,
    };
    // Summed distance between the perceived and the twin's target, and the count.
    let mut perception_error = (0.0f64, 0usize);
    let world_model = match &args.world_model {
        Some(dir) => Some(
            WorldModelRun::load(dir, &device)
                .with_context(|| format!("loading the world model from {}", dir.display()))?
                .with_risk_weight(args.risk_weight),
        ),
        None => None,
    };
    if args.samples > 1 && world_model.is_none() {
        bail!(
            "--samples {} needs a --world-model to rank the chunks",
            args.samples
        );
    }
    if let Some(wm) = &world_model
        && wm.run_config().model.image_size != run.policy.image_size
    {
        bail!(
            "the world model sees {0}x{0} images, the policy {1}x{1}",
            wm.run_config().model.image_size,
            run.policy.image_size
        );
    }
    let calibration = match (&args.world_model, args.monitor) {
        (Some(dir), true) => Some(Calibration::load(&dir.join("monitor.json")).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let plan = fault_plan(args)?;
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
    let mut recorder = match &args.record {
        Some(dir) => {
            if dir.exists() {
                bail!(
                    "{} already exists: choose a new folder for the recording",
                    dir.display()
                );
            }
            let spec = twin_spec(run.fps, config.image_size, config.wrist_camera);
            let writer = DatasetWriter::create(dir, spec)
                .with_context(|| format!("cannot create the dataset at {}", dir.display()))?;
            Some(Recorder {
                writer,
                waiting: BTreeMap::new(),
                next: 0,
            })
        }
        None => None,
    };
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
    let segment = world_model.as_ref().map_or(usize::MAX, WorldModelRun::segment);
    loop {
        let mut reset_any = false;
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && next < seeds.len() {
                let env = &mut batch.envs_mut()[i];
                let seed = seeds[next];
                env.reset(seed);
                let mut rng = StdRng::seed_from_u64(seed ^ 0x0FA0_17ED);
                if args.ood {
                    make_unfamiliar(env, &mut rng);
                }
                let fault = plan.as_ref().map(|(faults, from, to)| {
                    let at = if to > from {
                        rng.random_range(*from..*to)
                    } else {
                        *from
                    };
                    (faults[next % faults.len()], (at * fps).round() as usize)
                });
                let task = env.scene().instruction.clone();
                let mut noise_rng = StdRng::seed_from_u64(seed ^ 0x5EED_F10E);
                *slot = Some(Running {
                    ordinal: next,
                    task: task.clone(),
                    chunk: None,
                    noise: (args.noise == NoiseMode::Episode)
                        .then(|| agent.draw_noise_from(&mut noise_rng, args.samples)),
                    rng: noise_rng,
                    index: 0,
                    steps: 0,
                    result: EpisodeResult {
                        seed,
                        task,
                        success: false,
                        target_fraction: 0.0,
                        other_fraction: None,
                        time_to_success_s: None,
                        force_violation_steps: 0,
                        arm_on_table_steps: 0,
                        peak_force_n: 0.0,
                        duration_s: 0.0,
                        fault: fault.map(|(f, _)| f.name().to_owned()),
                        fault_at_s: None,
                        dirt_left_cm2_at_fault: None,
                        alarm_at_s: None,
                        alarm_cause: None,
                        max_surprise: None,
                        perception_error_m: None,
                        checks: Vec::new(),
                        check_colours: Vec::new(),
                        following_trace: Vec::new(),
                    },
                    frames: (args.video.is_some() && next < args.videos).then(Vec::new),
                    fault,
                    anchor: None,
                    executed: Vec::new(),
                    history: History::for_run(&run),
                    target_offset: {
                        let angle = StdRng::seed_from_u64(seed ^ 0x7A46_E70F)
                            .random_range(0.0..std::f64::consts::TAU);
                        [
                            (args.perception_error * angle.cos()) as f32,
                            (args.perception_error * angle.sin()) as f32,
                        ]
                    },
                    privileged_at_start: None,
                    tracker: Tracker::new(track_m, args.perception_release),
                    perception_error: (0.0, 0),
                    senses: {
                        let mut senses =
                            Senses::so100(fps).with_response(calibration.as_ref().and_then(|c| c.response));
                        if args.keep_following_trace {
                            senses.keep_trace();
                        }
                        senses
                    },
                    monitor: calibration.clone().map(Monitor::new),
                    recorded: recorder.is_some().then(Vec::new),
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
                if let Some(r) = slots[i].as_mut().filter(|r| r.steps == 0) {
                    r.history.clear();
                    r.history.push(0.0, &joints_to_dataset_f32(&observation.state));
                    observations[i] = observation;
                }
            }
        }
        let instruction =
            |r: &Running| -> String { args.instruction.clone().unwrap_or_else(|| r.task.clone()) };
        // The joint states (dataset units) and instructions of the twins `due`.
        let states_and_tasks = |due: &[usize], slots: &[Option<Running>], observations: &[Observation]| {
            let states: Vec<Vec<f32>> = due
                .iter()
                .map(|&i| joints_to_dataset_f32(&observations[i].state).to_vec())
                .collect();
            let tasks: Vec<String> = due
                .iter()
                .map(|&i| slots[i].as_ref().map(&instruction).unwrap_or_default())
                .collect();
            (states, tasks)
        };
        // The monitor: at every segment's end, what is seen against what was expected.
        if let Some(wm) = &world_model {
            let due: Vec<usize> = (0..workers)
                .filter(|&i| slots[i].as_ref().is_some_and(|r| r.steps % segment == 0))
                .collect();
            if !due.is_empty() {
                let (states, tasks) = states_and_tasks(&due, &slots, &observations);
                let (checked, first): (Vec<usize>, Vec<usize>) =
                    (0..due.len()).partition(|&j| slots[due[j]].as_ref().is_some_and(|r| r.anchor.is_some()));
                let pick = |js: &[usize]| {
                    let frames: Vec<&[u8]> = js
                        .iter()
                        .map(|&j| observations[due[j]].images.first().map_or(&[][..], Vec::as_slice))
                        .collect();
                    let states: Vec<&[f32]> = js.iter().map(|&j| states[j].as_slice()).collect();
                    let tasks: Vec<&str> = js.iter().map(|&j| tasks[j].as_str()).collect();
                    (frames, states, tasks)
                };
                if !first.is_empty() {
                    let (frames, states, tasks) = pick(&first);
                    let anchors = wm.anchor(&frames, &states, &tasks)?;
                    for (row, &j) in first.iter().enumerate() {
                        if let Some(r) = slots[due[j]].as_mut() {
                            r.anchor = Some(anchors.row(row)?);
                            r.executed.clear();
                            r.senses.first(frames[row]);
                        }
                    }
                }
                if !checked.is_empty() {
                    let (frames, states, tasks) = pick(&checked);
                    let previous: Vec<&Anchor> = checked
                        .iter()
                        .filter_map(|&j| slots[due[j]].as_ref().and_then(|r| r.anchor.as_ref()))
                        .collect();
                    let previous = Anchor::cat(&previous)?;
                    let executed: Vec<&[Vec<f32>]> = checked
                        .iter()
                        .map(|&j| slots[due[j]].as_ref().map_or(&[][..], |r| r.executed.as_slice()))
                        .collect();
                    let (mut parts, anchors) = wm.surprise(&previous, &executed, &frames, &states, &tasks)?;
                    for (row, &j) in checked.iter().enumerate() {
                        let i = due[j];
                        let Some(r) = slots[i].as_mut() else { continue };
                        r.anchor = Some(anchors.row(row)?);
                        r.executed.clear();
                        let calibration = r.monitor.as_ref().map(Monitor::calibration);
                        let colours = r.senses.check(&mut parts[row], frames[row], calibration);
                        r.result.checks.push(parts[row]);
                        r.result.check_colours.push(colours);
                        let Some(monitor) = r.monitor.as_mut() else {
                            continue;
                        };
                        let verdict = monitor.check(&parts[row]);
                        let best = r.result.max_surprise.unwrap_or(f64::NEG_INFINITY);
                        r.result.max_surprise = Some(best.max(verdict.surprise));
                        if verdict.alarm && r.result.alarm_at_s.is_none() {
                            r.result.alarm_at_s = Some(r.steps as f64 / fps);
                            r.result.alarm_cause = Some(verdict.cause.to_owned());
                            if !args.shadow {
                                // Hold and ask for help: the episode ends here.
                                r.result.duration_s = r.steps as f64 / fps;
                                finish(&mut slots[i], &mut done, &mut recorder, &bar)?;
                            }
                        }
                    }
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
            let (states, tasks) = states_and_tasks(&due, &slots, &observations);
            let views: Vec<Vec<&[u8]>> = due
                .iter()
                .map(|&i| observations[i].images.iter().map(Vec::as_slice).collect())
                .collect();
            let earlier: Vec<Vec<f32>> = due
                .iter()
                .map(|&i| {
                    slots[i]
                        .as_ref()
                        .map_or(Vec::new(), |r| r.history.earlier().to_vec())
                })
                .collect();
            // A privileged policy (a diagnostic) also sees what the twin
            // knows, or what the perception run makes of the frames; one
            // that takes them as the episode began keeps its first ones.
            let kept: Vec<Option<&Vec<f32>>> = due
                .iter()
                .map(|&i| slots[i].as_ref().and_then(|r| r.privileged_at_start.as_ref()))
                .collect();
            let fresh: Vec<bool> = kept.iter().map(Option::is_none).collect();
            let mut environments: Vec<Vec<f32>> = due
                .iter()
                .zip(&kept)
                .map(|(&i, kept)| match (run.policy.privileged.is_empty(), kept) {
                    (true, _) => Vec::new(),
                    (false, Some(kept)) => kept.to_vec(),
                    (false, None) => {
                        let env = &batch.envs()[i];
                        let mut known = env.environment_state(env.next_target());
                        if let Some(r) = slots[i].as_ref() {
                            known[0] += r.target_offset[0];
                            known[1] += r.target_offset[1];
                        }
                        known.to_vec()
                    }
                })
                .collect();
            if let (Some(perception), true) = (&perception, fresh.contains(&true)) {
                let seen: Vec<_> = policy_inputs(&views, &states, &earlier, &tasks, &[])
                    .into_iter()
                    .zip(&fresh)
                    .filter_map(|(input, &fresh)| fresh.then_some(input))
                    .collect();
                let looking: Vec<usize> = due
                    .iter()
                    .zip(&fresh)
                    .filter_map(|(&i, &fresh)| fresh.then_some(i))
                    .collect();
                let near: Vec<_> = looking
                    .iter()
                    .map(|&i| slots[i].as_ref().and_then(|r| r.tracker.near()))
                    .collect();
                let (perceived, places) = perception.perceive_environment(&seen, &near)?;
                for (place, &i) in places.into_iter().zip(&looking) {
                    if let Some(r) = slots[i].as_mut() {
                        r.tracker.saw(place);
                    }
                }
                let rows = environments
                    .iter_mut()
                    .zip(&fresh)
                    .filter_map(|(e, &f)| f.then_some(e));
                for ((twin, perceived), &i) in rows.zip(perceived).zip(&looking) {
                    let off = f64::from(twin[0] - perceived[0]).hypot(f64::from(twin[1] - perceived[1]));
                    perception_error.0 += off;
                    perception_error.1 += 1;
                    if let Some(r) = slots[i].as_mut() {
                        r.perception_error.0 += off;
                        r.perception_error.1 += 1;
                    }
                    *twin = perceived;
                }
            }
            if run.policy.privileged_start {
                for ((&i, environment), &fresh) in due.iter().zip(&environments).zip(&fresh) {
                    if let (Some(r), true) = (slots[i].as_mut(), fresh) {
                        r.privileged_at_start = Some(environment.clone());
                    }
                }
            }
            let inputs = policy_inputs(&views, &states, &earlier, &tasks, &environments);
            let noise: Vec<f32> = match args.noise {
                NoiseMode::Chunk => {
                    let mut noise = Vec::new();
                    for &i in &due {
                        if let Some(r) = slots[i].as_mut() {
                            noise.extend(agent.draw_noise_from(&mut r.rng, args.samples));
                        }
                    }
                    noise
                }
                NoiseMode::Episode => due
                    .iter()
                    .filter_map(|&i| slots[i].as_ref().and_then(|r| r.noise.as_deref()))
                    .flatten()
                    .copied()
                    .collect(),
            };
            // With --inpaint, each new chunk starts with what the last one planned.
            let planned: Vec<&[Vec<f32>]> = due
                .iter()
                .map(|&i| {
                    match slots[i]
                        .as_ref()
                        .and_then(|r| r.chunk.as_ref().map(|c| (c, r.index)))
                    {
                        Some((chunk, index)) if args.inpaint > 0 => {
                            let from = index.min(chunk.len());
                            &chunk[from..(from + args.inpaint).min(chunk.len())]
                        }
                        _ => &[],
                    }
                })
                .collect();
            let proposed = agent.act_continuing(&inputs, args.samples, &noise, &planned)?;
            // With several proposals, the world model picks the best.
            let best: Vec<usize> = match &world_model {
                Some(wm) if args.samples > 1 => {
                    let frames: Vec<&[u8]> =
                        views.iter().map(|v| v.first().copied().unwrap_or(&[])).collect();
                    let state_refs: Vec<&[f32]> = states.iter().map(Vec::as_slice).collect();
                    let task_refs: Vec<&str> = tasks.iter().map(String::as_str).collect();
                    let latents = wm.encode(&frames, &state_refs, &task_refs)?;
                    wm.score(&latents, &proposed)?
                        .iter()
                        .map(|scores| {
                            (0..scores.len())
                                .max_by(|&a, &b| scores[a].value.total_cmp(&scores[b].value))
                                .unwrap_or(0)
                        })
                        .collect()
                }
                _ => vec![0; due.len()],
            };
            for ((&i, mut drawn), pick) in due.iter().zip(proposed).zip(best) {
                let Some(running) = slots[i].as_mut() else {
                    continue;
                };
                let mut fresh = drawn.swap_remove(pick);
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
        // Faults due now.
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(r) = slot.as_mut()
                && let Some((fault, at)) = r.fault
                && r.steps == at
            {
                let mut rng = StdRng::seed_from_u64(r.result.seed ^ 0xFA17);
                let env = &mut batch.envs_mut()[i];
                let cell_cm2 = (CELL_M * 100.0).powi(2);
                let left: f64 = env.scene().spills.iter().map(Spill::remaining).sum();
                fault.inject(env, &mut rng);
                r.result.fault_at_s = Some(at as f64 / fps);
                r.result.dirt_left_cm2_at_fault = Some(left * cell_cm2);
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
        // The scene as the observations saw it, before the step (for --record).
        let scenes: Vec<[f32; 4]> = batch
            .envs()
            .iter()
            .map(|env| env.environment_state(env.next_target()))
            .collect();
        let steps = batch.step(&actions)?;
        for (i, step) in steps.into_iter().enumerate() {
            let Some(running) = slots[i].as_mut() else {
                continue;
            };
            if let Some(frames) = running.frames.as_mut()
                && !observations[i].images.is_empty()
            {
                frames.push(in_a_row(&observations[i].images, config.image_size as usize));
            }
            running.index += 1;
            running.steps += 1;
            running.executed.push(joints_to_dataset_f32(&actions[i]).to_vec());
            running.senses.command(&actions[i]);
            running
                .senses
                .measure(&step.observation.state, Some(step.observation.gripper_load));
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
            let seen = std::mem::replace(&mut observations[i], step.observation);
            running.history.push(
                running.steps as f64 / fps,
                &joints_to_dataset_f32(&observations[i].state),
            );
            if let Some(recorded) = running.recorded.as_mut() {
                recorded.push(Frame {
                    state: joints_to_dataset_f32(&seen.state).to_vec(),
                    action: joints_to_dataset_f32(&actions[i]).to_vec(),
                    images: seen.images,
                    reward: step.reward as f32,
                    done: step.done,
                    environment_state: scenes[i],
                });
            }
            if step.done {
                r.success = info.success;
                r.duration_s = running.steps as f64 / fps;
                if info.success {
                    r.time_to_success_s = Some(r.duration_s);
                }
                finish(&mut slots[i], &mut done, &mut recorder, &bar)?;
            }
        }
    }
    bar.finish_and_clear();
    if let (Some(recorder), Some(dir)) = (recorder, &args.record) {
        let (episodes, frames) = (recorder.writer.episodes(), recorder.writer.frames());
        recorder.writer.close()?;
        eprintln!(
            "recorded {episodes} episodes ({frames} frames) to {}",
            dir.display()
        );
    }
    let mut videos = Vec::new();
    let mut episodes = Vec::new();
    for (result, frames) in done.into_values() {
        if let (Some(frames), Some(dir)) = (frames, args.video.as_ref()) {
            let path = dir.join(format!("episode_{}.gif", result.seed));
            let size = config.image_size as usize;
            // Each frame holds the cameras in a row: as wide as its length says.
            let width = frames.first().map_or(size, |f| f.len() / (3 * size));
            write_gif(&path, &frames, width, size, run.fps)?;
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
        samples: args.samples,
        replan: args.replan,
        blend: args.blend,
        noise: args.noise,
        inpaint: args.inpaint,
        smooth: args.smooth,
        monitor: calibration.is_some().then(|| monitor_summary(&episodes)),
        perception_error_m: (perception_error.1 > 0).then(|| perception_error.0 / perception_error.1 as f64),
    };
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "policy": args.policy,
            "world_model": args.world_model,
            "perception": args.perception,
            "perception_error_m": args.perception_error,
            "perception_track_m": track_m,
            "perception_release": args.perception_release,
            "risk_weight": args.world_model.as_ref().map(|_| args.risk_weight),
            "first_seed": args.seed,
            "two_spills": args.two_spills,
            "ood": args.ood,
            "fault": args.fault,
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

/// The policy's inputs for a batch of observations, one per entry of
/// `views`; `environments` empty for none.
fn policy_inputs<'a>(
    views: &'a [Vec<&'a [u8]>],
    states: &'a [Vec<f32>],
    earlier: &'a [Vec<f32>],
    tasks: &'a [String],
    environments: &'a [Vec<f32>],
) -> Vec<Input<'a>> {
    (0..views.len())
        .map(|j| Input {
            images: &views[j],
            state: &states[j],
            earlier: &earlier[j],
            task: &tasks[j],
            environment: environments.get(j).map_or(&[][..], Vec::as_slice),
        })
        .collect()
}

/// Loads the run whose auxiliary head perceives the environment state for
/// the privileged policy `run`, checking that the two fit together.
fn load_perception(
    dir: &Path,
    run: &sponge_policy::train::RunConfig,
    device: &candle_core::Device,
    seed: u64,
) -> anyhow::Result<Agent> {
    let perception = Agent::load(dir, device, seed)
        .with_context(|| format!("loading the perception run from {}", dir.display()))?;
    perception
        .run_config()
        .serves(run)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(perception)
}

/// Counts what the monitor caught and its false alarms.
fn monitor_summary(episodes: &[EpisodeResult]) -> MonitorSummary {
    let mut summary = MonitorSummary {
        faults: 0,
        detected_within_1s: 0,
        detected_late: 0,
        per_fault: BTreeMap::new(),
        false_alarms: 0,
        normal_s: 0.0,
        false_alarms_per_10_min: 0.0,
    };
    for e in episodes {
        match (e.fault_at_s, e.alarm_at_s) {
            (Some(fault), alarm) if alarm.is_none_or(|a| a >= fault) => {
                summary.faults += 1;
                summary.normal_s += fault;
                let entry = summary
                    .per_fault
                    .entry(e.fault.clone().unwrap_or_default())
                    .or_insert((0, 0));
                entry.0 += 1;
                match alarm {
                    Some(a) if a - fault <= 1.0 + 1e-9 => {
                        summary.detected_within_1s += 1;
                        entry.1 += 1;
                    }
                    Some(_) => summary.detected_late += 1,
                    None => {}
                }
            }
            (_, Some(alarm)) => {
                // An alarm before any fault.
                summary.false_alarms += 1;
                summary.normal_s += alarm;
            }
            (_, None) => summary.normal_s += e.duration_s,
        }
    }
    summary.false_alarms_per_10_min = summary.false_alarms as f64 * 600.0 / summary.normal_s.max(1e-9);
    summary
}

/// Square RGB images of `size` pixels, side by side in one image.
fn in_a_row(images: &[Vec<u8>], size: usize) -> Vec<u8> {
    let row = size * 3;
    let mut out = Vec::with_capacity(images.len() * size * row);
    for y in 0..size {
        for image in images {
            out.extend_from_slice(&image[y * row..(y + 1) * row]);
        }
    }
    out
}

/// Writes RGB8 frames as an animated GIF, three times larger, with ffmpeg.
pub fn write_gif(
    path: &Path,
    frames: &[Vec<u8>],
    width: usize,
    height: usize,
    fps: u32,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (scaled_w, scaled_h) = (width * 3, height * 3);
    let mut child = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{width}x{height}"), "-r", &fps.to_string(), "-i", "-"])
        .args([
            "-vf",
            &format!(
                "fps=15,scale={scaled_w}:{scaled_h}:flags=neighbor,split[a][b];[a]palettegen[p];[b][p]paletteuse"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(fault_at_s: Option<f64>, alarm_at_s: Option<f64>, duration_s: f64) -> EpisodeResult {
        EpisodeResult {
            seed: 0,
            task: String::new(),
            success: false,
            target_fraction: 0.0,
            other_fraction: None,
            time_to_success_s: None,
            force_violation_steps: 0,
            arm_on_table_steps: 0,
            peak_force_n: 0.0,
            duration_s,
            fault: fault_at_s.map(|_| "block-arm".to_owned()),
            fault_at_s,
            dirt_left_cm2_at_fault: None,
            alarm_at_s,
            alarm_cause: None,
            max_surprise: None,
            perception_error_m: None,
            checks: Vec::new(),
            check_colours: Vec::new(),
            following_trace: Vec::new(),
        }
    }

    #[test]
    fn the_monitor_summary_tells_caught_late_missed_and_false_alarms_apart() {
        let episodes = [
            episode(Some(4.0), Some(4.67), 4.67), // caught within a second
            episode(Some(4.0), Some(5.5), 5.5),   // caught late
            episode(Some(4.0), None, 20.0),       // missed
            episode(Some(6.0), Some(2.0), 2.0),   // an alarm before the fault: false
            episode(None, Some(10.0), 10.0),      // a normal episode's alarm: false
            episode(None, None, 20.0),            // a quiet normal episode
        ];
        let m = monitor_summary(&episodes);
        assert_eq!(m.faults, 3);
        assert_eq!(m.detected_within_1s, 1);
        assert_eq!(m.detected_late, 1);
        assert_eq!(m.per_fault["block-arm"], (3, 1));
        assert_eq!(m.false_alarms, 2);
        // Normal running: 4 + 4 + 4 s before the faults, 2 s, 10 s and 20 s.
        assert!((m.normal_s - 44.0).abs() < 1e-9, "{}", m.normal_s);
        assert!((m.false_alarms_per_10_min - 2.0 * 600.0 / 44.0).abs() < 1e-9);
    }

    #[test]
    fn cameras_are_laid_side_by_side_row_by_row() {
        // Two 2×2 images: the first all 1s, the second numbered by pixel.
        let a = vec![1u8; 12];
        let b: Vec<u8> = (0..12).collect();
        let row = in_a_row(&[a, b], 2);
        assert_eq!(row.len(), 24);
        // Row 0: two pixels of a, then b's first row (pixels 0 and 1).
        assert_eq!(&row[..6], &[1; 6]);
        assert_eq!(&row[6..12], &[0, 1, 2, 3, 4, 5]);
        // Row 1: a again, then b's second row.
        assert_eq!(&row[12..18], &[1; 6]);
        assert_eq!(&row[18..24], &[6, 7, 8, 9, 10, 11]);
    }
}
