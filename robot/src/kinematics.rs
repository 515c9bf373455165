//! Forward kinematics, the tool Jacobian and the tool pitch.

use nalgebra::{Isometry3, Matrix6x5, Point3, Vector3};

use crate::joint::{Joint, JointVector};
use crate::model::{CHAIN, Link, NUM_LINKS, Tool, pan_axis_origin_in_base};

/// Pose of every link in the base frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkPoses {
    /// `base_from_link` for each link, in [`Link::ALL`] order.
    pub base_from_link: [Isometry3<f64>; NUM_LINKS],
}

impl LinkPoses {
    /// Pose of `link` in the base frame.
    pub fn base_from(&self, link: Link) -> &Isometry3<f64> {
        &self.base_from_link[link.index()]
    }

    /// Pose of a tool frame in the base frame.
    pub fn base_from_tool(&self, tool: Tool) -> Isometry3<f64> {
        self.base_from(Link::Gripper) * tool.gripper_from_tool()
    }
}

/// Forward kinematics of every link for joint angles `q_rad` (`sponge` convention).
pub fn forward(q_rad: &JointVector) -> LinkPoses {
    let chain = &*CHAIN;
    let mut base_from_link = [Isometry3::identity(); NUM_LINKS];
    for joint in Joint::ALL {
        let i = joint.index();
        let parent_from_child = chain.parent_from_child_at_zero[i]
            * nalgebra::UnitQuaternion::from_axis_angle(&chain.axes[i], q_rad[i]);
        base_from_link[i + 1] = base_from_link[i] * parent_from_child;
    }
    LinkPoses { base_from_link }
}

/// Pose of a tool frame in the base frame; cheaper than [`forward`] as it
/// skips the moving jaw.
pub fn base_from_tool(q_rad: &JointVector, tool: Tool) -> Isometry3<f64> {
    let chain = &*CHAIN;
    let mut base_from_link = Isometry3::identity();
    for joint in Joint::ARM {
        let i = joint.index();
        base_from_link *= chain.parent_from_child_at_zero[i]
            * nalgebra::UnitQuaternion::from_axis_angle(&chain.axes[i], q_rad[i]);
    }
    base_from_link * tool.gripper_from_tool()
}

/// Pitch of the tool axis, radians: the angle of the tool's z axis below the
/// horizontal direction that points from the pan axis towards the tool
/// point. 0 = pointing straight out, π/2 = straight down, values beyond π/2
/// point down and back towards the base.
pub fn tool_pitch(base_from_tool: &Isometry3<f64>) -> f64 {
    let direction = base_from_tool * Vector3::z();
    let outward = outward_direction(&base_from_tool.translation.vector.into(), direction);
    (-direction.z).atan2(direction.dot(&outward))
}

/// Horizontal unit vector from the pan axis towards `point`; when the point
/// lies on the axis, the horizontal part of `fallback`.
pub(crate) fn outward_direction(point: &Point3<f64>, fallback: Vector3<f64>) -> Vector3<f64> {
    let horizontal = Vector3::new(
        point.x - pan_axis_origin_in_base().x,
        point.y - pan_axis_origin_in_base().y,
        0.0,
    );
    let norm = horizontal.norm();
    if norm > 1e-9 {
        return horizontal / norm;
    }
    let fallback = Vector3::new(fallback.x, fallback.y, 0.0);
    fallback.try_normalize(1e-12).unwrap_or_else(Vector3::x)
}

/// Geometric Jacobian of a tool frame with respect to the five arm joints:
/// rows 0..3 the linear velocity of the tool point (m/s per rad/s), rows
/// 3..6 the angular velocity (rad/s per rad/s), both in the base frame.
pub fn jacobian(q_rad: &JointVector, tool: Tool) -> Matrix6x5<f64> {
    let poses = forward(q_rad);
    let tool_point = poses.base_from_tool(tool).translation.vector;
    let chain = &*CHAIN;
    let mut jacobian = Matrix6x5::zeros();
    for joint in Joint::ARM {
        let i = joint.index();
        let child = poses.base_from_link[i + 1];
        let axis = child.rotation * chain.axes[i].into_inner();
        let linear = axis.cross(&(tool_point - child.translation.vector));
        jacobian.fixed_view_mut::<3, 1>(0, i).copy_from(&linear);
        jacobian.fixed_view_mut::<3, 1>(3, i).copy_from(&axis);
    }
    jacobian
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::joint::{CALIBRATION_POSE, NUM_ARM_JOINTS, home_pose};

    #[test]
    fn tool_shortcut_matches_full_fk() {
        for q in [CALIBRATION_POSE, home_pose(), [0.3, -0.4, 0.5, -0.6, 0.7, 0.2]] {
            for tool in Tool::ALL {
                let full = forward(&q).base_from_tool(tool);
                let short = base_from_tool(&q, tool);
                assert!((full.translation.vector - short.translation.vector).norm() < 1e-12);
                assert!(full.rotation.angle_to(&short.rotation) < 1e-12);
            }
        }
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let q = [0.3, -0.4, 0.5, -0.6, 0.7, 0.2];
        let jacobian = jacobian(&q, Tool::SpongeFace);
        let h = 1e-6;
        let base = base_from_tool(&q, Tool::SpongeFace);
        for column in 0..NUM_ARM_JOINTS {
            let mut q_plus = q;
            q_plus[column] += h;
            let moved = base_from_tool(&q_plus, Tool::SpongeFace);
            let linear = (moved.translation.vector - base.translation.vector) / h;
            let angular = (moved.rotation * base.rotation.inverse()).scaled_axis() / h;
            let expected_linear = jacobian.fixed_view::<3, 1>(0, column);
            let expected_angular = jacobian.fixed_view::<3, 1>(3, column);
            assert!((linear - expected_linear).norm() < 1e-5, "column {column}");
            assert!((angular - expected_angular).norm() < 1e-5, "column {column}");
        }
    }

    #[test]
    fn home_pose_points_the_tool_down() {
        let pitch = tool_pitch(&base_from_tool(&home_pose(), Tool::JawTip));
        assert!(
            (pitch - std::f64::consts::FRAC_PI_2).abs() < 1e-9,
            "pitch {pitch}"
        );
    }
}
