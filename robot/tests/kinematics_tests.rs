//! Forward and inverse kinematics against values worked out by hand from the
//! kinematics table in `shared/reference/so100.md`, and IK over random targets.

use std::f64::consts::{FRAC_PI_2, PI};

use nalgebra::{Point3, Vector3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sponge_robot::joint::{check_limits, from_menagerie, home_pose};
use sponge_robot::kinematics::{base_from_tool, forward, tool_pitch};
use sponge_robot::{IkTarget, Joint, JointVector, Link, Tool, ik};

const TOL_M: f64 = 1e-4;

/// Expected base-frame positions of the elbow_flex axis origin, the
/// wrist_flex axis origin and the jaw tip, and the tool pitch in degrees.
struct HandWorked {
    q_menagerie: JointVector,
    elbow: [f64; 3],
    wrist: [f64; 3],
    jaw_tip: [f64; 3],
    pitch_deg: f64,
}

fn assert_near(actual: &Vector3<f64>, expected: [f64; 3], what: &str) {
    let error = (actual - Vector3::from(expected)).norm();
    assert!(
        error < TOL_M,
        "{what}: got {actual:?}, expected {expected:?} ({error:.2e} m off)"
    );
}

fn check(case: &HandWorked, name: &str) {
    let q = from_menagerie(&case.q_menagerie);
    let poses = forward(&q);
    assert_near(
        &poses.base_from(Link::LowerArm).translation.vector,
        case.elbow,
        &format!("{name} elbow"),
    );
    assert_near(
        &poses.base_from(Link::Wrist).translation.vector,
        case.wrist,
        &format!("{name} wrist"),
    );
    let tip = poses.base_from_tool(Tool::JawTip);
    assert_near(&tip.translation.vector, case.jaw_tip, &format!("{name} jaw tip"));
    let pitch = tool_pitch(&tip).to_degrees();
    assert!((pitch - case.pitch_deg).abs() < 1e-6, "{name} pitch {pitch}");
}

// In the vertical plane of the arm, write a point as (up, out): `up` along
// the pan axis, `out` horizontally away from it. The pan axis stands at
// base (0, −0.0452) on top of the base (z = 0.0165); at pan 0, `out` is
// base −y. The shoulder_lift axis is at (up 0.1025, out 0.0306), i.e. base
// z = 0.119. The upper arm adds (0.11257, 0.028) rotated by lift + 90°, the
// forearm adds (0.0052, 0.1349) rotated by a further elbow − 90°, and the
// tool axis points along −up rotated by a further wrist_flex − 90°; the jaw
// tip lies 0.0601 + 0.1014 = 0.1615 m along it.

#[test]
fn fk_home_pose_matches_hand_values() {
    // Menagerie home: lift −90° cancels the +90° frame, so the upper arm
    // adds (0.11257 up, 0.028 out): elbow at up 0.21507 → z 0.23157,
    // out 0.0586 → y −0.1038. Elbow +90° cancels its −90° frame: forearm
    // adds (0.0052 up, 0.1349 out): wrist z 0.23677, y −0.2387. Wrist_flex
    // +90° cancels −90°: the tool points straight down, tip z 0.23677 −
    // 0.1615 = 0.07527.
    check(
        &HandWorked {
            q_menagerie: [0.0, -FRAC_PI_2, FRAC_PI_2, FRAC_PI_2, -FRAC_PI_2, 0.0],
            elbow: [0.0, -0.1038, 0.23157],
            wrist: [0.0, -0.2387, 0.23677],
            jaw_tip: [0.0, -0.2387, 0.07527],
            pitch_deg: 90.0,
        },
        "home",
    );
}

#[test]
fn fk_menagerie_zero_pose_matches_hand_values() {
    // All Menagerie angles zero: the upper arm turns +90°, (0.11257, 0.028)
    // becomes (−0.028 up, 0.11257 out): elbow up 0.0745 → z 0.091, out
    // 0.14317 → y −0.18837. Forearm turns 0: wrist up 0.0797 → z 0.0962,
    // out 0.27807 → y −0.32327. Tool turns −90°: points straight out, tip
    // out 0.27807 + 0.1615 = 0.43957 → y −0.48477.
    check(
        &HandWorked {
            q_menagerie: [0.0; 6],
            elbow: [0.0, -0.18837, 0.091],
            wrist: [0.0, -0.32327, 0.0962],
            jaw_tip: [0.0, -0.48477, 0.0962],
            pitch_deg: 0.0,
        },
        "menagerie zero",
    );
}

#[test]
fn fk_calibration_pose_matches_hand_values() {
    // sponge zero = middle of every range: lift −1.4708 rad, so the upper
    // arm turns +0.1 rad: (0.11257 cos 0.1 − 0.028 sin 0.1, 0.11257 sin 0.1 +
    // 0.028 cos 0.1) = (0.109213, 0.039095): elbow z 0.228213, y −0.114895.
    // Elbow at π/2 keeps that 0.1 rad: forearm (0.0052 cos 0.1 − 0.1349
    // sin 0.1, 0.0052 sin 0.1 + 0.1349 cos 0.1) = (−0.008293, 0.134746):
    // wrist z 0.219920, y −0.249641. Wrist_flex −0.1 brings the tool to
    // −90°: straight out, tip y −0.249641 − 0.1615 = −0.411141.
    check(
        &HandWorked {
            q_menagerie: [0.0, (0.2 - PI) / 2.0, FRAC_PI_2, -0.1, 0.0, 0.9],
            elbow: [0.0, -0.114895, 0.228213],
            wrist: [0.0, -0.249641, 0.219920],
            jaw_tip: [0.0, -0.411141, 0.219920],
            pitch_deg: 0.0,
        },
        "calibration",
    );
    let q = from_menagerie(&[0.0, (0.2 - PI) / 2.0, FRAC_PI_2, -0.1, 0.0, 0.9]);
    assert!(
        q.iter().all(|v| v.abs() < 1e-12),
        "calibration pose is sponge zero: {q:?}"
    );
}

#[test]
fn fk_home_pose_panned_left_matches_hand_values() {
    // Pan +90° turns `out` from base −y to base +x: the home pose's out
    // distances 0.0586 and 0.1935 become x, y stays at the pan axis −0.0452.
    check(
        &HandWorked {
            q_menagerie: [FRAC_PI_2, -FRAC_PI_2, FRAC_PI_2, FRAC_PI_2, -FRAC_PI_2, 0.0],
            elbow: [0.0586, -0.0452, 0.23157],
            wrist: [0.1935, -0.0452, 0.23677],
            jaw_tip: [0.1935, -0.0452, 0.07527],
            pitch_deg: 90.0,
        },
        "home panned",
    );
}

fn random_pose(rng: &mut StdRng) -> JointVector {
    Joint::ALL.map(|j| {
        let limits = j.limits();
        rng.random_range(limits.min_rad..=limits.max_rad)
    })
}

#[test]
fn ik_recovers_1000_random_reachable_targets() {
    let mut rng = StdRng::seed_from_u64(7);
    for tool in Tool::ALL {
        let mut worst_m: f64 = 0.0;
        let mut worst_pitch: f64 = 0.0;
        for case in 0..1000 {
            let q_true = random_pose(&mut rng);
            let pose = base_from_tool(&q_true, tool);
            let target = IkTarget {
                position_in_base_m: pose.translation.vector.into(),
                pitch_rad: tool_pitch(&pose),
                roll_rad: None,
            };
            let start = random_pose(&mut rng);
            let q = ik::solve(&target, &start, tool)
                .unwrap_or_else(|e| panic!("{tool:?} case {case}: {q_true:?} not recovered: {e}"));
            check_limits(&q, 1e-9).unwrap();
            let reached = base_from_tool(&q, tool);
            let error_m = (reached.translation.vector - pose.translation.vector).norm();
            let pitch_diff = (tool_pitch(&reached) - target.pitch_rad).rem_euclid(2.0 * PI);
            let error_pitch = pitch_diff.min(2.0 * PI - pitch_diff);
            worst_m = worst_m.max(error_m);
            worst_pitch = worst_pitch.max(error_pitch);
        }
        println!(
            "{tool:?}: worst position error {worst_m:.2e} m, worst pitch error {:.2e}°",
            worst_pitch.to_degrees()
        );
        assert!(worst_m < 1e-3, "{tool:?}: {worst_m} m");
        assert!(worst_pitch.to_degrees() < 1.0, "{tool:?}: {worst_pitch} rad");
    }
}

#[test]
fn ik_rejects_1000_unreachable_targets() {
    // The tool point is at most 0.116 + 0.135 + 0.1615 = 0.4125 m from the
    // shoulder_lift axis, itself 0.107 m from the pan-axis point on the
    // base. Anything 0.55 m or more from that point is out of reach.
    let mut rng = StdRng::seed_from_u64(11);
    let origin = Point3::new(0.0, -0.0452, 0.0165);
    for _ in 0..1000 {
        let direction = Vector3::new(
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
        )
        .try_normalize(1e-6)
        .unwrap_or_else(Vector3::z);
        let target = IkTarget {
            position_in_base_m: origin + direction * rng.random_range(0.55..1.0),
            pitch_rad: rng.random_range(-PI..PI),
            roll_rad: None,
        };
        let result = ik::solve(&target, &home_pose(), Tool::JawTip);
        let err = result.expect_err("unreachable target solved");
        assert!(err.to_string().contains("out of reach"), "{err}");
    }
}

#[test]
fn ik_answers_are_right_or_errors_over_the_workspace() {
    // Targets anywhere around the arm, many unreachable in position, pitch
    // or joint limits: every answer must be within limits and exact.
    let mut rng = StdRng::seed_from_u64(13);
    let mut solved = 0;
    for _ in 0..2000 {
        let target = IkTarget {
            position_in_base_m: Point3::new(
                rng.random_range(-0.45..0.45),
                rng.random_range(-0.45..0.45),
                rng.random_range(-0.1..0.5),
            ),
            pitch_rad: rng.random_range(-PI..PI),
            roll_rad: Some(rng.random_range(-4.0..4.0)),
        };
        let Ok(q) = ik::solve(&target, &home_pose(), Tool::SpongeFace) else {
            continue;
        };
        solved += 1;
        check_limits(&q, 1e-9).unwrap();
        let reached = base_from_tool(&q, Tool::SpongeFace);
        assert!((reached.translation.vector - target.position_in_base_m.coords).norm() < 1e-6);
        assert_eq!(Some(q[Joint::WristRoll.index()]), target.roll_rad);
    }
    assert!(solved > 100, "only {solved} of 2000 targets solved");
}

#[test]
fn ik_reaches_the_table_with_the_sponge_face_down() {
    // The wiping pose: sponge face on the table (z = 0) pointing down,
    // 20 cm in front of the base.
    let target = IkTarget {
        position_in_base_m: Point3::new(0.0, -0.25, 0.0),
        pitch_rad: FRAC_PI_2,
        roll_rad: Some(0.0),
    };
    let q = ik::solve(&target, &home_pose(), Tool::SpongeFace).unwrap();
    let face = base_from_tool(&q, Tool::SpongeFace);
    assert!(face.translation.vector.z.abs() < 1e-9);
    assert!((face * Vector3::z()).z < -0.999_999, "tool z points down");
}
