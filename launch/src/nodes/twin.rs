//! The twin as a follower: takes `joint_command`, steps the simulated arm
//! in real time at the control rate, publishes `joint_states` (and the
//! front camera's `image_raw` when rendering).
//!
//! It follows the real follower's safety rules: goals are clamped to the
//! joint limits and moved at most `max_step_rad` per tick, and when
//! commands stop for longer than the watchdog it holds where it is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::joint::{Joint, JointVector};
use sponge_robot::model::SERVO_STALL_TORQUE_NM;
use sponge_robot::msg::{Header, Image, JointState, Time};
use sponge_sim::render::{RenderConfig, Renderer};
use sponge_sim::{Env, EnvConfig};

use super::newest_positions;
use crate::session::{Error, Node};
use crate::topics;

/// How the twin node runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinNodeConfig {
    /// Episode seed (scene, looks, physics parameters).
    pub seed: u64,
    /// Control rate, Hz (a divisor of 240).
    pub rate_hz: u32,
    /// Hold when no command came for this long.
    pub watchdog: Duration,
    /// Largest change of any joint goal per tick, radians.
    pub max_step_rad: f64,
    /// Render and publish the front camera at this size (none: no camera).
    pub camera_size: Option<u32>,
}

impl Default for TwinNodeConfig {
    fn default() -> Self {
        TwinNodeConfig {
            seed: 0,
            rate_hz: 30,
            watchdog: Duration::from_millis(200),
            max_step_rad: 0.15,
            camera_size: None,
        }
    }
}

/// What a twin node did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinNodeStats {
    /// Control ticks run.
    pub ticks: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands that could not be used (undecodable, wrong joints, not finite).
    pub rejected: u64,
    /// Times the watchdog started holding.
    pub holds: u64,
    /// Each spill of the scene, in the scene's order: its kind and the
    /// fraction of it cleaned at the end.
    pub cleaned: Vec<(String, f64)>,
    /// The fraction cleaned of the spills the scene's own instruction names.
    pub named_cleaned: f64,
}

/// Runs the twin until `stop` is set.
pub fn run(node: &Node, config: &TwinNodeConfig, stop: &AtomicBool) -> Result<TwinNodeStats, Error> {
    let env_config = EnvConfig {
        fps: config.rate_hz,
        time_limit_s: 1e9,
        end_on_success: false,
        image_size: config.camera_size.unwrap_or(96),
        ..EnvConfig::default()
    };
    env_config.validate().map_err(Error::Config)?;
    let mut env = Env::new(env_config, config.seed);
    let scene = env.scene();
    let spills: Vec<String> = scene
        .spills
        .iter()
        .map(|s| {
            format!(
                "{} at ({:.2}, {:.2}) m",
                s.kind.name(),
                s.centre_m[0],
                s.centre_m[1]
            )
        })
        .collect();
    eprintln!(
        "scene of seed {}: {}; its own instruction: '{}'",
        config.seed,
        spills.join(", "),
        scene.instruction
    );
    let mut renderer = match config.camera_size {
        Some(size) => Some(
            Renderer::new(RenderConfig {
                envs: 1,
                image_size: size,
                wrist_camera: false,
            })
            .map_err(|e| Error::Config(e.to_string()))?,
        ),
        None => None,
    };
    let commands = node.subscriber::<JointState>(topics::JOINT_COMMAND)?;
    let states = node.publisher::<JointState>(topics::JOINT_STATES)?;
    let images = node.publisher::<Image>(&topics::camera_image("front"))?;

    let mut stats = TwinNodeStats::default();
    let period = Duration::from_secs_f64(1.0 / config.rate_hz as f64);
    let mut goal: JointVector = *env.arm().goal();
    let mut target: Option<JointVector> = None;
    let mut last_command: Option<Instant> = None;
    let mut holding = true;
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // The newest usable command.
        let queued = newest_positions(&commands)?;
        stats.commands += queued.received;
        stats.rejected += queued.rejected;
        if let Some(q) = queued.newest {
            target = Some(std::array::from_fn(|i| Joint::ALL[i].limits().clamp(q[i])));
            last_command = Some(Instant::now());
        }
        let fresh = last_command.is_some_and(|t| t.elapsed() <= config.watchdog);
        match (fresh, target) {
            (true, Some(t)) => {
                holding = false;
                goal = std::array::from_fn(|i| {
                    goal[i] + (t[i] - goal[i]).clamp(-config.max_step_rad, config.max_step_rad)
                });
            }
            _ => {
                if !holding {
                    // Commands stopped: hold where the arm is now.
                    holding = true;
                    stats.holds += 1;
                    goal = env.arm().joint_positions();
                    target = None;
                }
            }
        }
        env.step(&goal);
        stats.ticks += 1;
        let stamp = Time::now();
        let mut state = JointState::from_positions(stamp, &env.arm().joint_positions());
        // The twin models the gripper's load only (the squeezed sponge).
        state.effort = Joint::ALL
            .iter()
            .map(|&j| match j {
                Joint::Gripper => env.arm().gripper_load() * SERVO_STALL_TORQUE_NM,
                _ => f64::NAN,
            })
            .collect();
        states.put(&state)?;
        if let Some(renderer) = renderer.as_mut() {
            let size = config.camera_size.unwrap_or(96);
            let frame = renderer
                .render(&[&env])
                .map_err(|e| Error::Config(e.to_string()))?
                .remove(0)
                .remove(0);
            let header = Header {
                stamp,
                frame_id: "front_camera".into(),
            };
            let image = Image::rgb8(header, size, size, frame).map_err(|e| Error::Zenoh(e.to_string()))?;
            images.put(&image)?;
        }
        next_tick += period;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else {
            next_tick = now;
        }
    }
    let scene = env.scene();
    stats.cleaned = scene
        .spills
        .iter()
        .zip(scene.fractions_cleaned())
        .map(|(s, f)| (s.kind.name().to_owned(), f))
        .collect();
    stats.named_cleaned = scene.target_fraction_cleaned();
    Ok(stats)
}
