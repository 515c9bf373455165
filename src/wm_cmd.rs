//! `sponge wm`: the world model: training, calibrating its anomaly monitor
//! on normal runs, and a side-by-side video of what happened and what it
//! expected.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sponge_policy::agent::{Agent, History, Input};
use sponge_policy::train::TrainConfig;
use sponge_robot::joint::clamp_to_limits;
use sponge_robot::units::{dataset_f32_to_joints, joints_to_dataset_f32};
use sponge_sim::fault::Fault;
use sponge_sim::{EnvConfig, VecEnv};
use sponge_world_model::monitor::{STRETCH, WATCHED, colour_out_of_episode};
use sponge_world_model::{
    Calibration, ColourBins, Following, Parts, Response, Senses, Traced, WorldModelConfig, WorldModelRun,
};

use crate::eval_cmd::{EvalArgs, evaluate, write_gif};
use crate::train_cmd::{DeviceArg, with_progress_bar};

/// `sponge wm`.
#[derive(Subcommand)]
pub enum WmCommand {
    /// Train a world model on a dataset with rewards: expert episodes plus
    /// perturbed ones (`sponge sim generate --perturb 0.5 --keep-failures`,
    /// merged with `sponge dataset merge`), so that it has seen failures.
    Train(WmTrainArgs),
    /// Calibrate the anomaly monitor on normal runs of a policy in the twin:
    /// writes WM/monitor.json (the surprise threshold).
    Calibrate(CalibrateArgs),
    /// One episode of a policy in the twin as a GIF: the camera on the left,
    /// what the world model expected on the right; surprise per check.
    Rollout(RolloutArgs),
}

/// Options of `sponge wm train`.
#[derive(Args)]
pub struct WmTrainArgs {
    /// The LeRobot v3 dataset (with next.reward, as `sponge sim generate` writes).
    #[arg(long)]
    dataset: PathBuf,
    /// The world-model folder: config.json, model.safetensors, log.jsonl, loss.png.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// Samples per step (each has the chunk's start and segment ends: 6 images).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the initialisation and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Decay of the moving average of the weights that the checkpoint
    /// holds (0.999 averages about the last thousand steps; 0 keeps the raw
    /// weights).
    #[arg(long, default_value_t = 0.999, value_parser = crate::train_cmd::ema_decay)]
    ema_decay: f64,
    /// The dtype of the forward and backward passes: f32, or bf16 (mixed
    /// precision, as `sponge train --precision bf16`: for --device cuda;
    /// slower than f32 on the CPU).
    #[arg(long, default_value = "f32")]
    precision: sponge_policy::train::Precision,
    /// Go on training the model in --out from its last checkpoint, up to --steps in all.
    #[arg(long)]
    resume: bool,
}

/// Options of `sponge wm calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// The world-model folder.
    #[arg(long)]
    world_model: PathBuf,
    /// The policy whose normal runs set the threshold.
    #[arg(long)]
    policy: PathBuf,
    /// Normal episodes to run.
    #[arg(long, default_value_t = 30)]
    episodes: usize,
    /// First seed (away from training and evaluation seeds).
    #[arg(long, default_value_t = 2_000_000)]
    seed: u64,
    /// Checks in a row a part must stay above the threshold to raise an
    /// alarm (shift and view wait for 2 whatever this says).
    #[arg(long, default_value_t = 1)]
    persistence: usize,
    /// Twins run together.
    #[arg(long, default_value_t = 8)]
    envs: usize,
}

/// Options of `sponge wm rollout`.
#[derive(Args)]
pub struct RolloutArgs {
    /// The world-model folder.
    #[arg(long)]
    world_model: PathBuf,
    /// The policy driving the twin.
    #[arg(long)]
    policy: PathBuf,
    /// The GIF to write.
    #[arg(long)]
    out: PathBuf,
    /// Scene seed.
    #[arg(long, default_value_t = 1_000_000)]
    seed: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 12.0)]
    seconds: f64,
    /// A fault to inject (drop-sponge, block-arm, push-arm, cover-camera, shift-camera, unseen-spill, spill-paint).
    #[arg(long)]
    fault: Option<Fault>,
    /// When to inject it, seconds.
    #[arg(long, default_value_t = 5.0)]
    at: f64,
}

/// Runs a `sponge wm` command.
pub fn run(command: &WmCommand) -> anyhow::Result<()> {
    match command {
        WmCommand::Train(args) => train(args),
        WmCommand::Calibrate(args) => calibrate(args),
        WmCommand::Rollout(args) => rollout(args),
    }
}

fn train(args: &WmTrainArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be at least 1");
    }
    if !args.resume && args.out.join("model.safetensors").exists() {
        bail!(
            "{} already holds a trained world model: pass --resume to go on training it, or choose another --out",
            args.out.display()
        );
    }
    let config = TrainConfig {
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.lr,
        warmup: (args.steps / 20).clamp(1, 500),
        seed: args.seed,
        ema_decay: args.ema_decay,
        precision: args.precision,
        ..TrainConfig::default()
    };
    let last = with_progress_bar(config.steps, |progress| {
        sponge_world_model::train::train(
            &args.dataset,
            &args.out,
            &WorldModelConfig::default(),
            &config,
            &device,
            args.resume,
            progress,
        )
    })?;
    println!(
        "{}; world model in {}",
        crate::train_cmd::trained(
            last.step,
            args.batch,
            last.loss,
            last.val_loss,
            last.samples_per_s
        ),
        args.out.display()
    );
    println!(
        "next: sponge wm calibrate --world-model {} --policy RUN",
        args.out.display()
    );
    Ok(())
}

fn calibrate(args: &CalibrateArgs) -> anyhow::Result<()> {
    let eval = EvalArgs {
        episodes: args.episodes,
        seed: args.seed,
        envs: args.envs,
        world_model: Some(args.world_model.clone()),
        keep_following_trace: true,
        ..EvalArgs::for_policy(&args.policy)?
    };
    let (summary, mut episodes) = evaluate(&eval, true)?;
    let mut checks: Vec<Vec<Parts>> = episodes.iter().map(|e| e.checks.clone()).collect();
    // How the joints follow their servos on these runs; `following` and
    // `pan` are then measured against that, as the monitor will measure them.
    let traces: Vec<Vec<Traced>> = episodes
        .iter_mut()
        .map(|e| std::mem::take(&mut e.following_trace))
        .collect();
    let response = Response::fit(&traces);
    if let Some(response) = response {
        for (episode, trace) in checks.iter_mut().zip(&traces) {
            for (check, (following, pan)) in episode.iter_mut().zip(Following::replay(trace, Some(response)))
            {
                check.following = following;
                check.pan = pan;
            }
        }
    }
    // Each episode's colours judged against the others', as a fresh scene
    // will be judged against them all.
    let colours: Vec<Vec<ColourBins>> = episodes.iter().map(|e| e.check_colours.clone()).collect();
    let seen_by = colour_out_of_episode(&mut checks, &colours);
    let parts: Vec<Parts> = checks.into_iter().flatten().collect();
    let mut calibration = Calibration::fit(&parts, args.persistence).map_err(anyhow::Error::msg)?;
    calibration.colours = seen_by;
    calibration.response = response;
    let path = args.world_model.join("monitor.json");
    calibration.save(&path).map_err(anyhow::Error::msg)?;
    // The checks themselves, to refit or study the rule without running again.
    let checks_path = args.world_model.join("calibration_checks.json");
    std::fs::write(&checks_path, serde_json::to_string(&parts)?)
        .with_context(|| format!("writing {}", checks_path.display()))?;
    println!(
        "calibrated on {} checks over {} normal episodes ({:.0}% succeeded): threshold {:.2} (largest surprise seen {:.2}), {} check(s) in a row alarm (or as the part says)",
        calibration.checks,
        summary.episodes,
        100.0 * summary.success_rate,
        calibration.threshold,
        calibration.max_seen,
        calibration.persistence
    );
    for (i, name) in Parts::NAMES.iter().enumerate() {
        println!(
            "  {name:15} mean {:.5}  std {:.5}  max {:.5}{}",
            calibration.mean[i],
            calibration.std[i],
            calibration.max[i],
            if WATCHED.contains(&i) {
                let stretch = match STRETCH[i] {
                    1.0 => String::new(),
                    s => format!(", its range taken {s}x as wide"),
                };
                format!("  (watched, {} in a row{stretch})", calibration.persistence_of(i))
            } else {
                String::new()
            }
        );
    }
    match response {
        Some(r) => println!(
            "  joints follow their servos' setpoints by gain {} and carry {} a step; per metre the sponge is sent below the table, {} rad a step more and gain {} more",
            r.gain.map(|v| format!("{v:.2}")).join("/"),
            r.carry.map(|v| format!("{v:.2}")).join("/"),
            r.press.map(|v| format!("{v:.2}")).join("/"),
            r.pressed_gain.map(|v| format!("{v:.1}")).join("/")
        ),
        None => println!("  too few joint steps to fit how the joints follow their servos: top-speed model"),
    }
    println!("written to {}", path.display());
    Ok(())
}

fn rollout(args: &RolloutArgs) -> anyhow::Result<()> {
    let device = candle_core::Device::Cpu;
    let mut agent = Agent::load(&args.policy, &device, args.seed)
        .with_context(|| format!("loading the policy from {}", args.policy.display()))?;
    let wm = WorldModelRun::load(&args.world_model, &device)
        .with_context(|| format!("loading the world model from {}", args.world_model.display()))?;
    let calibration = Calibration::load(&args.world_model.join("monitor.json")).ok();
    let run = agent.run_config().clone();
    let size = run.policy.image_size;
    let config = EnvConfig {
        fps: run.fps,
        image_size: size as u32,
        wrist_camera: run.cameras.len() > 1,
        end_on_success: false,
        ..EnvConfig::default()
    };
    let mut twin = VecEnv::new(config, 1, true)?;
    let mut observation = twin
        .reset(&[args.seed])?
        .pop()
        .context("the twin gave no observation")?;
    let task = twin.envs()[0].scene().instruction.clone();
    let segment = wm.segment();
    let fps = f64::from(run.fps);
    let steps = (args.seconds * fps).round() as usize;
    let fault_step = (args.at * fps).round() as usize;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut chunk: Vec<Vec<f32>> = Vec::new();
    let mut anchor = None;
    let mut executed: Vec<Vec<f32>> = Vec::new();
    let mut senses = Senses::so100(fps).with_response(calibration.as_ref().and_then(|c| c.response));
    let mut history = History::for_run(&run);
    let mut expected: Vec<u8> = Vec::new();
    let mut video: Vec<Vec<u8>> = Vec::new();
    println!("seed {}: {task:?}", args.seed);
    for t in 0..steps {
        let state = joints_to_dataset_f32(&observation.state).to_vec();
        history.push(t as f64 / fps, &state);
        let front = observation.images.first().context("no camera image")?.clone();
        let (frame, joints, text) = (front.as_slice(), state.as_slice(), task.as_str());
        if t % segment == 0 {
            // Check what is seen against what was expected, then plan.
            match &anchor {
                None => {
                    anchor = Some(wm.anchor(&[frame], &[joints], &[text])?);
                    senses.first(frame);
                }
                Some(previous) => {
                    let (mut parts, now) =
                        wm.surprise(previous, &[executed.as_slice()], &[frame], &[joints], &[text])?;
                    senses.check(&mut parts[0], frame, calibration.as_ref());
                    let surprise = calibration.as_ref().map(|c| c.surprise(&parts[0]));
                    println!(
                        "{:5.2} s  latent {:.4}  state {:.4}  image {:.5}  expected {:.5}  change {:.5}  still {:.5} (worst patch {:.4})  following {:.3} rad (pan {:.3})  grip {:.2}  colour {:.4}  tint {:.4}  shift {:.2}  view {:.2}  blind {:.2}{}",
                        t as f64 / fps,
                        parts[0].latent,
                        parts[0].state,
                        parts[0].image,
                        parts[0].expected_image,
                        parts[0].change,
                        parts[0].still,
                        parts[0].still_patch,
                        parts[0].following,
                        parts[0].pan,
                        parts[0].grip,
                        parts[0].colour,
                        parts[0].tint,
                        parts[0].shift,
                        parts[0].view,
                        parts[0].blind,
                        surprise
                            .map(|s| format!(
                                "  surprise {s:.1}{}",
                                if calibration.as_ref().is_some_and(|c| s > c.threshold) {
                                    "  ALARM"
                                } else {
                                    ""
                                }
                            ))
                            .unwrap_or_default()
                    );
                    anchor = Some(now);
                }
            }
            executed.clear();
            let images: Vec<&[u8]> = observation.images.iter().map(Vec::as_slice).collect();
            let mut drawn = agent.act(
                &[Input {
                    images: &images,
                    state: &state,
                    earlier: history.earlier(),
                    task: &task,
                    environment: &[],
                }],
                1,
            )?;
            chunk = drawn
                .pop()
                .and_then(|mut k| k.pop())
                .context("the policy gave no chunk")?;
            if let Some(last) = &anchor {
                let frames = wm.imagine(last.latent(), &chunk)?;
                expected = frames.into_iter().next().unwrap_or_default();
            }
        }
        video.push(side_by_side(&front, &expected, size));
        if t == fault_step
            && let Some(fault) = args.fault
        {
            fault.inject(&mut twin.envs_mut()[0], &mut rng);
            println!("{:5.2} s  fault: {}", t as f64 / fps, fault.name());
        }
        let action = chunk.get(t % segment).cloned().unwrap_or_default();
        let goal =
            dataset_f32_to_joints(&action).map_or(*twin.envs()[0].arm().goal(), |q| clamp_to_limits(&q));
        executed.push(joints_to_dataset_f32(&goal).to_vec());
        observation = twin
            .step(&[goal])?
            .pop()
            .context("the twin gave no step")?
            .observation;
        senses.command(&goal);
        senses.measure(&observation.state, Some(observation.gripper_load));
    }
    write_gif(&args.out, &video, 2 * size, size, run.fps)?;
    println!(
        "wrote {} (left: the camera; right: what the world model expected at the end of each segment)",
        args.out.display()
    );
    Ok(())
}

/// The camera frame and the model's picture (half size, drawn twice as
/// large) next to each other: one RGB8 image `2·size` wide.
fn side_by_side(camera: &[u8], expected: &[u8], size: usize) -> Vec<u8> {
    let half = size / 2;
    let mut out = vec![0u8; 2 * size * size * 3];
    for y in 0..size {
        let row = &mut out[y * 2 * size * 3..(y + 1) * 2 * size * 3];
        row[..size * 3].copy_from_slice(&camera[y * size * 3..(y + 1) * size * 3]);
        for x in 0..size {
            let source = ((y / 2) * half + x / 2) * 3;
            if let Some(px) = expected.get(source..source + 3) {
                row[(size + x) * 3..(size + x) * 3 + 3].copy_from_slice(px);
            }
        }
    }
    out
}
