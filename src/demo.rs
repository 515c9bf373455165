//! `sponge demo`: the first run on embedded defaults.
//!
//! Today it exercises what exists: the robot model, emulated arms, and the
//! twin writing expert episodes as a dataset. It grows with the stack
//! (training → evaluation) as those parts land.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sponge_robot::joint::home_pose;
use sponge_robot::kinematics::{base_from_tool, tool_pitch};
use sponge_robot::{IkTarget, Joint, JointVector, Tool, ik, nalgebra, urdf};

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the demo's outputs.
    #[arg(long, default_value = "sponge-demo")]
    out: PathBuf,
    /// Random IK targets to solve.
    #[arg(long, default_value_t = 10_000)]
    targets: usize,
    /// Seed of the random targets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    println!(
        "sponge demo: the SO-100 model, emulated arms, the twin and its datasets (training and the policy join as they land)\n"
    );
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let urdf_path = args.out.join("so100.urdf");
    std::fs::write(&urdf_path, urdf::urdf()).with_context(|| format!("writing {}", urdf_path.display()))?;
    println!("1. URDF of the arm written to {}", urdf_path.display());

    let home = base_from_tool(&home_pose(), Tool::SpongeFace);
    let t = home.translation.vector;
    println!(
        "2. Home pose: sponge face at ({:.3}, {:.3}, {:.3}) m, pitch {:.1}°",
        t.x,
        t.y,
        t.z,
        tool_pitch(&home).to_degrees()
    );

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut worst_m: f64 = 0.0;
    let mut solved = 0;
    let started = Instant::now();
    for _ in 0..args.targets {
        let q: JointVector = Joint::ALL.map(|j| rng.random_range(j.limits().min_rad..=j.limits().max_rad));
        let pose = base_from_tool(&q, Tool::SpongeFace);
        let target = IkTarget {
            position_in_base_m: pose.translation.vector.into(),
            pitch_rad: tool_pitch(&pose),
            roll_rad: None,
        };
        if let Ok(q_ik) = ik::solve(&target, &home_pose(), Tool::SpongeFace) {
            solved += 1;
            let reached = base_from_tool(&q_ik, Tool::SpongeFace);
            worst_m = worst_m.max((reached.translation.vector - pose.translation.vector).norm());
        }
    }
    let per_call = started.elapsed().as_secs_f64() / args.targets.max(1) as f64;
    println!(
        "3. IK round trip: {solved}/{} random reachable targets solved, worst error {:.1e} m, {:.2} µs per target",
        args.targets,
        worst_m,
        per_call * 1e6
    );

    let wipe = IkTarget {
        position_in_base_m: nalgebra::Point3::new(0.0, -0.25, 0.0),
        pitch_rad: std::f64::consts::FRAC_PI_2,
        roll_rad: Some(0.0),
    };
    let q = ik::solve(&wipe, &home_pose(), Tool::SpongeFace)?;
    println!(
        "4. Sponge pressed on the table 25 cm in front of the base: joints {} rad",
        q.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" ")
    );

    if solved != args.targets {
        anyhow::bail!("IK failed on {} reachable targets", args.targets - solved);
    }

    teleop_emulated(&args.out)?;
    record_dataset(&args.out)?;

    println!(
        "\nNext: sponge sim generate --out wipes --episodes 100 | sponge sim frame --out twin | sponge dataset info {}",
        args.out.join("dataset").display()
    );
    Ok(())
}

/// Two emulated arms on pseudo-terminals, a simulated hand moving the
/// leader, and 2 s of teleop.
fn teleop_emulated(out: &std::path::Path) -> anyhow::Result<()> {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use sponge_drivers::arm::{Arm, Role, SafetyConfig};
    use sponge_drivers::calibrate::write_calibration;
    use sponge_drivers::emulator::{Emulator, EmulatorConfig};
    use sponge_drivers::teleop::{TeleopConfig, teleop};
    use sponge_drivers::{Bus, BusConfig};
    use sponge_robot::calibration::ArmCalibration;

    let calibration = ArmCalibration::nominal();
    let start = |name: &str| -> anyhow::Result<(Emulator, String)> {
        let emulator = Emulator::start(&out.join(name), EmulatorConfig::default())?;
        let port = emulator
            .link()
            .to_str()
            .context("output folder is not UTF-8")?
            .to_owned();
        write_calibration(&mut Bus::open(&port, BusConfig::default())?, &calibration)?;
        Ok((emulator, port))
    };
    let (leader_emu, leader_port) = start("leader.pty")?;
    let (_follower_emu, follower_port) = start("follower.pty")?;
    let mut leader = Arm::connect(
        &leader_port,
        Role::Leader,
        calibration.clone(),
        SafetyConfig::default(),
    )?;
    let mut follower = Arm::connect(
        &follower_port,
        Role::Follower,
        calibration.clone(),
        SafetyConfig::default(),
    )?;
    follower.enable_torque()?;
    let stop = AtomicBool::new(false);
    let hand_until = Instant::now() + Duration::from_millis(1500);
    let config = TeleopConfig {
        fps: 60.0,
        duration: Some(Duration::from_secs(2)),
    };
    let stats = std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            while Instant::now() < hand_until {
                let t = started.elapsed().as_secs_f64();
                for (i, servo) in leader_emu.bus().servos.iter_mut().enumerate() {
                    servo.move_by_hand(2048.0 + 300.0 * (1.5 * t + i as f64).sin());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        teleop(&mut leader, &mut follower, config, &stop, |_| {})
    })?;
    follower.shutdown()?;
    let error_deg = stats
        .leader_rad
        .iter()
        .zip(&stats.follower_rad)
        .map(|(l, f)| (l - f).abs().to_degrees())
        .fold(0.0, f64::max);
    println!(
        "5. Teleop between two emulated SO-100s on pseudo-terminals: {} cycles at {:.1} Hz, jitter {:.2} ms; \
         once the hand stopped, the follower was within {error_deg:.2} deg of the leader",
        stats.cycles,
        stats.rate_hz,
        stats.jitter_us / 1e3
    );
    Ok(())
}

/// Expert episodes from the twin as a LeRobot v3.0 dataset, validated and read back.
fn record_dataset(out: &std::path::Path) -> anyhow::Result<()> {
    use sponge_datasets::Dataset;

    let root = out.join("dataset");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("clearing {}", root.display()))?;
    }
    println!("6. The twin: the scripted expert wipes 3 spill scenes, rendered headless at 96x96:");
    crate::sim_cmd::generate(&crate::sim_cmd::GenerateArgs {
        out: root.clone(),
        episodes: 3,
        seed: 0,
        image_size: 96,
        workers: Some(3),
        fps: 30,
        time_limit: 20.0,
        wrist: false,
        keep_failures: false,
        png: false,
    })?;
    if let Some(problem) = sponge_datasets::validate::validate(&root).first() {
        anyhow::bail!("the demo dataset does not validate: {problem}");
    }
    let dataset = Dataset::open(&root)?;
    let episode = dataset.read_episode(2)?;
    println!(
        "   A valid LeRobot v3.0 dataset: {} episodes, {} frames; episode 2 ('{}') read back with {} video frames, in {}",
        dataset.info().total_episodes,
        dataset.info().total_frames,
        episode.task,
        episode.images.values().next().map_or(0, Vec::len),
        root.display()
    );
    Ok(())
}
