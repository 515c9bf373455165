//! `sponge robot info | urdf | fk | ik`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sponge_robot::joint::{CALIBRATION_POSE, home_pose};
use sponge_robot::kinematics::{forward, tool_pitch};
use sponge_robot::model::{INERTIALS, JOINT_FRAMES, SPONGE};
use sponge_robot::units::{dataset_to_rad, rad_to_dataset};
use sponge_robot::{IkTarget, Joint, JointVector, Link, NUM_JOINTS, Tool, ik, nalgebra, urdf};

/// The `sponge robot` subcommands.
#[derive(Subcommand)]
pub enum RobotCommand {
    /// Joints (servo IDs, limits), links (masses) and tool frames.
    Info {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the arm's URDF (joint zero = mid-range, metres, radians).
    Urdf {
        /// Output file; standard output if absent.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Forward kinematics: link and tool poses in the base frame.
    Fk(FkArgs),
    /// Inverse kinematics: joint angles that put the tool at a position and pitch.
    Ik(IkArgs),
}

/// Units of joint values on the command line.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum JointUnits {
    /// Radians (sponge's own units).
    Rad,
    /// Degrees.
    Deg,
    /// LeRobot dataset units: degrees for body joints, 0..100 for the gripper.
    Dataset,
}

#[derive(Args)]
pub struct FkArgs {
    /// Joint values in bus order: shoulder_pan shoulder_lift elbow_flex
    /// wrist_flex wrist_roll [gripper]. Omit for --pose.
    #[arg(allow_negative_numbers = true, num_args = 0..=6)]
    joints: Vec<f64>,
    /// Units of the joint values.
    #[arg(long, value_enum, default_value = "rad")]
    units: JointUnits,
    /// A named pose instead of joint values.
    #[arg(long, value_enum, conflicts_with = "joints")]
    pose: Option<NamedPose>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Poses with names.
#[derive(Clone, Copy, ValueEnum)]
pub enum NamedPose {
    /// Every joint in the middle of its range (all zeros).
    Calibration,
    /// Folded rest pose: upper arm up, forearm forward, tool down.
    Home,
}

#[derive(Args)]
pub struct IkArgs {
    /// Tool x in the base frame, metres.
    #[arg(long, allow_negative_numbers = true)]
    x: f64,
    /// Tool y in the base frame, metres (the arm reaches along −y at pan 0).
    #[arg(long, allow_negative_numbers = true)]
    y: f64,
    /// Tool z in the base frame, metres (0 = table top).
    #[arg(long, allow_negative_numbers = true)]
    z: f64,
    /// Tool pitch in degrees below horizontal, measured in the arm's plane
    /// away from the base: 0 = pointing straight out, 90 = straight down.
    #[arg(long, allow_negative_numbers = true, default_value_t = 90.0)]
    pitch_deg: f64,
    /// Wrist roll in degrees; the current roll is kept if absent.
    #[arg(long, allow_negative_numbers = true)]
    roll_deg: Option<f64>,
    /// Tool frame to place: the jaw tip, or the wiping face of the held sponge.
    #[arg(long, default_value = "jaw_tip")]
    tool: Tool,
    /// Current joint angles in radians (bus order, 6 values); the solution
    /// nearest them is returned. Default: the home pose.
    #[arg(long, allow_negative_numbers = true, num_args = 6, value_delimiter = ',')]
    from: Option<Vec<f64>>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a `sponge robot` subcommand.
pub fn run(command: RobotCommand) -> anyhow::Result<()> {
    match command {
        RobotCommand::Info { json } => info(json),
        RobotCommand::Urdf { out } => {
            let xml = urdf::urdf();
            match out {
                Some(path) => {
                    std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{xml}"),
            }
            Ok(())
        }
        RobotCommand::Fk(args) => fk(&args),
        RobotCommand::Ik(args) => ik_command(&args),
    }
}

fn info(as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let joints: Vec<_> = Joint::ALL
            .iter()
            .map(|j| {
                json!({
                    "name": j.name(),
                    "motor_id": j.motor_id(),
                    "min_rad": j.limits().min_rad,
                    "max_rad": j.limits().max_rad,
                    "home_rad": home_pose()[j.index()],
                })
            })
            .collect();
        let links: Vec<_> = Link::ALL
            .iter()
            .map(|l| json!({"name": l.name(), "mass_kg": INERTIALS[l.index()].mass_kg}))
            .collect();
        let tools: Vec<_> = Tool::ALL
            .iter()
            .map(|t| json!({"name": t.name(), "from_wrist_flex_m": t.length_from_wrist_flex_m()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"joints": joints, "links": links, "tools": tools}))?
        );
        return Ok(());
    }
    println!("SO-100: six Feetech STS3215 servos. Joint zero = middle of range (the calibration pose).");
    println!();
    println!(
        "{:<14} {:>3} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "joint", "id", "min°", "max°", "home°", "axis", "link"
    );
    for (joint, frame) in Joint::ALL.iter().zip(JOINT_FRAMES) {
        let limits = joint.limits();
        println!(
            "{:<14} {:>3} {:>9.1} {:>9.1} {:>9.1} {:>9} {:>9}",
            joint.name(),
            joint.motor_id(),
            limits.min_rad.to_degrees(),
            limits.max_rad.to_degrees(),
            home_pose()[joint.index()].to_degrees(),
            format!("{:?}", frame.axis).to_lowercase(),
            Link::ALL[joint.index() + 1].name(),
        );
    }
    println!();
    let moving: f64 = INERTIALS[1..].iter().map(|i| i.mass_kg).sum();
    println!("moving mass {moving:.3} kg over {} links", Link::ALL.len() - 1);
    for tool in Tool::ALL {
        println!(
            "tool {:<12} {:.4} m from the wrist_flex axis along the tool axis",
            tool.name(),
            tool.length_from_wrist_flex_m()
        );
    }
    println!(
        "sponge {:.0} x {:.0} x {:.0} mm, {:.0} g",
        SPONGE.size_m[0] * 1e3,
        SPONGE.size_m[1] * 1e3,
        SPONGE.size_m[2] * 1e3,
        SPONGE.mass_kg * 1e3
    );
    Ok(())
}

fn to_rad(values: &[f64], units: JointUnits) -> anyhow::Result<JointVector> {
    if !(5..=NUM_JOINTS).contains(&values.len()) {
        bail!(
            "expected 5 or 6 joint values (shoulder_pan shoulder_lift elbow_flex wrist_flex wrist_roll [gripper]), got {}",
            values.len()
        );
    }
    let mut q = [0.0; NUM_JOINTS];
    for (i, value) in values.iter().enumerate() {
        let joint = Joint::ALL[i];
        q[i] = match units {
            JointUnits::Rad => *value,
            JointUnits::Deg => value.to_radians(),
            JointUnits::Dataset => dataset_to_rad(joint, *value),
        };
    }
    Ok(q)
}

fn fk(args: &FkArgs) -> anyhow::Result<()> {
    let q = match args.pose {
        Some(NamedPose::Calibration) => CALIBRATION_POSE,
        Some(NamedPose::Home) => home_pose(),
        None => to_rad(&args.joints, args.units)?,
    };
    if let Err(e) = sponge_robot::joint::check_limits(&q, 1e-9) {
        eprintln!("warning: {e}");
    }
    let poses = forward(&q);
    let mut frames: Vec<(String, nalgebra::Isometry3<f64>)> = Link::ALL
        .iter()
        .map(|l| (l.name().to_owned(), *poses.base_from(*l)))
        .collect();
    frames.extend(
        Tool::ALL
            .iter()
            .map(|t| (t.name().to_owned(), poses.base_from_tool(*t))),
    );
    let pitches: Vec<(&str, f64)> = Tool::ALL
        .iter()
        .map(|t| (t.name(), tool_pitch(&poses.base_from_tool(*t))))
        .collect();

    if args.json {
        let frames_json: serde_json::Map<String, serde_json::Value> = frames
            .iter()
            .map(|(name, pose)| {
                let t = pose.translation.vector;
                let (r, p, y) = pose.rotation.euler_angles();
                (
                    name.clone(),
                    json!({"xyz_m": [t.x, t.y, t.z], "rpy_rad": [r, p, y]}),
                )
            })
            .collect();
        let out = json!({
            "joints_rad": q,
            "frames": frames_json,
            "tool_pitch_rad": pitches.iter().map(|(n, p)| (n.to_string(), json!(p))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("joints (rad): {}", format_joints(&q));
    println!(
        "joints (dataset units): {}",
        Joint::ALL
            .iter()
            .map(|j| format!("{:.2}", rad_to_dataset(*j, q[j.index()])))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!(
        "{:<12} {:>9} {:>9} {:>9}   {:>8} {:>8} {:>8}",
        "frame", "x m", "y m", "z m", "roll°", "pitch°", "yaw°"
    );
    for (name, pose) in &frames {
        let t = pose.translation.vector;
        let (r, p, y) = pose.rotation.euler_angles();
        println!(
            "{name:<12} {:>9.4} {:>9.4} {:>9.4}   {:>8.2} {:>8.2} {:>8.2}",
            t.x,
            t.y,
            t.z,
            r.to_degrees(),
            p.to_degrees(),
            y.to_degrees()
        );
    }
    println!();
    for (name, pitch) in pitches {
        println!(
            "tool pitch at {name}: {:.2}° below horizontal",
            pitch.to_degrees()
        );
    }
    Ok(())
}

fn ik_command(args: &IkArgs) -> anyhow::Result<()> {
    let current = match &args.from {
        Some(values) => to_rad(values, JointUnits::Rad)?,
        None => home_pose(),
    };
    let target = IkTarget {
        position_in_base_m: nalgebra::Point3::new(args.x, args.y, args.z),
        pitch_rad: args.pitch_deg.to_radians(),
        roll_rad: args.roll_deg.map(f64::to_radians),
    };
    let q = ik::solve(&target, &current, args.tool)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"joints_rad": q}))?);
    } else {
        println!("joints (rad): {}", format_joints(&q));
        for joint in Joint::ALL {
            println!(
                "  {:<14} {:>9.4} rad {:>8.2}°",
                joint.name(),
                q[joint.index()],
                q[joint.index()].to_degrees()
            );
        }
    }
    Ok(())
}

fn format_joints(q: &JointVector) -> String {
    q.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(" ")
}
