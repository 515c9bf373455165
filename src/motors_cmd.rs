//! `sponge emulate` and `sponge motors ...`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sponge_drivers::calibrate::{ArmKind, calibration_path, write_calibration};
use sponge_drivers::emulator::{Emulator, EmulatorConfig, Faults};
use sponge_drivers::scan::scan;
use sponge_drivers::setup::setup_motor;
use sponge_drivers::{Bus, BusConfig};
use sponge_robot::Joint;
use sponge_robot::calibration::ArmCalibration;

/// `sponge emulate`: six STS3215 servos on a pseudo-terminal.
#[derive(Args)]
pub struct EmulateArgs {
    /// Where to put the symlink to the pseudo-terminal; open it as the serial port.
    #[arg(long)]
    link: PathBuf,
    /// Servo IDs on the emulated bus.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6")]
    ids: Vec<u8>,
    /// Injected fault, KIND=VALUE (repeatable): drop=RATE, corrupt=RATE,
    /// late=RATE (RATE in 0..1), late-by=SECONDS (how late; default 0.05),
    /// overheat=ID, overload=ID, voltage=ID, vanish=SECONDS (the port
    /// disappears, as an unplugged adapter).
    #[arg(long = "fault", value_name = "KIND=VALUE")]
    faults: Vec<String>,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Answer instantly instead of taking the bytes' time on a 1 Mbaud wire.
    #[arg(long)]
    no_wire_time: bool,
    /// Start calibrated: write a nominal calibration to the emulated EEPROM
    /// and save it as the calibration file of arm NAME (ARM is leader or
    /// follower), so `sponge teleop` can use this arm at once.
    #[arg(long, value_name = "ARM:NAME")]
    calibrate_as: Option<String>,
    /// Move the arm as if a hand moved it (slow sweeps of every joint):
    /// a leader arm for trying teleop without hardware.
    #[arg(long)]
    wiggle: bool,
}

/// `sponge motors`.
#[derive(Subcommand)]
pub enum MotorsCommand {
    /// Find every servo on a port, at every baud rate.
    Scan {
        /// Serial port (e.g. /dev/ttyACM0, or an emulator's link).
        #[arg(long)]
        port: String,
    },
    /// Give each motor its SO-100 ID and 1 Mbaud, one motor at a time
    /// (gripper first, shoulder_pan last), as you plug each in alone.
    Setup {
        /// Serial port of the arm's bus adapter.
        #[arg(long)]
        port: String,
        /// Set up only this motor (shoulder_pan … gripper).
        #[arg(long)]
        motor: Option<Joint>,
    },
}

/// Waits for the Enter key.
pub fn wait_for_enter() -> anyhow::Result<()> {
    let mut line = String::new();
    let read = std::io::stdin()
        .read_line(&mut line)
        .context("reading the terminal")?;
    if read == 0 {
        bail!("standard input closed while waiting for Enter");
    }
    Ok(())
}

/// Stops when Ctrl-C is pressed.
pub fn ctrl_c_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

/// Runs the emulator until Ctrl-C (or until a `vanish` fault fires).
pub fn emulate(args: &EmulateArgs) -> anyhow::Result<()> {
    let faults = Faults::parse(&args.faults).map_err(anyhow::Error::msg)?;
    if args.ids.is_empty()
        || args
            .ids
            .iter()
            .any(|id| *id > sponge_drivers::protocol::packet::MAX_ID)
    {
        bail!("--ids must list servo IDs in 0..=252");
    }
    let config = EmulatorConfig {
        ids: args.ids.clone(),
        faults,
        seed: args.seed,
        wire_time: !args.no_wire_time,
    };
    let calibrate_as = match &args.calibrate_as {
        Some(spec) => {
            let (arm, name) = spec
                .split_once(':')
                .context("--calibrate-as takes ARM:NAME, e.g. leader:leader")?;
            let kind = match arm {
                "leader" => ArmKind::Leader,
                "follower" => ArmKind::Follower,
                _ => bail!("--calibrate-as: ARM must be leader or follower, not {arm:?}"),
            };
            Some(calibration_path(kind, name))
        }
        None => None,
    };
    let stop = ctrl_c_flag()?;
    let emulator = Emulator::start(&args.link, config)?;
    if let Some(path) = &calibrate_as {
        let calibration = ArmCalibration::nominal();
        let port = emulator.link().to_str().context("link path is not UTF-8")?;
        write_calibration(&mut Bus::open(port, BusConfig::default())?, &calibration)?;
        calibration.save(path)?;
        println!(
            "Calibrated with the nominal calibration, saved to {}",
            path.display()
        );
    }
    println!(
        "Emulating {} STS3215 servos (IDs {:?}) at 1 Mbaud on {}, linked at {}. Ctrl-C to stop.",
        args.ids.len(),
        args.ids,
        emulator.pty(),
        args.link.display()
    );
    let started = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) && emulator.is_running() {
        std::thread::sleep(Duration::from_millis(10));
        if args.wiggle {
            let t = started.elapsed().as_secs_f64();
            let mut bus = emulator.bus();
            for (i, servo) in bus.servos.iter_mut().enumerate() {
                servo.move_by_hand(2048.0 + 400.0 * (0.5 * t + i as f64).sin());
            }
        }
    }
    let vanished = !emulator.is_running();
    let stats = emulator.bus().stats;
    drop(emulator);
    if vanished {
        println!("The port vanished (injected fault), as an unplugged adapter would.");
    }
    println!(
        "Stopped. {} packets in, {} replies out ({} dropped, {} corrupted, {} late), {} garbage bytes.",
        stats.packets, stats.replies, stats.dropped, stats.corrupted, stats.late, stats.garbage_bytes
    );
    Ok(())
}

/// Runs a `sponge motors` subcommand.
pub fn motors(command: &MotorsCommand) -> anyhow::Result<()> {
    match command {
        MotorsCommand::Scan { port } => {
            let found = scan(port)?;
            if found.is_empty() {
                bail!(
                    "no servo answered on {port} at any baud rate: check the power supply (servos need 5-12 V \
                     besides USB) and the bus cable"
                );
            }
            println!("{:>9} {:>4} {:>6} {:>9}", "baud", "id", "model", "firmware");
            for servo in &found {
                let model = servo.model.map_or("?".into(), |m| {
                    if m == i32::from(sponge_drivers::protocol::register::STS3215_MODEL) {
                        format!("{m}")
                    } else {
                        format!("{m} (not an STS3215)")
                    }
                });
                let firmware = servo.firmware.map_or("?".into(), |(a, b)| format!("{a}.{b}"));
                println!("{:>9} {:>4} {:>6} {:>9}", servo.baud, servo.id, model, firmware);
            }
            Ok(())
        }
        MotorsCommand::Setup { port, motor } => {
            let joints: Vec<Joint> = match motor {
                Some(joint) => vec![*joint],
                None => Joint::ALL.iter().rev().copied().collect(),
            };
            for joint in joints {
                println!(
                    "Connect ONLY the {joint} motor (future ID {}) to the bus adapter, power on, then press Enter.",
                    joint.motor_id()
                );
                wait_for_enter()?;
                let report = setup_motor(port, joint)?;
                println!(
                    "  {joint}: was ID {} at {} baud, now ID {} at 1000000 baud.",
                    report.old_id,
                    report.old_baud,
                    joint.motor_id()
                );
            }
            println!("Done. Daisy-chain the motors and run `sponge motors scan --port {port}` to check.");
            Ok(())
        }
    }
}
