//! `sponge demo`: the first run on embedded defaults.
//!
//! Today it exercises what exists: the robot model. It grows with the stack
//! (twin → dataset → training → evaluation) as those parts land.

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
    println!("sponge demo: the SO-100 model (the twin, datasets and policy join as they land)\n");
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

    println!(
        "\nNext: sponge robot info | sponge robot fk --pose home | sponge robot ik --x 0 --y -0.25 --z 0.05"
    );
    if solved != args.targets {
        anyhow::bail!("IK failed on {} reachable targets", args.targets - solved);
    }
    Ok(())
}
