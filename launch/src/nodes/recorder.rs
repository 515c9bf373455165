//! The recorder: episodes of `joint_states` (observation.state),
//! `joint_command` (action) and camera images into a LeRobot v3 dataset,
//! sampled at the dataset's rate.
//!
//! Like LeRobot's `record`: each episode runs for `episode_s`, then
//! `reset_s` passes to reset the scene; from the keyboard, → (or `n`) ends
//! the episode or the reset early, ← (or `r`) throws the episode away and
//! records it again, Esc (or `q`) saves the episode and stops. Ctrl-C
//! saves the episode being recorded too: nothing recorded is lost.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sponge_datasets::{CameraSpec, DatasetSpec, DatasetWriter, FrameInput};
use sponge_robot::joint::JointVector;
use sponge_robot::msg::{Image, JointState, StringMsg};
use sponge_robot::units::joints_to_dataset_f32;

use super::newest_positions;
use super::{NodeError, pace};
use crate::params::Params;
use crate::session::{Error, Node, Subscriber};
use crate::topics;

/// A key that controls the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// → : end the episode (or the reset) now.
    Next,
    /// ← : record this episode again.
    Redo,
    /// Esc: save and stop.
    Stop,
}

/// The recording keys in what one read of the terminal gave.
pub fn parse_keys(bytes: &[u8]) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'[') => {
                match bytes.get(i + 2) {
                    Some(b'C') => keys.push(Key::Next),
                    Some(b'D') => keys.push(Key::Redo),
                    _ => {}
                }
                i += 3;
                continue;
            }
            0x1b if i + 1 == bytes.len() => keys.push(Key::Stop),
            b'n' | b'\n' | b' ' => keys.push(Key::Next),
            b'r' => keys.push(Key::Redo),
            b'q' => keys.push(Key::Stop),
            _ => {}
        }
        i += 1;
    }
    keys
}

/// Reads keys from the terminal (no echo, no Enter needed) until dropped;
/// the terminal's settings come back when it is dropped.
struct Keyboard {
    keys: mpsc::Receiver<Key>,
    saved: Option<nix::sys::termios::Termios>,
}

impl Keyboard {
    fn open() -> Option<Keyboard> {
        use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices as Cc, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        // Keys arrive one by one, unechoed; Ctrl-C still stops everything.
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO);
        raw.control_chars[Cc::VMIN as usize] = 1;
        raw.control_chars[Cc::VTIME as usize] = 0;
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        let (send, keys) = mpsc::channel();
        std::thread::spawn(move || {
            // A terminal sends each key's bytes together, so one read is one
            // key or more: an arrow is ESC [ C or ESC [ D, Esc alone is ESC.
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 64];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for key in parse_keys(&buf[..n]) {
                    if send.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        Some(Keyboard {
            keys,
            saved: Some(saved),
        })
    }

    fn key(&self) -> Option<Key> {
        self.keys.try_recv().ok()
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // Best effort: the terminal may be gone.
            let _ =
                nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &saved);
        }
    }
}

/// The newest value on each input.
struct Inputs {
    states: Subscriber<JointState>,
    commands: Subscriber<JointState>,
    task_topic: Subscriber<StringMsg>,
    cameras: Vec<(String, Subscriber<Image>)>,
    state: Option<JointVector>,
    action: Option<JointVector>,
    task: String,
    images: Vec<Option<Image>>,
}

impl Inputs {
    fn drain(&mut self) -> Result<(), NodeError> {
        if let Some(q) = newest_positions(&self.states)?.newest {
            self.state = Some(q);
        }
        if let Some(q) = newest_positions(&self.commands)?.newest {
            self.action = Some(q);
        }
        if let Some(task) = self.task_topic.newest()? {
            self.task = task.data;
        }
        for (i, (name, sub)) in self.cameras.iter().enumerate() {
            if let Some(image) = sub.newest()? {
                if image.encoding != "rgb8" {
                    return Err(format!("camera {name} sends {}, not rgb8", image.encoding).into());
                }
                if let Some(old) = &self.images[i]
                    && (old.width, old.height) != (image.width, image.height)
                {
                    return Err(format!(
                        "camera {name} changed size from {}x{} to {}x{}",
                        old.width, old.height, image.width, image.height
                    )
                    .into());
                }
                self.images[i] = Some(image);
            }
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        self.state.is_some() && self.images.iter().all(Option::is_some)
    }
}

/// Runs the recorder until its episodes are done, Esc, or `stop`.
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    let out = params.path("out").unwrap_or_default();
    let fps = params.int("fps") as u32;
    let episodes = params.int("episodes") as usize;
    let episode_frames = (params.float("episode_s") * f64::from(fps)).round().max(1.0) as u64;
    let reset = Duration::from_secs_f64(params.float("reset_s").max(0.0));
    let camera_names = params.list("cameras");
    let mut inputs = Inputs {
        states: node.subscriber(topics::JOINT_STATES)?,
        commands: node.subscriber(topics::JOINT_COMMAND)?,
        task_topic: node.subscriber(topics::TASK)?,
        cameras: camera_names
            .iter()
            .map(|name| Ok((name.clone(), node.subscriber(&topics::camera_image(name))?)))
            .collect::<Result<_, Error>>()?,
        state: None,
        action: None,
        task: params.str("task").unwrap_or_default().to_owned(),
        images: vec![None; camera_names.len()],
    };
    let keyboard = if params.bool("keyboard") {
        Keyboard::open()
    } else {
        None
    };
    let key = || keyboard.as_ref().and_then(Keyboard::key);

    // Wait for the arm and every camera: they fix the dataset's shape.
    println!(
        "recorder: waiting for joint_states{}",
        camera_names
            .iter()
            .map(|c| format!(" and camera {c}"))
            .collect::<String>()
    );
    while !inputs.ready() {
        if stop.load(Ordering::Relaxed) {
            return Ok("stopped before the arm and cameras were heard; nothing recorded".into());
        }
        inputs.drain()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut writer = open_writer(&out, fps, &camera_names, &inputs.images)?;
    println!(
        "recorder: {} episodes of {:.1} s into {}{}",
        episodes,
        episode_frames as f64 / f64::from(fps),
        out.display(),
        if keyboard.is_some() {
            "  (→ next, ← redo, Esc stop)"
        } else {
            ""
        }
    );

    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    let (mut saved, mut redone) = (0usize, 0usize);
    let mut stopping = false;
    while saved < episodes && !stopping {
        writer.start_episode(&inputs.task)?;
        println!("recorder: episode {} of {}: {}", saved + 1, episodes, inputs.task);
        let mut frames = 0u64;
        let mut redo = false;
        let mut next = Instant::now();
        while frames < episode_frames {
            if stop.load(Ordering::Relaxed) {
                stopping = true;
                break;
            }
            match key() {
                Some(Key::Next) => break,
                Some(Key::Redo) => {
                    redo = true;
                    break;
                }
                Some(Key::Stop) => {
                    stopping = true;
                    break;
                }
                None => {}
            }
            inputs.drain()?;
            let state = inputs.state.unwrap_or_default();
            let action = inputs.action.unwrap_or(state);
            let state = joints_to_dataset_f32(&state);
            let action = joints_to_dataset_f32(&action);
            let images: Vec<&[u8]> = inputs
                .images
                .iter()
                .map(|i| i.as_ref().map_or(&[][..], |i| i.data.as_slice()))
                .collect();
            writer.add_frame(&FrameInput {
                state: &state,
                action: &action,
                images: &images,
                reward: 0.0,
                done: false,
                environment_state: &[],
            })?;
            frames += 1;
            pace(&mut next, period);
        }
        if redo || frames == 0 {
            writer.discard_episode();
            if redo {
                redone += 1;
                println!("recorder: episode thrown away; recording it again");
            }
            continue;
        }
        let meta = writer.finish_episode()?;
        saved += 1;
        println!(
            "recorder: saved episode {} ({} frames)",
            meta.episode_index, meta.length
        );
        if saved < episodes && !stopping {
            println!(
                "recorder: reset the scene ({:.0} s, → to skip)",
                reset.as_secs_f64()
            );
            let until = Instant::now() + reset;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                match key() {
                    Some(Key::Next) => break,
                    Some(Key::Stop) => {
                        stopping = true;
                        break;
                    }
                    _ => {}
                }
                inputs.drain()?;
                std::thread::sleep(Duration::from_millis(10));
            }
            stopping |= stop.load(Ordering::Relaxed);
        }
    }
    let total = writer.episodes();
    writer.close()?;
    Ok(format!(
        "{saved} episodes saved ({redone} recorded again); {} now holds {total}",
        out.display()
    ))
}

/// A new dataset at `out`, or the one there to add to (its cameras must match).
fn open_writer(
    out: &Path,
    fps: u32,
    names: &[String],
    images: &[Option<Image>],
) -> Result<DatasetWriter, NodeError> {
    let cameras: Vec<CameraSpec> = names
        .iter()
        .zip(images)
        .map(|(name, image)| CameraSpec {
            name: name.clone(),
            width: image.as_ref().map_or(0, |i| i.width),
            height: image.as_ref().map_or(0, |i| i.height),
        })
        .collect();
    if out.join("meta").join("info.json").exists() {
        let writer = DatasetWriter::resume(out)?;
        let spec = writer.spec();
        if spec.fps != fps || spec.cameras != cameras {
            return Err(format!(
                "{} holds a recording at {} fps with cameras {:?}; this one is {} fps with {:?}: \
                 choose another `out`",
                out.display(),
                spec.fps,
                spec.cameras
                    .iter()
                    .map(|c| (&c.name, c.width, c.height))
                    .collect::<Vec<_>>(),
                fps,
                cameras
                    .iter()
                    .map(|c| (&c.name, c.width, c.height))
                    .collect::<Vec<_>>()
            )
            .into());
        }
        return Ok(writer);
    }
    let mut spec = DatasetSpec::so100(fps);
    spec.cameras = cameras;
    Ok(DatasetWriter::create(out, spec)?)
}
