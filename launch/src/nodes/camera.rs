//! A USB camera (V4L2) publishing `camera/NAME/image_raw` as rgb8.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sponge_drivers::camera::{Camera, CameraConfig};
use sponge_robot::msg::{Header, Image, Time};

use super::NodeError;
use crate::params::Params;
use crate::session::Node;
use crate::topics;

/// Runs the camera until `stop`.
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let device = params.str("device").unwrap_or_default();
    let name = params.str("name").unwrap_or("front");
    let config = CameraConfig {
        width: params.int("width") as u32,
        height: params.int("height") as u32,
        fps: params.float("fps"),
    };
    let mut camera = Camera::open(Path::new(device), config)?;
    let images = node.publisher::<Image>(&topics::camera_image(name))?;
    let mut frames = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let frame = camera.read()?;
        let header = Header {
            stamp: Time::now(),
            frame_id: format!("{name}_camera"),
        };
        images.put(&Image::rgb8(header, frame.width, frame.height, frame.rgb)?)?;
        frames += 1;
    }
    Ok(format!("{frames} frames from {device}"))
}
