//! Delivering frames at the requested rate from a camera that runs at its
//! own: frames are kept when due, skipped when early, and gaps counted.

use std::time::Duration;

/// What the pacer decided about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it.
    Keep,
    /// Too early for the requested rate: skip it.
    Skip,
}

/// Frame pacing and drop accounting.
#[derive(Debug, Clone)]
pub struct FramePacer {
    period: Duration,
    next_due: Option<Duration>,
    last_kept: Option<Duration>,
    /// Frames delivered.
    pub kept: u64,
    /// Frames skipped because the camera runs faster than requested.
    pub skipped: u64,
    /// Delivered frames that came more than 1.5 periods after the previous:
    /// the camera (or the reader) fell behind.
    pub late: u64,
}

impl FramePacer {
    /// A pacer for `fps` frames per second.
    pub fn new(fps: f64) -> FramePacer {
        FramePacer {
            period: Duration::from_secs_f64(1.0 / fps.max(0.001)),
            next_due: None,
            last_kept: None,
            kept: 0,
            skipped: 0,
            late: 0,
        }
    }

    /// Decides about a frame captured at `at` (time since capture start).
    pub fn offer(&mut self, at: Duration) -> Decision {
        // Half a camera period of slack, so 30 fps in and 30 fps out keeps all.
        let tolerance = self.period / 4;
        if let Some(due) = self.next_due
            && at + tolerance < due
        {
            self.skipped += 1;
            return Decision::Skip;
        }
        if let Some(last) = self.last_kept
            && at.saturating_sub(last) > self.period * 3 / 2
        {
            self.late += 1;
        }
        // Stay on the grid unless more than a period behind it.
        self.next_due = Some(match self.next_due {
            Some(due) if at < due + self.period => due + self.period,
            _ => at + self.period,
        });
        self.last_kept = Some(at);
        self.kept += 1;
        Decision::Keep
    }
}
