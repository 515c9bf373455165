//! What goes wrong on a real table, injected into the twin to test the
//! world model's anomaly monitor, and scenes unlike the training data to
//! test how the policy copes out of distribution.

use rand::Rng;
use rand::seq::IndexedRandom;
use sponge_robot::joint::{Joint, NUM_JOINTS};

use crate::env::Env;
use crate::spill::{Spill, SpillKind};
use crate::task::spill_centre;

/// A fault injected into a running episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The gripper loses the sponge; it falls onto the table.
    DropSponge,
    /// Something blocks the arm: it stops where it is.
    BlockArm,
    /// Someone shoves the arm: a hand takes the shoulder pan 9–14°
    /// and the lift 6–11° off over a tenth of a second and holds them there for 0.3–0.6 s,
    /// stronger than the servos.
    PushArm,
    /// A hand or a cloth covers most of the front camera.
    CoverCamera,
    /// The front camera is knocked: 6 cm off its place.
    ShiftCamera,
    /// The spills turn a colour never seen in training (paint, not coffee).
    UnseenSpill,
    /// Paint is spilt on the table: a new spill, of a colour no spill kind
    /// has, somewhere in reach and (as far as 50 tries find) clear of the
    /// others. Not in [`Fault::ALL`] (`--fault spill-paint` asks for it): in
    /// the front camera's 96-pixel picture a fresh spill is some 10–35
    /// pixels, and two of the four paints are near two of the sponges'
    /// colours.
    SpillPaint,
}

impl Fault {
    /// The faults `--fault all` takes in turn: the sponge dropped, the arm
    /// blocked or pushed, the camera covered or shifted, a spill unlike any
    /// in training.
    pub const ALL: [Fault; 6] = [
        Fault::DropSponge,
        Fault::BlockArm,
        Fault::PushArm,
        Fault::CoverCamera,
        Fault::ShiftCamera,
        Fault::UnseenSpill,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DropSponge => "drop-sponge",
            Fault::BlockArm => "block-arm",
            Fault::PushArm => "push-arm",
            Fault::CoverCamera => "cover-camera",
            Fault::ShiftCamera => "shift-camera",
            Fault::UnseenSpill => "unseen-spill",
            Fault::SpillPaint => "spill-paint",
        }
    }

    /// Makes it happen in `env` now (random details from `rng`).
    pub fn inject(self, env: &mut Env, rng: &mut impl Rng) {
        match self {
            Fault::DropSponge => env.arm_mut().drop_sponge(),
            Fault::BlockArm => env.arm_mut().set_blocked(true),
            Fault::PushArm => {
                let mut delta = [0.0; NUM_JOINTS];
                let sign = |rng: &mut dyn rand::RngCore| if rng.random::<bool>() { 1.0 } else { -1.0 };
                delta[Joint::ShoulderPan.index()] = sign(rng) * rng.random_range(0.15..0.25);
                delta[Joint::ShoulderLift.index()] = -rng.random_range(0.1..0.2);
                let hold_s = rng.random_range(0.3..0.6);
                env.arm_mut().shove(&delta, 0.1, 0.1 + hold_s);
            }
            Fault::CoverCamera => env.set_camera_cover(rng.random_range(0.6..0.9)),
            Fault::ShiftCamera => {
                let appearance = env.appearance_mut();
                let angle = rng.random_range(0.0..std::f32::consts::TAU);
                appearance.camera_offset_m[0] += 0.06 * angle.cos();
                appearance.camera_offset_m[2] += 0.06 * angle.sin();
            }
            Fault::SpillPaint => {
                let kind = *SpillKind::ALL.choose(rng).unwrap_or(&SpillKind::Coffee);
                let spills = &env.scene().spills;
                let mut best: Option<(f64, Spill)> = None;
                for _ in 0..50 {
                    let candidate = Spill::random(kind, spill_centre(rng), rng);
                    let overlap = candidate.dirt_on(spills);
                    if best.as_ref().is_none_or(|(least, _)| overlap < *least) {
                        best = Some((overlap, candidate));
                    }
                    if overlap == 0.0 {
                        break;
                    }
                }
                if let Some((_, mut paint)) = best {
                    paint.colour = unseen_colour(rng);
                    env.scene_mut().spills.push(paint);
                }
            }
            Fault::UnseenSpill => {
                let colour = unseen_colour(rng);
                for spill in &mut env.scene_mut().spills {
                    spill.colour = colour;
                }
                env.spill_colours_changed();
            }
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let kinds = Fault::ALL.into_iter().chain([Fault::SpillPaint]);
        kinds.clone().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = kinds.map(|f| f.name()).collect();
            format!("unknown fault {s:?}; one of {}", names.join(", "))
        })
    }
}

/// A saturated colour no spill kind has (green, magenta, orange-red or cyan paint).
fn unseen_colour(rng: &mut impl Rng) -> [f32; 3] {
    let paints = [
        [0.1, 0.75, 0.15],
        [0.85, 0.1, 0.7],
        [0.95, 0.3, 0.05],
        [0.05, 0.8, 0.85],
    ];
    paints[rng.random_range(0..paints.len())]
}

/// Makes a freshly reset episode unlike anything in training: spills of
/// unfamiliar colours (the same kinds, the instruction unchanged),
/// lighting outside the training range, and the front camera 3–5 cm off
/// its place (training moves it at most 2.5 cm). Call it before the first
/// observation.
pub fn make_unfamiliar(env: &mut Env, rng: &mut impl Rng) {
    for spill in &mut env.scene_mut().spills {
        // Rotate the colour's hue a third of the way round.
        let [r, g, b] = spill.colour;
        spill.colour = if rng.random::<bool>() {
            [g, b, r]
        } else {
            [b, r, g]
        };
    }
    env.spill_colours_changed();
    let appearance = env.appearance_mut();
    appearance.light_lux = if rng.random::<bool>() {
        rng.random_range(1200.0..2000.0)
    } else {
        rng.random_range(7000.0..9000.0)
    };
    appearance.light_colour = [rng.random_range(0.75..1.0), rng.random_range(0.75..1.0), 1.0];
    let distance = rng.random_range(0.03..0.05);
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    appearance.camera_offset_m = [distance * angle.cos(), 0.0, distance * angle.sin()];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnvConfig;
    use rand::SeedableRng;

    #[test]
    fn names_parse_back() {
        for fault in Fault::ALL {
            assert_eq!(fault.name().parse::<Fault>(), Ok(fault));
        }
        assert_eq!("spill-paint".parse::<Fault>(), Ok(Fault::SpillPaint));
        assert!(!Fault::ALL.contains(&Fault::SpillPaint), "not in --fault all");
        let unknown = "spill-more".parse::<Fault>().expect_err("no such fault");
        assert!(unknown.contains("spill-paint"), "{unknown}");
    }

    #[test]
    fn a_blocked_arm_stays_and_a_dropped_sponge_wipes_no_more() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut env = Env::new(EnvConfig::default(), 3);
        let start = env.observe().state;
        Fault::BlockArm.inject(&mut env, &mut rng);
        let mut goal = start;
        goal[Joint::ShoulderPan.index()] += 0.4;
        for _ in 0..20 {
            env.step(&goal);
        }
        let moved = (env.observe().state[0] - start[0]).abs();
        assert!(moved < 0.02, "a blocked arm moved {moved} rad");
        env.arm_mut().set_blocked(false);
        for _ in 0..20 {
            env.step(&goal);
        }
        assert!(
            (env.observe().state[0] - start[0]).abs() > 0.2,
            "the unblocked arm did not move"
        );

        // Press the sponge down onto the table, then drop it: no force, no
        // wiping, and the gripper's servo no longer squeezes anything.
        let mut env = Env::new(EnvConfig::default(), 4);
        let mut hold = env.observe().state;
        hold[Joint::Gripper.index()] = 0.0;
        env.step(&hold);
        let held = env.observe().gripper_load;
        assert!(
            (0.05..0.3).contains(&held),
            "holding the sponge loads the gripper {held}"
        );
        Fault::DropSponge.inject(&mut env, &mut rng);
        assert_eq!(env.observe().gripper_load, 0.0);
        assert!(env.arm().sponge_dropped());
        assert!(env.arm().sponge_centre().translation.z < 0.05);
        let mut low = env.observe().state;
        low[Joint::ShoulderLift.index()] += 0.3;
        for _ in 0..30 {
            let step = env.step(&low);
            assert_eq!(step.info.max_force_n, 0.0);
        }
    }

    #[test]
    fn a_shove_holds_the_arm_off_for_a_while_and_the_servos_bring_it_back() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut env = Env::new(EnvConfig::default(), 6);
        let goal = env.observe().state;
        for _ in 0..5 {
            env.step(&goal);
        }
        let start = env.observe().state;
        Fault::PushArm.inject(&mut env, &mut rng);
        let off = |env: &mut Env| {
            let q = env.observe().state;
            (
                (q[Joint::ShoulderPan.index()] - start[Joint::ShoulderPan.index()]).abs(),
                (q[Joint::ShoulderLift.index()] - start[Joint::ShoulderLift.index()]).abs(),
                (q[Joint::ElbowFlex.index()] - start[Joint::ElbowFlex.index()]).abs(),
            )
        };
        // Held off for the whole of the shortest hold (0.1 s ramp + 0.3 s),
        // 12 control steps at 30 Hz, whatever the servos are told.
        // The first 3 steps are the ramp.
        for step in 1..=12 {
            env.step(&goal);
            if step < 3 {
                continue;
            }
            let (pan, lift, elbow) = off(&mut env);
            assert!(
                pan > 0.14 && lift > 0.09,
                "step {step}: pan {pan}, lift {lift} rad off"
            );
            assert!(elbow < 0.05, "the elbow is left to its servo: {elbow} rad off");
        }
        assert!(env.arm().shoved());
        // Let go after at most 0.7 s; the servos pull back.
        for _ in 0..30 {
            env.step(&goal);
        }
        assert!(!env.arm().shoved());
        let (pan, lift, _) = off(&mut env);
        assert!(
            pan < 0.02 && lift < 0.03,
            "not back: pan {pan}, lift {lift} rad off"
        );
    }

    #[test]
    fn spilt_paint_is_a_new_spill_in_reach_clear_of_the_others() {
        for seed in 0..20 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut env = Env::new(EnvConfig::default(), 100 + seed);
            let before = env.scene().spills.clone();
            Fault::SpillPaint.inject(&mut env, &mut rng);
            let spills = &env.scene().spills;
            assert_eq!(spills.len(), before.len() + 1);
            assert_eq!(
                &spills[..before.len()],
                &before[..],
                "the old spills are left alone"
            );
            let paint = &spills[before.len()];
            assert!(
                paint.remaining() > 10.0,
                "seed {seed}: {} of dirt",
                paint.remaining()
            );
            let under = paint.dirt_on(&before);
            assert!(
                under < 0.1 * paint.remaining(),
                "seed {seed}: {under} of its {} of dirt lies on other spills",
                paint.remaining()
            );
            // No spill kind's colour range comes near it.
            for kind in SpillKind::ALL {
                for _ in 0..50 {
                    let c = kind.random_colour(&mut rng);
                    let far: f32 = (0..3).map(|i| (c[i] - paint.colour[i]).abs()).sum();
                    assert!(far > 0.4, "{kind:?} {c:?} is near the paint {:?}", paint.colour);
                }
            }
        }
    }

    #[test]
    fn looks_faults_tell_the_renderer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut env = Env::new(EnvConfig::default(), 5);
        let before = env.looks_version();
        let colour = env.scene().spills[0].colour;
        Fault::UnseenSpill.inject(&mut env, &mut rng);
        assert!(env.looks_version() > before);
        assert_ne!(env.scene().spills[0].colour, colour);
        let offset = env.appearance().camera_offset_m;
        Fault::ShiftCamera.inject(&mut env, &mut rng);
        let moved: f32 = (0..3)
            .map(|i| (env.appearance().camera_offset_m[i] - offset[i]).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!((moved - 0.06).abs() < 1e-4, "moved {moved} m");
        Fault::CoverCamera.inject(&mut env, &mut rng);
        assert!(env.camera_cover() >= 0.6);
    }
}
