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
