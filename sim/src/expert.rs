//! The scripted expert: wipes the named spills as a careful person with a
//! leader arm would.
//!
//! For each named spill, nearest first: travel above it, lower the sponge
//! until it presses, sweep back and forth in rows over the spill's dirty
//! extent, and sweep again over what remains until it is clean; then lift
//! and go to the next. It plans the sponge face's path in the base frame
//! and turns it into joint goals with `robot`'s IK, holding the sponge
//! flat with its long side across the rows. It presses with a target force
//! (more for ink) by adjusting how far below the table surface it aims.
//!
//! It sees what the twin knows (the dirt grid and the contact force): it
//! is a demonstrator, not a policy. Its pace, pressure, row spacing and
//! starting corner vary with the episode, and its path wobbles a little.

use std::f64::consts::{FRAC_PI_2, PI};

use nalgebra::{Point3, Vector3};
use rand::Rng;
use sponge_robot::ik::{IkTarget, solve};
use sponge_robot::joint::{Joint, JointVector};
use sponge_robot::model::Tool;

use crate::env::Env;
use crate::spill::SpillKind;

/// Height above the table for travelling between spills, metres.
const HOVER_M: f64 = 0.04;
/// The expert moves on from a spill cleaned this far.
pub const DONE_FRACTION: f64 = 0.97;
/// Cells with less dirt than this do not make a spill's extent.
const DIRTY_CELL: f32 = 0.08;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Move at hover height to above the next spill's first row.
    Travel,
    /// Lower until pressing.
    Descend,
    /// Follow the rows, pressing.
    Sweep,
    /// Rise to hover height.
    Lift,
    /// Nothing left to do: hold above the table.
    Finished,
}

/// The scripted expert for one episode.
pub struct Expert {
    phase: Phase,
    /// Named spills left to wipe, in order.
    queue: Vec<usize>,
    /// Waypoints (x, y) of the current sweep.
    path: Vec<[f64; 2]>,
    next_waypoint: usize,
    /// Commanded face centre, base frame.
    point: Point3<f64>,
    /// How far below the table surface the face is aimed while pressing, metres.
    depth_m: f64,
    roll_rad: f64,
    goal: JointVector,
    /// Episode style.
    sweep_speed_m_s: f64,
    travel_speed_m_s: f64,
    row_overlap: f64,
    force_scale: f64,
    wobble_phase: [f64; 2],
    wobble_m: f64,
    time_s: f64,
    dt_s: f64,
}

impl Expert {
    /// An expert for the episode `env` has just been reset to (draws its
    /// style from the episode's noise stream).
    pub fn new(env: &mut Env) -> Expert {
        let dt_s = 1.0 / env.config().fps as f64;
        let face = env.arm().sponge_face().translation.vector;
        let goal = *env.arm().goal();
        let rng = env.noise_rng();
        let sweep_speed_m_s = rng.random_range(0.09..0.13);
        let travel_speed_m_s = rng.random_range(0.12..0.18);
        let row_overlap = rng.random_range(0.62..0.75);
        let force_scale = rng.random_range(0.9..1.1);
        let wobble_phase = [rng.random_range(0.0..2.0 * PI), rng.random_range(0.0..2.0 * PI)];
        let wobble_m = rng.random_range(0.0..0.003);
        let scene = env.scene();
        let mut queue = scene.targets.clone();
        // Nearest first from the start, then greedily nearest to the last.
        let mut ordered = Vec::new();
        let mut at = [face.x, face.y];
        while !queue.is_empty() {
            let (k, _) = queue
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let c = scene.spills[i].centre_m;
                    (k, (c[0] - at[0]).hypot(c[1] - at[1]))
                })
                .fold((0, f64::MAX), |best, x| if x.1 < best.1 { x } else { best });
            let i = queue.swap_remove(k);
            at = scene.spills[i].centre_m;
            ordered.push(i);
        }
        ordered.reverse();
        Expert {
            phase: Phase::Lift,
            queue: ordered,
            path: Vec::new(),
            next_waypoint: 0,
            point: Point3::from(face),
            depth_m: 0.0,
            roll_rad: goal[Joint::WristRoll.index()],
            goal,
            sweep_speed_m_s,
            travel_speed_m_s,
            row_overlap,
            force_scale,
            wobble_phase,
            wobble_m,
            time_s: 0.0,
            dt_s,
        }
    }

    /// The joint goals for the next control step.
    pub fn act(&mut self, env: &mut Env) -> JointVector {
        self.time_s += self.dt_s;
        let current = self.queue.last().copied();
        match self.phase {
            Phase::Lift => {
                if self.move_towards_height(HOVER_M, 0.08) {
                    self.phase = match current {
                        Some(i) => {
                            self.plan_sweep(env, i);
                            Phase::Travel
                        }
                        None => Phase::Finished,
                    };
                }
            }
            Phase::Travel => {
                let first = self.path.first().copied().unwrap_or([self.point.x, self.point.y]);
                self.point.z = HOVER_M;
                if self.move_towards_xy(first, self.travel_speed_m_s) {
                    self.depth_m = 0.0;
                    self.phase = Phase::Descend;
                }
            }
            Phase::Descend => {
                let force = env.last_force_n();
                let target = self.target_force(env);
                if force >= 0.5 * target {
                    self.phase = Phase::Sweep;
                    self.next_waypoint = 1;
                    self.depth_m = -self.point.z.min(0.0);
                } else {
                    // Quickly to just above the table, then gently onto it.
                    let speed = if self.point.z > 0.012 { 0.06 } else { 0.012 };
                    self.point.z -= speed * self.dt_s;
                }
            }
            Phase::Sweep => {
                self.press(env);
                match self.path.get(self.next_waypoint).copied() {
                    Some(w) => {
                        if self.move_towards_xy(w, self.sweep_speed_m_s) {
                            self.next_waypoint += 1;
                        }
                    }
                    None => {
                        let Some(i) = current else {
                            self.phase = Phase::Lift;
                            return self.solve_goal(env);
                        };
                        if env.scene().spills[i].fraction_cleaned() >= DONE_FRACTION {
                            self.queue.pop();
                            self.phase = Phase::Lift;
                        } else {
                            // Sweep again over what is left, starting where we are.
                            self.plan_sweep(env, i);
                            self.next_waypoint = 0;
                        }
                    }
                }
            }
            Phase::Finished => {
                self.move_towards_height(HOVER_M + 0.02, 0.05);
            }
        }
        self.solve_goal(env)
    }

    /// The named spill being wiped or travelled to (the last one once all
    /// are wiped).
    pub fn target(&self, env: &Env) -> usize {
        self.queue.last().copied().unwrap_or_else(|| env.next_target())
    }

    /// Whether every named spill has been wiped and the sponge lifted.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    fn target_force(&self, env: &Env) -> f64 {
        let hardest = self
            .queue
            .last()
            .map(|&i| env.scene().spills[i].kind)
            .unwrap_or(SpillKind::Water);
        let base = match hardest {
            SpillKind::Water => 3.5,
            SpillKind::Coffee => 4.5,
            SpillKind::Ink => 6.0,
        };
        base * self.force_scale
    }

    /// Adjusts the aim below the surface towards the target force.
    fn press(&mut self, env: &Env) {
        let error = self.target_force(env) - env.last_force_n();
        self.depth_m = (self.depth_m + 0.0006 * error).clamp(0.0, 0.05);
        self.point.z = -self.depth_m;
    }

    /// Rows across the named spill's remaining dirt, starting from the end nearest the sponge.
    fn plan_sweep(&mut self, env: &mut Env, spill: usize) {
        let size = env.arm().params().sponge_size_m;
        let scene = env.scene();
        let Some([x0, y0, x1, y1]) = scene.spills[spill]
            .extent(DIRTY_CELL)
            .or_else(|| scene.spills[spill].extent(0.0))
        else {
            self.path = vec![[self.point.x, self.point.y]];
            return;
        };
        let half_across = 0.5 * size[0];
        let half_along = 0.5 * size[1];
        let spacing = 2.0 * half_along * self.row_overlap;
        let (xa, xb) = (x0 + 0.6 * half_across, x1 - 0.6 * half_across);
        let (xa, xb) = if xa > xb {
            (0.5 * (x0 + x1), 0.5 * (x0 + x1))
        } else {
            (xa, xb)
        };
        let (ya, yb) = (y0 + 0.7 * half_along, y1 - 0.7 * half_along);
        let rows = if yb > ya {
            ((yb - ya) / spacing).ceil() as usize + 1
        } else {
            1
        };
        let row_y: Vec<f64> = if rows == 1 {
            vec![0.5 * (y0 + y1)]
        } else {
            (0..rows)
                .map(|r| ya + (yb - ya) * r as f64 / (rows - 1) as f64)
                .collect()
        };
        let rng = env.noise_rng();
        let mut row_y = row_y;
        if (row_y[0] - self.point.y).abs() > (row_y[row_y.len() - 1] - self.point.y).abs() {
            row_y.reverse();
        }
        let mut left_first = (xa - self.point.x).abs() < (xb - self.point.x).abs();
        if rng.random::<f64>() < 0.2 {
            left_first = !left_first;
        }
        let overshoot = rng.random_range(0.004..0.012);
        let mut path = Vec::with_capacity(2 * row_y.len());
        for y in row_y {
            let (a, b) = if left_first {
                (xa - overshoot, xb + overshoot)
            } else {
                (xb + overshoot, xa - overshoot)
            };
            path.push([a, y]);
            path.push([b, y]);
            left_first = !left_first;
        }
        self.path = path;
    }

    /// Moves the commanded point towards `to` in the table plane; true when there.
    fn move_towards_xy(&mut self, to: [f64; 2], speed_m_s: f64) -> bool {
        let d = Vector3::new(to[0] - self.point.x, to[1] - self.point.y, 0.0);
        let step = speed_m_s * self.dt_s;
        if d.norm() <= step {
            self.point.x = to[0];
            self.point.y = to[1];
            true
        } else {
            self.point += d.normalize() * step;
            false
        }
    }

    /// Moves the commanded point towards height `z`; true when there.
    fn move_towards_height(&mut self, z: f64, speed_m_s: f64) -> bool {
        let step = speed_m_s * self.dt_s;
        let d = z - self.point.z;
        if d.abs() <= step {
            self.point.z = z;
            true
        } else {
            self.point.z += step * d.signum();
            false
        }
    }

    /// Joint goals putting the face at the commanded point (plus wobble),
    /// flat, its long side along the base y axis.
    fn solve_goal(&mut self, env: &Env) -> JointVector {
        let extra = env.arm().params().sponge_face_extra_depth_m();
        let t = self.time_s;
        let wobble = [
            self.wobble_m * (2.1 * t + self.wobble_phase[0]).sin(),
            self.wobble_m * (1.7 * t + self.wobble_phase[1]).sin(),
        ];
        let p = Point3::new(
            self.point.x + wobble[0],
            self.point.y + wobble[1],
            self.point.z + extra,
        );
        let attempt = |roll: f64| {
            solve(
                &IkTarget {
                    position_in_base_m: p,
                    pitch_rad: FRAC_PI_2,
                    roll_rad: Some(roll),
                },
                &self.goal,
                Tool::SpongeFace,
            )
            .ok()
            .map(|q| (q, yaw_error(&q)))
        };
        let mut best: Option<(JointVector, f64)> = attempt(self.roll_rad);
        if let Some((_, err)) = best {
            for roll in [self.roll_rad - err, self.roll_rad + err] {
                if let Some(c) = attempt(roll)
                    && best.is_none_or(|b| c.1.abs() < b.1.abs())
                {
                    best = Some(c);
                }
            }
        }
        if let Some((q, _)) = best {
            self.roll_rad = q[Joint::WristRoll.index()];
            self.goal = q;
        }
        self.goal[Joint::Gripper.index()] = 0.0;
        self.goal
    }
}

/// Angle of the tool's y axis from the base's y axis about z, folded into (−π/2, π/2].
fn yaw_error(q: &JointVector) -> f64 {
    let tool = sponge_robot::kinematics::base_from_tool(q, Tool::SpongeFace);
    let y = tool.rotation * Vector3::y();
    let mut a = y.x.atan2(y.y);
    while a > FRAC_PI_2 {
        a -= PI;
    }
    while a <= -FRAC_PI_2 {
        a += PI;
    }
    a
}
