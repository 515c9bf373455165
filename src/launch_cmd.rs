//! `sponge launch`: run, check or list launch files and their nodes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::Args;
use sponge_launch::nodes::{self, NodeKind};
use sponge_launch::supervisor::{SupervisorConfig, supervise};
use sponge_launch::{LaunchError, SessionConfig};

use crate::motors_cmd::ctrl_c_flag;

/// `sponge launch FILE [key=value ...]`.
#[derive(Args)]
pub struct LaunchArgs {
    /// The launch file (TOML), e.g. launch/sim_teleop.toml.
    #[arg(required_unless_present = "kinds")]
    file: Option<PathBuf>,
    /// Values for the file's [args], as key=value (e.g. seed=3 port=/dev/ttyACM0).
    #[arg(value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Check the file (syntax, node kinds, parameter types, files it names)
    /// and run nothing; errors point at file:line:column.
    #[arg(long)]
    check: bool,
    /// Run only this node of the file, in this process (e.g. the policy on
    /// a GPU server, with the file's [session] connect pointing at the robot).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// With --node: connect to this launch router instead of using the
    /// file's [session] endpoints (the launcher passes this to its nodes).
    #[arg(long, value_name = "ENDPOINT", requires = "node")]
    router: Option<String>,
    /// List the node kinds and their parameters.
    #[arg(long)]
    kinds: bool,
}

/// Runs `sponge launch`.
pub fn run(args: &LaunchArgs) -> anyhow::Result<()> {
    if args.kinds {
        print_kinds();
        return Ok(());
    }
    let Some(path) = &args.file else {
        bail!("name a launch file, e.g. sponge launch launch/sim_autonomy.toml");
    };
    let file = match sponge_launch::file::load(path, &args.overrides) {
        Ok(file) => file,
        Err(LaunchError::At(diagnostic)) => bail!("{diagnostic}"),
        Err(e) => return Err(e.into()),
    };
    if args.check {
        println!("{}: ok, {} nodes", path.display(), file.nodes.len());
        for node in &file.nodes {
            println!(
                "  {:<12} {:<15} namespace {}, restart {}{}{}",
                node.name,
                node.kind.name(),
                node.namespace,
                node.restart,
                if node.enabled { "" } else { ", disabled" },
                if node.remaps.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", remaps {}",
                        node.remaps
                            .iter()
                            .map(|(a, b)| format!("{a} → {b}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        return Ok(());
    }
    let stop = ctrl_c_flag()?;

    if let Some(name) = &args.node {
        let spec = file.node(name).with_context(|| {
            format!(
                "{} has no node '{name}' (its nodes: {})",
                path.display(),
                file.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let session = match &args.router {
            // The node listens too, so that the launch's other nodes connect
            // to it directly (they learn where from the router): on
            // loopback when the router is local, else on every interface.
            Some(router) => SessionConfig {
                connect: vec![router.clone()],
                listen: vec![if ["127.0.0.1", "localhost", "[::1]"]
                    .iter()
                    .any(|h| router.contains(h))
                {
                    "tcp/127.0.0.1:0".into()
                } else {
                    "tcp/0.0.0.0:0".into()
                }],
                ..file.session.clone()
            },
            None => file.session.clone(),
        };
        let summary = nodes::run(spec, &session, &stop).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{summary}");
        return Ok(());
    }

    supervise_file(path, &file, &args.overrides, &stop)
}

/// Runs every enabled node of `file` (read from `path` with `overrides`),
/// each in a process of its own, until Ctrl-C or until they all end.
fn supervise_file(
    path: &Path,
    file: &sponge_launch::LaunchFile,
    overrides: &[String],
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    if !file.description.is_empty() {
        println!("{}", file.description.lines().next().unwrap_or_default());
    }
    let exe = std::env::current_exe().context("finding the sponge executable")?;
    let command = |spec: &sponge_launch::NodeSpec, router: &str| {
        let mut cmd = Command::new(&exe);
        cmd.arg("launch")
            .arg(path)
            .args(overrides)
            .args(["--node", &spec.name, "--router", router]);
        cmd
    };
    // A closed stderr (its reader gone) must not stop the launcher, which
    // still has nodes to stop: eprintln! would panic.
    let log = |line: &str| {
        let _ = writeln!(std::io::stderr(), "[launch] {line}");
    };
    let outcomes = supervise(file, &SupervisorConfig::default(), command, stop, log)?;
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.failed.as_ref().map(|why| format!("{} ({why})", o.name)))
        .collect();
    if stop.load(Ordering::Relaxed) {
        eprintln!("[launch] stopped");
    }
    if !failed.is_empty() {
        bail!("nodes failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `sponge record`: teleoperate the real arm and record episodes.
#[derive(Args)]
pub struct RecordArgs {
    /// Serial port of the leader arm.
    #[arg(long)]
    leader: String,
    /// Serial port of the follower arm.
    #[arg(long)]
    follower: String,
    /// The dataset folder (new, or an earlier recording to add episodes to).
    #[arg(long)]
    out: PathBuf,
    /// The task, as the policy will be told it (e.g. "wipe up the coffee").
    #[arg(long)]
    task: String,
    /// Episodes to record.
    #[arg(long, default_value_t = 10)]
    episodes: u32,
    /// Length of an episode, seconds (→ ends one early).
    #[arg(long, default_value_t = 20.0)]
    episode_s: f64,
    /// Pause between episodes to reset the scene, seconds (→ skips it).
    #[arg(long, default_value_t = 10.0)]
    reset_s: f64,
    /// USB camera to record as `front` (none: joints only).
    #[arg(long, value_name = "DEVICE")]
    camera: Option<String>,
    /// Calibration name of the leader arm.
    #[arg(long, default_value = "leader")]
    leader_id: String,
    /// Calibration name of the follower arm.
    #[arg(long, default_value = "follower")]
    follower_id: String,
}

/// The standard recording set-up, built in.
const REAL_RECORD: &str = include_str!("../launch/real_record.toml");

/// Runs `sponge record`: launch/real_record.toml with these arguments.
pub fn record(args: &RecordArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sponge-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("real_record.toml");
    std::fs::write(&path, REAL_RECORD).with_context(|| format!("writing {}", path.display()))?;
    let mut overrides = vec![
        format!("leader_port={}", args.leader),
        format!("follower_port={}", args.follower),
        format!("leader_id={}", args.leader_id),
        format!("follower_id={}", args.follower_id),
        format!("out={}", args.out.display()),
        format!("task={}", args.task),
        format!("episodes={}", args.episodes),
        format!("episode_s={}", args.episode_s),
        format!("reset_s={}", args.reset_s),
    ];
    match &args.camera {
        Some(device) => overrides.push(format!("camera_device={device}")),
        None => overrides.extend(["camera=false".to_owned(), "cameras=".to_owned()]),
    }
    let result = (|| {
        let file = sponge_launch::file::load(&path, &overrides)?;
        let stop = ctrl_c_flag()?;
        supervise_file(&path, &file, &overrides, &stop)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn print_kinds() {
    for kind in NodeKind::ALL {
        println!("{}", kind.name());
        for p in kind.params() {
            let default = match (p.default, p.optional) {
                (Some(d), _) => format!(" = {d}"),
                (None, true) => " (optional)".into(),
                (None, false) => " (required)".into(),
            };
            println!("    {:<18} {}{default}: {}", p.name, p.ty.describe(), p.help);
        }
    }
}
