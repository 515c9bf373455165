//! `sponge`: the command line of the SO-100 robot-learning and control stack.
//! Argument parsing and dispatch only; the work lives in the library crates.

mod bench_cmd;
mod dataset_cmd;
mod demo;
mod eval_cmd;
mod launch_cmd;
mod motors_cmd;
mod rerun_export;
mod robot_cmd;
mod sim_cmd;
mod teleop_cmd;
mod train_cmd;
mod wm_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Robot learning and control for the SO-100 arm: a digital twin, LeRobot
/// datasets, a vision-language-action policy, and drivers for the real arm.
///
/// Units everywhere are SI: metres, radians, seconds (command-line flags
/// that take degrees say so in their name). Joint zero is the middle of
/// each joint's range, the pose the arm is held in during calibration.
#[derive(Parser)]
#[command(name = "sponge", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The newcomer's first run on embedded defaults (no robot, no GPU).
    Demo(demo::DemoArgs),
    /// The SO-100 model: joints and limits, kinematics, URDF.
    ///
    /// Frames: the base frame has z up and its origin on the table under the
    /// base; at shoulder_pan = 0 the arm reaches along −y. Joint angles are in
    /// radians (unless a flag says otherwise), zero in the middle of each
    /// joint's range; their order is shoulder_pan, shoulder_lift, elbow_flex,
    /// wrist_flex, wrist_roll, gripper (servo IDs 1..6). Dataset units are
    /// LeRobot's: degrees for body joints, 0..100 for the gripper (0 = closed).
    Robot {
        #[command(subcommand)]
        command: robot_cmd::RobotCommand,
    },
    /// LeRobot v3.0 datasets: info, validate, synthetic data.
    Dataset {
        #[command(subcommand)]
        command: dataset_cmd::DatasetCommand,
    },
    /// Set up and inspect the servos on a bus.
    Motors {
        #[command(subcommand)]
        command: motors_cmd::MotorsCommand,
    },
    /// Calibrate an arm: half-turn homing and range recording, written to
    /// the motors and to a calibration file in LeRobot's format.
    Calibrate(teleop_cmd::CalibrateArgs),
    /// Leader-to-follower teleoperation at a steady rate (no middleware).
    Teleop(teleop_cmd::TeleopArgs),
    /// Teleoperate the real arm and record episodes as a LeRobot v3 dataset
    /// (the real_record launch set-up: → ends an episode, ← records it
    /// again, Esc stops).
    Record(launch_cmd::RecordArgs),
    /// Servo-bus emulator: six STS3215 servos on a pseudo-terminal, for
    /// trying and testing everything that talks to a real arm.
    Emulate(motors_cmd::EmulateArgs),
    /// The digital twin: expert episodes as datasets, rendering, the expert's success rate.
    Sim {
        #[command(subcommand)]
        command: sim_cmd::SimCommand,
    },
    /// Run a launch file: nodes over Zenoh (twin or real arm, teleop,
    /// recorder, executor, policy), one process each, restarted as the file
    /// says; Ctrl-C stops them all and leaves the follower torque-off or
    /// holding. `--check` validates a file without running it.
    Launch(launch_cmd::LaunchArgs),
    /// Train the policy on a dataset (flow matching; CPU, or CUDA with --features cuda).
    Train(train_cmd::TrainArgs),
    /// Run a trained policy in closed loop in the twin on unseen seeds:
    /// success rate, fraction cleaned, time to success, force-limit
    /// violations, GIFs.
    Eval(eval_cmd::EvalArgs),
    /// The world model: train it, calibrate its anomaly monitor, and see
    /// what it expects (ranking and monitoring run in `sponge eval
    /// --world-model`).
    Wm {
        #[command(subcommand)]
        command: wm_cmd::WmCommand,
    },
    /// Benchmarks, measured on this machine.
    Bench {
        #[command(subcommand)]
        command: bench_cmd::BenchCommand,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    give_graphics_a_runtime_dir();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Robot { command } => robot_cmd::run(command),
        Command::Dataset { command } => dataset_cmd::run(&command),
        Command::Motors { command } => motors_cmd::motors(&command),
        Command::Emulate(args) => motors_cmd::emulate(&args),
        Command::Calibrate(args) => teleop_cmd::calibrate_command(&args),
        Command::Teleop(args) => teleop_cmd::teleop_command(&args),
        Command::Sim { command } => sim_cmd::run(&command),
        Command::Launch(args) => launch_cmd::run(&args),
        Command::Record(args) => launch_cmd::record(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Wm { command } => wm_cmd::run(&command),
        Command::Bench { command } => bench_cmd::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tells glibc's allocator to keep freed memory for reuse instead of
/// handing every large block back to the kernel. candle allocates a fresh
/// buffer for every tensor op; by default each buffer over 128 KiB-32 MiB is
/// a new mapping whose pages the kernel faults in and zeroes again, which
/// costs the policy's training a third of its speed (`sponge bench policy`:
/// 63-65 against 94-97 samples/s on 2 cores). The price is that the
/// process keeps its peak memory until it exits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt is a C call; it runs before any other thread starts"
)]
fn keep_freed_memory() {
    // SAFETY: plain integer settings, set before any allocation-heavy work
    // and before other threads exist. A refused setting leaves the default.
    // 32 MiB is the largest mapping threshold glibc accepts on 64-bit.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Gives the process a private `XDG_RUNTIME_DIR` when it has none (a
/// container, a cron job, `ssh` without a login session). The Vulkan loader
/// probes Wayland when it starts, and libwayland prints "error:
/// XDG_RUNTIME_DIR is invalid or not set" for every probe: harmless to the
/// headless renderer, but it reads as a failure of every twin command. A
/// folder of our own, private to this user, lets the probe find no
/// display quietly.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "setting the environment is unsafe once threads exist; it runs first in main"
)]
fn give_graphics_a_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .is_some_and(|dir| dir.is_absolute() && dir.is_dir());
    if usable {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("sponge-runtime-{uid}"));
    let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let private = std::fs::symlink_metadata(&dir).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0
    });
    if (made.is_ok() || dir.is_dir()) && private {
        // SAFETY: called first thing in main, before any other thread starts.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

#[cfg(not(target_os = "linux"))]
fn give_graphics_a_runtime_dir() {}
