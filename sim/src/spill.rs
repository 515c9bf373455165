//! Spills as analytic dirt grids on the table, and how wiping removes them.
//!
//! Each spill is a grid of dirt amounts (0 = clean, 1 = full strength) over
//! the table's work area; no colliders. A cell under the sponge's contact
//! footprint loses dirt in proportion to the normal force above the kind's
//! threshold and to the distance the sponge slides over it:
//! `dirt ← dirt · exp(−k · F_eff · s)`, with `F_eff = min(F, F_sat) − F_min`.

use nalgebra::{Isometry3, Point3};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Edge of a dirt cell, metres.
pub const CELL_M: f64 = 0.005;
/// Work-area cells along x.
pub const GRID_NX: usize = 96;
/// Work-area cells along y.
pub const GRID_NY: usize = 64;
/// Base-frame x of the work area's first cell edge, metres.
pub const GRID_X0_M: f64 = -0.24;
/// Base-frame y of the work area's first cell edge, metres.
pub const GRID_Y0_M: f64 = -0.39;
/// Normal force above which pressing harder cleans no faster, newtons.
pub const FORCE_SATURATION_N: f64 = 8.0;
/// Normal force that counts as pressing too hard (a violation), newtons.
pub const FORCE_LIMIT_N: f64 = 15.0;
/// Height of the sponge face above the table within which it is in contact, metres.
pub const CONTACT_GAP_M: f64 = 0.003;

/// What was spilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillKind {
    /// Water: faint, comes off in one pass.
    Water,
    /// Coffee: brown, a pass or two.
    Coffee,
    /// Ink: dark blue or black, needs more pressure and several passes.
    Ink,
}

impl SpillKind {
    /// All kinds.
    pub const ALL: [SpillKind; 3] = [SpillKind::Water, SpillKind::Coffee, SpillKind::Ink];

    /// Lower-case name, as instructions use it.
    pub const fn name(self) -> &'static str {
        match self {
            SpillKind::Water => "water",
            SpillKind::Coffee => "coffee",
            SpillKind::Ink => "ink",
        }
    }

    /// Force below which the sponge removes nothing, newtons.
    pub const fn min_force_n(self) -> f64 {
        match self {
            SpillKind::Water => 0.3,
            SpillKind::Coffee => 0.8,
            SpillKind::Ink => 2.0,
        }
    }

    /// Removal rate `k`, 1/(N·m).
    pub const fn removal_rate(self) -> f64 {
        match self {
            SpillKind::Water => 14.0,
            SpillKind::Coffee => 9.0,
            SpillKind::Ink => 7.0,
        }
    }

    /// Opacity of a full-strength cell.
    pub const fn opacity(self) -> f64 {
        match self {
            SpillKind::Water => 0.45,
            SpillKind::Coffee => 0.85,
            SpillKind::Ink => 0.95,
        }
    }

    /// A colour of this kind (linear-ish sRGB in 0..1), drawn from its range.
    pub fn random_colour(self, rng: &mut impl Rng) -> [f32; 3] {
        let j = |rng: &mut dyn rand::RngCore, c: f32, spread: f32| {
            (c + spread * (rng.random::<f32>() * 2.0 - 1.0)).clamp(0.0, 1.0)
        };
        match self {
            SpillKind::Water => [j(rng, 0.55, 0.05), j(rng, 0.68, 0.05), j(rng, 0.85, 0.05)],
            SpillKind::Coffee => [j(rng, 0.36, 0.06), j(rng, 0.22, 0.05), j(rng, 0.10, 0.04)],
            SpillKind::Ink => {
                if rng.random::<bool>() {
                    [j(rng, 0.08, 0.04), j(rng, 0.10, 0.04), j(rng, 0.45, 0.08)]
                } else {
                    [j(rng, 0.06, 0.03), j(rng, 0.06, 0.03), j(rng, 0.08, 0.03)]
                }
            }
        }
    }

    /// The colour word instructions use for this kind's colour.
    pub fn colour_word(self, colour: [f32; 3]) -> &'static str {
        match self {
            SpillKind::Water => "clear",
            SpillKind::Coffee => "brown",
            SpillKind::Ink if colour[2] > 0.25 => "blue",
            SpillKind::Ink => "black",
        }
    }
}

impl std::str::FromStr for SpillKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SpillKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown spill kind {s:?}: expected water, coffee or ink"))
    }
}

/// One spill on the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Spill {
    /// Its kind.
    pub kind: SpillKind,
    /// Its colour (sRGB, 0..1).
    pub colour: [f32; 3],
    /// Dirt per cell, row-major (`y * GRID_NX + x`), 0..1.
    pub dirt: Vec<f32>,
    /// Total dirt at the start.
    pub initial_total: f64,
    /// Centre of its dirt, base frame (x, y), metres.
    pub centre_m: [f64; 2],
}

/// Base-frame centre of cell (ix, iy), metres.
pub fn cell_centre(ix: usize, iy: usize) -> [f64; 2] {
    [
        GRID_X0_M + (ix as f64 + 0.5) * CELL_M,
        GRID_Y0_M + (iy as f64 + 0.5) * CELL_M,
    ]
}

/// The shape of a spill, before it is rasterised.
#[derive(Debug, Clone, Copy)]
enum Stroke {
    /// A soft-edged ellipse.
    Blob {
        centre: [f64; 2],
        radii: [f64; 2],
        angle: f64,
    },
    /// A soft-edged line segment of some width.
    Streak {
        a: [f64; 2],
        b: [f64; 2],
        half_width: f64,
    },
}

impl Stroke {
    /// Dirt this stroke puts at point p (0..1, soft edge).
    fn amount(&self, p: [f64; 2]) -> f64 {
        let d = match *self {
            Stroke::Blob { centre, radii, angle } => {
                let (s, c) = angle.sin_cos();
                let dx = p[0] - centre[0];
                let dy = p[1] - centre[1];
                let u = (c * dx + s * dy) / radii[0];
                let v = (-s * dx + c * dy) / radii[1];
                (u * u + v * v).sqrt()
            }
            Stroke::Streak { a, b, half_width } => {
                let ab = [b[0] - a[0], b[1] - a[1]];
                let ap = [p[0] - a[0], p[1] - a[1]];
                let len2 = (ab[0] * ab[0] + ab[1] * ab[1]).max(1e-12);
                let t = ((ap[0] * ab[0] + ap[1] * ab[1]) / len2).clamp(0.0, 1.0);
                let dx = ap[0] - t * ab[0];
                let dy = ap[1] - t * ab[1];
                (dx * dx + dy * dy).sqrt() / half_width
            }
        };
        // Full inside 0.75 of the radius, fading to nothing at 1.0.
        ((1.0 - d) / 0.25).clamp(0.0, 1.0)
    }
}

impl Spill {
    /// A random spill of `kind` centred near `centre` (base frame, metres),
    /// made of one to three blobs or a streak, at most about 8 cm across.
    pub fn random(kind: SpillKind, centre: [f64; 2], rng: &mut impl Rng) -> Spill {
        let mut strokes = Vec::new();
        if rng.random::<f64>() < 0.3 {
            let angle = rng.random::<f64>() * std::f64::consts::PI;
            let half = rng.random_range(0.025..0.04);
            let (s, c) = angle.sin_cos();
            strokes.push(Stroke::Streak {
                a: [centre[0] - c * half, centre[1] - s * half],
                b: [centre[0] + c * half, centre[1] + s * half],
                half_width: rng.random_range(0.008..0.014),
            });
        } else {
            let blobs = rng.random_range(1..=3);
            for i in 0..blobs {
                let offset = if i == 0 {
                    [0.0, 0.0]
                } else {
                    [rng.random_range(-0.02..0.02), rng.random_range(-0.02..0.02)]
                };
                strokes.push(Stroke::Blob {
                    centre: [centre[0] + offset[0], centre[1] + offset[1]],
                    radii: [rng.random_range(0.012..0.03), rng.random_range(0.012..0.025)],
                    angle: rng.random::<f64>() * std::f64::consts::PI,
                });
            }
        }
        let strength = rng.random_range(0.8..1.0);
        let mut dirt = vec![0.0f32; GRID_NX * GRID_NY];
        let mut total = 0.0;
        let mut weighted = [0.0; 2];
        for iy in 0..GRID_NY {
            for ix in 0..GRID_NX {
                let p = cell_centre(ix, iy);
                let a = strokes.iter().map(|s| s.amount(p)).fold(0.0, f64::max) * strength;
                if a > 0.0 {
                    dirt[iy * GRID_NX + ix] = a as f32;
                    total += a;
                    weighted[0] += a * p[0];
                    weighted[1] += a * p[1];
                }
            }
        }
        let centre_m = if total > 0.0 {
            [weighted[0] / total, weighted[1] / total]
        } else {
            centre
        };
        Spill {
            kind,
            colour: kind.random_colour(rng),
            dirt,
            initial_total: total,
            centre_m,
        }
    }

    /// Its dirt in cells where one of `others` has dirt.
    pub fn dirt_on(&self, others: &[Spill]) -> f64 {
        (0..self.dirt.len())
            .filter(|&i| others.iter().any(|s| s.dirt[i] > 0.0))
            .map(|i| f64::from(self.dirt[i]))
            .sum()
    }

    /// Dirt left now.
    pub fn remaining(&self) -> f64 {
        self.dirt.iter().map(|&d| d as f64).sum()
    }

    /// Fraction of the initial dirt removed, 0..1.
    pub fn fraction_cleaned(&self) -> f64 {
        if self.initial_total <= 0.0 {
            return 1.0;
        }
        (1.0 - self.remaining() / self.initial_total).clamp(0.0, 1.0)
    }

    /// Base-frame centre of the dirt left (each cell weighted by its
    /// dirt), metres; where the spill was when none is left.
    pub fn remaining_centre_m(&self) -> [f64; 2] {
        let (mut sum, mut x, mut y) = (0.0, 0.0, 0.0);
        for (i, &d) in self.dirt.iter().enumerate() {
            if d > 0.0 {
                let [cx, cy] = cell_centre(i % GRID_NX, i / GRID_NX);
                sum += f64::from(d);
                x += f64::from(d) * cx;
                y += f64::from(d) * cy;
            }
        }
        if sum <= 1e-9 {
            self.centre_m
        } else {
            [x / sum, y / sum]
        }
    }

    /// Cells holding more than `threshold` dirt, as (ix, iy).
    pub fn dirty_cells(&self, threshold: f32) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.dirt
            .iter()
            .enumerate()
            .filter(move |(_, d)| **d > threshold)
            .map(|(i, _)| (i % GRID_NX, i / GRID_NX))
    }

    /// Base-frame bounding box (min x, min y, max x, max y) of cells holding more than `threshold`.
    pub fn extent(&self, threshold: f32) -> Option<[f64; 4]> {
        let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        let mut any = false;
        for (ix, iy) in self.dirty_cells(threshold) {
            let [x, y] = cell_centre(ix, iy);
            let h = 0.5 * CELL_M;
            b = [b[0].min(x - h), b[1].min(y - h), b[2].max(x + h), b[3].max(y + h)];
            any = true;
        }
        any.then_some(b)
    }
}

/// Wipes every spill under the sponge face for one step.
///
/// `face_before` and `face_after` are the face poses (z out of the face) at
/// the start and end of the step; `normal_force_n` the contact force over
/// it; `face_half_size_m` the face's half extents along its x and y.
pub fn wipe(
    spills: &mut [Spill],
    face_before: &Isometry3<f64>,
    face_after: &Isometry3<f64>,
    normal_force_n: f64,
    face_half_size_m: [f64; 2],
) {
    let centre = face_after.translation.vector;
    if normal_force_n <= 0.0 || centre.z > CONTACT_GAP_M {
        return;
    }
    let moved = face_after.translation.vector - face_before.translation.vector;
    let slide_m = (moved.x * moved.x + moved.y * moved.y).sqrt();
    if slide_m <= 0.0 {
        return;
    }
    // The footprint: the face rectangle projected onto the table.
    let ax = face_after.rotation * nalgebra::Vector3::x();
    let ay = face_after.rotation * nalgebra::Vector3::y();
    let reach = face_half_size_m[0].hypot(face_half_size_m[1]);
    let to_cell = |v: f64, v0: f64, n: usize| (((v - v0) / CELL_M).floor().max(0.0) as usize).min(n - 1);
    let (x_lo, x_hi) = (
        to_cell(centre.x - reach, GRID_X0_M, GRID_NX),
        to_cell(centre.x + reach, GRID_X0_M, GRID_NX),
    );
    let (y_lo, y_hi) = (
        to_cell(centre.y - reach, GRID_Y0_M, GRID_NY),
        to_cell(centre.y + reach, GRID_Y0_M, GRID_NY),
    );
    if centre.x + reach < GRID_X0_M
        || centre.y + reach < GRID_Y0_M
        || centre.x - reach > GRID_X0_M + GRID_NX as f64 * CELL_M
        || centre.y - reach > GRID_Y0_M + GRID_NY as f64 * CELL_M
    {
        return;
    }
    let force = normal_force_n.min(FORCE_SATURATION_N);
    for spill in spills.iter_mut() {
        let f_eff = force - spill.kind.min_force_n();
        if f_eff <= 0.0 {
            continue;
        }
        let keep = (-spill.kind.removal_rate() * f_eff * slide_m).exp() as f32;
        for iy in y_lo..=y_hi {
            for ix in x_lo..=x_hi {
                let [x, y] = cell_centre(ix, iy);
                let p = Point3::new(x, y, 0.0) - Point3::from(centre);
                let u = p.dot(&ax);
                let v = p.dot(&ay);
                if u.abs() <= face_half_size_m[0] && v.abs() <= face_half_size_m[1] {
                    spill.dirt[iy * GRID_NX + ix] *= keep;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dirt_on_others_counts_only_the_cells_they_share() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut a = Spill::random(SpillKind::Ink, [0.0, -0.2], &mut rng);
        let mut b = a.clone();
        a.dirt.fill(0.0);
        b.dirt.fill(0.0);
        a.dirt[10] = 0.5;
        a.dirt[11] = 0.25;
        b.dirt[11] = 1.0;
        b.dirt[12] = 1.0;
        assert_eq!(a.dirt_on(std::slice::from_ref(&b)), 0.25);
        assert_eq!(b.dirt_on(std::slice::from_ref(&a)), 1.0);
        assert_eq!(a.dirt_on(&[]), 0.0);
    }

    #[test]
    fn the_centre_of_the_dirt_left_follows_what_is_wiped() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut spill = Spill::random(SpillKind::Coffee, [0.05, -0.1], &mut rng);
        let start = spill.remaining_centre_m();
        assert!(
            (start[0] - spill.centre_m[0]).abs() < 1e-4,
            "{start:?} {:?}",
            spill.centre_m
        );
        assert!(
            (start[1] - spill.centre_m[1]).abs() < 1e-4,
            "{start:?} {:?}",
            spill.centre_m
        );
        // Wipe the half left of the centre: what is left lies to its right.
        for (i, d) in spill.dirt.iter_mut().enumerate() {
            if cell_centre(i % GRID_NX, i / GRID_NX)[0] < start[0] {
                *d = 0.0;
            }
        }
        let right = spill.remaining_centre_m();
        assert!(right[0] > start[0] + 0.002, "{right:?} against {start:?}");
        // All gone: where the spill was.
        spill.dirt.fill(0.0);
        assert_eq!(spill.remaining_centre_m(), spill.centre_m);
    }
}
