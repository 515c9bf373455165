//! The anomaly monitor as a node: it watches the commands the executor
//! sends and, every segment of them, compares what the world model
//! predicted from the last check and those commands with what the camera
//! and the joints show now. When the surprise passes the calibrated
//! threshold it publishes an alarm on `status` (the executor then holds the
//! arm) and waits for a person to publish `resume` there.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_robot::joint::JointVector;
use sponge_robot::model::SERVO_STALL_TORQUE_NM;
use sponge_robot::msg::{Image, JointState, StringMsg};
use sponge_robot::units::joints_to_dataset_f32;
use sponge_world_model::{Calibration, Monitor, Senses, WorldModelRun};

use super::policy::square_rgb;
use super::{NodeError, newest_positions, pace};
use crate::params::Params;
use crate::session::Node;
use crate::topics;

/// What the monitor publishes while all is well starts with this.
pub const OK: &str = "ok";
/// An alarm starts with this; the executor holds until [`RESUME`].
pub const ALARM: &str = "alarm";
/// What a person publishes on `status` to let the arm go on.
pub const RESUME: &str = "resume";

/// Runs the monitor until `stop`.
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let status = node.publisher::<StringMsg>(topics::STATUS)?;
    let Some(dir) = params.str("world_model").filter(|p| !p.is_empty()) else {
        eprintln!("no world model given (world_model=WM): no anomaly monitor");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        return Ok("no world model: nothing monitored".into());
    };
    let dir = Path::new(dir);
    let wm = WorldModelRun::load(dir, &candle_core::Device::Cpu)?;
    let calibration = Calibration::load(&dir.join("monitor.json"))?;
    let threshold = calibration.threshold;
    let mut monitor = Monitor::new(calibration);
    let size = wm.run_config().model.image_size;
    let segment = wm.segment();
    let camera = params.str("camera").unwrap_or("front").to_owned();
    let states = node.subscriber::<JointState>(topics::JOINT_STATES)?;
    let frames = node.subscriber::<Image>(&topics::camera_image(&camera))?;
    let commands = node.subscriber::<JointState>(topics::JOINT_COMMAND)?;
    let tasks = node.subscriber::<StringMsg>(topics::TASK)?;
    let replies = node.subscriber::<StringMsg>(topics::STATUS)?;
    let mut task = params.str("task").unwrap_or_default().to_owned();
    eprintln!(
        "monitor with {}: a check every {segment} commands, threshold {threshold:.2}",
        dir.display()
    );
    let mut state: Option<JointVector> = None;
    let mut frame: Option<Vec<u8>> = None;
    let mut executed: Vec<Vec<f32>> = Vec::new();
    // The joints at every reading, and the view and colours against the
    // first check since the start or a resume.
    let mut senses =
        Senses::so100(f64::from(wm.run_config().fps)).with_response(monitor.calibration().response);
    let mut anchor = None;
    let mut alarmed = false;
    let (mut checks, mut alarms, mut worst) = (0u64, 0u64, f64::NEG_INFINITY);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let newest = newest_positions(&states)?;
        if let Some(q) = newest.newest {
            senses.measure(&q, newest.gripper_effort.map(|e| e / SERVO_STALL_TORQUE_NM));
            state = Some(q);
        }
        if let Some(image) = frames.newest()? {
            frame = Some(square_rgb(&image, size).map_err(|e| format!("camera frame: {e}"))?);
        }
        if let Some(text) = tasks.newest()? {
            task = text.data;
        }
        let mut resumed = false;
        replies.drain(|m| resumed |= m.data.trim() == RESUME)?;
        if resumed && alarmed {
            eprintln!("resumed by request");
            alarmed = false;
            anchor = None;
            senses.reset();
            monitor.reset();
        }
        commands.drain(|c| {
            if let Ok(q) = c.positions() {
                senses.command(&q);
                executed.push(joints_to_dataset_f32(&q).to_vec());
            }
        })?;
        if alarmed || executed.len() < segment {
            if alarmed {
                executed.clear();
            }
            pace(&mut next, Duration::from_millis(5));
            continue;
        }
        let (Some(q), Some(image)) = (state, frame.as_ref()) else {
            executed.clear();
            pace(&mut next, Duration::from_millis(5));
            continue;
        };
        let joints = joints_to_dataset_f32(&q);
        let (image, joints, text) = (image.as_slice(), &joints[..], task.as_str());
        let segment_actions: Vec<Vec<f32>> = executed.drain(..segment).collect();
        executed.clear();
        match &anchor {
            None => {
                anchor = Some(wm.anchor(&[image], &[joints], &[text])?);
                senses.first(image);
            }
            Some(previous) => {
                let (mut parts, now) = wm.surprise(
                    previous,
                    &[segment_actions.as_slice()],
                    &[image],
                    &[joints],
                    &[text],
                )?;
                senses.check(&mut parts[0], image, Some(monitor.calibration()));
                anchor = Some(now);
                checks += 1;
                let verdict = monitor.check(&parts[0]);
                worst = worst.max(verdict.surprise);
                let message = if verdict.alarm {
                    alarms += 1;
                    alarmed = true;
                    format!(
                        "{ALARM}: {} unlike what was expected (surprise {:.1} > {threshold:.1}); holding, publish '{RESUME}' on status to go on",
                        verdict.cause, verdict.surprise
                    )
                } else {
                    format!("{OK} surprise {:.1}", verdict.surprise)
                };
                if verdict.alarm {
                    eprintln!("{message}");
                }
                status.put(&StringMsg { data: message })?;
            }
        }
        pace(&mut next, Duration::from_millis(5));
    }
    Ok(format!(
        "{checks} checks, {alarms} alarms, largest surprise {}",
        if worst.is_finite() {
            format!("{worst:.1}")
        } else {
            "-".into()
        }
    ))
}
