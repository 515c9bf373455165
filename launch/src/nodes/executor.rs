//! The executor: takes action chunks (`action_chunk`, a JointTrajectory
//! whose points are timed from the chunk's arrival) and publishes
//! `joint_command` at the control rate.
//!
//! Consecutive chunks are blended so there is no jerk at a chunk boundary:
//! when a chunk arrives, the difference between the last command sent and
//! the new chunk decays to zero over `blend_ms`. When no chunk has come for
//! `chunk_timeout_ms` (the policy died or stalled), the executor holds the
//! arm where it is, and carries on from there when chunks come back.
//!
//! An alarm on `status` (from the anomaly monitor) holds the arm too, until
//! a person publishes `resume` there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};
use sponge_robot::msg::{Header, JointState, JointTrajectory, StringMsg, Time};

use super::newest_positions;
use super::{NodeError, millis, pace};
use crate::params::Params;
use crate::session::Node;
use crate::topics;

/// An action chunk: joint targets at times from its start.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// (seconds from the start, joint targets), times increasing.
    pub points: Vec<(f64, JointVector)>,
}

impl Chunk {
    /// The chunk in a JointTrajectory, checked: all six joints named,
    /// finite positions, times not decreasing.
    pub fn from_trajectory(trajectory: &JointTrajectory) -> Result<Chunk, String> {
        let columns: Vec<Joint> = trajectory
            .joint_names
            .iter()
            .map(|n| n.parse::<Joint>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        if columns.len() != NUM_JOINTS || Joint::ALL.iter().any(|j| !columns.contains(j)) {
            return Err(format!(
                "the chunk names {:?}, not the six joints",
                trajectory.joint_names
            ));
        }
        if trajectory.points.is_empty() {
            return Err("the chunk has no points".into());
        }
        let mut points = Vec::with_capacity(trajectory.points.len());
        let mut last_t = f64::NEG_INFINITY;
        for (k, point) in trajectory.points.iter().enumerate() {
            if point.positions.len() != NUM_JOINTS || point.positions.iter().any(|v| !v.is_finite()) {
                return Err(format!("point {k} does not have six finite positions"));
            }
            let t = point.time_from_start.as_secs_f64();
            if !t.is_finite() || t < last_t {
                return Err(format!("point {k} comes before the one before it"));
            }
            last_t = t;
            let mut q = [0.0; NUM_JOINTS];
            for (joint, value) in columns.iter().zip(&point.positions) {
                q[joint.index()] = *value;
            }
            points.push((t, q));
        }
        Ok(Chunk { points })
    }

    /// The target `t` seconds after the start: linear between points, the
    /// first before it starts, the last after it ends.
    pub fn sample(&self, t: f64) -> JointVector {
        let i = self.points.partition_point(|(pt, _)| *pt <= t);
        if i == 0 {
            return self.points[0].1;
        }
        if i == self.points.len() {
            return self.points[i - 1].1;
        }
        let (t0, a) = self.points[i - 1];
        let (t1, b) = self.points[i];
        let w = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
        std::array::from_fn(|j| a[j] + (b[j] - a[j]) * w)
    }
}

/// Blends a stream of chunks into one continuous command.
#[derive(Debug, Clone)]
pub struct Blender {
    blend: Duration,
    chunk: Option<(Instant, Chunk)>,
    /// Last command minus the new chunk's target, when it was first used,
    /// and when that was (none until the new chunk is first used).
    offset: Option<(Instant, JointVector)>,
    last: Option<JointVector>,
}

impl Blender {
    /// A blender that fades over `blend`.
    pub fn new(blend: Duration) -> Blender {
        Blender {
            blend,
            chunk: None,
            offset: None,
            last: None,
        }
    }

    /// Takes a new chunk whose first point belongs at `at` (its
    /// observation's time, or its arrival): it is picked up where it is
    /// when the next command is asked for.
    pub fn push(&mut self, at: Instant, chunk: Chunk) {
        self.chunk = Some((at, chunk));
        self.offset = None;
    }

    /// Starts the next chunk from `q` (after a hold).
    pub fn reset_to(&mut self, q: JointVector) {
        self.chunk = None;
        self.offset = None;
        self.last = Some(q);
    }

    /// The command at `now` (none before the first chunk).
    pub fn command(&mut self, now: Instant) -> Option<JointVector> {
        let (at, chunk) = self.chunk.as_ref()?;
        let target = chunk.sample(now.saturating_duration_since(*at).as_secs_f64());
        let last = self.last;
        let (since, offset) = *self.offset.get_or_insert_with(|| {
            let offset = match last {
                Some(last) => std::array::from_fn(|j| last[j] - target[j]),
                None => [0.0; NUM_JOINTS],
            };
            (now, offset)
        });
        let t = now.saturating_duration_since(since).as_secs_f64();
        let fade = if self.blend.is_zero() {
            0.0
        } else {
            (1.0 - t / self.blend.as_secs_f64()).max(0.0)
        };
        let q = std::array::from_fn(|j| target[j] + offset[j] * fade);
        self.last = Some(q);
        Some(q)
    }
}

/// The most a chunk's stamp may place its start in the past, seconds.
const MAX_AGE_S: f64 = 0.3;

/// Runs the executor until `stop`.
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let chunks = node.subscriber::<JointTrajectory>(topics::ACTION_CHUNK)?;
    let states = node.subscriber::<JointState>(topics::JOINT_STATES)?;
    let commands = node.publisher::<JointState>(topics::JOINT_COMMAND)?;
    let status = node.subscriber::<StringMsg>(topics::STATUS)?;
    let mut alarmed = false;
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let timeout = millis(params, "chunk_timeout_ms");
    let mut blender = Blender::new(millis(params, "blend_ms"));
    let (mut received, mut rejected, mut sent, mut holds) = (0u64, 0u64, 0u64, 0u64);
    let mut last_chunk: Option<Instant> = None;
    let mut measured: Option<JointVector> = None;
    let mut hold: Option<JointVector> = None;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(q) = newest_positions(&states)?.newest {
            measured = Some(q);
        }
        status.drain(|message| {
            let text = message.data.trim();
            if text.starts_with(super::monitor::ALARM) {
                alarmed = true;
            } else if text == super::monitor::RESUME {
                alarmed = false;
            }
        })?;
        rejected += chunks.drain(|trajectory| match Chunk::from_trajectory(&trajectory) {
            Ok(chunk) => {
                received += 1;
                if !alarmed && let Some(q) = hold.take() {
                    blender.reset_to(q);
                }
                let now = Instant::now();
                // A chunk is planned from its observation on: start it as far
                // in as it is old (its stamp; inference and transit time),
                // within MAX_AGE, in case the clocks of two machines disagree.
                let age =
                    (Time::now().as_secs_f64() - trajectory.header.stamp.as_secs_f64()).clamp(0.0, MAX_AGE_S);
                blender.push(now - Duration::from_secs_f64(age), chunk);
                last_chunk = Some(now);
            }
            Err(_) => rejected += 1,
        })?;
        let now = Instant::now();
        let fresh = !alarmed && last_chunk.is_some_and(|t| now.duration_since(t) <= timeout);
        if fresh {
            if let Some(q) = blender.command(now) {
                commands.put(&JointState::from_positions(Time::now(), &q))?;
                sent += 1;
            }
        } else if last_chunk.is_some() || alarmed {
            // Chunks stopped, or an alarm: hold at the last command (where
            // the arm is within a tick), or where it was measured if none was sent.
            if hold.is_none() {
                holds += 1;
                hold = blender.last.or(measured);
            }
            if let Some(q) = hold {
                let mut message = JointState::from_positions(Time::now(), &q);
                message.header = Header {
                    stamp: message.header.stamp,
                    frame_id: "hold".into(),
                };
                commands.put(&message)?;
            }
        }
        pace(&mut next, period);
    }
    Ok(format!(
        "{received} chunks ({rejected} rejected), {sent} commands, {holds} holds"
    ))
}
