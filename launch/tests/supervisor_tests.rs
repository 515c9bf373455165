//! The supervisor's restart policies and back-off, with stand-in processes
//! (`sh -c ...`) for nodes.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sponge_launch::file::parse;
use sponge_launch::supervisor::{SupervisorConfig, supervise};

const FILE: &str = r#"
[session]
multicast_scouting = false

[[node]]
name = "crashes"
kind = "teleop"
restart = "on-failure"

[[node]]
name = "finishes"
kind = "teleop"
restart = "on-failure"

[[node]]
name = "once"
kind = "teleop"
restart = "never"

[[node]]
name = "again"
kind = "teleop"
restart = "always"

[[node]]
name = "off"
kind = "teleop"
enabled = false
"#;

#[test]
fn restart_policies_and_back_off() {
    let file = parse(Path::new("supervisor.toml"), FILE, &[]).expect("valid");
    let config = SupervisorConfig {
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        stable_after: Duration::from_secs(10),
        stop_grace: Duration::from_secs(2),
    };
    // Each node is a shell: `crashes` fails at once, `finishes` and
    // `again` succeed at once, `once` fails at once, the disabled one
    // would fail loudly if it ran.
    let command = |spec: &sponge_launch::NodeSpec, router: &str| {
        assert!(router.starts_with("tcp/127.0.0.1:"), "router {router}");
        let script = match spec.name.as_str() {
            "crashes" | "once" => "exit 3",
            "finishes" | "again" => "exit 0",
            _ => "echo should not run; exit 9",
        };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    };
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let started = Instant::now();
    // Stop 2 s after the router is up (opening it takes a moment).
    let stopper = {
        let stop = stop.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            while !log
                .lock()
                .expect("log")
                .iter()
                .any(|(_, l)| l.starts_with("router on"))
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(2000));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let outcomes = {
        let log = log.clone();
        supervise(&file, &config, command, &stop, move |line| {
            log.lock().expect("log").push((Instant::now(), line.to_owned()));
        })
        .expect("supervise")
    };
    stopper.join().expect("stopper");
    let starts = |name: &str| outcomes.iter().find(|o| o.name == name).map(|o| o.starts);
    assert_eq!(starts("off"), None, "a disabled node is not started");
    assert_eq!(starts("once"), Some(1), "restart = never");
    assert_eq!(
        starts("finishes"),
        Some(1),
        "on-failure does not restart a clean exit"
    );
    // always: restarted after each exit, waiting 100 ms, then doubling to 400 ms:
    // starts at 0, 0.1, 0.3, 0.7, 1.1, 1.5, 1.9 s: 7 in 2 s.
    let again = starts("again").expect("again");
    assert!((6..=8).contains(&again), "always: {again} starts in 2 s");
    let crashes = starts("crashes").expect("crashes");
    assert!((6..=8).contains(&crashes), "on-failure: {crashes} starts in 2 s");
    let once = outcomes.iter().find(|o| o.name == "once").expect("once");
    assert_eq!(once.failed.as_deref(), Some("exit code 3"));

    // The waits between the starts of `crashes` grow: 0.1, 0.2, 0.4, 0.4 s.
    let log = log.lock().expect("log");
    let times: Vec<f64> = log
        .iter()
        .filter(|(_, line)| line.starts_with("started crashes"))
        .map(|(t, _)| t.duration_since(started).as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 4, "starts at {times:?}");
    for (gap, expected) in gaps.iter().zip([0.1, 0.2, 0.4, 0.4]) {
        assert!(
            *gap >= expected - 0.02 && *gap <= expected + 0.15,
            "gaps {gaps:?}, expected about {expected}"
        );
    }
}

#[test]
fn the_launch_ends_when_a_required_node_ends() {
    let text = "[session]\nmulticast_scouting = false\n\
                [[node]]\nname = \"recorder\"\nkind = \"teleop\"\nrequired = true\n\
                [[node]]\nname = \"forever\"\nkind = \"teleop\"\nrestart = \"always\"\n";
    let file = parse(Path::new("required.toml"), text, &[]).expect("valid");
    // The long runner stops on SIGINT as nodes do: it sets its own handler
    // (a shell's child would only die with the shell's `sleep`).
    let command = |spec: &sponge_launch::NodeSpec, _: &str| {
        let seconds = if spec.name == "recorder" { "1.0" } else { "30" };
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            &format!(
                "import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(0)); time.sleep({seconds})"
            ),
        ]);
        cmd
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let outcomes = supervise(&file, &SupervisorConfig::default(), command, &stop, |_| {}).expect("supervise");
    let took = started.elapsed();
    // The long-running node was asked to stop once the required one ended.
    assert!(took < Duration::from_secs(5), "the launch ran {took:?}");
    let recorder = outcomes.iter().find(|o| o.name == "recorder").expect("recorder");
    assert_eq!((recorder.starts, recorder.failed.as_deref()), (1, None));
}
