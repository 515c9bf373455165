//! The task as a policy meets it: the expert wipes, pressing too hard and
//! asking for joints beyond their limits are reported and cost success.

use nalgebra::Point3;
use sponge_robot::ik::{IkTarget, solve};
use sponge_robot::joint::Joint;
use sponge_robot::model::Tool;
use sponge_sim::expert::Expert;
use sponge_sim::{Env, EnvConfig, StepInfo};

fn run_expert(seed: u64) -> StepInfo {
    let mut env = Env::new(EnvConfig::default(), seed);
    let mut expert = Expert::new(&mut env);
    loop {
        let action = expert.act(&mut env);
        let step = env.step(&action);
        if step.done {
            return step.info;
        }
    }
}

#[test]
fn expert_wipes_the_named_spills() {
    let results: Vec<StepInfo> = (100..110).map(run_expert).collect();
    let ok = results.iter().filter(|i| i.success).count();
    assert!(ok >= 9, "expert succeeded on {ok}/10 seeds: {results:?}");
    for info in results.iter().filter(|i| i.success) {
        assert!(info.target_fraction >= 0.95);
        assert!(!info.truncated);
    }
}

#[test]
fn pressing_into_the_table_is_a_force_violation() {
    let mut env = Env::new(EnvConfig::default(), 1);
    let extra = env.arm().params().sponge_face_extra_depth_m();
    let mut worst = 0.0f64;
    let mut violated = false;
    let mut reward_penalised = false;
    // Push the sponge face ever deeper below the table top.
    for k in 0..90 {
        let depth = 0.002 * k as f64;
        let target = IkTarget {
            position_in_base_m: Point3::new(0.0, -0.2, -depth + extra),
            pitch_rad: std::f64::consts::FRAC_PI_2,
            roll_rad: Some(0.0),
        };
        let Ok(q) = solve(&target, env.arm().goal(), Tool::SpongeFace) else {
            continue;
        };
        let step = env.step(&q);
        worst = worst.max(step.info.mean_force_n);
        if step.info.force_violation {
            violated = true;
            reward_penalised |= step.reward < 0.0;
            assert!(!step.info.success);
        }
    }
    assert!(
        violated,
        "pressing 18 cm into the table peaked at {worst:.1} N without a violation"
    );
    assert!(
        reward_penalised,
        "a step that pressed too hard should cost reward"
    );
}

#[test]
fn actions_beyond_joint_limits_are_reported() {
    let mut env = Env::new(EnvConfig::default(), 2);
    let mut action = *env.arm().goal();
    action[Joint::ElbowFlex.index()] = Joint::ElbowFlex.limits().max_rad + 0.3;
    let step = env.step(&action);
    assert!(step.info.joint_limit_violation);
    // The twin clamps the goal: the joint stays within its range.
    for _ in 0..60 {
        env.step(&action);
    }
    let q = env.arm().joint_positions()[Joint::ElbowFlex.index()];
    assert!(q <= Joint::ElbowFlex.limits().max_rad + 0.02, "elbow at {q}");
    assert!(!env.step(&action).info.success);
}

/// A scattered episode starts as if mid-wipe: the arm at rest away from
/// the ready pose, the sponge over the table, some spills partly wiped and
/// others untouched; holding still then wipes nothing more (the sponge's
/// last place moved with it); the same seed scatters the same way; and the
/// expert still wipes the named spills from there.
#[test]
fn a_scattered_episode_starts_mid_wipe_and_the_expert_finishes_it() {
    let ready = Env::new(EnvConfig::default(), 0)
        .arm()
        .sponge_face()
        .translation
        .vector;
    let (mut moved, mut wiped, mut untouched) = (0, 0, 0);
    for seed in 0..12u64 {
        let mut env = Env::new(EnvConfig::default(), seed);
        env.scatter();
        let face = env.arm().sponge_face().translation.vector;
        assert!(face.z > 0.0 && face.z < 0.14, "seed {seed}: sponge at {face:?}");
        moved += usize::from((face - ready).norm() > 0.03);
        let before = env.scene().fractions_cleaned();
        wiped += before.iter().filter(|f| **f > 0.05).count();
        untouched += before.iter().filter(|f| **f == 0.0).count();
        assert!(env.arm().joint_velocities().iter().all(|v| v.abs() < 1e-6));
        let scattered = env.arm().joint_positions();
        let hold = *env.arm().goal();
        for _ in 0..5 {
            env.step(&hold);
        }
        let after = env.scene().fractions_cleaned();
        for (b, a) in before.iter().zip(&after) {
            assert!(
                (a - b).abs() < 0.01,
                "seed {seed}: holding still wiped {b} -> {a}"
            );
        }
        let mut again = Env::new(EnvConfig::default(), seed);
        again.scatter();
        assert_eq!(again.scene().fractions_cleaned(), before);
        assert_eq!(again.arm().joint_positions(), scattered);
    }
    assert!(moved >= 10, "the arm left the ready pose in {moved} of 12");
    assert!(
        wiped >= 4 && untouched >= 2,
        "{wiped} spills wiped, {untouched} untouched"
    );
    // The expert finishes a scattered episode.
    let mut env = Env::new(EnvConfig::default(), 3);
    env.scatter();
    let mut expert = Expert::new(&mut env);
    let mut last = None;
    for _ in 0..env.config().max_steps() {
        let action = expert.act(&mut env);
        let step = env.step(&action);
        let done = step.done;
        last = Some(step.info);
        if done {
            break;
        }
    }
    assert!(
        last.expect("steps").success,
        "the expert did not finish a scattered episode"
    );
}
