//! USB cameras (V4L2): RGB8 frames with timestamps at a requested size and
//! rate.

pub mod convert;
mod huffman;
pub mod pacing;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linuxvideo::format::{PixFormat, PixelFormat};
use linuxvideo::stream::ReadStream;
use linuxvideo::{Device, Fract};

pub use pacing::{Decision, FramePacer};

use crate::{Error, Result};

/// What to capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraConfig {
    /// Width of delivered frames, pixels.
    pub width: u32,
    /// Height of delivered frames, pixels.
    pub height: u32,
    /// Delivered frames per second.
    pub fps: f64,
}

/// A captured frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Packed RGB8, row-major.
    pub rgb: Vec<u8>,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// When it was captured, since the camera started.
    pub timestamp: Duration,
    /// Frames delivered before this one.
    pub sequence: u64,
}

/// An open camera.
pub struct Camera {
    path: PathBuf,
    stream: ReadStream,
    native: (u32, u32, PixelFormat, usize),
    config: CameraConfig,
    pacer: FramePacer,
    started: Instant,
}

fn camera_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Camera(format!("{}: {what}: {e}", path.display()))
}

impl Camera {
    /// The video capture devices present (`/dev/video*`), with their names.
    pub fn list() -> Vec<(PathBuf, String)> {
        let Ok(devices) = linuxvideo::list() else {
            return Vec::new();
        };
        devices
            .flatten()
            .filter_map(|device| {
                let caps = device.capabilities().ok()?;
                Some((device.path().ok()?, caps.card().to_owned()))
            })
            .collect()
    }

    /// Opens the camera at `path` and starts capturing.
    pub fn open(path: &Path, config: CameraConfig) -> Result<Camera> {
        if !path.exists() {
            let present: Vec<String> = Camera::list()
                .iter()
                .map(|(p, n)| format!("{} ({n})", p.display()))
                .collect();
            return Err(Error::Camera(format!(
                "no camera at {}: {}",
                path.display(),
                if present.is_empty() {
                    "no video devices on this machine".into()
                } else {
                    format!("cameras here: {}", present.join(", "))
                }
            )));
        }
        let mut capture = None;
        for format in [PixelFormat::YUYV, PixelFormat::MJPG] {
            let device = Device::open(path).map_err(|e| camera_error(path, "cannot open", e))?;
            let negotiated = device
                .video_capture(PixFormat::new(config.width, config.height, format))
                .map_err(|e| camera_error(path, "not a video capture device", e))?;
            let got = negotiated.format().pixel_format();
            if got == PixelFormat::YUYV || got == PixelFormat::MJPG {
                capture = Some(negotiated);
                break;
            }
        }
        let capture = capture
            .ok_or_else(|| camera_error(path, "format", "the camera offers neither YUYV nor Motion-JPEG"))?;
        let format = capture.format();
        let native = (
            format.width(),
            format.height(),
            format.pixel_format(),
            format.bytes_per_line() as usize,
        );
        // Cameras pick the nearest interval they support; the pacer handles the rest.
        let _ = capture.set_frame_interval(Fract::new(1, config.fps.round().max(1.0) as u32));
        let stream = capture
            .into_stream()
            .map_err(|e| camera_error(path, "cannot start streaming", e))?;
        Ok(Camera {
            path: path.to_path_buf(),
            stream,
            native,
            config,
            pacer: FramePacer::new(config.fps),
            started: Instant::now(),
        })
    }

    /// The frame-rate accounting so far.
    pub fn pacer(&self) -> &FramePacer {
        &self.pacer
    }

    /// Waits for the next frame due at the requested rate.
    pub fn read(&mut self) -> Result<Frame> {
        let (width, height, format, stride) = self.native;
        loop {
            let data = self
                .stream
                .dequeue(|view| Ok(view.to_vec()))
                .map_err(|e| camera_error(&self.path, "capture failed (unplugged?)", e))?;
            let timestamp = self.started.elapsed();
            if self.pacer.offer(timestamp) == Decision::Skip {
                continue;
            }
            let (rgb, w, h) = if format == PixelFormat::MJPG {
                convert::mjpeg_to_rgb(&data)?
            } else {
                (convert::yuyv_to_rgb(&data, width, height, stride)?, width, height)
            };
            let rgb = convert::resize_rgb(&rgb, w, h, self.config.width, self.config.height);
            return Ok(Frame {
                rgb,
                width: self.config.width,
                height: self.config.height,
                timestamp,
                sequence: self.pacer.kept - 1,
            });
        }
    }
}
