//! The exported URDF, read by an independent parser (urdf-rs), describes
//! the same arm as `sponge-robot`'s own kinematics.

use std::collections::HashMap;

use nalgebra::{Isometry3, Translation3, Unit, UnitQuaternion, Vector3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sponge_robot::kinematics::forward;
use sponge_robot::{Joint, JointVector, Link, Tool, urdf};

/// FK computed only from the parsed URDF: each link's pose in the root.
fn urdf_fk(robot: &urdf_rs::Robot, q: &JointVector) -> HashMap<String, Isometry3<f64>> {
    let mut poses = HashMap::from([("base".to_owned(), Isometry3::identity())]);
    // Joints may be listed in any order: sweep until every child is placed.
    while poses.len() < robot.links.len() {
        let before = poses.len();
        for joint in &robot.joints {
            let Some(parent) = poses.get(&joint.parent.link).copied() else {
                continue;
            };
            let [x, y, z] = *joint.origin.xyz;
            let [roll, pitch, yaw] = *joint.origin.rpy;
            let origin = Isometry3::from_parts(
                Translation3::new(x, y, z),
                UnitQuaternion::from_euler_angles(roll, pitch, yaw),
            );
            let motion = match joint.joint_type {
                urdf_rs::JointType::Revolute => {
                    let angle = q[joint
                        .name
                        .parse::<Joint>()
                        .expect("URDF joint is an SO-100 joint")
                        .index()];
                    let axis = Unit::new_normalize(Vector3::from(*joint.axis.xyz));
                    UnitQuaternion::from_axis_angle(&axis, angle)
                }
                urdf_rs::JointType::Fixed => UnitQuaternion::identity(),
                ref other => panic!("unexpected joint type {other:?}"),
            };
            poses.insert(joint.child.link.clone(), parent * origin * motion);
        }
        assert!(poses.len() > before, "URDF tree is not connected");
    }
    poses
}

#[test]
fn urdf_parses_and_matches_fk() {
    let robot = urdf_rs::read_from_string(&urdf::urdf()).expect("urdf-rs parses the export");
    assert_eq!(robot.name, "so100");
    assert_eq!(robot.links.len(), Link::ALL.len() + Tool::ALL.len());

    for joint in Joint::ALL {
        let parsed = robot
            .joints
            .iter()
            .find(|j| j.name == joint.name())
            .expect("joint exported");
        assert!((parsed.limit.lower - joint.limits().min_rad).abs() < 1e-12);
        assert!((parsed.limit.upper - joint.limits().max_rad).abs() < 1e-12);
    }
    let masses: f64 = robot.links.iter().map(|l| l.inertial.mass.value).sum();
    assert!((masses - 0.91).abs() < 0.02, "total mass {masses}");

    let mut rng = StdRng::seed_from_u64(3);
    let mut worst: f64 = 0.0;
    for _ in 0..200 {
        let q: JointVector = Joint::ALL.map(|j| rng.random_range(j.limits().min_rad..=j.limits().max_rad));
        let ours = forward(&q);
        let theirs = urdf_fk(&robot, &q);
        for link in Link::ALL {
            let a = ours.base_from(link);
            let b = theirs[link.name()];
            worst = worst.max((a.translation.vector - b.translation.vector).norm());
            assert!(a.rotation.angle_to(&b.rotation) < 1e-6, "{link} orientation");
        }
        for tool in Tool::ALL {
            let a = ours.base_from_tool(tool);
            let b = theirs[tool.name()];
            worst = worst.max((a.translation.vector - b.translation.vector).norm());
            assert!(a.rotation.angle_to(&b.rotation) < 1e-6, "{tool:?} orientation");
        }
    }
    println!("worst link position difference: {worst:.2e} m");
    assert!(worst < 1e-4, "URDF FK differs by {worst} m");
}
