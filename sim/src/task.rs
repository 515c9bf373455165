//! The spill-wiping task: a scene of 1–3 spills, a language instruction
//! naming which to wipe, and success.
//!
//! "Left" and "right" are the robot's: it faces −y, so its left is +x.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::spill::{Spill, SpillKind};

/// Fraction of the named spills' dirt that must be gone for success.
pub const SUCCESS_FRACTION: f64 = 0.95;

/// A scene and what to do in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The spills on the table.
    pub spills: Vec<Spill>,
    /// Indices of the spills the instruction names.
    pub targets: Vec<usize>,
    /// The instruction, as a person would say it.
    pub instruction: String,
}

/// Where spill centres may go: the part of the table the sponge reaches
/// flat with room to sweep around it. Polar about the pan axis (base frame
/// origin, pointing −y): radius and angle from −y (positive = robot's left).
pub const SPILL_RADIUS_RANGE_M: (f64, f64) = (0.14, 0.20);
/// Angle range of spill centres from −y, radians.
pub const SPILL_ANGLE_RANGE_RAD: (f64, f64) = (-0.85, 0.85);
/// Closest two spill centres may be, metres.
const MIN_SPILL_SEPARATION_M: f64 = 0.09;

/// A random spill centre in reach (base frame, metres).
pub fn spill_centre(rng: &mut impl Rng) -> [f64; 2] {
    let r = rng.random_range(SPILL_RADIUS_RANGE_M.0..SPILL_RADIUS_RANGE_M.1);
    let a = rng.random_range(SPILL_ANGLE_RANGE_RAD.0..SPILL_ANGLE_RANGE_RAD.1);
    [r * a.sin(), -0.0452 - r * a.cos()]
}

/// Whether a spill centred at `c` keeps its distance from those at `centres`.
fn clear_of(centres: &[[f64; 2]], c: [f64; 2]) -> bool {
    centres
        .iter()
        .all(|o| (o[0] - c[0]).hypot(o[1] - c[1]) >= MIN_SPILL_SEPARATION_M)
}

impl Scene {
    /// A random scene: 1–3 spills of random kinds in reach, and an instruction.
    pub fn random(rng: &mut impl Rng) -> Scene {
        let count = rng.random_range(1..=3);
        let mut centres: Vec<[f64; 2]> = Vec::new();
        let mut attempts = 0;
        while centres.len() < count && attempts < 200 {
            attempts += 1;
            let c = spill_centre(rng);
            if clear_of(&centres, c) {
                centres.push(c);
            }
        }
        let spills: Vec<Spill> = centres
            .iter()
            .map(|&c| {
                let kind = *SpillKind::ALL.choose(rng).unwrap_or(&SpillKind::Water);
                Spill::random(kind, c, rng)
            })
            .collect();
        let (targets, instruction) = instruct(&spills, rng);
        Scene {
            spills,
            targets,
            instruction,
        }
    }

    /// A scene from given spills, wiping those named by `targets`.
    pub fn with_spills(spills: Vec<Spill>, targets: Vec<usize>, instruction: String) -> Scene {
        Scene {
            spills,
            targets,
            instruction,
        }
    }

    /// Fraction cleaned of each spill.
    pub fn fractions_cleaned(&self) -> Vec<f64> {
        self.spills.iter().map(Spill::fraction_cleaned).collect()
    }

    /// Fraction cleaned of the named spills together (by dirt).
    pub fn target_fraction_cleaned(&self) -> f64 {
        let (mut initial, mut remaining) = (0.0, 0.0);
        for &i in &self.targets {
            initial += self.spills[i].initial_total;
            remaining += self.spills[i].remaining();
        }
        if initial <= 0.0 {
            1.0
        } else {
            (1.0 - remaining / initial).clamp(0.0, 1.0)
        }
    }

    /// Whether every named spill is cleaned to [`SUCCESS_FRACTION`] (each on its own).
    pub fn targets_clean(&self) -> bool {
        self.targets
            .iter()
            .all(|&i| self.spills[i].fraction_cleaned() >= SUCCESS_FRACTION)
    }
}

/// Picks an instruction that names some of `spills` unambiguously; returns
/// the named spills and the text.
fn instruct(spills: &[Spill], rng: &mut impl Rng) -> (Vec<usize>, String) {
    let all: Vec<usize> = (0..spills.len()).collect();
    let mut options: Vec<(Vec<usize>, String)> = Vec::new();
    let table = [
        "wipe the table",
        "clean up all the spills",
        "wipe everything off the table",
    ];
    options.push((all.clone(), (*table.choose(rng).unwrap_or(&table[0])).to_owned()));
    for kind in SpillKind::ALL {
        let named: Vec<usize> = all.iter().copied().filter(|&i| spills[i].kind == kind).collect();
        if named.is_empty() {
            continue;
        }
        let k = kind.name();
        let texts = [
            format!("wipe up the {k}"),
            format!("clean up the {k} spill"),
            format!("wipe the {k} off the table"),
        ];
        options.push((named.clone(), texts.choose(rng).cloned().unwrap_or_default()));
        let word = kind.colour_word(spills[named[0]].colour);
        let same_word: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| spills[i].kind.colour_word(spills[i].colour) == word)
            .collect();
        if kind != SpillKind::Water {
            let texts = [
                format!("wipe up the {word} stain"),
                format!("clean the {word} spill"),
            ];
            options.push((same_word, texts.choose(rng).cloned().unwrap_or_default()));
        }
    }
    if spills.len() >= 2 {
        let leftmost = argmax(spills, |s| s.centre_m[0]);
        let rightmost = argmax(spills, |s| -s.centre_m[0]);
        for (i, side) in [(leftmost, "left"), (rightmost, "right")] {
            let k = spills[i].kind.name();
            let texts = [
                format!("clean the {k} on the {side}"),
                format!("wipe the spill on the {side}"),
            ];
            options.push((vec![i], texts.choose(rng).cloned().unwrap_or_default()));
        }
    }
    // Prefer naming one kind or place over "everything" when there is a choice.
    let index = if options.len() > 1 && rng.random::<f64>() < 0.8 {
        rng.random_range(1..options.len())
    } else {
        0
    };
    options.swap_remove(index)
}

fn argmax(spills: &[Spill], key: impl Fn(&Spill) -> f64) -> usize {
    let mut best = 0;
    for i in 1..spills.len() {
        if key(&spills[i]) > key(&spills[best]) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_instruction_names_at_least_one_spill_and_sides_are_the_robots() {
        for seed in 0..300 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let scene = Scene::random(&mut rng);
            assert!(!scene.spills.is_empty() && scene.spills.len() <= 3);
            assert!(!scene.targets.is_empty(), "{}", scene.instruction);
            if scene.instruction.ends_with("on the left") {
                let t = &scene.spills[scene.targets[0]];
                assert!(scene.spills.iter().all(|s| s.centre_m[0] <= t.centre_m[0]));
            }
            for &i in &scene.targets {
                let s = &scene.spills[i];
                let named_kind = SpillKind::ALL
                    .iter()
                    .find(|k| scene.instruction.contains(k.name()));
                if let Some(k) = named_kind
                    && !scene.instruction.contains("on the")
                {
                    assert_eq!(s.kind, *k, "{}", scene.instruction);
                }
            }
        }
    }
}
