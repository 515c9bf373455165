//! The twin's physics against `robot`'s model.

use rand::{Rng, SeedableRng};
use sponge_robot::joint::{Joint, NUM_JOINTS};
use sponge_robot::kinematics::forward;
use sponge_robot::model::NUM_LINKS;
use sponge_sim::env::ready_pose;
use sponge_sim::physics::{ArmWorld, PHYSICS_DT_S, PhysicsParams};

fn random_pose(rng: &mut impl Rng) -> [f64; NUM_JOINTS] {
    std::array::from_fn(|i| {
        let l = Joint::ALL[i].limits();
        rng.random_range(l.min_rad..l.max_rad)
    })
}

fn worst_link_error_m(arm: &ArmWorld) -> f64 {
    let fk = forward(&arm.joint_positions());
    let poses = arm.link_poses();
    (0..NUM_LINKS)
        .map(|i| (poses[i].translation.vector - fk.base_from_link[i].translation.vector).norm())
        .fold(0.0, f64::max)
}

#[test]
fn link_poses_equal_fk_at_rest_over_random_configurations() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut arm = ArmWorld::new(PhysicsParams::default());
    for _ in 0..200 {
        let q = random_pose(&mut rng);
        arm.teleport(&q);
        let measured = arm.joint_positions();
        for i in 0..NUM_JOINTS {
            assert!(
                (measured[i] - q[i]).abs() < 1e-5,
                "joint {i}: {} vs {}",
                measured[i],
                q[i]
            );
        }
        let err = worst_link_error_m(&arm);
        assert!(err < 1e-3, "link poses differ from FK by {err} m at {q:?}");
    }
}

#[test]
fn link_poses_equal_fk_while_moving() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let mut arm = ArmWorld::new(PhysicsParams::default());
    arm.teleport(&ready_pose());
    let mut worst: f64 = 0.0;
    for _ in 0..20 {
        arm.set_goal(&random_pose(&mut rng));
        for _ in 0..30 {
            arm.step();
            worst = worst.max(worst_link_error_m(&arm));
        }
    }
    assert!(
        worst < 1e-3,
        "link poses differ from FK by {worst} m while moving"
    );
}

#[test]
fn servos_hold_and_reach_a_goal_like_an_sts3215() {
    let mut arm = ArmWorld::new(PhysicsParams::default());
    let ready = ready_pose();
    arm.teleport(&ready);
    for _ in 0..240 {
        arm.step();
    }
    let held = arm.joint_positions();
    for i in 0..NUM_JOINTS {
        assert!(
            (held[i] - ready[i]).abs() < 0.05,
            "joint {i} sags {} rad under gravity",
            held[i] - ready[i]
        );
    }
    // A 0.5 rad step of the pan joint: limited by the servo's top speed
    // (about 4.7 rad/s), so it cannot be there in 50 ms, and is within
    // 0.02 rad after 0.5 s.
    let mut goal = ready;
    goal[0] += 0.5;
    arm.set_goal(&goal);
    let mut t = 0.0;
    let mut at_50ms = 0.0;
    while t < 0.5 {
        arm.step();
        t += PHYSICS_DT_S;
        if (t - 0.05).abs() < 0.5 * PHYSICS_DT_S {
            at_50ms = arm.joint_positions()[0] - ready[0];
        }
    }
    assert!(
        at_50ms < 0.3,
        "moved {at_50ms} rad in 50 ms: faster than the servo can"
    );
    let err = (arm.joint_positions()[0] - goal[0]).abs();
    assert!(err < 0.02, "pan is {err} rad from its goal after 0.5 s");
}
