//! The bus benchmark: one control cycle is a sync read of the six present
//! positions and a sync write of six goals, as teleop and autonomy do.

use std::time::{Duration, Instant};

use crate::protocol::register as reg;
use crate::{Bus, Result};

/// What [`bus_cycles`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BusBenchReport {
    /// Cycles completed.
    pub cycles: u64,
    /// Cycles whose read failed after retries.
    pub failed_cycles: u64,
    /// Cycles per second over the run.
    pub cycles_per_s: f64,
    /// Median cycle time, microseconds.
    pub p50_us: f64,
    /// 99th-percentile cycle time, microseconds.
    pub p99_us: f64,
    /// Longest cycle, microseconds.
    pub max_us: f64,
    /// Retries the bus made.
    pub retries: u64,
}

/// Runs read-then-write cycles on `ids` for `duration`, as fast as the bus
/// allows. Goals are the positions just read, so nothing moves.
pub fn bus_cycles(bus: &mut Bus, ids: &[u8], duration: Duration) -> Result<BusBenchReport> {
    let retries_before = bus.stats.retries;
    let mut cycle_times: Vec<f64> = Vec::new();
    let mut failed = 0;
    let mut goals: Vec<(u8, i32)> = Vec::with_capacity(ids.len());
    let started = Instant::now();
    while started.elapsed() < duration {
        let cycle = Instant::now();
        match bus.sync_read(reg::PRESENT_POSITION, ids) {
            Ok(positions) => {
                goals.clear();
                goals.extend(ids.iter().copied().zip(positions));
                bus.sync_write(reg::GOAL_POSITION, &goals)?;
            }
            Err(crate::Error::Port { port, reason }) => return Err(crate::Error::Port { port, reason }),
            Err(_) => failed += 1,
        }
        cycle_times.push(cycle.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = started.elapsed().as_secs_f64();
    cycle_times.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let i = ((cycle_times.len() as f64 - 1.0) * q).round() as usize;
        cycle_times.get(i).copied().unwrap_or(f64::NAN)
    };
    Ok(BusBenchReport {
        cycles: cycle_times.len() as u64,
        failed_cycles: failed,
        cycles_per_s: cycle_times.len() as f64 / elapsed,
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        max_us: cycle_times.last().copied().unwrap_or(f64::NAN),
        retries: bus.stats.retries - retries_before,
    })
}
