//! Runs a launch file: a Zenoh router for the launch, one process per
//! node, restarts as each node's policy says (with back-off), and an
//! orderly stop: every node is asked to stop (SIGINT, so followers go
//! torque-off or hold as configured) and killed only if it does not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::file::{LaunchFile, NodeSpec, Restart};
use crate::session::{Error, SessionConfig, open_router};

/// Timings of the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorConfig {
    /// First wait before a restart.
    pub backoff_initial: Duration,
    /// Longest wait before a restart (the wait doubles after each quick failure).
    pub backoff_max: Duration,
    /// A node that ran this long before exiting restarts after the first wait again.
    pub stable_after: Duration,
    /// How long nodes get to stop before they are killed.
    pub stop_grace: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            stable_after: Duration::from_secs(10),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// How one node fared.
#[derive(Debug, Clone)]
pub struct NodeOutcome {
    /// Its name.
    pub name: String,
    /// Times it was started.
    pub starts: u32,
    /// How its last run ended (`None`: it never ended on its own: stopped by the launch).
    pub failed: Option<String>,
}

struct Running {
    spec: NodeSpec,
    child: Option<Child>,
    started: Instant,
    starts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
    failed: Option<String>,
    done: bool,
}

/// The endpoint the nodes connect to: the launch's first `listen` endpoint
/// (an any-address one reached over loopback), else a free loopback port.
pub fn router_endpoint(session: &SessionConfig) -> Result<String, Error> {
    if let Some(listen) = session.listen.first() {
        return Ok(listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]"));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::Config(format!("no free loopback port for the launch's router: {e}")))?
        .port();
    Ok(format!("tcp/127.0.0.1:{port}"))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!(
            "killed by signal {}",
            Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned())
        ),
        _ => status.to_string(),
    }
}

/// Makes the node's process get SIGINT, and so stop as on Ctrl-C (the
/// follower holding or letting go as its file says), when the launcher's
/// thread that started it ends: a launcher killed, or one that died, leaves
/// no node running on its own.
#[allow(
    unsafe_code,
    reason = "pre_exec is unsafe: the closure runs between fork and exec"
)]
fn outlive_no_launcher(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let launcher = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec and
        // calls only prctl and getppid, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT)?;
                if nix::unistd::getppid() != launcher {
                    return Err(std::io::Error::other(
                        "the launcher ended before the node started",
                    ));
                }
                Ok(())
            });
        }
    }
}

/// Copies a child's output to ours, each line prefixed with the node's name.
fn forward(name: &str, stream: impl Read + Send + 'static, to_stderr: bool) {
    let prefix = format!("[{name}] ");
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            // Our own output closed (a pipe whose reader left) loses the
            // lines, not the launch: println! would panic here.
            let _ = if to_stderr {
                writeln!(std::io::stderr(), "{prefix}{line}")
            } else {
                writeln!(std::io::stdout(), "{prefix}{line}")
            };
        }
    });
}

/// Runs `file`'s nodes until `stop` is set or every node has ended for
/// good. `command` makes the command line of one node's process, given the
/// router endpoint it must connect to; `log` hears what the supervisor does.
pub fn supervise(
    file: &LaunchFile,
    config: &SupervisorConfig,
    command: impl Fn(&NodeSpec, &str) -> Command,
    stop: &AtomicBool,
    log: impl Fn(&str),
) -> Result<Vec<NodeOutcome>, Error> {
    let endpoint = router_endpoint(&file.session)?;
    let router_config = SessionConfig {
        listen: if file.session.listen.is_empty() {
            vec![endpoint.clone()]
        } else {
            file.session.listen.clone()
        },
        ..file.session.clone()
    };
    let _router = open_router(&router_config)?;
    log(&format!(
        "router on {} ({} nodes)",
        router_config.listen.join(", "),
        file.nodes.iter().filter(|n| n.enabled).count()
    ));

    let mut nodes: Vec<Running> = file
        .nodes
        .iter()
        .filter(|spec| spec.enabled)
        .map(|spec| Running {
            spec: spec.clone(),
            child: None,
            started: Instant::now(),
            starts: 0,
            backoff: config.backoff_initial,
            restart_at: Some(Instant::now()),
            failed: None,
            done: false,
        })
        .collect();

    let start = |node: &mut Running| {
        let mut cmd = command(&node.spec, &endpoint);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // One observation at a time is faster on one thread than split
        // over several (measured: 8 ms against 18 ms on 2 cores).
        let model = matches!(
            node.spec.kind,
            crate::nodes::NodeKind::Policy | crate::nodes::NodeKind::Monitor
        );
        if model && std::env::var_os("RAYON_NUM_THREADS").is_none() {
            cmd.env("RAYON_NUM_THREADS", "1");
        }
        if !node.spec.kind.wants_keyboard() {
            cmd.stdin(Stdio::null());
        }
        outlive_no_launcher(&mut cmd);
        node.restart_at = None;
        match cmd.spawn() {
            Ok(mut child) => {
                if let Some(out) = child.stdout.take() {
                    forward(&node.spec.name, out, false);
                }
                if let Some(err) = child.stderr.take() {
                    forward(&node.spec.name, err, true);
                }
                node.starts += 1;
                node.started = Instant::now();
                node.failed = None;
                node.child = Some(child);
                Ok(())
            }
            Err(e) => Err(format!("cannot start node '{}': {e}", node.spec.name)),
        }
    };

    let mut required_ended = false;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for node in &mut nodes {
            if let Some(at) = node.restart_at
                && now >= at
            {
                if node.starts > 0 {
                    log(&format!(
                        "restarting {} (start {})",
                        node.spec.name,
                        node.starts + 1
                    ));
                }
                match start(node) {
                    Ok(()) => {
                        let pid = node.child.as_ref().map_or(0, Child::id);
                        log(&format!("started {} (pid {pid})", node.spec.name));
                    }
                    Err(e) => {
                        log(&e);
                        node.failed = Some(e);
                        node.done = true;
                    }
                }
            }
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(e) => {
                    log(&format!("cannot watch {}: {e}", node.spec.name));
                    continue;
                }
            };
            node.child = None;
            let ran = node.started.elapsed();
            let failed = !status.success();
            node.failed = failed.then(|| describe(status));
            let again = match node.spec.restart {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
            if again {
                node.backoff = if ran >= config.stable_after || node.starts == 1 {
                    config.backoff_initial
                } else {
                    (node.backoff * 2).min(config.backoff_max)
                };
                log(&format!(
                    "{} ended ({}) after {:.1} s; restarting in {:.1} s",
                    node.spec.name,
                    describe(status),
                    ran.as_secs_f64(),
                    node.backoff.as_secs_f64()
                ));
                node.restart_at = Some(Instant::now() + node.backoff);
            } else {
                log(&format!(
                    "{} ended ({}) after {:.1} s",
                    node.spec.name,
                    describe(status),
                    ran.as_secs_f64()
                ));
                node.done = true;
                if node.spec.required {
                    log(&format!("{} is required: stopping the launch", node.spec.name));
                    required_ended = true;
                }
            }
        }
        if required_ended || nodes.iter().all(|n| n.done) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // Stop what still runs: ask, wait, then kill.
    for node in &mut nodes {
        node.restart_at = None;
        if let Some(child) = &node.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        }
    }
    let deadline = Instant::now() + config.stop_grace;
    loop {
        let mut running = 0;
        for node in &mut nodes {
            if let Some(child) = node.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            node.failed = Some(describe(status));
                        }
                        node.child = None;
                    }
                    _ => running += 1,
                }
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() >= deadline {
            for node in &mut nodes {
                if let Some(mut child) = node.child.take() {
                    log(&format!(
                        "{} did not stop within {:.0} s: killed",
                        node.spec.name,
                        config.stop_grace.as_secs_f64()
                    ));
                    let _ = child.kill();
                    let _ = child.wait();
                    node.failed = Some("killed at stop".into());
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(nodes
        .into_iter()
        .map(|n| NodeOutcome {
            name: n.spec.name,
            starts: n.starts,
            failed: n.failed,
        })
        .collect())
}
