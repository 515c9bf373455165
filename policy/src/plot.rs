//! The loss curve of a run as a PNG: training loss (blue, a moving average
//! over 1% of the steps) and validation loss (orange, dots joined), log
//! scale, steps across. Grey lines mark each power of ten of the loss.

use std::path::Path;

use sponge_datasets::plot::{Canvas, write_png};

use crate::train::LogLine;

const WIDTH: usize = 640;
const HEIGHT: usize = 360;
const MARGIN: f64 = 24.0;
/// Colour of the training loss.
pub const TRAIN_COLOUR: [u8; 3] = [31, 119, 180];
/// Colour of the validation loss.
pub const VALIDATION_COLOUR: [u8; 3] = [255, 127, 14];

/// Draws the curve of `lines` into the PNG file `path`.
pub fn loss_curve(lines: &[LogLine], path: &Path) -> sponge_datasets::Result<()> {
    let mut canvas = Canvas::new(WIDTH, HEIGHT);
    let positive = lines
        .iter()
        .flat_map(|l| [Some(l.loss), l.val_loss])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v.log10()), hi.max(v.log10()))
    });
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    } else {
        (-2.0, 1.0)
    };
    let first = lines.first().map_or(0, |l| l.step) as f64;
    let last = lines.last().map_or(1, |l| l.step) as f64;
    let (w, h) = (WIDTH as f64 - 2.0 * MARGIN, HEIGHT as f64 - 2.0 * MARGIN);
    let x_of = |step: usize| (MARGIN + w * (step as f64 - first) / (last - first).max(1.0)) as i64;
    let y_of = |v: f64| (MARGIN + h * (hi - v.max(1e-12).log10()) / (hi - lo)) as i64;
    let (left, right, top, bottom) = (
        MARGIN as i64,
        (WIDTH as f64 - MARGIN) as i64,
        MARGIN as i64,
        (HEIGHT as f64 - MARGIN) as i64,
    );
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        canvas.line((left, y), (right, y), [210, 210, 210]);
        decade += 1.0;
    }
    canvas.line((left, top), (left, bottom), [90, 90, 90]);
    canvas.line((left, bottom), (right, bottom), [90, 90, 90]);
    let window = (lines.len() / 100).max(1);
    let mut previous = None;
    for (i, line) in lines.iter().enumerate() {
        let from = i.saturating_sub(window - 1);
        let mean = lines[from..=i].iter().map(|l| l.loss).sum::<f64>() / (i + 1 - from) as f64;
        if mean.is_finite() {
            let point = (x_of(line.step), y_of(mean));
            if let Some(p) = previous {
                canvas.line(p, point, TRAIN_COLOUR);
            }
            previous = Some(point);
        }
    }
    let mut previous = None;
    for line in lines {
        let Some(v) = line.val_loss.filter(|v| v.is_finite()) else {
            continue;
        };
        let point = (x_of(line.step), y_of(v));
        if let Some(p) = previous {
            canvas.line(p, point, VALIDATION_COLOUR);
        }
        for d in -2..=2 {
            canvas.line(
                (point.0 - 2, point.1 + d),
                (point.0 + 2, point.1 + d),
                VALIDATION_COLOUR,
            );
        }
        previous = Some(point);
    }
    write_png(path, canvas.rgb(), WIDTH as u32, HEIGHT as u32)
}
