//! The kinematic and physical description of the SO-100: link frames, joint
//! axes, masses and inertias, collision primitives, the gripper's tool
//! frames and the sponge it holds.
//!
//! Link frames, joint axes, masses and inertias are those of the MuJoCo
//! Menagerie `trs_so_arm100` model (see `shared/reference/so100.md`). The
//! collision primitives are boxes and capsules sized from the link offsets
//! and the servo bodies; they approximate the meshes, they are not fitted to
//! them.
//!
//! Base frame: x to the arm's left when it faces forward, z up, origin on the
//! table under the base; at `shoulder_pan = 0` the arm reaches along −y.

use std::f64::consts::{FRAC_PI_2, PI};
use std::fmt;
use std::sync::LazyLock;

use nalgebra::{Isometry3, Point3, Translation3, Unit, UnitQuaternion, Vector3};

use crate::joint::{Joint, NUM_JOINTS};

/// Stall torque of an STS3215 (7.4 V version, 1/345 gearing) at 6 V:
/// about 16.5 kg·cm.
pub const SERVO_STALL_TORQUE_NM: f64 = 16.5 * 9.81 / 100.0;

/// No-load speed of an STS3215 at 7.4 V, about 0.222 s per 60° (maker's
/// figure, not measured here).
pub const SERVO_MAX_SPEED_RAD_S: f64 = std::f64::consts::FRAC_PI_3 / 0.222;

/// Number of links, the base included.
pub const NUM_LINKS: usize = 7;

/// A rigid link of the arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// The fixed base on the table, holding the shoulder_pan servo.
    Base,
    /// The rotating shoulder bracket, holding the shoulder_lift servo.
    Shoulder,
    /// Upper arm, holding the elbow_flex servo.
    UpperArm,
    /// Forearm, holding the wrist_flex servo.
    LowerArm,
    /// Wrist bracket, holding the wrist_roll servo.
    Wrist,
    /// Gripper body and fixed jaw, holding the gripper servo.
    Gripper,
    /// Moving jaw.
    Jaw,
}

impl Link {
    /// All links, root first; each link's parent comes before it.
    pub const ALL: [Link; NUM_LINKS] = [
        Link::Base,
        Link::Shoulder,
        Link::UpperArm,
        Link::LowerArm,
        Link::Wrist,
        Link::Gripper,
        Link::Jaw,
    ];

    /// Position in [`Link::ALL`] and in FK results.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// URDF link name.
    pub const fn name(self) -> &'static str {
        match self {
            Link::Base => "base",
            Link::Shoulder => "shoulder",
            Link::UpperArm => "upper_arm",
            Link::LowerArm => "lower_arm",
            Link::Wrist => "wrist",
            Link::Gripper => "gripper",
            Link::Jaw => "jaw",
        }
    }

    /// The joint that moves this link relative to its parent (`None` for the base).
    pub const fn joint(self) -> Option<Joint> {
        match self {
            Link::Base => None,
            Link::Shoulder => Some(Joint::ShoulderPan),
            Link::UpperArm => Some(Joint::ShoulderLift),
            Link::LowerArm => Some(Joint::ElbowFlex),
            Link::Wrist => Some(Joint::WristFlex),
            Link::Gripper => Some(Joint::WristRoll),
            Link::Jaw => Some(Joint::Gripper),
        }
    }

    /// The link this one hangs from (`None` for the base).
    pub const fn parent(self) -> Option<Link> {
        match self {
            Link::Base => None,
            Link::Shoulder => Some(Link::Base),
            Link::UpperArm => Some(Link::Shoulder),
            Link::LowerArm => Some(Link::UpperArm),
            Link::Wrist => Some(Link::LowerArm),
            Link::Gripper => Some(Link::Wrist),
            Link::Jaw => Some(Link::Gripper),
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A coordinate axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// The x axis.
    X,
    /// The y axis.
    Y,
    /// The z axis.
    Z,
}

impl Axis {
    /// The unit vector along the axis.
    pub fn unit(self) -> Unit<Vector3<f64>> {
        match self {
            Axis::X => Vector3::x_axis(),
            Axis::Y => Vector3::y_axis(),
            Axis::Z => Vector3::z_axis(),
        }
    }

    /// Rotation of `angle_rad` about this axis.
    pub fn rotation(self, angle_rad: f64) -> UnitQuaternion<f64> {
        UnitQuaternion::from_axis_angle(&self.unit(), angle_rad)
    }
}

/// Where a joint sits on its parent link and how it turns, as the Menagerie
/// model gives it: translate, rotate the frame, then rotate about `axis` by
/// the Menagerie angle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointFrame {
    /// The joint.
    pub joint: Joint,
    /// Joint origin in the parent link's frame, metres.
    pub origin_in_parent_m: [f64; 3],
    /// Fixed frame rotation applied after the translation: axis and angle.
    pub frame_rotation: (Axis, f64),
    /// Rotation axis in the child frame.
    pub axis: Axis,
}

impl JointFrame {
    /// Transform from the child link frame at `sponge` angle 0 (mid-range)
    /// to the parent link frame: `parent_from_child(q) =
    /// parent_from_child_at_zero() · rotation(axis, q)`.
    pub fn parent_from_child_at_zero(&self) -> Isometry3<f64> {
        let [x, y, z] = self.origin_in_parent_m;
        let (frame_axis, frame_angle) = self.frame_rotation;
        let rotation = frame_axis.rotation(frame_angle) * self.axis.rotation(self.joint.menagerie_mid_rad());
        Isometry3::from_parts(Translation3::new(x, y, z), rotation)
    }
}

/// The six joint frames, in joint order (`Link::ALL[i + 1]` is joint i's child).
pub const JOINT_FRAMES: [JointFrame; NUM_JOINTS] = [
    JointFrame {
        joint: Joint::ShoulderPan,
        origin_in_parent_m: [0.0, -0.0452, 0.0165],
        frame_rotation: (Axis::X, FRAC_PI_2),
        axis: Axis::Y,
    },
    JointFrame {
        joint: Joint::ShoulderLift,
        origin_in_parent_m: [0.0, 0.1025, 0.0306],
        frame_rotation: (Axis::X, FRAC_PI_2),
        axis: Axis::X,
    },
    JointFrame {
        joint: Joint::ElbowFlex,
        origin_in_parent_m: [0.0, 0.11257, 0.028],
        frame_rotation: (Axis::X, -FRAC_PI_2),
        axis: Axis::X,
    },
    JointFrame {
        joint: Joint::WristFlex,
        origin_in_parent_m: [0.0, 0.0052, 0.1349],
        frame_rotation: (Axis::X, -FRAC_PI_2),
        axis: Axis::X,
    },
    JointFrame {
        joint: Joint::WristRoll,
        origin_in_parent_m: [0.0, -0.0601, 0.0],
        frame_rotation: (Axis::Y, FRAC_PI_2),
        axis: Axis::Y,
    },
    JointFrame {
        joint: Joint::Gripper,
        origin_in_parent_m: [-0.0202, -0.0244, 0.0],
        frame_rotation: (Axis::Y, PI),
        axis: Axis::Z,
    },
];

/// Mass properties of a link, in its own frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inertial {
    /// Mass, kg.
    pub mass_kg: f64,
    /// Centre of mass in the link frame, metres.
    pub com_in_link_m: [f64; 3],
    /// Orientation of the principal axes in the link frame, quaternion (w, x, y, z).
    pub principal_axes_wxyz: [f64; 4],
    /// Principal moments of inertia about the centre of mass, kg·m².
    pub principal_moments_kg_m2: [f64; 3],
}

impl Inertial {
    /// Orientation of the principal axes as a unit quaternion.
    pub fn principal_axes(&self) -> UnitQuaternion<f64> {
        let [w, x, y, z] = self.principal_axes_wxyz;
        UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(w, x, y, z))
    }

    /// The full inertia tensor about the centre of mass, in link axes.
    pub fn tensor_in_link(&self) -> nalgebra::Matrix3<f64> {
        let rotation = self.principal_axes().to_rotation_matrix();
        let diagonal = nalgebra::Matrix3::from_diagonal(&Vector3::from(self.principal_moments_kg_m2));
        rotation.matrix() * diagonal * rotation.matrix().transpose()
    }
}

/// Mass properties per link, in [`Link::ALL`] order. The base is bolted to
/// the table; its mass is an estimate (servo plus printed housing).
pub const INERTIALS: [Inertial; NUM_LINKS] = [
    Inertial {
        mass_kg: 0.3,
        com_in_link_m: [0.0, -0.04, 0.012],
        principal_axes_wxyz: [1.0, 0.0, 0.0, 0.0],
        principal_moments_kg_m2: [3.0e-4, 3.0e-4, 4.0e-4],
    },
    Inertial {
        mass_kg: 0.119226,
        com_in_link_m: [-9.07886e-05, 0.0590972, 0.031089],
        principal_axes_wxyz: [0.363978, 0.441169, -0.623108, 0.533504],
        principal_moments_kg_m2: [5.94278e-05, 5.89975e-05, 3.13712e-05],
    },
    Inertial {
        mass_kg: 0.162409,
        com_in_link_m: [-1.72052e-05, 0.0701802, 0.00310545],
        principal_axes_wxyz: [0.50104, 0.498994, -0.493562, 0.50632],
        principal_moments_kg_m2: [0.000213312, 0.000167164, 7.01522e-05],
    },
    Inertial {
        mass_kg: 0.147968,
        com_in_link_m: [-0.00339604, 0.00137796, 0.0768007],
        principal_axes_wxyz: [0.701995, 0.0787996, 0.0645626, 0.704859],
        principal_moments_kg_m2: [0.000138803, 0.000107748, 4.84242e-05],
    },
    Inertial {
        mass_kg: 0.0661321,
        com_in_link_m: [-0.00852653, -0.0352279, -2.34622e-05],
        principal_axes_wxyz: [-0.0522806, 0.705235, 0.0549524, 0.704905],
        principal_moments_kg_m2: [3.45403e-05, 2.39041e-05, 1.94704e-05],
    },
    Inertial {
        mass_kg: 0.0929859,
        com_in_link_m: [0.00552377, -0.0280167, 0.000483583],
        principal_axes_wxyz: [0.41836, 0.620891, -0.350644, 0.562599],
        principal_moments_kg_m2: [5.03136e-05, 4.64098e-05, 2.72961e-05],
    },
    Inertial {
        mass_kg: 0.0202444,
        com_in_link_m: [-0.00161745, -0.0303473, 0.000449646],
        principal_axes_wxyz: [0.696562, 0.716737, -0.0239844, -0.0227026],
        principal_moments_kg_m2: [1.11265e-05, 8.99651e-06, 2.99548e-06],
    },
];

/// A collision primitive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A box centred on `centre`, axis-aligned in the link frame.
    Cuboid {
        /// Centre in the link frame, metres.
        centre_m: [f64; 3],
        /// Half the edge lengths along x, y, z, metres.
        half_extents_m: [f64; 3],
    },
    /// A capsule: all points within `radius` of the segment `a`–`b`.
    Capsule {
        /// First end of the axis segment, link frame, metres.
        a_m: [f64; 3],
        /// Second end of the axis segment, link frame, metres.
        b_m: [f64; 3],
        /// Radius, metres.
        radius_m: f64,
    },
}

/// A collision primitive attached to a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collider {
    /// The link that carries it.
    pub link: Link,
    /// Its shape, in the link's frame.
    pub shape: Shape,
}

/// The arm's collision primitives. Neighbouring links overlap at their
/// joints: simulators must not collide a link with its parent.
pub const COLLIDERS: [Collider; 8] = [
    Collider {
        link: Link::Base,
        shape: Shape::Cuboid {
            centre_m: [0.0, -0.0452, 0.008],
            half_extents_m: [0.032, 0.04, 0.008],
        },
    },
    Collider {
        link: Link::Shoulder,
        shape: Shape::Cuboid {
            centre_m: [0.0, 0.055, 0.02],
            half_extents_m: [0.024, 0.05, 0.03],
        },
    },
    Collider {
        link: Link::UpperArm,
        shape: Shape::Capsule {
            a_m: [0.0, 0.02, 0.005],
            b_m: [0.0, 0.095, 0.024],
            radius_m: 0.018,
        },
    },
    Collider {
        link: Link::LowerArm,
        shape: Shape::Capsule {
            a_m: [0.0, 0.002, 0.02],
            b_m: [0.0, 0.004, 0.115],
            radius_m: 0.016,
        },
    },
    Collider {
        link: Link::Wrist,
        shape: Shape::Capsule {
            a_m: [0.0, -0.01, 0.0],
            b_m: [0.0, -0.045, 0.0],
            radius_m: 0.017,
        },
    },
    Collider {
        link: Link::Gripper,
        shape: Shape::Cuboid {
            centre_m: [0.0, -0.03, 0.0],
            half_extents_m: [0.022, 0.025, 0.016],
        },
    },
    Collider {
        link: Link::Gripper,
        shape: Shape::Cuboid {
            centre_m: [0.0125, -0.08, 0.0],
            half_extents_m: [0.0035, 0.026, 0.008],
        },
    },
    Collider {
        link: Link::Jaw,
        shape: Shape::Cuboid {
            centre_m: [-0.009, -0.055, 0.0],
            half_extents_m: [0.003, 0.027, 0.008],
        },
    },
];

/// Jaw-tip centre in the gripper frame: on the wrist_roll axis, level with
/// the tips of the finger pads, 0.1615 m from the wrist_flex axis.
pub const JAW_TIP_IN_GRIPPER_M: [f64; 3] = [0.0, -0.1014, 0.0];

/// The sponge the gripper holds during wiping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpongeSpec {
    /// Edge lengths in the tool frame: x across the jaws (the squeezed
    /// width), y along the jaws' width, z along the tool axis; metres.
    pub size_m: [f64; 3],
    /// How far the sponge's centre sits beyond the jaw tip along the tool
    /// axis, metres.
    pub centre_beyond_jaw_tip_m: f64,
    /// Mass, kg.
    pub mass_kg: f64,
}

impl SpongeSpec {
    /// Distance from the jaw tip to the sponge's wiping face along the tool axis.
    pub fn face_beyond_jaw_tip_m(&self) -> f64 {
        self.centre_beyond_jaw_tip_m + 0.5 * self.size_m[2]
    }
}

/// The default sponge: a 3 × 5 × 4 cm block gripped across its 3 cm side,
/// its wiping face 2.5 cm beyond the jaw tips.
pub const SPONGE: SpongeSpec = SpongeSpec {
    size_m: [0.03, 0.05, 0.04],
    centre_beyond_jaw_tip_m: 0.005,
    mass_kg: 0.01,
};

/// A tool frame on the gripper. Its z axis points out of the tool along
/// the wrist_roll axis (the approach direction), its x axis across the jaws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tool {
    /// The centre between the jaw tips (the usual TCP).
    #[default]
    JawTip,
    /// The centre of the held sponge's wiping face.
    SpongeFace,
}

impl Tool {
    /// All tool frames.
    pub const ALL: [Tool; 2] = [Tool::JawTip, Tool::SpongeFace];

    /// URDF link name of the tool frame.
    pub const fn name(self) -> &'static str {
        match self {
            Tool::JawTip => "jaw_tip",
            Tool::SpongeFace => "sponge_face",
        }
    }

    /// Distance from the gripper frame origin (on the wrist_roll axis)
    /// to the tool point, along the tool axis.
    pub fn depth_in_gripper_m(self) -> f64 {
        let jaw_tip = -JAW_TIP_IN_GRIPPER_M[1];
        match self {
            Tool::JawTip => jaw_tip,
            Tool::SpongeFace => jaw_tip + SPONGE.face_beyond_jaw_tip_m(),
        }
    }

    /// Distance from the wrist_flex axis to the tool point, along the tool axis.
    pub fn length_from_wrist_flex_m(self) -> f64 {
        -JOINT_FRAMES[Joint::WristRoll.index()].origin_in_parent_m[1] + self.depth_in_gripper_m()
    }

    /// The tool frame in the gripper frame.
    pub fn gripper_from_tool(self) -> Isometry3<f64> {
        // Tool z = gripper −y (out of the jaws), tool x = gripper x: Rx(+90°).
        Isometry3::from_parts(
            Translation3::new(0.0, -self.depth_in_gripper_m(), 0.0),
            Axis::X.rotation(FRAC_PI_2),
        )
    }
}

impl std::str::FromStr for Tool {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown tool {s:?}: expected jaw_tip or sponge_face"))
    }
}

/// Joint frames with their zero-pose transforms precomputed.
pub(crate) struct Chain {
    /// `parent_from_child_at_zero` of each joint.
    pub parent_from_child_at_zero: [Isometry3<f64>; NUM_JOINTS],
    /// Each joint's axis in its child frame.
    pub axes: [Unit<Vector3<f64>>; NUM_JOINTS],
}

/// The chain, built once.
pub(crate) static CHAIN: LazyLock<Chain> = LazyLock::new(|| Chain {
    parent_from_child_at_zero: JOINT_FRAMES.map(|f| f.parent_from_child_at_zero()),
    axes: JOINT_FRAMES.map(|f| f.axis.unit()),
});

/// The point on the pan axis at the top of the base, in the base frame.
pub fn pan_axis_origin_in_base() -> Point3<f64> {
    let [x, y, z] = JOINT_FRAMES[Joint::ShoulderPan.index()].origin_in_parent_m;
    Point3::new(x, y, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_joints_line_up() {
        for (i, frame) in JOINT_FRAMES.iter().enumerate() {
            assert_eq!(frame.joint.index(), i);
            assert_eq!(Link::ALL[i + 1].joint(), Some(frame.joint));
            assert_eq!(Link::ALL[i + 1].parent(), Some(Link::ALL[i]));
        }
    }

    #[test]
    fn moving_mass_matches_reference() {
        let moving: f64 = INERTIALS[1..].iter().map(|i| i.mass_kg).sum();
        assert!((moving - 0.61).abs() < 0.01, "moving mass {moving}");
    }

    #[test]
    fn inertia_tensors_are_physical() {
        for (link, inertial) in Link::ALL.iter().zip(INERTIALS) {
            let tensor = inertial.tensor_in_link();
            assert!((tensor - tensor.transpose()).norm() < 1e-12, "{link}");
            let [a, b, c] = inertial.principal_moments_kg_m2;
            // Triangle inequality of principal moments holds for real bodies.
            assert!(a + b >= c && b + c >= a && a + c >= b, "{link}");
            assert!((tensor.trace() - (a + b + c)).abs() < 1e-12, "{link}");
        }
    }

    #[test]
    fn tool_lengths_match_reference() {
        // Reference: wrist-flex axis to jaw tip about 0.16 m.
        assert!((Tool::JawTip.length_from_wrist_flex_m() - 0.1615).abs() < 1e-12);
        assert!(Tool::SpongeFace.length_from_wrist_flex_m() > Tool::JawTip.length_from_wrist_flex_m());
    }
}
