//! Inverse kinematics for the 5-DoF arm: tool position plus tool pitch,
//! optionally wrist roll.
//!
//! The SO-100's shoulder_lift, elbow_flex and wrist_flex axes are parallel
//! and the arm's links lie in one vertical plane that contains the pan axis.
//! So IK is closed-form: the pan angle turns that plane towards the target,
//! then a planar three-link problem with a fixed tool angle leaves a
//! two-link problem for the wrist_flex axis, with two elbow solutions. Both
//! pan branches (reaching forward, or over the top backwards) and both
//! elbow branches are tried; the solution inside the joint limits nearest
//! the current pose wins. Every answer is checked by forward kinematics
//! before it is returned, so an unreachable target gives an error, never a
//! wrong pose.

use std::f64::consts::PI;

use nalgebra::{Complex, Point3};

use crate::joint::{Joint, JointVector, check_limits};
use crate::kinematics::{base_from_tool, tool_pitch};
use crate::model::{JOINT_FRAMES, Tool, pan_axis_origin_in_base};
use crate::{Error, Result};

/// Position tolerance of the final FK check, metres.
const CHECK_POSITION_TOL_M: f64 = 1e-6;
/// Pitch tolerance of the final FK check, radians.
const CHECK_PITCH_TOL_RAD: f64 = 1e-6;

/// What the tool should do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IkTarget {
    /// Tool point in the base frame, metres.
    pub position_in_base_m: Point3<f64>,
    /// Tool pitch as [`tool_pitch`] measures it, radians (π/2 = pointing down).
    pub pitch_rad: f64,
    /// Wrist roll angle, radians; `None` keeps the current roll.
    pub roll_rad: Option<f64>,
}

/// The planar geometry of the lift–elbow–flex chain, in the plane of the
/// arm: complex numbers `up + i·out` in the shoulder link's frame.
struct Planar {
    /// shoulder_lift axis.
    lift: Complex<f64>,
    /// Upper-arm vector, lift axis to elbow axis, in the upper-arm frame.
    upper: Complex<f64>,
    /// Forearm vector, elbow axis to wrist_flex axis, in the forearm frame.
    fore: Complex<f64>,
    /// Fixed frame rotations of the three joints.
    frame_rad: [f64; 3],
}

impl Planar {
    fn from_model() -> Planar {
        let in_plane = |joint: Joint| {
            let [_, y, z] = JOINT_FRAMES[joint.index()].origin_in_parent_m;
            Complex::new(y, z)
        };
        let frame = |joint: Joint| JOINT_FRAMES[joint.index()].frame_rotation.1;
        Planar {
            lift: in_plane(Joint::ShoulderLift),
            upper: in_plane(Joint::ElbowFlex),
            fore: in_plane(Joint::WristFlex),
            frame_rad: [
                frame(Joint::ShoulderLift),
                frame(Joint::ElbowFlex),
                frame(Joint::WristFlex),
            ],
        }
    }
}

/// Wraps an angle into (−π, π].
fn wrap(angle_rad: f64) -> f64 {
    let wrapped = (angle_rad + PI).rem_euclid(2.0 * PI) - PI;
    if wrapped <= -PI {
        wrapped + 2.0 * PI
    } else {
        wrapped
    }
}

/// Solves IK for `tool`, preferring the solution nearest `current` (whose
/// gripper angle, and roll unless the target sets one, are kept).
pub fn solve(target: &IkTarget, current: &JointVector, tool: Tool) -> Result<JointVector> {
    let p = target.position_in_base_m;
    if !(p.coords.iter().all(|v| v.is_finite()) && target.pitch_rad.is_finite()) {
        return Err(Error::Unreachable(format!(
            "target is not finite: position {p:?}, pitch {}",
            target.pitch_rad
        )));
    }
    let planar = Planar::from_model();
    let tool_length_m = tool.length_from_wrist_flex_m();
    let roll = target.roll_rad.unwrap_or(current[Joint::WristRoll.index()]);

    let offset = p - pan_axis_origin_in_base();
    let up = offset.z;
    let horizontal = offset.x.hypot(offset.y);
    // Pan frame's outward direction is (sin θ, −cos θ) in the base frame.
    let branches: Vec<(f64, f64)> = if horizontal > 1e-9 {
        let pan = offset.x.atan2(-offset.y);
        vec![(pan, horizontal), (pan + PI, -horizontal)]
    } else {
        let pan = current[0] + Joint::ShoulderPan.menagerie_mid_rad();
        vec![(pan, 0.0)]
    };

    let reach_max = planar.upper.norm() + planar.fore.norm();
    let reach_min = (planar.upper.norm() - planar.fore.norm()).abs();
    let mut wrist_distance_m = f64::NAN;
    let mut best: Option<(f64, JointVector)> = None;
    let mut limit_error: Option<Error> = None;

    for (pan_menagerie, out) in branches {
        // Seen from a backwards-reaching arm, "outward" flips.
        let pitch_in_plane = if out < 0.0 {
            PI - target.pitch_rad
        } else {
            target.pitch_rad
        };
        let tool_dir = Complex::new(-pitch_in_plane.sin(), pitch_in_plane.cos());
        let wrist = Complex::new(up, out) - tool_dir * tool_length_m;
        let lift_to_wrist = wrist - planar.lift;
        let distance = lift_to_wrist.norm();
        wrist_distance_m = distance;
        let cos_elbow = (distance * distance - planar.upper.norm_sqr() - planar.fore.norm_sqr())
            / (2.0 * planar.upper.norm() * planar.fore.norm());
        if !(-1.0 - 1e-12..=1.0 + 1e-12).contains(&cos_elbow) {
            continue;
        }
        let elbow = cos_elbow.clamp(-1.0, 1.0).acos();
        for sign in [1.0, -1.0] {
            // cos(β + arg fore − arg upper) = cos_elbow, β = forearm angle relative to upper arm.
            let beta = sign * elbow - planar.fore.arg() + planar.upper.arg();
            let a1 =
                lift_to_wrist.arg() - (planar.upper + Complex::from_polar(1.0, beta) * planar.fore).arg();
            let a2 = a1 + beta;
            // The tool points along −e^{i·a3} in the plane.
            let a3 = (-tool_dir).arg();
            let q_menagerie = [
                pan_menagerie,
                a1 - planar.frame_rad[0],
                beta - planar.frame_rad[1],
                a3 - a2 - planar.frame_rad[2],
            ];
            let mut q = *current;
            for (i, q_m) in q_menagerie.iter().enumerate() {
                q[i] = wrap(q_m - Joint::ALL[i].menagerie_mid_rad());
            }
            q[Joint::WristRoll.index()] = roll;
            if let Err(e) = check_limits(&q, 1e-9) {
                limit_error.get_or_insert(e);
                continue;
            }
            let cost: f64 = (0..Joint::ARM.len()).map(|i| (q[i] - current[i]).powi(2)).sum();
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, q));
            }
        }
    }

    let Some((_, q)) = best else {
        return Err(match limit_error {
            Some(e) => Error::OutsideLimits(format!(
                "tool point ({:.4}, {:.4}, {:.4}) m at pitch {:.1}°: {e}",
                p.x,
                p.y,
                p.z,
                target.pitch_rad.to_degrees()
            )),
            None => Error::Unreachable(format!(
                "tool point ({:.4}, {:.4}, {:.4}) m at pitch {:.1}° puts the wrist_flex axis {:.4} m \
                 from the shoulder_lift axis; the arm spans {:.4}..{:.4} m",
                p.x,
                p.y,
                p.z,
                target.pitch_rad.to_degrees(),
                wrist_distance_m,
                reach_min,
                reach_max
            )),
        });
    };
    verify(target, &q, tool)?;
    Ok(q)
}

/// Checks an IK answer by forward kinematics.
fn verify(target: &IkTarget, q: &JointVector, tool: Tool) -> Result<()> {
    let pose = base_from_tool(q, tool);
    let position_error = (pose.translation.vector - target.position_in_base_m.coords).norm();
    let pitch_error = wrap(tool_pitch(&pose) - target.pitch_rad).abs();
    if position_error > CHECK_POSITION_TOL_M || pitch_error > CHECK_PITCH_TOL_RAD {
        return Err(Error::Unreachable(format!(
            "no exact solution (FK check off by {position_error:.2e} m, {pitch_error:.2e} rad)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::joint::{CALIBRATION_POSE, home_pose};

    #[test]
    fn wrap_stays_in_half_open_interval() {
        for a in [-3.0 * PI, -PI, 0.0, PI, 3.0 * PI, 7.0] {
            let w = wrap(a);
            assert!(w > -PI && w <= PI, "{a} -> {w}");
            assert!(((a - w) / (2.0 * PI)).fract().abs() < 1e-12);
        }
    }

    #[test]
    fn prefers_the_solution_nearest_the_current_pose() {
        let q_goal = home_pose();
        let pose = base_from_tool(&q_goal, Tool::JawTip);
        let target = IkTarget {
            position_in_base_m: pose.translation.vector.into(),
            pitch_rad: tool_pitch(&pose),
            roll_rad: Some(q_goal[4]),
        };
        let q = solve(&target, &q_goal, Tool::JawTip).unwrap();
        for i in 0..5 {
            assert!(
                (q[i] - q_goal[i]).abs() < 1e-9,
                "joint {i}: {} vs {}",
                q[i],
                q_goal[i]
            );
        }
        // The gripper is left where it was.
        let mut current = CALIBRATION_POSE;
        current[5] = 0.42;
        assert_eq!(solve(&target, &current, Tool::JawTip).unwrap()[5], 0.42);
    }

    #[test]
    fn non_finite_target_is_an_error() {
        let target = IkTarget {
            position_in_base_m: Point3::new(f64::NAN, 0.0, 0.0),
            pitch_rad: 0.0,
            roll_rad: None,
        };
        assert!(solve(&target, &CALIBRATION_POSE, Tool::JawTip).is_err());
    }
}
