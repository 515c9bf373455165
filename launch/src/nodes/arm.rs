//! The real arms: the follower (takes `joint_command`, publishes
//! `joint_states`) and the leader (publishes `leader/joint_states`).
//!
//! The follower's safety rules are the drivers' ([`sponge_drivers::arm`]):
//! limits, bounded steps, a watchdog that holds the arm when commands stop,
//! and torque off (or hold) when the node stops, whatever the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_drivers::arm::{Arm, OnStop, Role, SafetyConfig};
use sponge_drivers::calibrate::{ArmKind, load_calibration};
use sponge_robot::calibration::ArmCalibration;
use sponge_robot::model::SERVO_STALL_TORQUE_NM;
use sponge_robot::msg::{Header, JointState, Time};

use super::newest_positions;
use super::{NodeError, millis, pace};
use crate::params::Params;
use crate::session::Node;
use crate::topics;

fn calibration(params: &Params, kind: ArmKind) -> Result<ArmCalibration, NodeError> {
    Ok(match params.path("calibration") {
        Some(path) => ArmCalibration::load(&path)?,
        None => load_calibration(kind, params.str("id").unwrap_or_default())?.0,
    })
}

/// Whether a driver error means the arm or its port is in trouble (the
/// node stops) rather than one bad exchange (the next tick tries again).
fn is_fatal(error: &sponge_drivers::Error) -> bool {
    matches!(
        error,
        sponge_drivers::Error::Port { .. }
            | sponge_drivers::Error::Servo { .. }
            | sponge_drivers::Error::Robot(_)
    )
}

/// Runs the follower arm until `stop`.
pub fn run_follower(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let port = params.str("port").unwrap_or_default();
    let safety = SafetyConfig {
        max_step_rad: params.float("max_step_deg").to_radians(),
        watchdog: millis(params, "watchdog_ms"),
        on_stop: if params.str("on_stop") == Some("hold") {
            OnStop::Hold
        } else {
            OnStop::TorqueOff
        },
    };
    let mut arm = Arm::connect(
        port,
        Role::Follower,
        calibration(params, ArmKind::Follower)?,
        safety,
    )
    .map_err(|e| format!("follower arm on {port}: {e}"))?;
    arm.enable_torque()?;
    let commands = node.subscriber::<JointState>(topics::JOINT_COMMAND)?;
    let states = node.publisher::<JointState>(topics::JOINT_STATES)?;
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let (mut ticks, mut goals, mut rejected, mut holds, mut errors) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut was_holding = false;
    let mut next = Instant::now();
    let result = (|| -> Result<(), NodeError> {
        while !stop.load(Ordering::Relaxed) {
            let tick = (|| -> Result<(), NodeError> {
                let queued = newest_positions(&commands)?;
                rejected += queued.rejected;
                if let Some(goal) = queued.newest {
                    arm.send_goal(&goal)?;
                    goals += 1;
                }
                let holding = arm.watchdog()?;
                if holding && !was_holding {
                    holds += 1;
                }
                was_holding = holding;
                let state = arm.read_state()?;
                let mut message = JointState::from_positions(Time::now(), &state.position_rad);
                message.velocity = state.velocity_rad_s.to_vec();
                message.effort = state.load.iter().map(|l| l * SERVO_STALL_TORQUE_NM).collect();
                states.put(&message)?;
                Ok(())
            })();
            if let Err(e) = tick {
                match e.downcast_ref::<sponge_drivers::Error>() {
                    Some(driver) if !is_fatal(driver) => errors += 1,
                    _ => return Err(e),
                }
            }
            ticks += 1;
            pace(&mut next, period);
        }
        Ok(())
    })();
    // Torque off or hold, as configured, whether it stopped or failed.
    let stopped = arm.shutdown();
    result?;
    stopped?;
    Ok(format!(
        "{ticks} ticks, {goals} goals sent, {rejected} commands rejected, {holds} watchdog holds, \
         {errors} bus errors; arm {}",
        if safety.on_stop == OnStop::Hold {
            "holding"
        } else {
            "torque off"
        }
    ))
}

/// Runs the leader arm until `stop`.
pub fn run_leader(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let port = params.str("port").unwrap_or_default();
    let mut arm = Arm::connect(
        port,
        Role::Leader,
        calibration(params, ArmKind::Leader)?,
        SafetyConfig::default(),
    )
    .map_err(|e| format!("leader arm on {port}: {e}"))?;
    let states = node.publisher::<JointState>(topics::LEADER_JOINT_STATES)?;
    let period = Duration::from_secs_f64(1.0 / params.float("rate_hz"));
    let (mut reads, mut errors) = (0u64, 0u64);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match arm.read_positions() {
            Ok(q) => {
                let mut message = JointState::from_positions(Time::now(), &q);
                message.header = Header {
                    stamp: message.header.stamp,
                    frame_id: "leader".into(),
                };
                states.put(&message)?;
                reads += 1;
            }
            Err(e) if !is_fatal(&e) => errors += 1,
            Err(e) => return Err(format!("leader arm on {port}: {e}").into()),
        }
        pace(&mut next, period);
    }
    Ok(format!("{reads} readings published, {errors} failed reads"))
}
