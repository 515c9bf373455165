//! The twin as a follower node over a real Zenoh session: it follows
//! `joint_command`, publishes `joint_states` (and camera images), keeps
//! goals within the joint limits, and holds when commands stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_launch::nodes::twin::{self, TwinNodeConfig};
use sponge_launch::{Node, topics};
use sponge_robot::joint::{Joint, JointVector};
use sponge_robot::msg::{Image, JointState, Time};

/// Starts the twin node in a thread; returns the test's node, the stop flag and the thread.
fn start(
    config: TwinNodeConfig,
) -> (
    Node,
    Arc<AtomicBool>,
    std::thread::JoinHandle<twin::TwinNodeStats>,
) {
    let (twin_node, test_node) = sponge_launch::bench::loopback_pair().expect("two nodes on loopback");
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || twin::run(&twin_node, &config, &stop).expect("twin node runs"))
    };
    (test_node, stop, thread)
}

fn latest(states: &sponge_launch::Subscriber<JointState>) -> Option<JointVector> {
    let mut last = None;
    while let Ok(Some(s)) = states.try_recv() {
        last = s.positions().ok();
    }
    last
}

#[test]
fn twin_follows_commands_and_holds_when_they_stop() {
    let (node, stop, thread) = start(TwinNodeConfig::default());
    let commands = node
        .publisher::<JointState>(topics::JOINT_COMMAND)
        .expect("publisher");
    let states = node
        .subscriber::<JointState>(topics::JOINT_STATES)
        .expect("subscriber");
    // Wait for the twin's first state.
    let start = Instant::now();
    let q0 = loop {
        if let Some(q) = states.recv_timeout(Duration::from_millis(100)).expect("recv") {
            break q.positions().expect("six joints");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no joint_states from the twin"
        );
    };
    // Command a pan of +0.4 rad and an elbow beyond its limit, at 30 Hz for 2 s.
    let mut target = q0;
    target[Joint::ShoulderPan.index()] += 0.4;
    target[Joint::ElbowFlex.index()] = Joint::ElbowFlex.limits().max_rad + 1.0;
    target[Joint::Gripper.index()] = 0.0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        commands
            .put(&JointState::from_positions(Time::now(), &target))
            .expect("put");
        std::thread::sleep(Duration::from_millis(33));
    }
    std::thread::sleep(Duration::from_millis(100));
    let q = latest(&states).expect("states while commanded");
    let pan = Joint::ShoulderPan.index();
    assert!(
        (q[pan] - target[pan]).abs() < 0.05,
        "pan at {:.3}, commanded {:.3}",
        q[pan],
        target[pan]
    );
    // The jaws squeeze the sponge: the gripper's servo carries about a
    // tenth of its 1.6 N·m stall torque; the twin models no other effort.
    let message = states
        .recv_timeout(Duration::from_millis(500))
        .expect("recv")
        .expect("a state while commanded");
    let grip = message.effort_of(Joint::Gripper).expect("the gripper's effort");
    assert!((0.1..0.3).contains(&grip), "gripper effort {grip} N·m");
    assert_eq!(
        message.effort_of(Joint::ShoulderPan),
        None,
        "{:?}",
        message.effort
    );
    let elbow = Joint::ElbowFlex.limits();
    assert!(
        q[Joint::ElbowFlex.index()] <= elbow.max_rad + 0.02,
        "elbow beyond its limit: {q:?}"
    );

    // Commands stop: after the watchdog the twin holds still.
    std::thread::sleep(Duration::from_millis(400));
    let held = latest(&states).expect("states after commands stopped");
    std::thread::sleep(Duration::from_millis(500));
    let later = latest(&states).expect("states while holding");
    for (a, b) in held.iter().zip(&later) {
        assert!(
            (a - b).abs() < 0.01,
            "the twin drifted while holding: {held:?} then {later:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let stats = thread.join().expect("twin thread");
    assert!(stats.commands >= 30, "{stats:?}");
    assert_eq!(stats.holds, 1, "{stats:?}");
    assert!(stats.ticks >= 60, "{stats:?}");
}

#[test]
fn twin_publishes_its_front_camera() {
    let (node, stop, thread) = start(TwinNodeConfig {
        camera_size: Some(64),
        ..TwinNodeConfig::default()
    });
    let images = node
        .subscriber::<Image>(&topics::camera_image("front"))
        .expect("subscriber");
    let start = Instant::now();
    let image = loop {
        if let Some(image) = images.recv_timeout(Duration::from_millis(100)).expect("recv") {
            break image;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no image from the twin"
        );
    };
    assert_eq!(
        (image.width, image.height, image.encoding.as_str()),
        (64, 64, "rgb8")
    );
    assert_eq!(image.data.len(), 64 * 64 * 3);
    // A rendered scene, not a blank frame.
    let distinct: std::collections::HashSet<&[u8]> = image.data.chunks(3).collect();
    assert!(
        distinct.len() > 20,
        "only {} colours in the image",
        distinct.len()
    );
    stop.store(true, Ordering::Relaxed);
    thread.join().expect("twin thread");
}
