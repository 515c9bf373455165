//! Perturbed demonstrations: the expert's actions with bad stretches mixed
//! in (jerks off course, pressing too hard, freezing, lifting off), so that
//! a world model trained on them has seen what bad actions lead to. The
//! expert goes on from wherever a perturbation leaves the arm.

use rand::Rng;
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};

/// One kind of bad stretch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Every joint off by a fixed random offset.
    Offset(JointVector),
    /// Shoulder and elbow driven down: presses harder (often too hard).
    Press(f64),
    /// The arm holds the action it had when the stretch began.
    Freeze(JointVector),
    /// The sponge lifted off the table.
    Lift(f64),
}

/// Turns an expert's actions into perturbed ones.
#[derive(Debug, Clone)]
pub struct Perturber {
    /// Chance per control step that a stretch begins.
    rate_per_step: f64,
    active: Option<(Kind, usize)>,
}

impl Perturber {
    /// About `per_second` stretches a second (each 0.3–1.5 s long) at `fps`.
    pub fn new(per_second: f64, fps: u32) -> Perturber {
        Perturber {
            rate_per_step: (per_second / f64::from(fps.max(1))).clamp(0.0, 1.0),
            active: None,
        }
    }

    /// Whether a bad stretch is under way.
    pub fn active(&self) -> bool {
        self.active.is_some()
    }

    /// The action to send instead of `expert` this step.
    pub fn apply(&mut self, expert: &JointVector, fps: u32, rng: &mut impl Rng) -> JointVector {
        if self.active.is_none() && rng.random::<f64>() < self.rate_per_step {
            let steps = (rng.random_range(0.3..1.5) * f64::from(fps)) as usize;
            let kind = match rng.random_range(0..4) {
                0 => Kind::Offset(std::array::from_fn(|_| rng.random_range(-0.25..0.25))),
                1 => Kind::Press(rng.random_range(0.08..0.25)),
                2 => Kind::Freeze(*expert),
                _ => Kind::Lift(rng.random_range(0.1..0.3)),
            };
            self.active = Some((kind, steps.max(1)));
        }
        let Some((kind, left)) = self.active.as_mut() else {
            return *expert;
        };
        let mut action = *expert;
        match *kind {
            Kind::Offset(offset) => {
                for i in 0..NUM_JOINTS {
                    action[i] += offset[i];
                }
            }
            Kind::Press(by) => {
                action[Joint::ShoulderLift.index()] += by;
                action[Joint::ElbowFlex.index()] -= 0.5 * by;
            }
            Kind::Freeze(held) => action = held,
            Kind::Lift(by) => action[Joint::ShoulderLift.index()] -= by,
        }
        *left -= 1;
        if *left == 0 {
            self.active = None;
        }
        sponge_robot::joint::clamp_to_limits(&action)
    }
}

/// Smooth random offsets on the arm's joints (the gripper left alone), to
/// record demonstrations as DART does: the twin executes the expert's
/// action plus the offset, the dataset keeps the expert's own action, so
/// that a policy learns how the expert steers back from states slightly off
/// its path, the states a policy's own small errors lead to.
///
/// Each joint's offset is an Ornstein–Uhlenbeck process, correlated over
/// `TAU_S`: standard deviation `sigma_rad` on the shoulder's pan (across
/// the table), a quarter of it on the joints that raise and lower the
/// sponge (an offset there presses it into the table or lifts it off),
/// half on the wrist's roll.
#[derive(Debug, Clone)]
pub struct Jitter {
    sigma_rad: f64,
    offset: JointVector,
}

impl Jitter {
    /// How long an offset lasts, seconds.
    pub const TAU_S: f64 = 0.5;

    /// Offsets of standard deviation `sigma_rad` (0: none).
    pub fn new(sigma_rad: f64) -> Jitter {
        Jitter {
            sigma_rad: sigma_rad.max(0.0),
            offset: [0.0; NUM_JOINTS],
        }
    }

    /// The action to execute for the expert's `expert` this step (within the joint limits).
    pub fn apply(&mut self, expert: &JointVector, fps: u32, rng: &mut impl Rng) -> JointVector {
        if self.sigma_rad == 0.0 {
            return *expert;
        }
        let dt = 1.0 / f64::from(fps.max(1));
        let keep = (-dt / Self::TAU_S).exp();
        let kick = self.sigma_rad * (1.0 - keep * keep).sqrt();
        let mut action = *expert;
        for joint in Joint::ALL {
            if joint == Joint::Gripper {
                continue;
            }
            let i = joint.index();
            let scale = match joint {
                Joint::ShoulderPan => 1.0,
                Joint::WristRoll => 0.5,
                _ => 0.25,
            };
            let normal: f64 = rng.sample(rand_distr::StandardNormal);
            self.offset[i] = keep * self.offset[i] + scale * kick * normal;
            action[i] += self.offset[i];
        }
        sponge_robot::joint::clamp_to_limits(&action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn perturbs_about_as_often_as_asked_and_never_beyond_the_limits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut perturber = Perturber::new(0.5, 30);
        let expert = crate::env::ready_pose();
        let mut changed = 0;
        let steps = 30 * 600;
        for _ in 0..steps {
            let action = perturber.apply(&expert, 30, &mut rng);
            changed += usize::from(action != expert);
            for joint in Joint::ALL {
                assert!(joint.limits().contains(action[joint.index()], 1e-9));
            }
        }
        // 0.5 stretches a second of 0.9 s on average (a quarter of them
        // freezes, which equal the expert's action here): about a third of the time.
        let share = changed as f64 / steps as f64;
        assert!((0.15..0.5).contains(&share), "perturbed {share:.2} of the steps");
        let mut calm = Perturber::new(0.0, 30);
        assert!((0..1000).all(|_| calm.apply(&expert, 30, &mut rng) == expert));
    }
}

#[cfg(test)]
mod jitter_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn jitter_has_the_asked_spread_is_smooth_and_spares_the_gripper() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let sigma = 0.03;
        let mut jitter = Jitter::new(sigma);
        let expert = crate::env::ready_pose();
        let shoulder = Joint::ShoulderPan.index();
        let offsets: Vec<f64> = (0..30 * 600)
            .map(|_| {
                let action = jitter.apply(&expert, 30, &mut rng);
                assert_eq!(action[Joint::Gripper.index()], expert[Joint::Gripper.index()]);
                action[shoulder] - expert[shoulder]
            })
            .collect();
        let spread = (offsets.iter().map(|o| o * o).sum::<f64>() / offsets.len() as f64).sqrt();
        assert!((0.7 * sigma..1.3 * sigma).contains(&spread), "spread {spread:.4}");
        // Smooth: a step moves the offset about 0.29 σ on average (white
        // noise of the same spread would move it 1.13 σ).
        let mean_step = offsets.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / offsets.len() as f64;
        assert!(
            mean_step < 0.5 * spread,
            "mean step {mean_step:.4} vs spread {spread:.4}"
        );
        let mut none = Jitter::new(0.0);
        assert!((0..100).all(|_| none.apply(&expert, 30, &mut rng) == expert));
    }
}
