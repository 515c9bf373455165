//! The nodes a launch file can run, each a loop over typed topics that
//! stops when its stop flag is set.
//!
//! | kind | in | out |
//! |---|---|---|
//! | `twin` | joint_command | joint_states, camera/front/image_raw |
//! | `follower` | joint_command | joint_states |
//! | `leader` | | leader/joint_states |
//! | `camera` | | camera/NAME/image_raw |
//! | `teleop` | leader/joint_states | joint_command |
//! | `executor` | action_chunk, joint_states, status | joint_command |
//! | `policy` | joint_states, cameras, task | action_chunk |
//! | `standin_policy` | joint_states | action_chunk |
//! | `monitor` | joint_states, joint_command, camera, task, status | status |
//! | `recorder` | joint_states, joint_command, cameras, task | a LeRobot v3 dataset |
//! | `ros2_bridge` | joint_states, cameras; ROS 2 joint_command | ROS 2 joint_states, images, robot_description; joint_command |
//!
//! The watchdog lives where it must not depend on the network: in the
//! `follower` and `twin` nodes (hold when commands stop) and in the
//! `executor` (hold when chunks stop).

pub mod arm;
pub mod camera;
pub mod executor;
pub mod monitor;
pub mod policy;
pub mod recorder;
pub mod ros2_bridge;
pub mod teleop;
pub mod twin;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::file::NodeSpec;
use crate::params::{ParamSpec, ParamType as T, Params};
use crate::session::{Node, SessionConfig};

/// What a node returns when it fails.
pub type NodeError = Box<dyn std::error::Error + Send + Sync>;

/// The kinds of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// The digital twin as the follower.
    Twin,
    /// The real follower arm on a servo bus.
    Follower,
    /// The leader arm, moved by hand.
    Leader,
    /// A USB camera.
    Camera,
    /// Leader to follower.
    Teleop,
    /// Action chunks to joint commands at the control rate.
    Executor,
    /// The learned policy (or, without a run folder, the stand-in).
    Policy,
    /// A stand-in for the policy: smooth chunks around the ready pose.
    StandinPolicy,
    /// The world model's anomaly monitor.
    Monitor,
    /// Records episodes as a LeRobot v3 dataset.
    Recorder,
    /// The ROS 2 bridge over DDS.
    Ros2Bridge,
}

const TWIN: &[ParamSpec] = &[
    ParamSpec::with_default("seed", T::Int, "0", "episode seed: scene, looks, physics"),
    ParamSpec::with_default("rate_hz", T::Int, "30", "control rate (a divisor of 240)"),
    ParamSpec::with_default(
        "watchdog_ms",
        T::Int,
        "200",
        "hold when no command came for this long",
    ),
    ParamSpec::with_default("max_step_deg", T::Float, "8.6", "largest goal change per tick"),
    ParamSpec::with_default("camera", T::Bool, "true", "render and publish the front camera"),
    ParamSpec::with_default("camera_size", T::Int, "96", "camera image size, pixels"),
];

const FOLLOWER: &[ParamSpec] = &[
    ParamSpec::required("port", T::Str, "serial port of the arm's bus adapter"),
    ParamSpec::with_default(
        "id",
        T::Str,
        "\"follower\"",
        "calibration name (sponge calibrate --id)",
    ),
    ParamSpec::optional(
        "calibration",
        T::ExistingPath,
        "calibration file, instead of --id's",
    ),
    ParamSpec::with_default("rate_hz", T::Int, "30", "control rate"),
    ParamSpec::with_default(
        "watchdog_ms",
        T::Int,
        "200",
        "hold when no command came for this long",
    ),
    ParamSpec::with_default(
        "max_step_deg",
        T::Float,
        "11.5",
        "largest goal change per command",
    ),
    ParamSpec::with_default(
        "on_stop",
        T::Choice(&["torque_off", "hold"]),
        "\"torque_off\"",
        "what the arm does when the node stops",
    ),
];

const LEADER: &[ParamSpec] = &[
    ParamSpec::required("port", T::Str, "serial port of the leader arm's bus adapter"),
    ParamSpec::with_default(
        "id",
        T::Str,
        "\"leader\"",
        "calibration name (sponge calibrate --id)",
    ),
    ParamSpec::optional(
        "calibration",
        T::ExistingPath,
        "calibration file, instead of --id's",
    ),
    ParamSpec::with_default("rate_hz", T::Int, "60", "read rate"),
];

const CAMERA: &[ParamSpec] = &[
    ParamSpec::with_default("device", T::Str, "\"/dev/video0\"", "V4L2 device"),
    ParamSpec::with_default("name", T::Str, "\"front\"", "camera name in the topic"),
    ParamSpec::with_default("width", T::Int, "640", "frame width"),
    ParamSpec::with_default("height", T::Int, "480", "frame height"),
    ParamSpec::with_default("fps", T::Float, "30", "frames per second"),
];

const TELEOP: &[ParamSpec] = &[
    ParamSpec::with_default("rate_hz", T::Int, "30", "command rate"),
    ParamSpec::with_default(
        "timeout_ms",
        T::Int,
        "200",
        "stop commanding when the leader is silent this long",
    ),
];

const EXECUTOR: &[ParamSpec] = &[
    ParamSpec::with_default("rate_hz", T::Int, "30", "control rate"),
    ParamSpec::with_default(
        "blend_ms",
        T::Int,
        "200",
        "cross-fade from the old chunk to a new one",
    ),
    ParamSpec::with_default(
        "chunk_timeout_ms",
        T::Int,
        "300",
        "hold the arm when no chunk came for this long",
    ),
];

const STANDIN_POLICY: &[ParamSpec] = &[
    ParamSpec::with_default("rate_hz", T::Float, "10", "chunks per second"),
    ParamSpec::with_default("horizon", T::Int, "50", "actions per chunk"),
    ParamSpec::with_default("step_hz", T::Int, "30", "action rate inside a chunk"),
    ParamSpec::with_default("amplitude_deg", T::Float, "15", "sway of each joint"),
    ParamSpec::with_default("period_s", T::Float, "4", "period of the sway"),
];

const POLICY: &[ParamSpec] = &[
    ParamSpec::with_default(
        "policy",
        T::Str,
        "\"\"",
        "run folder from `sponge train` (empty: the stand-in sway)",
    ),
    ParamSpec::with_default(
        "task",
        T::Str,
        "\"wipe the table\"",
        "instruction (the task topic changes it)",
    ),
    ParamSpec::with_default(
        "perception",
        T::Str,
        "\"\"",
        "for a policy trained with --privileged: the run (--aux-weight, --place-weight) that makes its entries of the camera",
    ),
    ParamSpec::with_default(
        "perception_track_m",
        T::Float,
        "0.02",
        "the perception looks for the named spill within this many metres of where it last saw it (0: anywhere)",
    ),
    ParamSpec::with_default(
        "perception_release",
        T::Float,
        "0",
        "look anywhere again when the keypoint is surer elsewhere by this fraction (0: never)",
    ),
    ParamSpec::with_default("rate_hz", T::Float, "10", "chunks per second"),
    ParamSpec::with_default("seed", T::Int, "0", "seed of the flow's noise"),
    ParamSpec::with_default("horizon", T::Int, "50", "stand-in: actions per chunk"),
    ParamSpec::with_default("step_hz", T::Int, "30", "stand-in: action rate inside a chunk"),
    ParamSpec::with_default("amplitude_deg", T::Float, "15", "stand-in: sway of each joint"),
    ParamSpec::with_default("period_s", T::Float, "4", "stand-in: period of the sway"),
];

const MONITOR: &[ParamSpec] = &[
    ParamSpec::with_default(
        "world_model",
        T::Str,
        "\"\"",
        "folder from `sponge wm train` and `sponge wm calibrate` (empty: no monitor)",
    ),
    ParamSpec::with_default(
        "task",
        T::Str,
        "\"wipe the table\"",
        "instruction (the task topic changes it)",
    ),
    ParamSpec::with_default("camera", T::Str, "\"front\"", "camera the world model sees"),
];

const RECORDER: &[ParamSpec] = &[
    ParamSpec::required(
        "out",
        T::Str,
        "dataset folder (new, or an earlier recording to add to)",
    ),
    ParamSpec::with_default(
        "task",
        T::Str,
        "\"wipe the table\"",
        "task text, until one comes on `task`",
    ),
    ParamSpec::with_default("fps", T::Int, "30", "frames per second"),
    ParamSpec::with_default("episodes", T::Int, "1", "episodes to record"),
    ParamSpec::with_default("episode_s", T::Float, "20", "length of an episode"),
    ParamSpec::with_default(
        "reset_s",
        T::Float,
        "5",
        "pause between episodes to reset the scene",
    ),
    ParamSpec::with_default("cameras", T::StrList, "[\"front\"]", "camera names to record"),
    ParamSpec::with_default(
        "keyboard",
        T::Bool,
        "true",
        "arrow keys and Esc control the recording",
    ),
];

const ROS2_BRIDGE: &[ParamSpec] = &[
    ParamSpec::with_default("domain_id", T::Int, "0", "ROS 2 domain (ROS_DOMAIN_ID)"),
    ParamSpec::with_default("cameras", T::StrList, "[\"front\"]", "camera names to bridge"),
];

impl NodeKind {
    /// Every kind.
    pub const ALL: [NodeKind; 11] = [
        NodeKind::Twin,
        NodeKind::Follower,
        NodeKind::Leader,
        NodeKind::Camera,
        NodeKind::Teleop,
        NodeKind::Executor,
        NodeKind::Policy,
        NodeKind::StandinPolicy,
        NodeKind::Monitor,
        NodeKind::Recorder,
        NodeKind::Ros2Bridge,
    ];

    /// Its name in launch files.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Twin => "twin",
            NodeKind::Follower => "follower",
            NodeKind::Leader => "leader",
            NodeKind::Camera => "camera",
            NodeKind::Teleop => "teleop",
            NodeKind::Executor => "executor",
            NodeKind::Policy => "policy",
            NodeKind::StandinPolicy => "standin_policy",
            NodeKind::Monitor => "monitor",
            NodeKind::Recorder => "recorder",
            NodeKind::Ros2Bridge => "ros2_bridge",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<NodeKind> {
        NodeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The parameters it takes.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            NodeKind::Twin => TWIN,
            NodeKind::Follower => FOLLOWER,
            NodeKind::Leader => LEADER,
            NodeKind::Camera => CAMERA,
            NodeKind::Teleop => TELEOP,
            NodeKind::Executor => EXECUTOR,
            NodeKind::Policy => POLICY,
            NodeKind::StandinPolicy => STANDIN_POLICY,
            NodeKind::Monitor => MONITOR,
            NodeKind::Recorder => RECORDER,
            NodeKind::Ros2Bridge => ROS2_BRIDGE,
        }
    }

    /// Whether it reads the keyboard (the launcher gives it the terminal).
    pub fn wants_keyboard(self) -> bool {
        self == NodeKind::Recorder
    }

    /// Checks that go beyond each parameter's type.
    pub fn check(self, params: &Params) -> Result<(), String> {
        let positive = |name: &str| {
            if params.float(name) > 0.0 {
                Ok(())
            } else {
                Err(format!("'{name}' must be more than 0"))
            }
        };
        match self {
            NodeKind::Twin => {
                let rate = params.int("rate_hz");
                if rate <= 0 || 240 % rate != 0 {
                    return Err(format!("rate_hz {rate} must divide 240 (e.g. 30, 60)"));
                }
                if !(16..=1024).contains(&params.int("camera_size")) {
                    return Err("camera_size must be within 16..=1024".into());
                }
                positive("max_step_deg")
            }
            NodeKind::Follower => positive("rate_hz").and(positive("max_step_deg")),
            NodeKind::Leader | NodeKind::Teleop => positive("rate_hz"),
            NodeKind::Camera => positive("fps").and(positive("width")).and(positive("height")),
            NodeKind::Executor => positive("rate_hz").and(positive("chunk_timeout_ms")),
            NodeKind::StandinPolicy => positive("rate_hz")
                .and(positive("horizon"))
                .and(positive("step_hz"))
                .and(positive("period_s")),
            NodeKind::Policy => {
                positive("rate_hz")?;
                let track = params.float("perception_track_m");
                if !(track.is_finite() && track >= 0.0) {
                    return Err(format!(
                        "perception_track_m {track} must be a distance of at least 0"
                    ));
                }
                let release = params.float("perception_release");
                if !(0.0..=1.0).contains(&release) {
                    return Err(format!(
                        "perception_release {release} must be a fraction from 0 to 1"
                    ));
                }
                let perception = params.str("perception").filter(|p| !p.is_empty());
                if let Some(dir) = perception
                    && !std::path::Path::new(dir).join("config.json").is_file()
                {
                    return Err(format!(
                        "perception '{dir}' is not a run folder (no config.json; train one with `sponge train --aux-weight`)"
                    ));
                }
                match params.str("policy").filter(|p| !p.is_empty()) {
                    Some(run) if !std::path::Path::new(run).join("config.json").is_file() => Err(format!(
                        "policy '{run}' is not a run folder (no config.json; train one with `sponge train`)"
                    )),
                    Some(run) => check_pair(run, perception),
                    None => Ok(()),
                }
            }
            NodeKind::Monitor => match params.str("world_model").filter(|p| !p.is_empty()) {
                Some(dir) if !std::path::Path::new(dir).join("config.json").is_file() => Err(format!(
                    "world_model '{dir}' is not a world-model folder (no config.json; train one with `sponge wm train`)"
                )),
                Some(dir) if !std::path::Path::new(dir).join("monitor.json").is_file() => Err(format!(
                    "world model '{dir}' has no calibrated monitor (no monitor.json; run `sponge wm calibrate`)"
                )),
                _ => Ok(()),
            },
            NodeKind::Recorder => {
                positive("fps")?;
                positive("episodes")?;
                positive("episode_s")?;
                if params
                    .list("cameras")
                    .iter()
                    .any(|c| !crate::session::valid_topic(c))
                {
                    return Err("camera names are like \"front\"".into());
                }
                Ok(())
            }
            NodeKind::Ros2Bridge => {
                if !(0..=232).contains(&params.int("domain_id")) {
                    return Err("domain_id must be within 0..=232".into());
                }
                Ok(())
            }
        }
    }
}

/// What a queue of JointStates held.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Positions {
    /// The newest six finite positions, if any message had them.
    pub newest: Option<sponge_robot::joint::JointVector>,
    /// Messages that decoded.
    pub received: u64,
    /// Messages that could not be used (undecodable, wrong joints, not finite).
    pub rejected: u64,
    /// The gripper's effort in the newest usable message, N·m, if it had one.
    pub gripper_effort: Option<f64>,
}

/// Takes every queued JointState and keeps the newest usable positions.
pub(crate) fn newest_positions(
    sub: &crate::Subscriber<sponge_robot::msg::JointState>,
) -> Result<Positions, crate::Error> {
    let mut out = Positions::default();
    let undecodable = sub.drain(|state| {
        out.received += 1;
        match state.positions() {
            Ok(q) if q.iter().all(|v| v.is_finite()) => {
                out.newest = Some(q);
                out.gripper_effort = state.effort_of(sponge_robot::joint::Joint::Gripper);
            }
            _ => out.rejected += 1,
        }
    })?;
    out.rejected += undecodable;
    Ok(out)
}

/// A duration parameter given in milliseconds.
pub(crate) fn millis(params: &Params, name: &str) -> Duration {
    Duration::from_millis(params.int(name).max(0) as u64)
}

/// Runs the node `spec` on a session configured by `session` (its
/// namespace replaced by the node's) until `stop` is set or it fails.
/// Returns a one-line summary of what it did.
pub fn run(spec: &NodeSpec, session: &SessionConfig, stop: &AtomicBool) -> Result<String, NodeError> {
    let config = SessionConfig {
        namespace: spec.namespace.clone(),
        ..session.clone()
    };
    let node = Node::open(&config)?.with_remaps(spec.remaps.clone());
    let p = &spec.params;
    match spec.kind {
        NodeKind::Twin => {
            let config = twin::TwinNodeConfig {
                seed: p.int("seed") as u64,
                rate_hz: p.int("rate_hz") as u32,
                watchdog: millis(p, "watchdog_ms"),
                max_step_rad: p.float("max_step_deg").to_radians(),
                camera_size: p.bool("camera").then_some(p.int("camera_size") as u32),
            };
            let stats = twin::run(&node, &config, stop)?;
            let cleaned: Vec<String> = stats
                .cleaned
                .iter()
                .map(|(kind, f)| format!("{kind} {:.0}%", 100.0 * f))
                .collect();
            Ok(format!(
                "{} ticks, {} commands ({} rejected), {} holds; cleaned: {} (the scene's named spills {:.0}%)",
                stats.ticks,
                stats.commands,
                stats.rejected,
                stats.holds,
                cleaned.join(", "),
                100.0 * stats.named_cleaned
            ))
        }
        NodeKind::Follower => arm::run_follower(&node, p, stop),
        NodeKind::Leader => arm::run_leader(&node, p, stop),
        NodeKind::Camera => camera::run(&node, p, stop),
        NodeKind::Teleop => teleop::run(&node, p, stop),
        NodeKind::Executor => executor::run(&node, p, stop),
        NodeKind::Policy => policy::run_learned(&node, p, stop),
        NodeKind::StandinPolicy => policy::run_standin(&node, p, stop),
        NodeKind::Monitor => monitor::run(&node, p, stop),
        NodeKind::Recorder => recorder::run(&node, p, stop),
        NodeKind::Ros2Bridge => ros2_bridge::run(&node, p, stop),
    }
}

/// Sleeps until `next`, then moves it on by `period` (skipping missed ticks).
pub(crate) fn pace(next: &mut std::time::Instant, period: Duration) {
    *next += period;
    let now = std::time::Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    } else {
        *next = now;
    }
}

/// Whether the policy run `run` and the `perception` run (if any) make a
/// policy node: a privileged policy (`sponge train --privileged`) needs a
/// perception run that serves it, and only such a policy takes one.
fn check_pair(run: &str, perception: Option<&str>) -> Result<(), String> {
    use sponge_policy::train::RunConfig;
    let policy = RunConfig::read(std::path::Path::new(run)).map_err(|e| format!("policy '{run}': {e}"))?;
    match perception {
        None if !policy.policy.privileged.is_empty() => Err(format!(
            "policy '{run}' was trained with --privileged: it takes the environment state, which on the arm \
             only a perception run can give (perception=RUN, trained with --aux-weight and --place-weight)"
        )),
        None => Ok(()),
        Some(dir) => {
            let seen =
                RunConfig::read(std::path::Path::new(dir)).map_err(|e| format!("perception '{dir}': {e}"))?;
            seen.serves(&policy)
                .map_err(|e| format!("perception '{dir}' for policy '{run}': {e}"))
        }
    }
}
