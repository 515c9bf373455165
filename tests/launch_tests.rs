//! The standard launch files run as a user runs them (`sponge launch FILE
//! key=value ...`, one process per node), against emulated arms on
//! pseudo-terminals, watched over Zenoh from this test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sponge_drivers::Bus;
use sponge_drivers::BusConfig;
use sponge_drivers::calibrate::write_calibration;
use sponge_drivers::emulator::{Emulator, EmulatorConfig};
use sponge_drivers::protocol::register as reg;
use sponge_launch::{Node, SessionConfig};
use sponge_robot::calibration::ArmCalibration;
use sponge_robot::joint::{Joint, JointVector};
use sponge_robot::msg::JointState;

#[path = "common/twin_labelled.rs"]
mod twin_labelled;

/// The launches run one at a time: each starts several processes, and the
/// hold-time test measures milliseconds that two cores shared with three
/// other launches (one rendering the twin) would not give it.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-launch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// An emulated arm with the nominal calibration, saved as arm `id` under
/// `calibration_dir` (as `sponge calibrate` would).
fn calibrated_emulator(dir: &Path, folder: &str, id: &str) -> Emulator {
    let emulator =
        Emulator::start(&dir.join(format!("{id}.tty")), EmulatorConfig::default()).expect("emulator");
    let calibration = ArmCalibration::nominal();
    let port = emulator.link().to_str().expect("utf-8 path").to_owned();
    write_calibration(
        &mut Bus::open(&port, BusConfig::default()).expect("bus"),
        &calibration,
    )
    .expect("calibration written");
    let path = dir.join("calibration").join(folder).join(format!("{id}.json"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("calibration folder");
    calibration.save(&path).expect("calibration saved");
    emulator
}

/// A running `sponge launch`, its output lines gathered.
struct Launch {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Launch {
    fn start(file: &str, dir: &Path, args: &[String]) -> Launch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sponge"))
            .arg("launch")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .args(args)
            .env("SPONGE_CALIBRATION_DIR", dir.join("calibration"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sponge launch starts");
        let (send, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = send.send(line);
                }
            });
        }
        Launch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `text`.
    fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?} within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The endpoint of the launch's router.
    fn router(&mut self) -> String {
        let line = self.wait_for("router on ", Duration::from_secs(30));
        let endpoint = line.split("router on ").nth(1).expect("endpoint");
        endpoint
            .split_whitespace()
            .next()
            .expect("endpoint")
            .trim_end_matches(',')
            .to_owned()
    }

    /// Ctrl-C, then the exit status.
    fn interrupt(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sponge launch did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(6));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A session of this test's own, joined to the launch's router.
fn observer(router: &str) -> Node {
    Node::open(&SessionConfig {
        namespace: "so100".into(),
        connect: vec![router.to_owned()],
        listen: Vec::new(),
        multicast_scouting: false,
    })
    .expect("observer session")
}

#[test]
fn sim_teleop_twin_follows_an_emulated_leader_and_the_recording_validates() {
    let _one = one_at_a_time();
    let dir = scratch("sim-teleop");
    let leader = calibrated_emulator(&dir, "so100_leader", "leader");
    let out = dir.join("dataset");
    let mut launch = Launch::start(
        "launch/sim_teleop.toml",
        &dir,
        &[
            format!("leader_port={}", leader.link().display()),
            format!("out={}", out.display()),
            "episodes=1".into(),
            "episode_s=5".into(),
            "reset_s=0".into(),
        ],
    );
    let router = launch.router();
    let node = observer(&router);
    let twin = node.subscriber::<JointState>("joint_states").expect("subscriber");

    // A person moves the leader: a slow swing of the shoulder and elbow.
    let calibration = ArmCalibration::nominal();
    let started = Instant::now();
    let mut pairs: Vec<(JointVector, JointVector)> = Vec::new();
    let mut commanded: Vec<(Instant, JointVector)> = Vec::new();
    let mut recording_done = false;
    while started.elapsed() < Duration::from_secs(60) {
        let t = started.elapsed().as_secs_f64();
        let mut q = [0.0; 6];
        q[Joint::ShoulderPan.index()] = 0.5 * (t * 1.2).sin();
        q[Joint::ElbowFlex.index()] = 0.4 * (t * 0.9).sin();
        let ticks = calibration.rad_to_ticks(&q);
        {
            let mut bus = leader.bus();
            for joint in Joint::ALL {
                let servo = bus.servo_mut(joint.motor_id()).expect("servo");
                servo.move_by_hand(f64::from(ticks[joint.index()]));
            }
        }
        commanded.push((Instant::now(), q));
        while let Ok(Some(state)) = twin.try_recv() {
            let now = Instant::now();
            // The leader's pose 150 ms earlier: the twin follows with a lag
            // (leader read, teleop, the twin's bounded steps and servos).
            if let Some((_, then)) = commanded
                .iter()
                .rev()
                .find(|(at, _)| now.duration_since(*at) >= Duration::from_millis(150))
            {
                pairs.push((*then, state.positions().expect("six joints")));
            }
        }
        while let Ok(line) = launch.lines.try_recv() {
            recording_done |= line.contains("recorder ended");
            launch.seen.push(line);
        }
        if recording_done && pairs.len() > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        recording_done,
        "the recorder never finished:\n{}",
        launch.seen.join("\n")
    );
    let (status, lines) = launch.interrupt();
    assert!(status.success(), "launch failed: {status}\n{}", lines.join("\n"));

    // The twin followed: it swung as far as the leader, and stayed close.
    let settled = &pairs[pairs.len() / 3..];
    for joint in [Joint::ShoulderPan, Joint::ElbowFlex] {
        let j = joint.index();
        let swing = |pick: &dyn Fn(&(JointVector, JointVector)) -> f64| {
            let (lo, hi) = settled.iter().fold((f64::MAX, f64::MIN), |(lo, hi), pair| {
                (lo.min(pick(pair)), hi.max(pick(pair)))
            });
            hi - lo
        };
        let (leader_swing, twin_swing) = (swing(&|(lead, _)| lead[j]), swing(&|(_, twin)| twin[j]));
        assert!(
            leader_swing > 0.3,
            "{joint}: the leader moved only {leader_swing:.2} rad"
        );
        assert!(
            twin_swing > 0.8 * leader_swing,
            "{joint}: the twin moved only {twin_swing:.2} rad, the leader {leader_swing:.2} rad"
        );
        let mut errors: Vec<f64> = settled
            .iter()
            .map(|(lead, twin)| (lead[j] - twin[j]).abs())
            .collect();
        errors.sort_by(f64::total_cmp);
        let median = errors[errors.len() / 2];
        eprintln!(
            "{joint}: twin swung {twin_swing:.2} rad, the leader {leader_swing:.2} rad; \
             median gap to the leader 150 ms earlier {median:.3} rad"
        );
        assert!(median < 0.12, "{joint}: median tracking error {median:.3} rad");
    }

    // The recording is a valid LeRobot v3 dataset with one 5 s episode.
    let validate = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .args(["dataset", "validate"])
        .arg(&out)
        .output()
        .expect("sponge dataset validate");
    assert!(
        validate.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta/info.json")).expect("info.json"))
            .expect("json");
    assert_eq!(info["total_episodes"], 1);
    assert_eq!(info["total_frames"], 150);
    assert!(info["features"]["observation.images.front"].is_object());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn real_autonomy_holds_within_250_ms_when_the_policy_dies_and_resumes_when_it_restarts() {
    let _one = one_at_a_time();
    let dir = scratch("real-autonomy");
    let follower = calibrated_emulator(&dir, "so100_follower", "follower");
    let mut launch = Launch::start(
        "launch/real_autonomy.toml",
        &dir,
        &[format!("follower_port={}", follower.link().display())],
    );
    let router = launch.router();
    let node = observer(&router);
    let states = node.subscriber::<JointState>("joint_states").expect("subscriber");
    let pid_line = launch.wait_for("started policy (pid ", Duration::from_secs(30));
    let pid: u32 = pid_line
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .expect("policy pid");

    // Positions with their arrival times.
    let mut log: Vec<(Instant, JointVector)> = Vec::new();
    let read_for = |log: &mut Vec<(Instant, JointVector)>, d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if let Ok(Some(state)) = states.recv_timeout(Duration::from_millis(50)) {
                log.push((Instant::now(), state.positions().expect("six joints")));
            }
        }
    };
    let moved = |log: &[(Instant, JointVector)], since: Instant| -> f64 {
        let window: Vec<&JointVector> = log.iter().filter(|(t, _)| *t >= since).map(|(_, q)| q).collect();
        window
            .windows(2)
            .map(|w| (0..6).map(|j| (w[1][j] - w[0][j]).abs()).fold(0.0, f64::max))
            .sum()
    };

    // The stand-in policy drives the arm through the executor.
    read_for(&mut log, Duration::from_secs(4));
    let before = Instant::now() - Duration::from_secs(1);
    assert!(
        moved(&log, before) > 0.05,
        "the arm did not move under the policy"
    );

    // Kill the policy: the arm must hold within 250 ms.
    let killed_at = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    read_for(&mut log, Duration::from_millis(450));
    // Holding: from some moment on, no joint moves more than 0.3° between readings.
    let after: Vec<&(Instant, JointVector)> = log.iter().filter(|(t, _)| *t >= killed_at).collect();
    let still_from = (0..after.len())
        .find(|&i| {
            after[i..]
                .windows(2)
                .all(|w| (0..6).all(|j| (w[1].1[j] - w[0].1[j]).abs() < 0.3f64.to_radians()))
        })
        .expect("readings after the kill");
    let hold_ms = after[still_from].0.duration_since(killed_at).as_secs_f64() * 1e3;
    assert!(
        hold_ms <= 250.0 && after.len() - still_from >= 5,
        "the arm held {hold_ms:.0} ms after the policy died ({} readings after)",
        after.len()
    );
    eprintln!("held {hold_ms:.0} ms after the policy was killed");

    // The launcher restarts the policy, and motion resumes.
    launch.wait_for("restarting policy", Duration::from_secs(10));
    launch.wait_for("started policy (pid ", Duration::from_secs(10));
    let resumed = Instant::now();
    read_for(&mut log, Duration::from_secs(4));
    let resumed_motion = moved(&log, resumed);
    eprintln!("after the restart the joints moved {resumed_motion:.2} rad in 4 s");
    assert!(resumed_motion > 0.05, "motion did not resume after the restart");

    // Ctrl-C: the follower is left holding (the file's on_stop = "hold").
    let (status, lines) = launch.interrupt();
    assert!(status.success(), "launch failed: {status}\n{}", lines.join("\n"));
    let mut bus = follower.bus();
    for joint in Joint::ALL {
        let servo = bus.servo_mut(joint.motor_id()).expect("servo");
        assert_eq!(servo.get(reg::TORQUE_ENABLE), 1, "{joint} torque is off");
        let gap = (servo.get(reg::GOAL_POSITION) - servo.present_position()).abs();
        assert!(gap <= 3, "{joint}: goal is {gap} ticks from where it is");
    }
    drop(bus);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_launch_files_point_at_file_line_column() {
    let _one = one_at_a_time();
    let dir = scratch("check");
    let cases = [
        (
            "[[node]]\nname = \"a\"\nkind = \"twinn\"\n",
            "3:8",
            "unknown node kind 'twinn'",
        ),
        (
            "[[node]]\nname = \"a\"\nkind = \"twin\"\nparams = { seed = \"zero\" }\n",
            "4:19",
            "expected a whole number",
        ),
        (
            "[[node]]\nname = \"a\"\nkind = \"follower\"\nparams = { port = \"/dev/x\", calibration = \"/no/such.json\" }\n",
            "4:43",
            "no such file or folder: /no/such.json",
        ),
        ("[[node]\nname = \"a\"\n", "1:8", "expected `]`"),
        (
            "[[node]]\nname = \"a\"\nkind = \"policy\"\nparams = { policy = \"/no/run\" }\n",
            "3:8",
            "'/no/run' is not a run folder",
        ),
    ];
    for (i, (text, place, message)) in cases.iter().enumerate() {
        let path = dir.join(format!("broken{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
            .args(["launch", "--check"])
            .arg(&path)
            .output()
            .expect("sponge launch --check");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "case {i} passed the check");
        let expected = format!("{}:{place}", path.display());
        assert!(
            stderr.contains(&expected) && stderr.contains(message),
            "case {i}: wanted {expected} and {message:?} in {stderr}"
        );
    }
    // A launch file that is not there.
    let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .args(["launch", "--check"])
        .arg(dir.join("missing.toml"))
        .output()
        .expect("sponge launch --check");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
    // The standard set-ups all pass.
    for file in [
        "sim_teleop",
        "sim_autonomy",
        "real_teleop",
        "real_record",
        "real_autonomy",
        "remote_policy",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("launch/{file}.toml"));
        let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
            .args(["launch", "--check"])
            .arg(&path)
            .output()
            .expect("sponge launch --check");
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sponge_record_with_emulated_arms_writes_a_dataset_that_validates() {
    let _one = one_at_a_time();
    let dir = scratch("record");
    let leader = calibrated_emulator(&dir, "so100_leader", "leader");
    let follower = calibrated_emulator(&dir, "so100_follower", "follower");
    // The leader sits away from the follower's pose: the follower must go there.
    let target: JointVector = [0.3, -0.2, 0.25, 0.1, 0.0, 0.2];
    let ticks = ArmCalibration::nominal().rad_to_ticks(&target);
    {
        let mut bus = leader.bus();
        for joint in Joint::ALL {
            let servo = bus.servo_mut(joint.motor_id()).expect("servo");
            servo.move_by_hand(f64::from(ticks[joint.index()]));
        }
    }
    let out = dir.join("recorded");
    let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .arg("record")
        .arg("--leader")
        .arg(leader.link())
        .arg("--follower")
        .arg(follower.link())
        .arg("--out")
        .arg(&out)
        .args([
            "--task",
            "wipe up the ink",
            "--episodes",
            "1",
            "--episode-s",
            "3",
            "--reset-s",
            "0",
        ])
        .env("SPONGE_CALIBRATION_DIR", dir.join("calibration"))
        .stdin(Stdio::null())
        .output()
        .expect("sponge record");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("saved episode 0 (90 frames)"), "{text}");
    let validate = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .args(["dataset", "validate"])
        .arg(&out)
        .output()
        .expect("validate");
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    let show = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .args(["dataset", "show", "--json", "--episode", "0"])
        .arg(&out)
        .output()
        .expect("show");
    let episode: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(episode["task"], "wipe up the ink");
    let last = |key: &str| -> Vec<serde_json::Value> {
        episode[key]
            .as_array()
            .and_then(|frames| frames.last())
            .and_then(|frame| frame.as_array())
            .expect("frames")
            .clone()
    };
    // By the end the follower (state) stands where the leader (action) is, in dataset degrees.
    let (state, action) = (last("observation.state"), last("action"));
    for (j, joint) in Joint::ALL.iter().enumerate().take(5) {
        let (s, a) = (state[j].as_f64().expect("f"), action[j].as_f64().expect("f"));
        assert!(
            (s - a).abs() < 2.0,
            "{joint}: state {s:.1} vs action {a:.1} (degrees)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The launch is over: the follower was left torque-off (the default).
    let mut bus = follower.bus();
    for joint in Joint::ALL {
        assert_eq!(
            bus.servo_mut(joint.motor_id())
                .expect("servo")
                .get(reg::TORQUE_ENABLE),
            0
        );
    }
}

/// A small policy trained for a few steps on a synthetic dataset: enough
/// to run as a node (what it does is not the point here).
fn tiny_trained_policy(dir: &Path) -> PathBuf {
    use sponge_datasets::synth::write_small_dataset;
    use sponge_policy::PolicyConfig;
    use sponge_policy::train::{TrainConfig, train};

    let dataset = dir.join("dataset");
    write_small_dataset(&dataset, 32, &[(30, "wipe up the ink"); 3]).expect("dataset");
    let run = dir.join("run");
    let policy = PolicyConfig {
        d_model: 32,
        heads: 2,
        trunk_layers: 1,
        expert_layers: 1,
        horizon: 12,
        actions_per_token: 3,
        flow_steps: 2,
        ..PolicyConfig::default()
    };
    let config = TrainConfig {
        steps: 10,
        batch: 4,
        warmup: 2,
        validation_every: 10,
        ..TrainConfig::default()
    };
    train(
        &dataset,
        &run,
        &policy,
        &config,
        &candle_core::Device::Cpu,
        false,
        |_| {},
    )
    .expect("train");
    run
}

#[test]
fn sim_autonomy_runs_a_trained_policy_whose_chunks_drive_the_twin() {
    use sponge_robot::msg::JointTrajectory;

    let _one = one_at_a_time();
    let dir = scratch("sim-autonomy-policy");
    let run = tiny_trained_policy(&dir);
    let mut launch = Launch::start(
        "launch/sim_autonomy.toml",
        &dir,
        &[format!("policy={}", run.display()), "task=wipe up the ink".into()],
    );
    let router = launch.router();
    let node = observer(&router);
    let chunks = node
        .subscriber::<JointTrajectory>("action_chunk")
        .expect("subscriber");
    let commands = node
        .subscriber::<JointState>("joint_command")
        .expect("subscriber");
    launch.wait_for("policy from ", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut received, mut commanded) = (Vec::new(), 0);
    while (received.len() < 20 || commanded < 30) && Instant::now() < deadline {
        if let Some(chunk) = chunks.recv_timeout(Duration::from_millis(50)).expect("chunk") {
            received.push(chunk);
        }
        commands.drain(|_| commanded += 1).expect("commands");
    }
    assert!(received.len() >= 20, "only {} chunks in 60 s", received.len());
    assert!(commanded >= 1, "the executor sent no commands");
    for chunk in &received {
        // The learned policy's chunks: its horizon, not the stand-in's 50.
        assert_eq!(chunk.points.len(), 12);
        assert!(
            chunk
                .points
                .iter()
                .flat_map(|p| &p.positions)
                .all(|v| v.is_finite())
        );
        let last = chunk.points.last().expect("point").time_from_start.as_secs_f64();
        assert!(
            (last - 11.0 / 30.0).abs() < 1e-6,
            "points at the dataset's 30 fps"
        );
    }
    let (status, lines) = launch.interrupt();
    assert!(status.success(), "launch exit: {status:?}\n{}", lines.join("\n"));
    let summary = lines
        .iter()
        .find(|l| l.contains("chunks published, inference"))
        .unwrap_or_else(|| panic!("no policy summary in:\n{}", lines.join("\n")));
    assert!(!summary.contains(" 0 chunks"), "{summary}");
}

#[test]
fn sim_autonomy_runs_a_privileged_policy_on_what_its_perception_sees() {
    use sponge_robot::msg::JointTrajectory;
    use twin_labelled::{PLACE_PERCEPTION, train_briefly, twin_labelled_dataset};

    let _one = one_at_a_time();
    let dir = scratch("sim-autonomy-pair");
    let dataset = twin_labelled_dataset(&dir.join("dataset"));
    let policy = train_briefly(
        &dataset,
        &dir.join("privileged"),
        &[
            "--privileged",
            "target.x_m,target.y_m",
            "--horizon",
            "12",
            "--actions-per-token",
            "3",
        ],
    );
    let perception = train_briefly(&dataset, &dir.join("perception"), PLACE_PERCEPTION);
    let plain = train_briefly(
        &dataset,
        &dir.join("plain"),
        &["--horizon", "12", "--actions-per-token", "3"],
    );
    // Refused before anything starts: a privileged policy alone (it would
    // need the twin's knowledge), a perception for a policy that takes none,
    // a perception folder that is no run, and a tracking radius or release
    // out of range.
    let missing = dir.join("no-such-run");
    for (args, named) in [
        (vec![format!("policy={policy}")], "perception=RUN"),
        (
            vec![format!("policy={plain}"), format!("perception={perception}")],
            "--privileged",
        ),
        (
            vec![
                format!("policy={policy}"),
                format!("perception={}", missing.display()),
            ],
            "is not a run folder",
        ),
        (
            vec![
                format!("policy={policy}"),
                format!("perception={perception}"),
                "perception_track=-0.01".into(),
            ],
            "perception_track_m",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
            .args(["launch", "--check"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("launch/sim_autonomy.toml"))
            .args(&args)
            .output()
            .expect("sponge runs");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} passed the check");
        assert!(said.contains(named), "{args:?}: {said}");
    }
    // The pair drives the twin: the policy's chunks reach the executor.
    let mut launch = Launch::start(
        "launch/sim_autonomy.toml",
        &dir,
        &[
            format!("policy={policy}"),
            format!("perception={perception}"),
            "task=wipe up the ink".into(),
        ],
    );
    let router = launch.router();
    let node = observer(&router);
    let chunks = node
        .subscriber::<JointTrajectory>("action_chunk")
        .expect("subscriber");
    let started = launch.wait_for("policy from ", Duration::from_secs(60));
    assert!(
        started.contains("perception from") && started.contains("tracking within 0.02 m"),
        "{started}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0;
    while received < 10 && Instant::now() < deadline {
        if let Some(chunk) = chunks.recv_timeout(Duration::from_millis(50)).expect("chunk") {
            assert_eq!(chunk.points.len(), 12, "the privileged policy's horizon");
            received += 1;
        }
    }
    assert!(received >= 10, "only {received} chunks in 60 s");
    let (status, lines) = launch.interrupt();
    assert!(status.success(), "launch exit: {status:?}\n{}", lines.join("\n"));
    assert!(
        !lines.iter().any(|l| l.contains("restarting policy")),
        "{}",
        lines.join("\n")
    );
    // The twin says which scene it set and, at the end, how much of each
    // spill was cleaned.
    let scene = lines
        .iter()
        .find(|l| l.contains("[twin] scene of seed 0: "))
        .unwrap_or_else(|| panic!("no scene line in:\n{}", lines.join("\n")));
    let spills = scene.matches(" m").count();
    let cleaned = lines
        .iter()
        .find(|l| l.contains("[twin]") && l.contains("cleaned: "))
        .unwrap_or_else(|| panic!("no cleaned line in:\n{}", lines.join("\n")));
    assert_eq!(cleaned.matches('%').count(), spills + 1, "{scene}\n{cleaned}");
}

#[test]
fn nodes_stop_when_the_launcher_is_killed() {
    let _one = one_at_a_time();
    let dir = scratch("launcher-killed");
    let mut launch = Launch::start("launch/sim_autonomy.toml", &dir, &[]);
    // The stand-in policy, the executor, the twin and the monitor.
    let mut pids = Vec::new();
    while pids.len() < 4 {
        let line = launch.wait_for("(pid ", Duration::from_secs(60));
        let pid = line
            .rsplit("(pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse::<i32>().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        pids.push(pid);
    }
    launch.wait_for("[twin] scene of seed", Duration::from_secs(60));
    // Killed outright: no Ctrl-C handling, no chance to stop its nodes.
    launch.child.kill().expect("kill");
    launch.child.wait().expect("wait");
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // The state follows the command name in parentheses; a zombie has ended.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|&p| running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<i32> = pids.iter().copied().filter(|&p| running(p)).collect();
    for &pid in &left {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    assert!(
        left.is_empty(),
        "nodes {left:?} of {pids:?} outlived the launcher by 20 s"
    );
}
