//! Leader-to-follower teleoperation at a steady rate, standalone (no
//! middleware): read the leader, send its pose to the follower, repeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::joint::JointVector;

use crate::arm::Arm;
use crate::{Error, Result};

/// How teleop runs.
#[derive(Debug, Clone, Copy)]
pub struct TeleopConfig {
    /// Loop rate, Hz.
    pub fps: f64,
    /// Stop after this long (`None`: until stopped).
    pub duration: Option<Duration>,
}

impl Default for TeleopConfig {
    fn default() -> TeleopConfig {
        TeleopConfig {
            fps: 60.0,
            duration: None,
        }
    }
}

/// Running figures of a teleop session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TeleopStats {
    /// Cycles run.
    pub cycles: u64,
    /// Measured loop rate over the session, Hz.
    pub rate_hz: f64,
    /// Standard deviation of the loop period, µs.
    pub jitter_us: f64,
    /// Longest loop period, µs.
    pub max_period_us: f64,
    /// Leader reads that failed after retries.
    pub leader_errors: u64,
    /// Follower reads or writes that failed after retries.
    pub follower_errors: u64,
    /// Times the watchdog made the follower hold.
    pub holds: u64,
    /// Time from the last goal to the latest watchdog hold, ms.
    pub hold_after_ms: f64,
    /// Last leader pose, rad.
    pub leader_rad: JointVector,
    /// Last follower pose, rad.
    pub follower_rad: JointVector,
}

/// Whether an error ends the session (the arm or its port is in trouble)
/// rather than being one bad cycle.
fn is_fatal(error: &Error) -> bool {
    matches!(error, Error::Port { .. } | Error::Servo { .. } | Error::Robot(_))
}

/// Runs teleop until `stop` is set, the duration passes, or a fatal error
/// (then the follower is stopped first, as its safety settings say).
/// `on_cycle` sees the running figures after every cycle.
pub fn teleop(
    leader: &mut Arm,
    follower: &mut Arm,
    config: TeleopConfig,
    stop: &AtomicBool,
    mut on_cycle: impl FnMut(&TeleopStats),
) -> Result<TeleopStats> {
    let period = Duration::from_secs_f64(1.0 / config.fps.max(1.0));
    let started = Instant::now();
    let mut next = started;
    let mut last = started;
    let mut stats = TeleopStats::default();
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    let mut was_holding = false;
    let fatal = |follower: &mut Arm, e: Error| {
        // The original error matters more than a failed stop.
        let _ = follower.shutdown();
        e
    };
    while !stop.load(Ordering::SeqCst) && config.duration.is_none_or(|d| started.elapsed() < d) {
        match leader.read_positions() {
            Ok(q) => {
                stats.leader_rad = q;
                match follower.send_goal(&q) {
                    Ok(_) => {}
                    Err(e) if is_fatal(&e) => return Err(fatal(follower, e)),
                    Err(_) => stats.follower_errors += 1,
                }
            }
            Err(e) if matches!(e, Error::Port { .. }) => return Err(fatal(follower, e)),
            Err(_) => stats.leader_errors += 1,
        }
        match follower.watchdog() {
            Ok(holding) => {
                if holding && !was_holding {
                    stats.holds += 1;
                    stats.hold_after_ms = follower.since_last_command().as_secs_f64() * 1e3;
                }
                was_holding = holding;
            }
            Err(e) if is_fatal(&e) => return Err(fatal(follower, e)),
            Err(_) => stats.follower_errors += 1,
        }
        match follower.read_positions() {
            Ok(q) => stats.follower_rad = q,
            Err(e) if is_fatal(&e) => return Err(fatal(follower, e)),
            Err(_) => stats.follower_errors += 1,
        }

        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Running late: do not try to catch up with a burst.
            next = now;
        }
        let now = Instant::now();
        let period_us = (now - last).as_secs_f64() * 1e6;
        last = now;
        stats.cycles += 1;
        sum += period_us;
        sum_sq += period_us * period_us;
        let n = stats.cycles as f64;
        stats.rate_hz = n / started.elapsed().as_secs_f64();
        stats.jitter_us = (sum_sq / n - (sum / n).powi(2)).max(0.0).sqrt();
        stats.max_period_us = stats.max_period_us.max(period_us);
        on_cycle(&stats);
    }
    Ok(stats)
}
