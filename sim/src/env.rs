//! One spill-wiping environment with a gym-style API (state only; see
//! [`crate::VecEnv`] for rendered cameras and many environments at once).
//!
//! Everything random in an episode (scene, physics parameters, looks,
//! initial joint noise) is drawn from the seed given to [`Env::reset`], so
//! the same seed gives the same episode.

use nalgebra::Isometry3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};

use crate::physics::{ArmWorld, PHYSICS_DT_S, PhysicsParams};
use crate::spill::{FORCE_LIMIT_N, wipe};
use crate::task::Scene;

/// Names of [`Env::environment_state`]'s entries, as datasets record them.
pub const ENVIRONMENT_STATE_NAMES: [&str; 4] =
    ["target.x_m", "target.y_m", "target.dirt_left", "contact.force_n"];

/// How an environment runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvConfig {
    /// Control (and camera) rate, Hz; must divide 240.
    pub fps: u32,
    /// Episode time limit, seconds.
    pub time_limit_s: f64,
    /// Camera image edge, pixels (square images).
    pub image_size: u32,
    /// Whether a wrist camera is rendered besides the front one.
    pub wrist_camera: bool,
    /// Whether the episode ends as soon as the named spills are clean.
    pub end_on_success: bool,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            fps: 30,
            time_limit_s: 20.0,
            image_size: 96,
            wrist_camera: false,
            end_on_success: true,
        }
    }
}

impl EnvConfig {
    /// Physics steps per control step.
    pub fn substeps(&self) -> usize {
        ((1.0 / PHYSICS_DT_S) as u32 / self.fps.max(1)).max(1) as usize
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        let rate = (1.0 / PHYSICS_DT_S).round() as u32;
        if self.fps == 0 || !rate.is_multiple_of(self.fps) {
            return Err(format!(
                "fps {} must divide the physics rate of {rate} Hz",
                self.fps
            ));
        }
        if self.time_limit_s.is_nan() || self.time_limit_s <= 0.0 {
            return Err(format!("time limit {} s must be positive", self.time_limit_s));
        }
        if !(16..=640).contains(&self.image_size) {
            return Err(format!(
                "image size {} px must be within 16..=640",
                self.image_size
            ));
        }
        Ok(())
    }

    /// Control steps in a full-length episode.
    pub fn max_steps(&self) -> usize {
        (self.time_limit_s * self.fps as f64).round() as usize
    }
}

/// How the scene looks: all drawn from the episode seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Appearance {
    /// Table colour (sRGB 0..1).
    pub table_colour: [f32; 3],
    /// Strength of the table's grain texture, 0..1.
    pub table_grain: f32,
    /// Seed of the table's grain pattern.
    pub table_pattern_seed: u64,
    /// Sponge colour (sRGB 0..1).
    pub sponge_colour: [f32; 3],
    /// Direction the key light shines from (base frame, unnormalised).
    pub light_direction: [f32; 3],
    /// Key light illuminance, lux.
    pub light_lux: f32,
    /// Key light colour (sRGB 0..1).
    pub light_colour: [f32; 3],
    /// Ambient light brightness, cd/m².
    pub ambient: f32,
    /// Front camera offset from its nominal position, metres (base frame).
    pub camera_offset_m: [f32; 3],
    /// Front camera vertical field of view, degrees.
    pub camera_fov_deg: f32,
}

impl Appearance {
    /// Draws the looks of an episode.
    pub fn random(rng: &mut impl Rng) -> Appearance {
        let u = |rng: &mut dyn rand::RngCore, lo: f32, hi: f32| lo + (hi - lo) * rng.random::<f32>();
        let tables = [
            [0.78, 0.66, 0.50],
            [0.85, 0.85, 0.82],
            [0.55, 0.42, 0.30],
            [0.70, 0.74, 0.76],
        ];
        let base = tables[rng.random_range(0..tables.len())];
        let jitter = u(rng, -0.05, 0.05);
        Appearance {
            table_colour: base.map(|c| (c + jitter).clamp(0.0, 1.0)),
            table_grain: u(rng, 0.0, 0.12),
            table_pattern_seed: rng.random(),
            sponge_colour: [
                [0.95, 0.85, 0.2],
                [0.3, 0.75, 0.3],
                [0.9, 0.45, 0.2],
                [0.35, 0.5, 0.9],
            ][rng.random_range(0..4)],
            light_direction: [u(rng, -0.6, 0.6), u(rng, -0.2, 0.6), 1.0],
            light_lux: u(rng, 2500.0, 6000.0),
            light_colour: [1.0, u(rng, 0.9, 1.0), u(rng, 0.8, 1.0)],
            ambient: u(rng, 300.0, 700.0),
            camera_offset_m: [
                u(rng, -0.025, 0.025),
                u(rng, -0.025, 0.025),
                u(rng, -0.025, 0.025),
            ],
            camera_fov_deg: crate::render::FRONT_FOV_DEG + u(rng, -2.0, 2.0),
        }
    }
}

/// What a policy sees after a step (images are filled in by a renderer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Measured joint positions, radians.
    pub state: JointVector,
    /// RGB8 images, one per camera (front, then wrist), row-major; empty without a renderer.
    pub images: Vec<Vec<u8>>,
    /// The gripper servo's load, a fraction of its stall torque (see
    /// [`ArmWorld::gripper_load`]).
    pub gripper_load: f64,
}

/// What happened in a step, besides the reward.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepInfo {
    /// Fraction cleaned of every spill, in scene order.
    pub spill_fractions: Vec<f64>,
    /// Fraction cleaned of the named spills together.
    pub target_fraction: f64,
    /// Largest sponge normal force at any physics step within the step, newtons.
    pub max_force_n: f64,
    /// Sponge normal force averaged over the step, newtons: what a load
    /// cell read at the control rate would see.
    pub mean_force_n: f64,
    /// Whether the sponge pressed harder than [`FORCE_LIMIT_N`] over the
    /// step (on the mean force, so that a single solver-step impulse of
    /// 1/240 s does not count as pressing too hard).
    pub force_violation: bool,
    /// Whether the action asked for a joint beyond its limits.
    pub joint_limit_violation: bool,
    /// Whether an arm link (not the sponge) touched the table.
    pub arm_on_table: bool,
    /// Whether the named spills are clean and no limit was ever exceeded.
    pub success: bool,
    /// Whether the episode ended by running out of time.
    pub truncated: bool,
}

/// The result of [`Env::step`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub observation: Observation,
    /// Reward: fraction of the named spills cleaned, minus 0.5 in a step
    /// that pressed too hard.
    pub reward: f64,
    /// Whether the episode is over.
    pub done: bool,
    /// Details.
    pub info: StepInfo,
}

/// Tolerance for counting an action beyond the joint limits, radians.
const LIMIT_TOL_RAD: f64 = 1e-3;

/// One environment.
pub struct Env {
    config: EnvConfig,
    seed: u64,
    arm: ArmWorld,
    scene: Scene,
    appearance: Appearance,
    steps: usize,
    done: bool,
    violated: bool,
    face: Isometry3<f64>,
    last_force_n: f64,
    noise_rng: ChaCha8Rng,
    looks_version: u32,
    camera_cover: f32,
}

/// Where each episode starts before noise: above the middle of the work
/// area, sponge down, 8 cm over the table.
pub fn ready_pose() -> JointVector {
    use sponge_robot::ik::{IkTarget, solve};
    use sponge_robot::model::Tool;
    let target = IkTarget {
        position_in_base_m: nalgebra::Point3::new(0.0, -0.21, 0.08),
        pitch_rad: std::f64::consts::FRAC_PI_2,
        roll_rad: Some(0.0),
    };
    solve(&target, &[0.0; NUM_JOINTS], Tool::SpongeFace).unwrap_or([0.0; NUM_JOINTS])
}

impl Env {
    /// An environment, reset to `seed`.
    pub fn new(config: EnvConfig, seed: u64) -> Env {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (scene, appearance, params, q0) = draw_episode(&mut rng);
        let mut arm = ArmWorld::new(params);
        arm.teleport(&q0);
        let face = arm.sponge_face();
        Env {
            config,
            seed,
            arm,
            scene,
            appearance,
            steps: 0,
            done: false,
            violated: false,
            face,
            last_force_n: 0.0,
            noise_rng: rng,
            looks_version: 0,
            camera_cover: 0.0,
        }
    }

    /// Starts a new episode from `seed`; returns the first observation.
    pub fn reset(&mut self, seed: u64) -> Observation {
        *self = Env::new(self.config.clone(), seed);
        self.observe()
    }

    /// Applies `action` (joint goal positions, radians) for one control
    /// step of `1/fps` seconds.
    pub fn step(&mut self, action: &JointVector) -> Step {
        let joint_limit_violation = Joint::ALL.iter().any(|j| {
            let q = action[j.index()];
            !q.is_finite() || !j.limits().contains(q, LIMIT_TOL_RAD)
        });
        self.arm.set_goal(action);
        let mut max_force_n: f64 = 0.0;
        let mut sum_force_n = 0.0;
        let mut arm_on_table = false;
        let half = {
            let s = self.arm.params().sponge_size_m;
            [0.5 * s[0], 0.5 * s[1]]
        };
        for _ in 0..self.config.substeps() {
            let contact = self.arm.step();
            let face = self.arm.sponge_face();
            wipe(
                &mut self.scene.spills,
                &self.face,
                &face,
                contact.normal_force_n,
                half,
            );
            self.face = face;
            max_force_n = max_force_n.max(contact.normal_force_n);
            sum_force_n += contact.normal_force_n;
            arm_on_table |= contact.arm_on_table;
            self.last_force_n = contact.normal_force_n;
        }
        self.steps += 1;
        let mean_force_n = sum_force_n / self.config.substeps() as f64;
        let force_violation = mean_force_n > FORCE_LIMIT_N;
        self.violated |= force_violation || joint_limit_violation;
        let target_fraction = self.scene.target_fraction_cleaned();
        let success = self.scene.targets_clean() && !self.violated;
        let truncated = self.steps >= self.config.max_steps();
        self.done = truncated || (success && self.config.end_on_success);
        let reward = target_fraction - if force_violation { 0.5 } else { 0.0 };
        Step {
            observation: self.observe(),
            reward,
            done: self.done,
            info: StepInfo {
                spill_fractions: self.scene.fractions_cleaned(),
                target_fraction,
                max_force_n,
                mean_force_n,
                force_violation,
                joint_limit_violation,
                arm_on_table,
                success,
                truncated: truncated && !success,
            },
        }
    }

    /// The current observation (without images).
    pub fn observe(&self) -> Observation {
        Observation {
            state: self.arm.joint_positions(),
            images: Vec::new(),
            gripper_load: self.arm.gripper_load(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// The seed of this episode.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The scene (spills, instruction, named spills).
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// The scene, for changing it (tests, fault injection).
    pub fn scene_mut(&mut self) -> &mut Scene {
        &mut self.scene
    }

    /// How the episode looks.
    pub fn appearance(&self) -> &Appearance {
        &self.appearance
    }

    /// How the episode looks, for changing it (faults, unfamiliar scenes):
    /// the renderer redraws the scene's looks.
    pub fn appearance_mut(&mut self) -> &mut Appearance {
        self.looks_version += 1;
        &mut self.appearance
    }

    /// Counts changes of the looks within the episode (see [`Env::appearance_mut`]).
    pub fn looks_version(&self) -> u32 {
        self.looks_version
    }

    /// Tells the renderer that the spills' colours changed.
    pub fn spill_colours_changed(&mut self) {
        self.looks_version += 1;
    }

    /// Fraction of the front camera's picture covered by something in front
    /// of its lens (0: none).
    pub fn camera_cover(&self) -> f32 {
        self.camera_cover
    }

    /// Covers `fraction` of the front camera's picture (0 uncovers it).
    pub fn set_camera_cover(&mut self, fraction: f32) {
        self.camera_cover = fraction.clamp(0.0, 1.0);
    }

    /// The physics world.
    pub fn arm(&self) -> &ArmWorld {
        &self.arm
    }

    /// The physics world, for changing it (tests, fault injection).
    pub fn arm_mut(&mut self) -> &mut ArmWorld {
        &mut self.arm
    }

    /// Control steps taken this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether the episode is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Sponge normal force at the last physics step, newtons.
    pub fn last_force_n(&self) -> f64 {
        self.last_force_n
    }

    /// What the twin knows of the scene that a camera only shows, for
    /// datasets (`observation.environment_state`, entries named by
    /// [`ENVIRONMENT_STATE_NAMES`]): where the dirt left of spill `target`
    /// is (base frame, metres), the fraction of it left, and the sponge's
    /// contact force.
    pub fn environment_state(&self, target: usize) -> [f32; 4] {
        let Some(spill) = self.scene.spills.get(target) else {
            return [0.0, 0.0, 0.0, self.last_force_n as f32];
        };
        let [x, y] = spill.remaining_centre_m();
        [
            x as f32,
            y as f32,
            (1.0 - spill.fraction_cleaned()) as f32,
            self.last_force_n as f32,
        ]
    }

    /// The named spill to wipe next when nobody says otherwise: of those
    /// not yet clean, the one nearest the sponge; the last named one when
    /// all are.
    pub fn next_target(&self) -> usize {
        let face = self.arm.sponge_face().translation.vector;
        let spills = &self.scene.spills;
        self.scene
            .targets
            .iter()
            .copied()
            .filter(|&i| spills[i].fraction_cleaned() < crate::expert::DONE_FRACTION)
            .min_by(|&a, &b| {
                let distance = |i: usize| {
                    let [x, y] = spills[i].remaining_centre_m();
                    (x - face.x).hypot(y - face.y)
                };
                distance(a).total_cmp(&distance(b))
            })
            .or_else(|| self.scene.targets.last().copied())
            .unwrap_or(0)
    }

    /// Puts the episode in a random state as if mid-wipe, for scenes where
    /// the arm is not heading to the named spill (to train a perception
    /// that cannot read the target from where the arm is): the arm at rest
    /// at a random pose over the work area (the sponge flat, anywhere in
    /// reach, from just above the table to 12 cm over it), and each spill
    /// wiped by up to four random strokes of about the sponge's width (no
    /// stroke for about a third of them), each leaving 0-30% of the dirt
    /// it passes over. Draws from the episode's noise stream.
    pub fn scatter(&mut self) {
        let rng = &mut self.noise_rng;
        let size = self.arm.params().sponge_size_m;
        for spill in &mut self.scene.spills {
            let strokes = if rng.random::<f64>() < 0.35 {
                0
            } else {
                rng.random_range(1..=4)
            };
            for _ in 0..strokes {
                let [cx, cy] = spill.centre_m;
                let p = [
                    cx + rng.random_range(-0.03..0.03),
                    cy + rng.random_range(-0.03..0.03),
                ];
                let angle = rng.random_range(0.0..std::f64::consts::PI);
                let (along, across) = ([angle.cos(), angle.sin()], [-angle.sin(), angle.cos()]);
                let half_width = 0.5 * rng.random_range(size[0].min(size[1])..=size[0].max(size[1]));
                let half_length = rng.random_range(0.02..0.08);
                let left = rng.random_range(0.0..0.3f32);
                for (i, d) in spill.dirt.iter_mut().enumerate() {
                    if *d <= 0.0 {
                        continue;
                    }
                    let [x, y] =
                        crate::spill::cell_centre(i % crate::spill::GRID_NX, i / crate::spill::GRID_NX);
                    let v = [x - p[0], y - p[1]];
                    let dot = |a: [f64; 2]| a[0] * v[0] + a[1] * v[1];
                    if dot(along).abs() <= half_length && dot(across).abs() <= half_width {
                        *d *= left;
                    }
                }
            }
        }
        use sponge_robot::ik::{IkTarget, solve};
        // Anywhere the spills may lie and a little beyond (see
        // `task::spill_centre`), drawn again where the arm cannot reach.
        let from = self.arm.joint_positions();
        for _ in 0..32 {
            let r = rng.random_range(0.10..0.25);
            let a = rng.random_range(-0.95..0.95f64);
            let target = IkTarget {
                position_in_base_m: nalgebra::Point3::new(
                    r * a.sin(),
                    -0.0452 - r * a.cos(),
                    rng.random_range(0.005..0.12),
                ),
                pitch_rad: std::f64::consts::FRAC_PI_2,
                roll_rad: Some(rng.random_range(-0.6..0.6)),
            };
            if let Ok(q) = solve(&target, &from, sponge_robot::model::Tool::SpongeFace) {
                self.arm.teleport(&q);
                break;
            }
        }
        self.face = self.arm.sponge_face();
    }

    /// A random number source for the episode's own noise (the expert's),
    /// continuing the episode seed's stream.
    pub fn noise_rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.noise_rng
    }
}

/// Draws scene, looks, physics parameters and the initial pose, in that order.
fn draw_episode(rng: &mut ChaCha8Rng) -> (Scene, Appearance, PhysicsParams, JointVector) {
    let scene = Scene::random(rng);
    let appearance = Appearance::random(rng);
    let s = sponge_robot::model::SPONGE.size_m;
    let scale = rng.random_range(0.9..1.1);
    let params = PhysicsParams {
        friction: rng.random_range(0.3..0.7),
        servo_gain_scale: rng.random_range(0.85..1.15),
        sponge_size_m: [s[0] * scale, s[1] * rng.random_range(0.9..1.1), s[2] * scale],
    };
    let ready = ready_pose();
    let q0 = std::array::from_fn(|i| ready[i] + rng.random_range(-0.05..0.05));
    (scene, appearance, params, q0)
}
