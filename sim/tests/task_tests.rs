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
