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
