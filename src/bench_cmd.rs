//! `sponge bench <what>`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use sponge_drivers::bench::bus_cycles;
use sponge_drivers::emulator::{Emulator, EmulatorConfig};
use sponge_drivers::{Bus, BusConfig};
use sponge_policy::PolicyConfig;

/// `sponge bench`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Servo-bus control cycles: sync read of 6 positions + sync write of 6 goals.
    Bus(BusBenchArgs),
    /// Dataset recording (frames/s, video and PNG, 96x96 and 640x480) and
    /// training-loader throughput (samples/s).
    Dataset(DatasetBenchArgs),
    /// The twin: physics steps/s on one core and on all cores, rendered
    /// frames/s at 96x96 and 224x224 (batched), and expert episodes per
    /// minute written to a dataset end to end.
    Sim(SimBenchArgs),
    /// The node runtime on loopback: publish-to-receive latency of a
    /// JointState and of a 640x480 Image between two Zenoh sessions, and
    /// 640x480 camera frames dropped at 30 Hz.
    Zenoh(ZenohBenchArgs),
    /// The policy (default shape, random weights and inputs): milliseconds
    /// to infer a chunk for one observation and K chunks at once, and
    /// training samples per second.
    Policy(PolicyBenchArgs),
    /// The world model (default shape, random weights and inputs):
    /// milliseconds to rank K chunks for one observation and for one
    /// anomaly-monitor check, and training samples per second.
    Wm(WmBenchArgs),
}

/// Options of `sponge bench wm`.
#[derive(Args)]
pub struct WmBenchArgs {
    /// Timed runs.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Chunks ranked for one observation.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = crate::train_cmd::DeviceArg::Cpu)]
    device: crate::train_cmd::DeviceArg,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `sponge bench policy`.
#[derive(Args)]
pub struct PolicyBenchArgs {
    /// Timed inference runs.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Chunks drawn at once for one observation (the world model's K).
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// The image encoder.
    #[arg(long, value_enum, default_value_t = crate::train_cmd::EncoderArg::Patch)]
    encoder: crate::train_cmd::EncoderArg,
    /// Timed training steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Noise draws per chunk in training (as `sponge train --flow-samples`).
    #[arg(long, default_value_t = 1, value_parser = crate::train_cmd::flow_samples)]
    flow_samples: usize,
    /// Actions per chunk (as `sponge train --horizon`).
    #[arg(long, default_value_t = PolicyConfig::default().horizon)]
    horizon: usize,
    #[command(flatten)]
    size: crate::train_cmd::TransformerSize,
    /// The dtype of inference and of training's passes, f32 or bf16 (as
    /// `sponge train --precision`: bf16 is for --device cuda; on the CPU
    /// it is slower than f32).
    #[arg(long, default_value = "f32")]
    precision: sponge_policy::train::Precision,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = crate::train_cmd::DeviceArg::Cpu)]
    device: crate::train_cmd::DeviceArg,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `sponge bench zenoh`.
#[derive(Args)]
pub struct ZenohBenchArgs {
    /// JointState messages timed.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Length of the 30 Hz camera stream, seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `sponge bench sim`.
#[derive(Args)]
pub struct SimBenchArgs {
    /// Episodes replayed for the physics figures.
    #[arg(long, default_value_t = 24)]
    pub physics_episodes: u64,
    /// Environments rendered together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Episodes generated for the end-to-end figure (0 skips it).
    #[arg(long, default_value_t = 20)]
    pub episodes: usize,
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Options of `sponge bench dataset`.
#[derive(Args)]
pub struct DatasetBenchArgs {
    /// Scratch folder (default: a temporary folder, removed after).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Seconds to run the loader.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `sponge bench bus`.
#[derive(Args)]
pub struct BusBenchArgs {
    /// Serial port of a real arm; without it, an emulated bus (1 Mbaud wire timing) is started.
    #[arg(long)]
    port: Option<String>,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Writes a benchmark's figures as pretty JSON to `path`.
pub fn write_figures(path: &std::path::Path, figures: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(figures)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// "the GPU", or the CPU's name and cores.
fn where_it_runs(device: &candle_core::Device) -> String {
    if device.is_cuda() {
        "the GPU".to_owned()
    } else {
        machine()
    }
}

/// The machine, in words.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// Runs a benchmark.
pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Bus(args) => bench_bus(args),
        BenchCommand::Dataset(args) => bench_dataset(args),
        BenchCommand::Sim(args) => crate::sim_cmd::bench(args),
        BenchCommand::Zenoh(args) => bench_zenoh(args),
        BenchCommand::Policy(args) => bench_policy(args),
        BenchCommand::Wm(args) => bench_wm(args),
    }
}

fn bench_wm(args: &WmBenchArgs) -> anyhow::Result<()> {
    use sponge_world_model::bench::{ranking_latency, training_throughput};
    let device = args.device.device()?;
    let config = sponge_world_model::WorldModelConfig::default();
    let on = where_it_runs(&device);
    println!("world-model benchmark on {on} (default model: {config:?})");
    let (rank, check) = ranking_latency(&config, args.samples, args.runs, &device)?;
    println!(
        "ranking {} chunks for one observation: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        args.samples, rank.p50_ms, rank.p90_ms, rank.max_ms
    );
    println!(
        "one monitor check: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        check.p50_ms, check.p90_ms, check.max_ms
    );
    let samples_per_s = training_throughput(&config, args.batch, args.steps, &device)?;
    println!("training, batch {}: {samples_per_s:.1} samples/s", args.batch);
    if let Some(path) = &args.json {
        let figures = json!({
            "machine": on,
            "config": config,
            "rank_k_chunks_ms": rank,
            "k": args.samples,
            "monitor_check_ms": check,
            "training_batch": args.batch,
            "training_samples_per_s": samples_per_s,
        });
        write_figures(path, &figures)?;
    }
    Ok(())
}

fn bench_policy(args: &PolicyBenchArgs) -> anyhow::Result<()> {
    use sponge_policy::bench::{inference_latency, training_throughput};
    let device = args.device.device()?;
    let config = PolicyConfig {
        vision: args.encoder.vision(None)?,
        horizon: args.horizon,
        ..args.size.of(PolicyConfig::default())
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let on = where_it_runs(&device);
    println!(
        "policy benchmark on {on}, {:?} (model: {config:?})",
        args.precision
    );
    let (one, k) = inference_latency(&config, args.samples, args.runs, args.precision, &device)?;
    println!(
        "inference, 1 chunk (batch 1, {} flow steps): p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        config.flow_steps, one.p50_ms, one.p90_ms, one.max_ms
    );
    println!(
        "inference, {} chunks for one observation: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        args.samples, k.p50_ms, k.p90_ms, k.max_ms
    );
    let samples_per_s = training_throughput(
        &config,
        args.batch,
        args.flow_samples,
        args.steps,
        args.precision,
        &device,
    )?;
    println!(
        "training, batch {} ({} noise draws per chunk): {samples_per_s:.1} samples/s",
        args.batch, args.flow_samples
    );
    if let Some(path) = &args.json {
        let figures = json!({
            "machine": on,
            "config": config,
            "precision": args.precision,
            "inference_1_chunk_ms": one,
            "inference_k_chunks_ms": k,
            "k": args.samples,
            "training_batch": args.batch,
            "flow_samples": args.flow_samples,
            "training_samples_per_s": samples_per_s,
        });
        write_figures(path, &figures)?;
    }
    Ok(())
}

fn bench_dataset(args: &DatasetBenchArgs) -> anyhow::Result<()> {
    use sponge_datasets::CameraStorage;
    use sponge_datasets::bench::{WriteCase, loader_throughput, write_throughput};
    use sponge_datasets::loader::LoaderConfig;

    let scratch = args
        .scratch
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sponge-bench-dataset-{}", std::process::id())));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let cases = [
        (
            "96x96 video, 1 camera",
            WriteCase {
                size: (96, 96),
                cameras: 1,
                storage: CameraStorage::Video,
                episodes: 5,
                frames: 120,
            },
        ),
        (
            "96x96 png, 1 camera",
            WriteCase {
                size: (96, 96),
                cameras: 1,
                storage: CameraStorage::Png,
                episodes: 5,
                frames: 120,
            },
        ),
        (
            "640x480 video, 2 cameras",
            WriteCase {
                size: (640, 480),
                cameras: 2,
                storage: CameraStorage::Video,
                episodes: 3,
                frames: 90,
            },
        ),
        (
            "640x480 png, 2 cameras",
            WriteCase {
                size: (640, 480),
                cameras: 2,
                storage: CameraStorage::Png,
                episodes: 3,
                frames: 90,
            },
        ),
    ];
    let mut results = serde_json::Map::new();
    println!("machine   {}", machine());
    for (i, (name, case)) in cases.iter().enumerate() {
        let fps = write_throughput(&scratch.join(format!("write-{i}")), *case)?;
        println!("write     {name:<26} {fps:>8.0} frames/s");
        results.insert(format!("write {name}"), json!({"frames_per_s": fps}));
    }
    let loader_root = scratch.join("loader");
    let mut spec = sponge_datasets::DatasetSpec::so100(30);
    spec.cameras = vec![sponge_datasets::CameraSpec {
        name: "front".into(),
        width: 96,
        height: 96,
    }];
    let mut writer = sponge_datasets::DatasetWriter::create(&loader_root, spec)?;
    for e in 0..20 {
        sponge_datasets::synth::write_episode(&mut writer, e, 150, "wipe the table")?;
    }
    writer.close()?;
    let config = LoaderConfig {
        batch_size: 64,
        action_horizon: 50,
        ..LoaderConfig::default()
    };
    let samples = loader_throughput(&loader_root, config, Duration::from_secs_f64(args.seconds))?;
    println!("loader    96x96 video, batch 64, horizon 50, 2 workers {samples:>8.0} samples/s");
    results.insert(
        "loader 96x96 video".into(),
        json!({"samples_per_s": samples, "batch": 64, "action_horizon": 50, "workers": 2}),
    );
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if let Some(path) = &args.json {
        let value = json!({"bench": "dataset", "machine": machine(), "results": results});
        write_figures(path, &value)?;
    }
    Ok(())
}

fn bench_bus(args: &BusBenchArgs) -> anyhow::Result<()> {
    let ids = [1, 2, 3, 4, 5, 6];
    let link = std::env::temp_dir().join(format!("sponge-bench-bus-{}", std::process::id()));
    let (emulator, port) = match &args.port {
        Some(port) => (None, port.clone()),
        None => {
            let emulator = Emulator::start(&link, EmulatorConfig::default())?;
            let port = emulator
                .link()
                .to_str()
                .context("temporary path is not UTF-8")?
                .to_owned();
            (Some(emulator), port)
        }
    };
    let mut bus = Bus::open(&port, BusConfig::default())?;
    let target = if emulator.is_some() {
        "emulated STS3215 bus"
    } else {
        port.as_str()
    };
    eprintln!("benchmarking {target} for {:.0} s ...", args.seconds);
    let report = bus_cycles(&mut bus, &ids, Duration::from_secs_f64(args.seconds))?;
    drop(emulator);
    println!("target        {target}");
    println!("machine       {}", machine());
    println!(
        "cycles        {} ({} failed, {} retries)",
        report.cycles, report.failed_cycles, report.retries
    );
    println!("cycles/s      {:.0}", report.cycles_per_s);
    println!("cycle p50     {:.0} µs", report.p50_us);
    println!("cycle p99     {:.0} µs", report.p99_us);
    println!("cycle max     {:.0} µs", report.max_us);
    if let Some(path) = &args.json {
        let value = json!({
            "bench": "bus",
            "target": target,
            "machine": machine(),
            "cycle": "sync read 6 x Present_Position + sync write 6 x Goal_Position",
            "seconds": args.seconds,
            "cycles": report.cycles,
            "failed_cycles": report.failed_cycles,
            "retries": report.retries,
            "cycles_per_s": report.cycles_per_s,
            "p50_us": report.p50_us,
            "p99_us": report.p99_us,
            "max_us": report.max_us,
        });
        write_figures(path, &value)?;
    }
    Ok(())
}

fn bench_zenoh(args: &ZenohBenchArgs) -> anyhow::Result<()> {
    eprintln!(
        "timing {} JointStates and 200 images, then a 30 Hz 640x480 stream for {:.0} s ...",
        args.messages, args.seconds
    );
    let report = sponge_launch::bench::run(args.messages, args.seconds)?;
    let line = |name: &str, l: &sponge_launch::bench::Latency| {
        println!(
            "{name:<22} p50 {:>7.0} µs  p99 {:>7.0} µs  max {:>7.0} µs  ({} messages)",
            l.p50_us, l.p99_us, l.max_us, l.samples
        )
    };
    println!("machine                {}", machine());
    println!("transport              two Zenoh peer sessions, TCP on loopback");
    line("JointState", &report.joint_state);
    line("Image 640x480 rgb8", &report.image);
    println!(
        "30 Hz stream           {} of {} frames received ({} dropped)",
        report.stream_received,
        report.stream_sent,
        report.stream_sent.saturating_sub(report.stream_received)
    );
    if let Some(path) = &args.json {
        let lat = |l: &sponge_launch::bench::Latency| json!({"samples": l.samples, "p50_us": l.p50_us, "p99_us": l.p99_us, "max_us": l.max_us});
        let value = json!({
            "bench": "zenoh",
            "machine": machine(),
            "transport": "two Zenoh peer sessions in one process, TCP on loopback",
            "joint_state": lat(&report.joint_state),
            "image_640x480": lat(&report.image),
            "stream_seconds": args.seconds,
            "stream_sent": report.stream_sent,
            "stream_received": report.stream_received,
        });
        write_figures(path, &value)?;
    }
    Ok(())
}
