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
}
