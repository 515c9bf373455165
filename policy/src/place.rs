//! Where a point on the table lies in a camera's picture, for teaching a
//! keypoint where the named spill is (`sponge train --place-weight`) and
//! for turning the place it finds back into metres on the table.
//!
//! The camera is a pinhole looking from `eye_m` at `aim_m` with the base
//! frame's z up, square pictures and a vertical field of view, as the
//! twin's front camera is set up. Places are x and y in −1..1 of the
//! picture, x to the right and y down, as the keypoints give them.

use serde::{Deserialize, Serialize};

/// A pinhole camera over the table (base frame, metres; the table top is
/// z = 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TableCamera {
    /// Where the camera is.
    pub eye_m: [f64; 3],
    /// A point on its optical axis.
    pub aim_m: [f64; 3],
    /// Vertical (and, for square pictures, horizontal) field of view, degrees.
    pub fov_deg: f64,
}

type V3 = [f64; 3];

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

impl TableCamera {
    /// The camera's forward, right and up directions.
    fn axes(&self) -> (V3, V3, V3) {
        let forward = unit(sub(self.aim_m, self.eye_m));
        let right = unit(cross(forward, [0.0, 0.0, 1.0]));
        let up = cross(right, forward);
        (forward, right, up)
    }

    fn focal(&self) -> f64 {
        1.0 / (0.5 * self.fov_deg.to_radians()).tan()
    }

    /// The place of `point_m` in the picture; `None` behind the camera.
    /// Points outside the picture give places beyond −1..1.
    pub fn project(&self, point_m: [f64; 3]) -> Option<[f64; 2]> {
        let (forward, right, up) = self.axes();
        let d = sub(point_m, self.eye_m);
        let depth = dot(d, forward);
        if depth <= 1e-9 {
            return None;
        }
        let f = self.focal();
        Some([f * dot(d, right) / depth, -f * dot(d, up) / depth])
    }

    /// Where the ray through `place` meets the table top (z = 0): x and y,
    /// metres; `None` for a ray that does not go down to it.
    pub fn on_table(&self, place: [f64; 2]) -> Option<[f64; 2]> {
        let (forward, right, up) = self.axes();
        let f = self.focal();
        let ray: V3 = std::array::from_fn(|i| f * forward[i] + place[0] * right[i] - place[1] * up[i]);
        if ray[2] >= -1e-9 {
            return None;
        }
        let s = -self.eye_m[2] / ray[2];
        Some([self.eye_m[0] + s * ray[0], self.eye_m[1] + s * ray[1]])
    }
}

/// Weights over the places of a `side × side` map (row by row, summing to
/// 1): a Gaussian of standard deviation `sigma` (in −1..1 units) around
/// `place`. A place outside the picture puts the weight on the nearest
/// edge places.
pub fn place_weights(place: [f64; 2], side: usize, sigma: f64) -> Vec<f32> {
    let centre = |i: usize| (i as f64 + 0.5) / side as f64 * 2.0 - 1.0;
    let d2: Vec<f64> = (0..side * side)
        .map(|k| {
            let (row, col) = (k / side, k % side);
            (centre(col) - place[0]).powi(2) + (centre(row) - place[1]).powi(2)
        })
        .collect();
    let nearest = d2.iter().copied().fold(f64::INFINITY, f64::min);
    let w: Vec<f64> = d2
        .iter()
        .map(|d| (-(d - nearest) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|v| (v / total) as f32).collect()
}

/// `weights` over the places of a square map (row by row) with every place
/// whose ray meets the table farther than `radius_m` from `centre_m` (or
/// not at all) set to 0: a keypoint that tracks one thing looks for it
/// only near where it last was. When no place lies that near (a centre
/// outside the picture, a radius under a place's width) the weights stay
/// as they are.
pub fn weights_near(weights: &[f32], camera: &TableCamera, centre_m: [f64; 2], radius_m: f64) -> Vec<f32> {
    let side = (weights.len() as f64).sqrt().round() as usize;
    let centre = |i: usize| (i as f64 + 0.5) / side as f64 * 2.0 - 1.0;
    let kept: Vec<f32> = weights
        .iter()
        .enumerate()
        .map(|(k, &w)| {
            let near = camera
                .on_table([centre(k % side), centre(k / side)])
                .is_some_and(|p| (p[0] - centre_m[0]).hypot(p[1] - centre_m[1]) <= radius_m);
            if near { w } else { 0.0 }
        })
        .collect();
    if kept.iter().any(|&w| w > 0.0) {
        kept
    } else {
        weights.to_vec()
    }
}

/// How near its last target a place-trained perception looks by default,
/// metres (`sponge eval --perception-track`, the launch policy node's
/// `perception_track_m`): the best of 0.015-0.04 on 50 held-out seeds
/// (`bench/perception-track.json`).
pub const DEFAULT_TRACK_M: f64 = 0.02;

/// Where on the table to look for a place: within `radius_m` of
/// `centre_m` (x and y, metres).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    /// The point looked around (x and y, metres).
    pub centre_m: [f64; 2],
    /// How far from it to look, metres.
    pub radius_m: f64,
    /// Look over the whole picture after all when the strongest place near
    /// the point weighs less than this fraction of the strongest anywhere
    /// (the thing tracked is gone, and the keypoint has found the next); 0:
    /// never.
    pub release: f32,
}

impl Near {
    /// The weights to read the place from: those near the point
    /// ([`weights_near`]), or all of them when the strongest near it
    /// weighs less than `release` of the strongest anywhere.
    pub fn weights(&self, weights: &[f32], camera: &TableCamera) -> Vec<f32> {
        let kept = weights_near(weights, camera, self.centre_m, self.radius_m);
        let strongest = |w: &[f32]| w.iter().copied().fold(0.0f32, f32::max);
        if strongest(&kept) < self.release * strongest(weights) {
            weights.to_vec()
        } else {
            kept
        }
    }
}

/// Follows the place a perception found from look to look: after the
/// first, each look is [`Near`] the last place found, within `radius_m`
/// (0: every look is over the whole picture).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracker {
    /// How far from the last place to look, metres.
    pub radius_m: f64,
    /// [`Near::release`].
    pub release: f32,
    last: Option<[f64; 2]>,
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub fn new(radius_m: f64, release: f32) -> Tracker {
        Tracker {
            radius_m,
            release,
            last: None,
        }
    }

    /// Where the next look goes: near the last place found, or anywhere.
    pub fn near(&self) -> Option<Near> {
        self.last.filter(|_| self.radius_m > 0.0).map(|centre_m| Near {
            centre_m,
            radius_m: self.radius_m,
            release: self.release,
        })
    }

    /// What a look found (a place off the table keeps the last one).
    pub fn saw(&mut self, place: Option<[f64; 2]>) {
        if place.is_some() {
            self.last = place;
        }
    }

    /// Starts over (a new instruction names another thing).
    pub fn forget(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> TableCamera {
        TableCamera {
            eye_m: [0.3, -0.5, 0.4],
            aim_m: [0.0, -0.13, 0.03],
            fov_deg: 50.0,
        }
    }

    #[test]
    fn the_aim_point_is_the_middle_of_the_picture() {
        let p = camera().project([0.0, -0.13, 0.03]).expect("in front");
        assert!(p[0].abs() < 1e-9 && p[1].abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn nearer_points_lie_lower_and_leftward_points_lie_left() {
        let c = camera();
        // The camera looks from the front right: a point nearer to it along
        // the table lies lower in the picture.
        let far = c.project([0.0, -0.15, 0.0]).expect("in front");
        let near = c.project([0.1, -0.35, 0.0]).expect("in front");
        assert!(near[1] > far[1], "{near:?} {far:?}");
        // Higher points lie higher.
        let up = c.project([0.0, -0.15, 0.1]).expect("in front");
        assert!(up[1] < far[1]);
        // Behind the camera there is no place.
        assert!(c.project([0.6, -0.9, 0.8]).is_none());
    }

    #[test]
    fn a_table_point_comes_back_from_its_place() {
        let c = camera();
        for point in [[0.0, -0.2], [0.12, -0.1], [-0.15, -0.35], [0.05, -0.3]] {
            let place = c.project([point[0], point[1], 0.0]).expect("in front");
            let back = c.on_table(place).expect("on the table");
            assert!(
                (back[0] - point[0]).abs() < 1e-9 && (back[1] - point[1]).abs() < 1e-9,
                "{point:?} -> {place:?} -> {back:?}"
            );
        }
        // Above the horizon the ray never meets the table.
        assert!(c.on_table([0.0, -3.0]).is_none());
    }

    #[test]
    fn place_weights_peak_at_the_place_and_sum_to_one() {
        let side = 24;
        let w = place_weights([0.25, -0.5], side, 0.08);
        let total: f32 = w.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        let best = (0..w.len())
            .max_by(|&a, &b| w[a].total_cmp(&w[b]))
            .expect("places");
        // x 0.25 → column 15 (centre 0.292 is nearest), y −0.5 → row 6.
        assert_eq!((best / side, best % side), (6, 15));
        // Far outside the picture: the weight goes to the nearest edge, no NaN.
        let w = place_weights([9.0, 0.0], side, 0.08);
        assert!(w.iter().all(|v| v.is_finite()));
        let best = (0..w.len())
            .max_by(|&a, &b| w[a].total_cmp(&w[b]))
            .expect("places");
        assert_eq!(best % side, side - 1);
    }

    #[test]
    fn weights_near_a_point_keep_only_the_places_around_it() {
        let c = camera();
        let side = 24;
        // Two candidates: a strong one at one table point, a weaker one 10 cm away.
        let strong = c.project([0.05, -0.3, 0.0]).expect("in front");
        let weak_m = [-0.05, -0.3];
        let weak = c.project([weak_m[0], weak_m[1], 0.0]).expect("in front");
        let w: Vec<f32> = place_weights(strong, side, 0.05)
            .iter()
            .zip(place_weights(weak, side, 0.05))
            .map(|(a, b)| a + 0.3 * b)
            .collect();
        let on_table = |w: &[f32]| {
            let p = crate::model::peak_place(w);
            c.on_table([f64::from(p[0]), f64::from(p[1])])
                .expect("on the table")
        };
        let dist = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
        // Unrestricted, the peak is the strong candidate.
        assert!(dist(on_table(&w), [0.05, -0.3]) < 0.015, "{:?}", on_table(&w));
        // Looked for near the weak one, the peak is the weak one.
        let near = weights_near(&w, &c, [-0.04, -0.31], 0.04);
        assert!(dist(on_table(&near), weak_m) < 0.015, "{:?}", on_table(&near));
        // Every place kept lies within the radius; the others are 0.
        let centre = |i: usize| (i as f64 + 0.5) / side as f64 * 2.0 - 1.0;
        for (k, &v) in near.iter().enumerate() {
            let p = c.on_table([centre(k % side), centre(k / side)]);
            let inside = p.is_some_and(|p| dist(p, [-0.04, -0.31]) <= 0.04);
            assert_eq!(v > 0.0, inside, "place {k}");
        }
        // A centre off the picture keeps every weight.
        assert_eq!(weights_near(&w, &c, [3.0, 3.0], 0.04), w);
        // A tracker keeps to the weak candidate while it weighs at least
        // `release` of the strong one, and leaves it when it weighs less.
        let peak_of = |w: &[f32]| w.iter().copied().fold(0.0f32, f32::max);
        let ratio = peak_of(&near) / peak_of(&w);
        assert!(ratio > 0.1 && ratio < 0.5, "{ratio}");
        let tracker = |release: f32| Near {
            centre_m: [-0.04, -0.31],
            radius_m: 0.04,
            release,
        };
        assert_eq!(tracker(0.0).weights(&w, &c), near);
        assert_eq!(tracker(0.8 * ratio).weights(&w, &c), near);
        assert_eq!(tracker(1.25 * ratio).weights(&w, &c), w);
        // The tracker looks anywhere until it has found something, then
        // near the last place found; a look off the table changes nothing;
        // with radius 0 it always looks anywhere.
        let mut follow = Tracker::new(0.04, 0.0);
        assert_eq!(follow.near(), None);
        follow.saw(Some([-0.04, -0.31]));
        assert_eq!(follow.near(), Some(tracker(0.0)));
        follow.saw(None);
        assert_eq!(follow.near(), Some(tracker(0.0)));
        follow.forget();
        assert_eq!(follow.near(), None);
        let mut anywhere = Tracker::new(0.0, 0.0);
        anywhere.saw(Some([-0.04, -0.31]));
        assert_eq!(anywhere.near(), None);
    }
}
