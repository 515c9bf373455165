//! The policy nodes: the learned policy (a run folder from `sponge train`)
//! and a stand-in that needs no training: it waits for the arm's first
//! `joint_states`, then publishes action chunks (`action_chunk`) of a slow
//! sway of every joint around that pose, as a policy would, at its own rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_policy::agent::{Agent, History, Input, Tracker};
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS, clamp_to_limits};
use sponge_robot::msg::{
    Duration as RosDuration, Header, Image, JointState, JointTrajectory, JointTrajectoryPoint, StringMsg,
    Time,
};
use sponge_robot::units::{dataset_f32_to_joints, joints_to_dataset_f32};

use super::{NodeError, pace};
use crate::params::Params;
use crate::session::Node;
use crate::topics;

/// The sway's target `t` seconds after the node started: each joint swings
/// by `amplitude` rad around `center` with period `period` s (phases spread
/// over the joints), eased in over the first period.
pub fn sway(center: &JointVector, amplitude: f64, period: f64, t: f64) -> JointVector {
    let ease = (t / period).clamp(0.0, 1.0);
    std::array::from_fn(|j| {
        let phase = j as f64 * std::f64::consts::TAU / NUM_JOINTS as f64;
        let q =
            center[j] + ease * amplitude * ((std::f64::consts::TAU * t / period + phase).sin() - phase.sin());
        Joint::ALL[j].limits().clamp(q)
    })
}

/// A chunk of `horizon` actions at `step_hz`, from `t0` seconds on.
pub fn chunk(
    center: &JointVector,
    amplitude: f64,
    period: f64,
    t0: f64,
    horizon: usize,
    step_hz: f64,
) -> JointTrajectory {
    trajectory(
        Time::now(),
        1.0 / step_hz,
        (0..horizon).map(|k| sway(center, amplitude, period, t0 + k as f64 / step_hz)),
    )
}

/// A chunk stamped `stamp`: the six joints' targets, `step_s` apart.
fn trajectory(stamp: Time, step_s: f64, targets: impl Iterator<Item = JointVector>) -> JointTrajectory {
    JointTrajectory {
        header: Header {
            stamp,
            frame_id: String::new(),
        },
        joint_names: Joint::ALL.iter().map(|j| j.name().to_owned()).collect(),
        points: targets
            .enumerate()
            .map(|(k, q)| JointTrajectoryPoint {
                positions: q.to_vec(),
                time_from_start: RosDuration::from_secs_f64(k as f64 * step_s),
                ..JointTrajectoryPoint::default()
            })
            .collect(),
    }
}

/// Runs the stand-in policy until `stop`.
pub fn run_standin(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let states = node.subscriber::<JointState>(topics::JOINT_STATES)?;
    let chunks = node.publisher::<JointTrajectory>(topics::ACTION_CHUNK)?;
    let center = loop {
        if stop.load(Ordering::Relaxed) {
            return Ok("stopped before the arm was heard".into());
        }
        if let Some(state) = states.recv_timeout(Duration::from_millis(100))?
            && let Ok(q) = state.positions()
        {
            break q;
        }
    };
    let amplitude = params.float("amplitude_deg").to_radians();
    let period_s = params.float("period_s");
    let horizon = params.int("horizon") as usize;
    let step_hz = params.float("step_hz");
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t0 = started.elapsed().as_secs_f64();
        chunks.put(&chunk(&center, amplitude, period_s, t0, horizon, step_hz))?;
        sent += 1;
        pace(&mut next, period);
    }
    Ok(format!("{sent} chunks published"))
}

/// The learned policy as a node. It takes the newest joint state and
/// camera frames, infers a chunk (in its own process, so the executor's
/// control loop never waits on it), and publishes it stamped with the
/// time its observation was taken: the executor starts the chunk that far
/// in and blends it into the one it was executing. The instruction comes
/// from the `task` parameter and can be changed on the `task` topic.
///
/// Without a `policy` run folder it falls back to the stand-in sway.
pub fn run_learned(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let Some(run) = params.str("policy").filter(|p| !p.is_empty()) else {
        eprintln!("no policy run folder given (policy=RUN): the stand-in sway drives the arm");
        return run_standin(node, params, stop);
    };
    let mut agent = Agent::load(
        std::path::Path::new(run),
        &candle_core::Device::Cpu,
        params.int("seed") as u64,
    )?;
    let config = agent.run_config().clone();
    // A privileged policy takes what a perception run makes of the camera.
    let perception = match params.str("perception").filter(|p| !p.is_empty()) {
        Some(dir) => {
            let perception = Agent::load(
                std::path::Path::new(dir),
                &candle_core::Device::Cpu,
                params.int("seed") as u64,
            )?;
            perception
                .run_config()
                .serves(&config)
                .map_err(|e| format!("perception {dir} for policy {run}: {e}"))?;
            Some(perception)
        }
        None if !config.policy.privileged.is_empty() => {
            return Err(format!(
                "{run} is a privileged policy (trained with --privileged: it takes the environment state); \
                 on the arm it needs a perception run that makes those entries of the camera \
                 (perception=RUN, trained with --aux-weight, and --place-weight to find the named spill)"
            )
            .into());
        }
        None => None,
    };
    let track_m = params.float("perception_track_m");
    let release = params.float("perception_release") as f32;
    if track_m > 0.0
        && perception
            .as_ref()
            .is_some_and(|p| p.run_config().train.place.is_none())
    {
        eprintln!(
            "the perception run has no place keypoint (--place-weight): it looks over the whole picture"
        );
    }
    let size = config.policy.image_size;
    let names: Vec<String> = config
        .cameras
        .iter()
        .map(|f| f.trim_start_matches("observation.images.").to_owned())
        .collect();
    let states = node.subscriber::<JointState>(topics::JOINT_STATES)?;
    let cameras = names
        .iter()
        .map(|n| node.subscriber::<Image>(&topics::camera_image(n)))
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = node.subscriber::<StringMsg>(topics::TASK)?;
    let chunks = node.publisher::<JointTrajectory>(topics::ACTION_CHUNK)?;
    let mut task = params.str("task").unwrap_or_default().to_owned();
    eprintln!(
        "policy from {run}: cameras {}, {size}x{size}, task '{task}'{}",
        names.join(", "),
        match params.str("perception").filter(|_| perception.is_some()) {
            Some(dir) if track_m > 0.0 => format!(", perception from {dir} tracking within {track_m} m"),
            Some(dir) => format!(", perception from {dir}"),
            None => String::new(),
        }
    );
    // Where the perception last put the named spill, and, for a policy
    // that keeps the entries the episode began with, those; both start
    // over with a new instruction.
    let mut tracker = Tracker::new(track_m, release);
    let mut kept: Option<Vec<f32>> = None;
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let step_s = 1.0 / f64::from(config.fps);
    let mut state: Option<JointVector> = None;
    // The joint states as they came, for a policy that sees motion.
    let mut history = History::for_run(&config);
    let started_at = Instant::now();
    let mut frames: Vec<Option<Vec<u8>>> = vec![None; cameras.len()];
    let (mut sent, mut total_ms, mut worst_ms) = (0u64, 0f64, 0f64);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(q) = super::newest_positions(&states)?.newest {
            state = Some(q);
            history.push(started_at.elapsed().as_secs_f64(), &joints_to_dataset_f32(&q));
        }
        if let Some(text) = tasks.newest()? {
            eprintln!("task: '{}'", text.data);
            task = text.data;
            tracker.forget();
            kept = None;
        }
        for (camera, frame) in cameras.iter().zip(frames.iter_mut()) {
            if let Some(image) = camera.newest()? {
                *frame = Some(square_rgb(&image, size).map_err(|e| format!("camera frame: {e}"))?);
            }
        }
        let (Some(q), true) = (state, frames.iter().all(Option::is_some)) else {
            pace(&mut next, Duration::from_millis(20));
            continue;
        };
        let observed = Time::now();
        let started = Instant::now();
        let dataset_state = joints_to_dataset_f32(&q);
        let views: Vec<&[u8]> = frames.iter().flatten().map(Vec::as_slice).collect();
        let seen = Input {
            images: &views,
            state: &dataset_state,
            earlier: history.earlier(),
            task: &task,
            environment: &[],
        };
        let environment = match (&perception, &kept) {
            (None, _) => Vec::new(),
            (Some(_), Some(kept)) => kept.clone(),
            (Some(perception), None) => {
                let (mut perceived, places) = perception.perceive_environment(&[seen], &[tracker.near()])?;
                tracker.saw(places.first().copied().flatten());
                let environment = perceived.swap_remove(0);
                if config.policy.privileged_start {
                    kept = Some(environment.clone());
                }
                environment
            }
        };
        let chunk = agent
            .act(
                &[Input {
                    environment: &environment,
                    ..seen
                }],
                1,
            )?
            .swap_remove(0)
            .swap_remove(0);
        let targets = chunk
            .iter()
            .map(|action| dataset_f32_to_joints(action).map(|q| clamp_to_limits(&q)))
            .collect::<Option<Vec<_>>>()
            .ok_or("the policy's actions are not six joints")?;
        chunks.put(&trajectory(observed, step_s, targets.into_iter()))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        sent += 1;
        total_ms += ms;
        worst_ms = worst_ms.max(ms);
        pace(&mut next, period);
    }
    Ok(format!(
        "{sent} chunks published, inference {:.1} ms on average, {worst_ms:.1} ms at worst",
        total_ms / sent.max(1) as f64
    ))
}

/// An rgb8 image as `size`×`size` RGB8 pixels: the centre square, scaled
/// by nearest neighbour (the twin's camera already has the policy's size).
pub fn square_rgb(image: &Image, size: usize) -> Result<Vec<u8>, String> {
    let (w, h) = (image.width as usize, image.height as usize);
    if image.encoding != "rgb8" {
        return Err(format!("encoding '{}', the policy takes rgb8", image.encoding));
    }
    let step = image.step as usize;
    if w == 0 || h == 0 || step < 3 * w || image.data.len() < step * h {
        return Err(format!(
            "a {w}x{h} image with step {step} and {} bytes",
            image.data.len()
        ));
    }
    let side = w.min(h);
    let (x0, y0) = ((w - side) / 2, (h - side) / 2);
    let mut out = Vec::with_capacity(3 * size * size);
    for y in 0..size {
        let sy = y0 + y * side / size;
        for x in 0..size {
            let sx = x0 + x * side / size;
            let at = sy * step + 3 * sx;
            out.extend_from_slice(&image.data[at..at + 3]);
        }
    }
    Ok(out)
}
