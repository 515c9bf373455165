//! `sponge calibrate` and `sponge teleop`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use sponge_drivers::arm::{Arm, OnStop, Role, SafetyConfig};
use sponge_drivers::calibrate::{ArmKind, CalibrationGuide, calibrate, calibration_path, load_calibration};
use sponge_drivers::teleop::{TeleopConfig, teleop};
use sponge_drivers::{Bus, BusConfig};
use sponge_robot::Joint;
use sponge_robot::joint::NUM_JOINTS;

use crate::motors_cmd::{ctrl_c_flag, wait_for_enter};

/// Which arm.
#[derive(Clone, Copy, ValueEnum)]
pub enum ArmArg {
    /// The arm that is driven.
    Follower,
    /// The arm a person moves.
    Leader,
}

impl From<ArmArg> for ArmKind {
    fn from(arm: ArmArg) -> ArmKind {
        match arm {
            ArmArg::Follower => ArmKind::Follower,
            ArmArg::Leader => ArmKind::Leader,
        }
    }
}

/// `sponge calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// Serial port of the arm.
    #[arg(long)]
    port: String,
    /// Which arm this is.
    #[arg(long, value_enum)]
    arm: ArmArg,
    /// A name for this arm (calibrations are kept per arm).
    #[arg(long)]
    id: String,
    /// Where to write the calibration (LeRobot's JSON format); default:
    /// $SPONGE_CALIBRATION_DIR or ~/.local/share/sponge/calibration.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `sponge teleop`.
#[derive(Args)]
pub struct TeleopArgs {
    /// Serial port of the leader arm.
    #[arg(long)]
    leader: String,
    /// Serial port of the follower arm.
    #[arg(long)]
    follower: String,
    /// Calibration name of the leader arm.
    #[arg(long, default_value = "leader")]
    leader_id: String,
    /// Calibration name of the follower arm.
    #[arg(long, default_value = "follower")]
    follower_id: String,
    /// Loop rate, Hz.
    #[arg(long, default_value_t = 60.0)]
    fps: f64,
    /// Largest goal change of a joint per cycle, degrees.
    #[arg(long, default_value_t = 11.5)]
    max_step_deg: f64,
    /// Hold the follower when no goal came for this long, ms.
    #[arg(long, default_value_t = 200)]
    watchdog_ms: u64,
    /// On exit, hold the follower's pose instead of turning torque off.
    #[arg(long)]
    hold_on_stop: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
}

/// Guides a person through calibration in the terminal.
struct TerminalGuide {
    done: Arc<AtomicBool>,
    listening: bool,
    last_print: Instant,
}

impl CalibrationGuide for TerminalGuide {
    fn middle_pose(&mut self) -> sponge_drivers::Result<()> {
        println!("Move every joint of the arm to the MIDDLE of its range, then press Enter.");
        wait_for_enter().map_err(|e| sponge_drivers::Error::Arm(e.to_string()))
    }

    fn sweeping(
        &mut self,
        present: &[i32; NUM_JOINTS],
        min: &[i32; NUM_JOINTS],
        max: &[i32; NUM_JOINTS],
    ) -> bool {
        if !self.listening {
            self.listening = true;
            println!(
                "Move every joint except wrist_roll through its FULL range, slowly, end to end. Press Enter when done."
            );
            let done = self.done.clone();
            // A thread that ends with the Enter key (or a closed input).
            let spawned = std::thread::Builder::new()
                .name("calibrate-enter".into())
                .spawn(move || {
                    let _ = wait_for_enter();
                    done.store(true, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.done.store(true, Ordering::SeqCst);
            }
        }
        if self.last_print.elapsed() > Duration::from_millis(200) {
            self.last_print = Instant::now();
            let line: Vec<String> = Joint::ALL
                .iter()
                .enumerate()
                .map(|(i, j)| format!("{} {}<{}<{}", j, min[i], present[i], max[i]))
                .collect();
            print!("\r{}   ", line.join("  "));
            // Progress display only.
            let _ = std::io::stdout().flush();
        }
        self.done.load(Ordering::SeqCst)
    }
}

/// Runs `sponge calibrate`.
pub fn calibrate_command(args: &CalibrateArgs) -> anyhow::Result<()> {
    let mut bus = Bus::open(&args.port, BusConfig::default())?;
    let mut guide = TerminalGuide {
        done: Arc::new(AtomicBool::new(false)),
        listening: false,
        last_print: Instant::now(),
    };
    let calibration = calibrate(&mut bus, &mut guide)?;
    println!();
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| calibration_path(args.arm.into(), &args.id));
    calibration.save(&path)?;
    println!("{:<14} {:>8} {:>6} {:>6}", "motor", "offset", "min", "max");
    for joint in Joint::ALL {
        let motor = calibration.motor(joint);
        println!(
            "{:<14} {:>8} {:>6} {:>6}",
            joint, motor.homing_offset, motor.range_min, motor.range_max
        );
    }
    println!("Written to the motors' EEPROM and to {}", path.display());
    Ok(())
}

/// Runs `sponge teleop`.
pub fn teleop_command(args: &TeleopArgs) -> anyhow::Result<()> {
    let (leader_cal, leader_path) = load_calibration(ArmKind::Leader, &args.leader_id)?;
    let (follower_cal, follower_path) = load_calibration(ArmKind::Follower, &args.follower_id)?;
    println!(
        "calibrations: {} and {}",
        leader_path.display(),
        follower_path.display()
    );
    let safety = SafetyConfig {
        max_step_rad: args.max_step_deg.to_radians(),
        watchdog: Duration::from_millis(args.watchdog_ms),
        on_stop: if args.hold_on_stop {
            OnStop::Hold
        } else {
            OnStop::TorqueOff
        },
    };
    let stop = ctrl_c_flag()?;
    let mut leader = Arm::connect(&args.leader, Role::Leader, leader_cal, SafetyConfig::default())
        .with_context(|| format!("leader arm on {}", args.leader))?;
    let mut follower = Arm::connect(&args.follower, Role::Follower, follower_cal, safety)
        .with_context(|| format!("follower arm on {}", args.follower))?;
    follower.enable_torque()?;
    println!("Teleoperating at {} Hz. Ctrl-C to stop.", args.fps);
    let config = TeleopConfig {
        fps: args.fps,
        duration: args.seconds.map(Duration::from_secs_f64),
    };
    let mut last_print = Instant::now();
    let result = teleop(&mut leader, &mut follower, config, &stop, |stats| {
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            print!(
                "\rloop {:5.1} Hz  jitter {:5.2} ms  max period {:5.1} ms  errors leader {} follower {}  holds {}   ",
                stats.rate_hz,
                stats.jitter_us / 1e3,
                stats.max_period_us / 1e3,
                stats.leader_errors,
                stats.follower_errors,
                stats.holds
            );
            // Progress display only.
            let _ = std::io::stdout().flush();
        }
    });
    println!();
    let stats = result?;
    follower.shutdown()?;
    println!(
        "Stopped after {} cycles at {:.1} Hz (jitter {:.2} ms); follower {}.",
        stats.cycles,
        stats.rate_hz,
        stats.jitter_us / 1e3,
        if args.hold_on_stop {
            "holding"
        } else {
            "torque off"
        }
    );
    Ok(())
}
