//! A stand-in for the policy, until the learned one runs as a node: it
//! waits for the arm's first `joint_states`, then publishes action chunks
//! (`action_chunk`) of a slow sway of every joint around that pose, as a
//! policy would, at its own rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};
use sponge_robot::msg::{
    Duration as RosDuration, Header, JointState, JointTrajectory, JointTrajectoryPoint, Time,
};

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
    JointTrajectory {
        header: Header {
            stamp: Time::now(),
            frame_id: String::new(),
        },
        joint_names: Joint::ALL.iter().map(|j| j.name().to_owned()).collect(),
        points: (0..horizon)
            .map(|k| {
                let dt = k as f64 / step_hz;
                JointTrajectoryPoint {
                    positions: sway(center, amplitude, period, t0 + dt).to_vec(),
                    time_from_start: RosDuration::from_secs_f64(dt),
                    ..JointTrajectoryPoint::default()
                }
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
