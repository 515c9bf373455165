//! Teleoperation over the network: the leader's pose becomes the
//! follower's command, at the control rate, while the leader is heard.
//! When the leader falls silent the node stops commanding and the
//! follower's watchdog holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::msg::{JointState, Time};

use super::newest_positions;
use super::{NodeError, millis, pace};
use crate::params::Params;
use crate::session::Node;
use crate::topics;

/// Runs teleop until `stop`.
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let leader = node.subscriber::<JointState>(topics::LEADER_JOINT_STATES)?;
    let commands = node.publisher::<JointState>(topics::JOINT_COMMAND)?;
    let timeout = millis(params, "timeout_ms");
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let (mut sent, mut rejected) = (0u64, 0u64);
    let mut latest = None;
    let mut heard = None::<Instant>;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let queued = newest_positions(&leader)?;
        rejected += queued.rejected;
        if queued.newest.is_some() {
            latest = queued.newest;
            heard = Some(Instant::now());
        }
        if let (Some(q), Some(at)) = (latest, heard)
            && at.elapsed() <= timeout
        {
            commands.put(&JointState::from_positions(Time::now(), &q))?;
            sent += 1;
        }
        pace(&mut next, period);
    }
    Ok(format!(
        "{sent} commands sent, {rejected} leader messages rejected"
    ))
}
