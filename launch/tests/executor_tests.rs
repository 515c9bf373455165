//! The executor's chunk handling: sampling, checks, and blending without
//! jumps at chunk boundaries.

use std::time::{Duration, Instant};

use sponge_launch::nodes::executor::{Blender, Chunk};
use sponge_launch::nodes::policy;
use sponge_robot::joint::{Joint, JointVector};
use sponge_robot::msg::{Duration as RosDuration, JointTrajectory, JointTrajectoryPoint};

fn trajectory(names: &[&str], points: &[(f64, [f64; 6])]) -> JointTrajectory {
    JointTrajectory {
        joint_names: names.iter().map(|s| (*s).to_owned()).collect(),
        points: points
            .iter()
            .map(|(t, q)| JointTrajectoryPoint {
                positions: q.to_vec(),
                time_from_start: RosDuration::from_secs_f64(*t),
                ..JointTrajectoryPoint::default()
            })
            .collect(),
        ..JointTrajectory::default()
    }
}

fn names() -> Vec<&'static str> {
    Joint::ALL.iter().map(|j| j.name()).collect()
}

#[test]
fn chunks_are_checked_and_reordered_by_name() {
    let mut reversed = names();
    reversed.reverse();
    let chunk = Chunk::from_trajectory(&trajectory(
        &reversed,
        &[
            (0.0, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
            (0.1, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
        ],
    ))
    .expect("valid");
    assert_eq!(chunk.sample(0.0), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

    let five = &names()[..5];
    assert!(Chunk::from_trajectory(&trajectory(five, &[])).is_err());
    assert!(Chunk::from_trajectory(&trajectory(&names(), &[])).is_err());
    assert!(Chunk::from_trajectory(&trajectory(&names(), &[(0.0, [f64::NAN; 6])])).is_err());
    assert!(
        Chunk::from_trajectory(&trajectory(&names(), &[(0.2, [0.0; 6]), (0.1, [0.0; 6])])).is_err(),
        "times going back"
    );
}

#[test]
fn sampling_interpolates_and_holds_the_ends() {
    let chunk = Chunk {
        points: vec![(0.0, [0.0; 6]), (1.0, [1.0; 6]), (2.0, [3.0; 6])],
    };
    assert_eq!(chunk.sample(-1.0)[0], 0.0);
    assert!((chunk.sample(0.5)[0] - 0.5).abs() < 1e-12);
    assert!((chunk.sample(1.5)[0] - 2.0).abs() < 1e-12);
    assert_eq!(chunk.sample(5.0)[0], 3.0);
}

/// The largest change of the command between ticks, when chunks from a
/// policy whose idea of the target drifts arrive every 100 ms.
fn largest_tick_step(blend: Duration) -> f64 {
    let mut blender = Blender::new(blend);
    let start = Instant::now();
    let tick = Duration::from_millis(33);
    let mut last: Option<JointVector> = None;
    let mut largest = 0.0f64;
    for k in 0..60u32 {
        let now = start + tick * k;
        if k % 3 == 0 {
            // Each new chunk disagrees with the last by an offset of 0.2 rad.
            let offset = 0.2 * f64::from(k / 3 % 2);
            let points = (0..50)
                .map(|i| {
                    let t = f64::from(i) / 30.0;
                    (t, [offset + 0.1 * t; 6])
                })
                .collect();
            blender.push(now, Chunk { points });
        }
        let q = blender.command(now).expect("a command");
        if let Some(prev) = last {
            largest = largest.max((q[0] - prev[0]).abs());
        }
        last = Some(q);
    }
    largest
}

#[test]
fn blending_removes_the_jump_at_chunk_boundaries() {
    let unblended = largest_tick_step(Duration::ZERO);
    let blended = largest_tick_step(Duration::from_millis(200));
    assert!(
        unblended > 0.19,
        "without blending the command jumps {unblended:.3} rad"
    );
    assert!(
        blended < 0.06,
        "with blending the largest step is {blended:.3} rad"
    );
}

#[test]
fn the_stand_in_policy_starts_where_the_arm_is_and_stays_within_limits() {
    let center = [0.1, -0.2, 0.3, 0.0, 0.5, 0.2];
    let first = policy::sway(&center, 0.3, 4.0, 0.0);
    for j in 0..6 {
        assert!((first[j] - center[j]).abs() < 1e-12);
    }
    let chunk = policy::chunk(&center, 2.0, 4.0, 10.0, 50, 30.0);
    assert_eq!(chunk.points.len(), 50);
    for point in &chunk.points {
        for (joint, q) in Joint::ALL.iter().zip(&point.positions) {
            let limits = joint.limits();
            assert!(limits.clamp(*q) == *q, "{joint} at {q} is outside its limits");
        }
    }
}

#[test]
fn a_chunk_planned_earlier_starts_as_far_in_as_it_is_old() {
    // A ramp of 1 rad/s. Planned 100 ms before it is pushed (its
    // observation's time): the first command is the ramp's value at 0.1 s,
    // and with no previous command there is nothing to blend from.
    let chunk = Chunk {
        points: vec![(0.0, [0.0; 6]), (1.0, [1.0; 6])],
    };
    let mut blender = Blender::new(Duration::from_millis(200));
    let now = Instant::now();
    blender.push(now - Duration::from_millis(100), chunk.clone());
    let q = blender.command(now).expect("command");
    assert!((q[0] - 0.1).abs() < 0.01, "started at {} instead of 0.1", q[0]);
    // The next chunk, also 100 ms old, blends from the last command: no jump.
    let later = now + Duration::from_millis(33);
    let shifted = Chunk {
        points: vec![(0.0, [0.5; 6]), (1.0, [1.5; 6])],
    };
    let before = blender.command(later).expect("command")[0];
    blender.push(later - Duration::from_millis(100), shifted);
    let after = blender.command(later).expect("command")[0];
    assert!((after - before).abs() < 0.02, "jump from {before} to {after}");
}

/// The executor over a real Zenoh session: chunks that keep moving the arm
/// drive `joint_command` until an alarm on `status`; then it holds (every
/// command the same, marked "hold") though chunks keep coming, and goes on
/// after `resume`.
#[test]
fn an_alarm_on_status_holds_the_arm_until_resume() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use sponge_launch::nodes::{executor, monitor};
    use sponge_launch::params::{Params, Value};
    use sponge_launch::topics;
    use sponge_robot::msg::{JointState, StringMsg, Time};

    let (executor_node, node) = sponge_launch::bench::loopback_pair().expect("two nodes on loopback");
    let params = Params::new(BTreeMap::from([
        ("rate_hz".to_owned(), Value::Float(30.0)),
        ("blend_ms".to_owned(), Value::Int(0)),
        ("chunk_timeout_ms".to_owned(), Value::Int(500)),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || executor::run(&executor_node, &params, &stop).expect("executor runs"))
    };
    let chunks = node
        .publisher::<JointTrajectory>(topics::ACTION_CHUNK)
        .expect("publisher");
    let status = node.publisher::<StringMsg>(topics::STATUS).expect("publisher");
    let commands = node
        .subscriber::<JointState>(topics::JOINT_COMMAND)
        .expect("subscriber");
    // Every 100 ms a chunk whose pan goes on rising with time.
    let started = Instant::now();
    let run_for = |seconds: f64, commands: &sponge_launch::Subscriber<JointState>| {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut seen = Vec::new();
        while Instant::now() < until {
            let t0 = started.elapsed().as_secs_f64();
            let points: Vec<(f64, [f64; 6])> = (0..10)
                .map(|i| {
                    let t = f64::from(i) / 30.0;
                    (t, [0.2 * (t0 + t), 0.0, 0.0, 0.0, 0.0, 0.0])
                })
                .collect();
            let mut chunk = trajectory(&names(), &points);
            chunk.header.stamp = Time::now();
            chunks.put(&chunk).expect("put chunk");
            std::thread::sleep(Duration::from_millis(100));
            while let Ok(Some(c)) = commands.try_recv() {
                seen.push((c.header.frame_id.clone(), c.positions().expect("six joints")[0]));
            }
        }
        seen
    };
    let moving = run_for(1.0, &commands);
    assert!(moving.len() > 10, "only {} commands", moving.len());
    let pans: Vec<f64> = moving.iter().map(|(_, p)| *p).collect();
    assert!(pans.last() > pans.first(), "the arm did not move: {pans:?}");

    status
        .put(&StringMsg {
            data: format!("{}: state unlike what was expected", monitor::ALARM),
        })
        .expect("put alarm");
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(Some(_)) = commands.try_recv() {}
    let held = run_for(1.0, &commands);
    assert!(held.len() > 10, "only {} commands while held", held.len());
    assert!(held.iter().all(|(frame, _)| frame == "hold"), "{held:?}");
    let first = held[0].1;
    assert!(
        held.iter().all(|(_, p)| (p - first).abs() < 1e-9),
        "the hold moved: {held:?}"
    );

    status
        .put(&StringMsg {
            data: monitor::RESUME.to_owned(),
        })
        .expect("put resume");
    let after = run_for(1.0, &commands);
    let moved: Vec<&(String, f64)> = after.iter().filter(|(frame, _)| frame != "hold").collect();
    assert!(moved.len() > 10, "the arm did not go on after resume: {after:?}");
    assert!(moved.last().map(|m| m.1) > Some(first + 0.05));
    stop.store(true, Ordering::Relaxed);
    let summary = thread.join().expect("executor thread");
    assert!(summary.contains("holds"), "{summary}");
}
