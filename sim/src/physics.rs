//! The arm, the table and the held sponge as a rapier3d world (no Bevy).
//!
//! The arm is a reduced-coordinate multibody built from `robot`'s joint
//! frames and inertias, so its link poses are `robot`'s forward kinematics
//! of its joint coordinates. Each joint is driven like an STS3215: a
//! position loop with a stiffness, damping and a torque limit (the servo's
//! stall torque), fed a goal that moves at no more than the servo's top
//! speed, with the gearbox's reflected inertia added as armature.

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rapier3d::prelude::*;
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS, clamp_to_limits};
use sponge_robot::model::{
    COLLIDERS, INERTIALS, JOINT_FRAMES, Link, NUM_LINKS, SERVO_MAX_SPEED_RAD_S, SERVO_STALL_TORQUE_NM,
    SPONGE, Shape as ModelShape, Tool,
};

/// Physics time step, seconds (240 Hz).
pub const PHYSICS_DT_S: f64 = 1.0 / 240.0;

/// Table top thickness, metres (its top face is the base frame's z = 0).
const TABLE_THICKNESS_M: f32 = 0.03;
/// Table top half extents in x and y, metres.
const TABLE_HALF_EXTENTS_M: [f32; 2] = [0.5, 0.4];
/// Table centre in the base frame (x, y), metres: the arm sits near its back edge.
const TABLE_CENTRE_M: [f32; 2] = [0.0, -0.3];

/// Servo position-loop stiffness, N·m/rad: the stall torque is reached at
/// about 0.1 rad of error, as an STS3215 with its default P gain does.
pub const SERVO_STIFFNESS_NM_PER_RAD: f64 = 16.0;
/// Servo damping, N·m·s/rad.
pub const SERVO_DAMPING_NM_S_PER_RAD: f64 = 0.5;
/// Reflected rotor inertia of an STS3215's 1:345 gearbox, kg·m².
pub const SERVO_ARMATURE_KG_M2: f64 = 0.008;

/// Where the gripper's jaw would close to on the held sponge without
/// squeezing it, radians: the twin's jaw holds it at 0, squeezed by this.
const SPONGE_FREE_JAW_RAD: f64 = 0.04;
/// How hard the squeezed sponge pushes the jaw back, N·m/rad (soft foam:
/// at 0 about a tenth of the servo's stall torque).
const SPONGE_SQUEEZE_NM_PER_RAD: f64 = 4.0;

/// Collision groups: arm links, table, sponge.
const GROUP_ARM: Group = Group::GROUP_1;
const GROUP_TABLE: Group = Group::GROUP_2;
const GROUP_SPONGE: Group = Group::GROUP_3;

/// What can vary between twins (domain randomization draws these).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhysicsParams {
    /// Sponge–table friction coefficient.
    pub friction: f64,
    /// Multiplier of every servo's stiffness and damping.
    pub servo_gain_scale: f64,
    /// Sponge edge lengths (across the jaws, along the jaws, along the tool axis), metres.
    pub sponge_size_m: [f64; 3],
}

impl Default for PhysicsParams {
    fn default() -> Self {
        PhysicsParams {
            friction: 0.5,
            servo_gain_scale: 1.0,
            sponge_size_m: SPONGE.size_m,
        }
    }
}

impl PhysicsParams {
    /// How much further the wiping face sits along the tool axis than
    /// [`Tool::SpongeFace`] (which assumes `robot`'s nominal sponge), metres.
    pub fn sponge_face_extra_depth_m(&self) -> f64 {
        0.5 * (self.sponge_size_m[2] - SPONGE.size_m[2])
    }
}

/// Contact between the sponge and the table over one physics step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpongeContact {
    /// Normal force the sponge presses on the table with, newtons.
    pub normal_force_n: f64,
    /// Whether an arm link (not the sponge) touches the table.
    pub arm_on_table: bool,
}

/// One arm on one table, stepped at [`PHYSICS_DT_S`].
pub struct ArmWorld {
    world: PhysicsWorld,
    joints: [MultibodyJointHandle; NUM_JOINTS],
    table: ColliderHandle,
    sponge: ColliderHandle,
    arm_colliders: Vec<ColliderHandle>,
    params: PhysicsParams,
    /// The goal most recently commanded.
    goal: JointVector,
    /// The position the servos are moving to now (the goal, rate-limited).
    setpoint: JointVector,
    /// Where the sponge lies on the table after it was dropped (its centre).
    dropped: Option<Isometry3<f64>>,
    /// Whether something blocks the arm: the servos' setpoints stay where they are.
    blocked: bool,
    /// A hand holding joints off where the servos want them, if one is.
    shove: Option<Shove>,
}

/// A hand, stronger than the servos, that takes some joints `delta` away
/// from where they were (linearly over `ramp_steps` physics steps), holds
/// them there until `steps` have passed, and lets go.
#[derive(Debug, Clone, Copy)]
struct Shove {
    from: JointVector,
    delta: JointVector,
    ramp_steps: usize,
    steps: usize,
    done: usize,
}

fn pose_of(iso: &Isometry3<f64>) -> Pose {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Pose::from_parts(
        Vector::new(t.x as f32, t.y as f32, t.z as f32),
        Rotation::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32).normalize(),
    )
}

fn isometry_of(pose: &Pose) -> Isometry3<f64> {
    let t = pose.translation;
    let q = pose.rotation;
    Isometry3::from_parts(
        Translation3::new(t.x as f64, t.y as f64, t.z as f64),
        UnitQuaternion::new_normalize(nalgebra::Quaternion::new(
            q.w as f64, q.x as f64, q.y as f64, q.z as f64,
        )),
    )
}

fn vec3(v: [f64; 3]) -> Vector {
    Vector::new(v[0] as f32, v[1] as f32, v[2] as f32)
}

/// A rotation taking the x axis onto `axis` (rapier revolute joints turn about their frame's x).
fn x_onto(axis: &Vector3<f64>) -> UnitQuaternion<f64> {
    UnitQuaternion::rotation_between(&Vector3::x(), axis).unwrap_or_else(|| {
        // x onto −x: half a turn about z.
        UnitQuaternion::from_axis_angle(&Vector3::z_axis(), std::f64::consts::PI)
    })
}

impl ArmWorld {
    /// Builds the arm (at the calibration pose), the table and the held sponge.
    pub fn new(params: PhysicsParams) -> ArmWorld {
        let mut world = PhysicsWorld::new();
        world.gravity = Vector::new(0.0, 0.0, -9.81);
        world.integration_parameters.dt = PHYSICS_DT_S as f32;

        // Table: a fixed box whose top face is z = 0.
        let table_body = world.bodies.insert(RigidBodyBuilder::fixed());
        let table = world.colliders.insert_with_parent(
            ColliderBuilder::cuboid(
                TABLE_HALF_EXTENTS_M[0],
                TABLE_HALF_EXTENTS_M[1],
                0.5 * TABLE_THICKNESS_M,
            )
            .translation(Vector::new(
                TABLE_CENTRE_M[0],
                TABLE_CENTRE_M[1],
                -0.5 * TABLE_THICKNESS_M,
            ))
            .friction(params.friction as f32)
            .collision_groups(InteractionGroups::new(
                GROUP_TABLE,
                GROUP_ARM | GROUP_SPONGE,
                InteractionTestMode::And,
            )),
            table_body,
            &mut world.bodies,
        );

        // Links at the calibration pose, each with Menagerie's mass properties.
        let poses = sponge_robot::kinematics::forward(&[0.0; NUM_JOINTS]);
        let bodies: [RigidBodyHandle; NUM_LINKS] = std::array::from_fn(|i| {
            let link = Link::ALL[i];
            let inertial = &INERTIALS[i];
            let builder = if link == Link::Base {
                RigidBodyBuilder::fixed()
            } else {
                RigidBodyBuilder::dynamic().can_sleep(false)
            };
            let principal = inertial.principal_axes();
            let q = principal.quaternion();
            let mass = MassProperties::with_principal_inertia_frame(
                vec3(inertial.com_in_link_m),
                inertial.mass_kg as f32,
                vec3(inertial.principal_moments_kg_m2),
                Rotation::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32).normalize(),
            );
            world.bodies.insert(
                builder
                    .pose(pose_of(poses.base_from(link)))
                    .additional_mass_properties(mass),
            )
        });

        let mut arm_colliders = Vec::new();
        for collider in COLLIDERS {
            let builder = match collider.shape {
                ModelShape::Cuboid {
                    centre_m,
                    half_extents_m: h,
                } => {
                    ColliderBuilder::cuboid(h[0] as f32, h[1] as f32, h[2] as f32).translation(vec3(centre_m))
                }
                ModelShape::Capsule { a_m, b_m, radius_m } => {
                    ColliderBuilder::capsule_from_endpoints(vec3(a_m), vec3(b_m), radius_m as f32)
                }
            };
            arm_colliders.push(world.colliders.insert_with_parent(
                builder.density(0.0).collision_groups(InteractionGroups::new(
                    GROUP_ARM,
                    GROUP_TABLE,
                    InteractionTestMode::And,
                )),
                bodies[collider.link.index()],
                &mut world.bodies,
            ));
        }

        // The sponge: gripped 5 mm beyond the jaw tips, rigidly held by the gripper.
        let [sx, sy, sz] = params.sponge_size_m;
        let centre_depth = Tool::JawTip.depth_in_gripper_m() + SPONGE.centre_beyond_jaw_tip_m;
        let gripper_from_sponge = Isometry3::from_parts(
            Translation3::new(0.0, -centre_depth, 0.0),
            Tool::SpongeFace.gripper_from_tool().rotation,
        );
        let sponge = world.colliders.insert_with_parent(
            ColliderBuilder::cuboid(0.5 * sx as f32, 0.5 * sy as f32, 0.5 * sz as f32)
                .position(pose_of(&gripper_from_sponge))
                .density(0.0)
                .friction(params.friction as f32)
                .collision_groups(InteractionGroups::new(
                    GROUP_SPONGE,
                    GROUP_TABLE,
                    InteractionTestMode::And,
                )),
            bodies[Link::Gripper.index()],
            &mut world.bodies,
        );

        // Joints: revolute about the model's axis, frames from `robot`, no
        // contacts between neighbours, the servo's limits.
        let gains = params.servo_gain_scale as f32;
        let joints: [MultibodyJointHandle; NUM_JOINTS] = std::array::from_fn(|i| {
            let frame = &JOINT_FRAMES[i];
            let joint = Joint::ALL[i];
            let to_axis = x_onto(&frame.axis.unit());
            let frame1 = frame.parent_from_child_at_zero() * to_axis;
            let frame2 = Isometry3::from_parts(Translation3::identity(), to_axis);
            let limits = joint.limits();
            let generic = GenericJointBuilder::new(JointAxesMask::LOCKED_REVOLUTE_AXES)
                .local_frame1(pose_of(&frame1))
                .local_frame2(pose_of(&frame2))
                .contacts_enabled(false)
                .limits(JointAxis::AngX, [limits.min_rad as f32, limits.max_rad as f32])
                .motor_model(JointAxis::AngX, MotorModel::ForceBased)
                .motor_position(
                    JointAxis::AngX,
                    0.0,
                    SERVO_STIFFNESS_NM_PER_RAD as f32 * gains,
                    SERVO_DAMPING_NM_S_PER_RAD as f32 * gains,
                )
                .motor_max_force(JointAxis::AngX, SERVO_STALL_TORQUE_NM as f32)
                .build();
            world
                .multibody_joints
                .insert(bodies[i], bodies[i + 1], generic, true)
                .expect("a chain of links forms no loop")
        });

        let mut arm = ArmWorld {
            world,
            joints,
            table,
            sponge,
            arm_colliders,
            params,
            goal: [0.0; NUM_JOINTS],
            setpoint: [0.0; NUM_JOINTS],
            dropped: None,
            blocked: false,
            shove: None,
        };
        if let Some((multibody, _)) = arm.world.multibody_joints.get_mut(arm.joints[0]) {
            multibody.armature_mut().fill(SERVO_ARMATURE_KG_M2 as f32);
        }
        arm
    }

    /// The parameters this world was built with.
    pub fn params(&self) -> &PhysicsParams {
        &self.params
    }

    /// Moves the arm to `q_rad` at rest, with goal and setpoint there too.
    pub fn teleport(&mut self, q_rad: &JointVector) {
        let q = clamp_to_limits(q_rad);
        self.displace_to(&q, &[true; NUM_JOINTS]);
        self.goal = q;
        self.setpoint = q;
        self.apply_setpoint();
    }

    /// Puts the joints marked in `which` at `q`, at rest, leaving the
    /// others, goal and setpoint alone.
    fn displace_to(&mut self, q: &JointVector, which: &[bool; NUM_JOINTS]) {
        let current = self.joint_positions();
        let ArmWorld { world, joints, .. } = self;
        let Some((multibody, _)) = world.multibody_joints.get_mut(joints[0]) else {
            return;
        };
        for i in (0..joints.len()).filter(|&i| which[i]) {
            let Some(link) = multibody.link_mut(i + 1) else {
                continue;
            };
            link.joint.apply_displacement(&[(q[i] - current[i]) as f32]);
            let dof = link.assembly_id();
            multibody.generalized_velocity_mut()[dof] = 0.0;
        }
        multibody.forward_kinematics(&world.bodies, false);
        multibody.update_rigid_bodies(&mut world.bodies, true);
    }

    /// A shove from outside: a hand takes the joints `delta_rad` away from
    /// where they are over `ramp_s`, holds them there (within their limits)
    /// until `total_s` has passed, and lets go; the servos keep their goal
    /// throughout, so they pull back then. Joints with a zero delta are left
    /// to the servos.
    pub fn shove(&mut self, delta_rad: &JointVector, ramp_s: f64, total_s: f64) {
        let ramp_steps = (ramp_s / PHYSICS_DT_S).round().max(1.0) as usize;
        self.shove = Some(Shove {
            from: self.joint_positions(),
            delta: *delta_rad,
            ramp_steps,
            steps: ((total_s / PHYSICS_DT_S).round() as usize).max(ramp_steps),
            done: 0,
        });
    }

    /// Whether a hand is holding the arm off (see [`ArmWorld::shove`]).
    pub fn shoved(&self) -> bool {
        self.shove.is_some()
    }

    /// Puts the joints that `shove` moves where the hand has them now, at
    /// rest, and lets go when its time is up.
    fn hold_shoved_joints(&mut self) {
        let Some(shove) = self.shove.as_mut() else {
            return;
        };
        shove.done += 1;
        let reach = (shove.done as f64 / shove.ramp_steps as f64).min(1.0);
        let held = clamp_to_limits(&std::array::from_fn(|i| shove.from[i] + reach * shove.delta[i]));
        let shoved = shove.delta.map(|d| d != 0.0);
        if shove.done >= shove.steps {
            self.shove = None;
        }
        self.displace_to(&held, &shoved);
    }

    /// Something blocks the arm (or stops blocking it): while blocked, the
    /// servos hold where they are whatever they are told.
    pub fn set_blocked(&mut self, blocked: bool) {
        self.blocked = blocked;
    }

    /// The gripper lets the sponge go: it falls flat onto the table below
    /// where it was and wipes no more.
    pub fn drop_sponge(&mut self) {
        if self.dropped.is_some() {
            return;
        }
        let centre = self.sponge_centre();
        let yaw = centre.rotation.euler_angles().2;
        let resting = Isometry3::from_parts(
            Translation3::new(
                centre.translation.x,
                centre.translation.y,
                0.5 * self.params.sponge_size_m[2],
            ),
            UnitQuaternion::from_euler_angles(0.0, 0.0, yaw),
        );
        if let Some(collider) = self.world.colliders.get_mut(self.sponge) {
            collider.set_enabled(false);
        }
        self.dropped = Some(resting);
    }

    /// Whether the sponge was dropped.
    pub fn sponge_dropped(&self) -> bool {
        self.dropped.is_some()
    }

    /// The gripper servo's load as a fraction of its stall torque (what
    /// its `Present_Load` register reads, in thousandths): the torque that
    /// keeps the held sponge squeezed, 0 once it is dropped. The twin's
    /// sponge is fixed to the gripper and does not push the jaw back, so
    /// the jaw's reading does not show the squeeze; only this does, from
    /// the jaw's goal.
    pub fn gripper_load(&self) -> f64 {
        if self.dropped.is_some() {
            return 0.0;
        }
        // The servo pushes the jaw towards its goal until the foam pushes
        // back as hard: the squeeze follows the goal, not the twin's jaw.
        let goal = self.goal[Joint::Gripper.index()];
        let torque = SPONGE_SQUEEZE_NM_PER_RAD * (SPONGE_FREE_JAW_RAD - goal).max(0.0);
        ((torque / SERVO_STALL_TORQUE_NM).min(1.0) * 1000.0).round() / 1000.0
    }

    /// The sponge's centre: in the gripper, or where it lies after a drop.
    pub fn sponge_centre(&self) -> Isometry3<f64> {
        self.dropped.unwrap_or_else(|| {
            self.sponge_face() * Translation3::new(0.0, 0.0, -0.5 * self.params.sponge_size_m[2])
        })
    }

    /// Commands the servos' goal positions (clamped to the joint limits).
    pub fn set_goal(&mut self, q_rad: &JointVector) {
        self.goal = clamp_to_limits(q_rad);
    }

    /// The goal most recently commanded.
    pub fn goal(&self) -> &JointVector {
        &self.goal
    }

    fn apply_setpoint(&mut self) {
        let gains = self.params.servo_gain_scale as f32;
        let Some((multibody, _)) = self.world.multibody_joints.get_mut(self.joints[0]) else {
            return;
        };
        for i in 0..NUM_JOINTS {
            if let Some(link) = multibody.link_mut(i + 1) {
                link.joint.data.set_motor_position(
                    JointAxis::AngX,
                    self.setpoint[i] as f32,
                    SERVO_STIFFNESS_NM_PER_RAD as f32 * gains,
                    SERVO_DAMPING_NM_S_PER_RAD as f32 * gains,
                );
            }
        }
    }

    /// Advances one physics step; returns the sponge's contact over it.
    pub fn step(&mut self) -> SpongeContact {
        let max_move = if self.blocked {
            0.0
        } else {
            SERVO_MAX_SPEED_RAD_S * PHYSICS_DT_S
        };
        for i in 0..NUM_JOINTS {
            let delta = (self.goal[i] - self.setpoint[i]).clamp(-max_move, max_move);
            self.setpoint[i] += delta;
        }
        self.apply_setpoint();
        self.world.step();
        self.hold_shoved_joints();
        self.contact()
    }

    /// The sponge–table contact as of the last step.
    pub fn contact(&self) -> SpongeContact {
        let dt = PHYSICS_DT_S;
        let held = self.dropped.is_none();
        let normal_force_n = self
            .world
            .narrow_phase
            .contact_pair(self.table, self.sponge)
            .filter(|_| held)
            .map(|pair| pair.total_impulse().z.abs() as f64 / dt)
            .unwrap_or(0.0);
        let arm_on_table = self.arm_colliders.iter().any(|&c| {
            self.world
                .narrow_phase
                .contact_pair(self.table, c)
                .is_some_and(|pair| pair.has_any_active_contact())
        });
        SpongeContact {
            normal_force_n,
            arm_on_table,
        }
    }

    /// Joint positions, radians (the multibody's own coordinates).
    pub fn joint_positions(&self) -> JointVector {
        let mut q = [0.0; NUM_JOINTS];
        if let Some((multibody, _)) = self.world.multibody_joints.get(self.joints[0]) {
            for (i, qi) in q.iter_mut().enumerate() {
                if let Some(link) = multibody.link(i + 1) {
                    *qi = link.joint().coords()[3] as f64;
                }
            }
        }
        q
    }

    /// Joint velocities, rad/s.
    pub fn joint_velocities(&self) -> JointVector {
        let mut v = [0.0; NUM_JOINTS];
        if let Some((multibody, _)) = self.world.multibody_joints.get(self.joints[0]) {
            for (i, vi) in v.iter_mut().enumerate() {
                if let Some(link) = multibody.link(i + 1) {
                    *vi = multibody.joint_velocity(link)[0] as f64;
                }
            }
        }
        v
    }

    /// Every link's pose in the base frame, in [`Link::ALL`] order.
    pub fn link_poses(&self) -> [Isometry3<f64>; NUM_LINKS] {
        let mut poses = [Isometry3::identity(); NUM_LINKS];
        if let Some((multibody, _)) = self.world.multibody_joints.get(self.joints[0]) {
            for (i, pose) in poses.iter_mut().enumerate() {
                if let Some(link) = multibody.link(i) {
                    *pose = isometry_of(link.local_to_world());
                }
            }
        }
        poses
    }

    /// One link's pose in the base frame.
    pub fn link_pose(&self, link: Link) -> Isometry3<f64> {
        self.world
            .multibody_joints
            .get(self.joints[0])
            .and_then(|(multibody, _)| multibody.link(link.index()))
            .map(|l| isometry_of(l.local_to_world()))
            .unwrap_or_else(Isometry3::identity)
    }

    /// The sponge's wiping face: origin at the face centre, z out of the
    /// face (down onto the table when wiping), x across the jaws.
    pub fn sponge_face(&self) -> Isometry3<f64> {
        let gripper = self.link_pose(Link::Gripper);
        let extra = self.params.sponge_face_extra_depth_m();
        gripper * Tool::SpongeFace.gripper_from_tool() * Translation3::new(0.0, 0.0, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_onto_maps_x_to_each_axis() {
        for axis in [Vector3::x(), Vector3::y(), Vector3::z(), -Vector3::x()] {
            let r = x_onto(&axis);
            assert!((r * Vector3::x() - axis).norm() < 1e-12, "{axis:?}");
        }
    }
}
