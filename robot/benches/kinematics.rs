//! FK and IK time per call. Run: `cargo bench -p sponge-robot`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sponge_robot::joint::home_pose;
use sponge_robot::kinematics::{base_from_tool, forward, jacobian, tool_pitch};
use sponge_robot::{IkTarget, Joint, JointVector, Tool, ik};

fn random_poses(n: usize) -> Vec<JointVector> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..n)
        .map(|_| Joint::ALL.map(|j| rng.random_range(j.limits().min_rad..=j.limits().max_rad)))
        .collect()
}

fn kinematics(c: &mut Criterion) {
    let poses = random_poses(256);
    let targets: Vec<IkTarget> = poses
        .iter()
        .map(|q| {
            let pose = base_from_tool(q, Tool::SpongeFace);
            IkTarget {
                position_in_base_m: pose.translation.vector.into(),
                pitch_rad: tool_pitch(&pose),
                roll_rad: None,
            }
        })
        .collect();

    let mut i = 0;
    c.bench_function("fk_tool", |b| {
        b.iter(|| {
            i = (i + 1) % poses.len();
            black_box(base_from_tool(black_box(&poses[i]), Tool::SpongeFace))
        })
    });
    c.bench_function("fk_all_links", |b| {
        b.iter(|| {
            i = (i + 1) % poses.len();
            black_box(forward(black_box(&poses[i])))
        })
    });
    c.bench_function("jacobian", |b| {
        b.iter(|| {
            i = (i + 1) % poses.len();
            black_box(jacobian(black_box(&poses[i]), Tool::SpongeFace))
        })
    });
    let start = home_pose();
    c.bench_function("ik", |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            black_box(ik::solve(black_box(&targets[i]), &start, Tool::SpongeFace))
        })
    });
}

criterion_group!(benches, kinematics);
criterion_main!(benches);
