//! `sponge dataset ...`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use sponge_datasets::validate::validate;
use sponge_datasets::{CameraSpec, CameraStorage, Dataset, DatasetSpec, DatasetWriter, synth};

/// How cameras are stored.
#[derive(Clone, Copy, ValueEnum)]
pub enum StorageArg {
    /// mp4 per camera (AV1, or H.264 without an AV1 encoder).
    Video,
    /// PNG images inside the parquet files.
    Png,
}

/// `sponge dataset`.
#[derive(Subcommand)]
pub enum DatasetCommand {
    /// A summary: episodes, frames, fps, features, tasks, size.
    Info {
        /// The dataset folder.
        dir: PathBuf,
    },
    /// Check every invariant; exits non-zero naming each file and problem.
    Validate {
        /// The dataset folder.
        dir: PathBuf,
    },
    /// Print one episode's frames: task, timestamps, state, action, and per
    /// camera the mean of each image (as JSON with --json).
    Show {
        /// The dataset folder.
        dir: PathBuf,
        /// Episode index.
        #[arg(long, default_value_t = 0)]
        episode: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write views of an episode: a PNG plot of the joint trajectories (one
    /// panel per joint, top to bottom; state blue, action orange) and, in
    /// builds with the `rerun` feature, a Rerun .rrd file with the camera
    /// images and joint curves.
    View {
        /// The dataset folder.
        dir: PathBuf,
        /// Episode index.
        #[arg(long, default_value_t = 0)]
        episode: usize,
        /// Output folder (default: the current folder).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Recompute the statistics (per episode and meta/stats.json) from the frames.
    Stats {
        /// The dataset folder.
        dir: PathBuf,
    },
    /// Convert a LeRobot v2.1 (or v2.0) dataset to v3.0.
    Convert {
        /// The v2.x dataset folder.
        input: PathBuf,
        /// New v3.0 dataset folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Merge datasets with the same features into a new one.
    Merge {
        /// Datasets to merge, in order.
        #[arg(required = true, num_args = 2..)]
        inputs: Vec<PathBuf>,
        /// New dataset folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a synthetic dataset (moving test pattern, smooth joint
    /// curves), for trying the tools and for benchmarks.
    Synth {
        /// New dataset folder.
        #[arg(long)]
        out: PathBuf,
        /// Episodes to write.
        #[arg(long, default_value_t = 5)]
        episodes: u64,
        /// Frames per episode.
        #[arg(long, default_value_t = 90)]
        frames: u64,
        /// Cameras (named front, wrist, cam2, ...).
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// Camera width and height, pixels.
        #[arg(long, default_value_t = 96)]
        image_size: u32,
        /// How cameras are stored.
        #[arg(long, value_enum, default_value = "video")]
        storage: StorageArg,
        /// Frames per second.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Add episodes to an existing dataset.
        #[arg(long)]
        resume: bool,
    },
}

fn folder_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Runs a `sponge dataset` subcommand.
pub fn run(command: &DatasetCommand) -> anyhow::Result<()> {
    if matches!(
        command,
        DatasetCommand::Info { .. }
            | DatasetCommand::Validate { .. }
            | DatasetCommand::Show { .. }
            | DatasetCommand::Stats { .. }
    ) {
        quiet_on_closed_stdout();
    }
    match command {
        DatasetCommand::Info { dir } => {
            let dataset = Dataset::open(dir)?;
            let info = dataset.info();
            println!("dataset      {}", dir.display());
            println!(
                "format       LeRobot {} ({})",
                info.codebase_version,
                info.robot_type.as_deref().unwrap_or("unknown robot")
            );
            println!("episodes     {}", info.total_episodes);
            println!(
                "frames       {} at {} fps ({:.1} s)",
                info.total_frames,
                info.fps,
                info.total_frames as f64 / f64::from(info.fps)
            );
            println!("size         {:.1} MB", folder_size(dir) as f64 / 1e6);
            println!("tasks        {}", info.total_tasks);
            for (i, task) in dataset.tasks().iter().enumerate() {
                let count = dataset
                    .episodes()
                    .iter()
                    .filter(|e| e.tasks.contains(task))
                    .count();
                println!("  {i:>3}  {task}  ({count} episodes)");
            }
            println!("features");
            for (name, feature) in dataset.features() {
                let codec = feature
                    .info
                    .as_ref()
                    .and_then(|i| i["video.codec"].as_str())
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default();
                println!("  {name:<28} {:<8} {:?}{codec}", feature.dtype, feature.shape);
            }
            Ok(())
        }
        DatasetCommand::Show { dir, episode, json } => {
            let dataset = Dataset::open(dir)?;
            let read = dataset.read_episode(*episode)?;
            let image_means: serde_json::Map<String, serde_json::Value> = read
                .images
                .iter()
                .map(|(camera, frames)| {
                    let means: Vec<f64> = frames
                        .iter()
                        .map(|f| f.iter().map(|v| f64::from(*v)).sum::<f64>() / f.len().max(1) as f64)
                        .collect();
                    (camera.clone(), serde_json::json!(means))
                })
                .collect();
            if *json {
                let value = serde_json::json!({
                    "episode_index": read.index,
                    "task": read.task,
                    "task_index": read.task_index,
                    "timestamp": read.timestamps,
                    "observation.state": read.state,
                    "action": read.action,
                    "next.reward": read.reward,
                    "next.done": read.done,
                    "observation.environment_state": read.environment_state,
                    "image_means": image_means,
                });
                println!("{}", serde_json::to_string(&value)?);
            } else {
                println!(
                    "episode {} ({} frames): {}",
                    read.index,
                    read.state.len(),
                    read.task
                );
                for (f, ((t, state), action)) in read
                    .timestamps
                    .iter()
                    .zip(&read.state)
                    .zip(&read.action)
                    .enumerate()
                {
                    println!("{f:>5} {t:>8.3} s  state {state:?}  action {action:?}");
                }
            }
            Ok(())
        }
        DatasetCommand::View { dir, episode, out } => {
            let dataset = Dataset::open(dir)?;
            let read = dataset.read_episode(*episode)?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let png = out.join(format!("episode_{episode:06}_joints.png"));
            let (rgb, width, height) = sponge_datasets::plot::plot_joints(&read, 900, 110);
            sponge_datasets::plot::write_png(&png, &rgb, width, height)?;
            let names = dataset
                .features()
                .iter()
                .find(|(n, _)| n == "action")
                .and_then(|(_, f)| f.names.as_array().cloned())
                .unwrap_or_default();
            println!(
                "{}: joint trajectories, one panel per joint from the top ({}); blue observation.state, orange action",
                png.display(),
                names
                    .iter()
                    .filter_map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            crate::rerun_export::write_rrd(&dataset, &read, out)?;
            Ok(())
        }
        DatasetCommand::Stats { dir } => {
            let stats = sponge_datasets::restat::recompute_stats(dir, |done, total| {
                eprint!("\rrecomputing: {done}/{total} episodes");
            })?;
            eprintln!();
            println!(
                "{:<28} {:>10} {:>10} {:>10} {:>10}",
                "feature (first entry)", "mean", "std", "min", "max"
            );
            for (name, s) in &stats {
                let first = |v: &Vec<f64>| v.first().copied().unwrap_or(f64::NAN);
                println!(
                    "{name:<28} {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
                    first(&s.mean),
                    first(&s.std),
                    first(&s.min),
                    first(&s.max)
                );
            }
            println!("written to {}", dir.join("meta/stats.json").display());
            Ok(())
        }
        DatasetCommand::Convert { input, out } => {
            let bar = episode_bar("converting");
            let converted = sponge_datasets::convert::convert_v2(input, out, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            println!(
                "{} written (LeRobot v3.0, {} episodes)",
                out.display(),
                converted.episodes
            );
            if !converted.not_carried.is_empty() {
                eprintln!(
                    "warning: not carried over (sponge's datasets do not record them): {}",
                    converted.not_carried.join(", ")
                );
            }
            Ok(())
        }
        DatasetCommand::Merge { inputs, out } => {
            let paths: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
            let bar = episode_bar("merging");
            let merged = sponge_datasets::merge::merge(&paths, out, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            println!("{} written: {} episodes", out.display(), merged.episodes);
            if merged.reencoded > 0 {
                println!(
                    "the videos of {} episodes were encoded again (another codec, or not cut exactly); \
                     the rest were copied as they were",
                    merged.reencoded
                );
            }
            Ok(())
        }
        DatasetCommand::Validate { dir } => {
            if dir.is_dir() && sponge_datasets::commit::recover(dir)? {
                println!("{}: finished a commit that a crash interrupted", dir.display());
            }
            let problems = validate(dir);
            if problems.is_empty() {
                println!("{}: valid LeRobot v3.0 dataset", dir.display());
                return Ok(());
            }
            for problem in &problems {
                eprintln!("{}: {problem}", dir.display());
            }
            bail!("{} problem(s) in {}", problems.len(), dir.display());
        }
        DatasetCommand::Synth {
            out,
            episodes,
            frames,
            cameras,
            image_size,
            storage,
            fps,
            resume,
        } => {
            let mut writer = if *resume {
                DatasetWriter::resume(out)?
            } else {
                let mut spec = DatasetSpec::so100(*fps);
                spec.reward_done = true;
                spec.storage = match storage {
                    StorageArg::Video => CameraStorage::Video,
                    StorageArg::Png => CameraStorage::Png,
                };
                let names = ["front", "wrist"];
                spec.cameras = (0..*cameras)
                    .map(|i| CameraSpec {
                        name: names
                            .get(i)
                            .map_or_else(|| format!("cam{i}"), |n| (*n).to_owned()),
                        width: *image_size,
                        height: *image_size,
                    })
                    .collect();
                DatasetWriter::create(out, spec)?
            };
            let first = writer.episodes() as u64;
            for e in first..first + episodes {
                let task = [
                    "wipe up the coffee",
                    "clean the ink on the left",
                    "wipe the table",
                ][(e % 3) as usize];
                synth::write_episode(&mut writer, e, *frames, task)
                    .with_context(|| format!("episode {e}"))?;
                println!("episode {e} saved ({} frames in the dataset)", writer.frames());
            }
            writer.close()?;
            Ok(())
        }
    }
}

/// A progress bar over episodes (drawn only on a terminal, so logs stay clean).
fn episode_bar(verb: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{verb} {{bar:30}} {{pos}}/{{len}} episodes  [{{elapsed_precise}}, eta {{eta}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Lets a read-only command that prints end as Unix tools do when its
/// reader goes away (`sponge dataset show D | head`): Rust ignores SIGPIPE,
/// so `println!` would panic on the closed pipe. Only for commands that
/// write nothing but stdout: one that feeds ffmpeg must see a broken pipe
/// as an error it can report.
#[expect(
    unsafe_code,
    reason = "nix marks every signal() call unsafe; this one installs no handler"
)]
fn quiet_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default action before any thread starts; no
    // handler runs Rust code. Should it fail, the command still runs, and a
    // closed pipe is the panic it was before.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
