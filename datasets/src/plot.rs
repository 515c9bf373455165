//! A plot of an episode's joint trajectories as a PNG: one panel per joint
//! (top to bottom in dataset order), `observation.state` in blue, `action`
//! in orange, a grey line at zero. No text: the caller names the file and
//! prints the legend.

use std::path::Path;

use crate::reader::Episode;
use crate::{Error, Result};

const BACKGROUND: [u8; 3] = [255, 255, 255];
const FRAME: [u8; 3] = [90, 90, 90];
const ZERO: [u8; 3] = [200, 200, 200];
/// Colour of `observation.state`.
pub const STATE_COLOUR: [u8; 3] = [31, 119, 180];
/// Colour of `action`.
pub const ACTION_COLOUR: [u8; 3] = [255, 127, 14];

/// An RGB8 drawing surface for simple plots.
pub struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: BACKGROUND.repeat(width * height),
        }
    }

    /// The pixels, row-major RGB8.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// Colours one pixel (outside the canvas: nothing).
    pub fn set(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.rgb[at..at + 3].copy_from_slice(&colour);
        }
    }

    /// A line two pixels thick (Bresenham).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), colour: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, colour);
            self.set(x, y + 1, colour);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// Renders the joint trajectories of `episode`: RGB8 pixels, `width` wide,
/// `panel_height` per joint.
pub fn plot_joints(episode: &Episode, width: u32, panel_height: u32) -> (Vec<u8>, u32, u32) {
    let dims = episode.state.first().map_or(0, Vec::len).max(1);
    let (w, ph) = (width.max(64) as usize, panel_height.max(32) as usize);
    let height = ph * dims;
    let mut canvas = Canvas::new(w, height);
    let frames = episode.state.len().max(2);
    let margin = 6i64;
    for d in 0..dims {
        let top = (d * ph) as i64;
        let series = |rows: &Vec<Vec<f32>>| {
            rows.iter()
                .map(|r| r.get(d).copied().unwrap_or(0.0))
                .collect::<Vec<f32>>()
        };
        let (state, action) = (series(&episode.state), series(&episode.action));
        let (lo, hi) = state
            .iter()
            .chain(&action)
            .fold((0.0f32, 0.0f32), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let span = (hi - lo).max(1e-6);
        let y_of = |v: f32| top + margin + ((hi - v) / span * (ph as f32 - 2.0 * margin as f32)) as i64;
        let x_of =
            |i: usize| margin + (i as f32 / (frames - 1) as f32 * (w as f32 - 2.0 * margin as f32)) as i64;
        let (right, bottom) = (w as i64 - 1, top + ph as i64 - 1);
        canvas.line((0, top), (right, top), FRAME);
        canvas.line((0, bottom - 1), (right, bottom - 1), FRAME);
        canvas.line((x_of(0), y_of(0.0)), (x_of(frames - 1), y_of(0.0)), ZERO);
        for (values, colour) in [(&action, ACTION_COLOUR), (&state, STATE_COLOUR)] {
            for i in 1..values.len() {
                canvas.line(
                    (x_of(i - 1), y_of(values[i - 1])),
                    (x_of(i), y_of(values[i])),
                    colour,
                );
            }
        }
    }
    (canvas.rgb, w as u32, height as u32)
}

/// Writes RGB8 pixels as a PNG file.
pub fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| Error::format(path, format!("PNG: {e}")))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| Error::format(path, format!("PNG: {e}")))?;
    writer
        .finish()
        .map_err(|e| Error::format(path, format!("PNG: {e}")))
}
