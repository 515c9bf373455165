//! Image augmentation for training: a random shift (the image moved by up
//! to a few pixels, edges repeated) and colour jitter (brightness, contrast
//! and a gain per channel), different for every sample.

use rand::Rng;

/// How much to perturb.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest shift, pixels, in each direction.
    pub shift_px: usize,
    /// Brightness and contrast are scaled by 1 ± this.
    pub jitter: f32,
    /// Each channel is scaled by 1 ± this.
    pub channel_gain: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            shift_px: 4,
            jitter: 0.15,
            channel_gain: 0.05,
        }
    }
}

impl Augment {
    /// No change.
    pub const NONE: Augment = Augment {
        shift_px: 0,
        jitter: 0.0,
        channel_gain: 0.0,
    };

    /// Augments `images` in place: `n` images, each `3 × size × size`, values 0..1.
    pub fn apply(&self, images: &mut [f32], size: usize, rng: &mut impl Rng) {
        let plane = size * size;
        let mut shifted = vec![0f32; 3 * plane];
        for image in images.chunks_exact_mut(3 * plane) {
            if self.shift_px > 0 {
                let s = self.shift_px as i32;
                let (dx, dy) = (
                    rng.random_range(-s..=s) as isize,
                    rng.random_range(-s..=s) as isize,
                );
                let clamp = |v: isize| v.clamp(0, size as isize - 1) as usize;
                for c in 0..3 {
                    for y in 0..size {
                        let sy = clamp(y as isize + dy);
                        for x in 0..size {
                            shifted[c * plane + y * size + x] =
                                image[c * plane + sy * size + clamp(x as isize + dx)];
                        }
                    }
                }
                image.copy_from_slice(&shifted);
            }
            if self.jitter > 0.0 || self.channel_gain > 0.0 {
                let mut factor = |spread: f32| {
                    if spread > 0.0 {
                        rng.random_range(1.0 - spread..=1.0 + spread)
                    } else {
                        1.0
                    }
                };
                let brightness = factor(self.jitter);
                let contrast = factor(self.jitter);
                let gains = [
                    factor(self.channel_gain),
                    factor(self.channel_gain),
                    factor(self.channel_gain),
                ];
                let mean = image.iter().sum::<f32>() / image.len() as f32;
                for (c, gain) in gains.iter().enumerate() {
                    for v in &mut image[c * plane..(c + 1) * plane] {
                        *v = (((*v - mean) * contrast + mean) * brightness * gain).clamp(0.0, 1.0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn gradient_image(size: usize) -> Vec<f32> {
        (0..3 * size * size)
            .map(|i| ((i % size) as f32) / size as f32)
            .collect()
    }

    #[test]
    fn a_shift_moves_the_image_and_keeps_its_values() {
        let size = 16;
        let image = gradient_image(size);
        let mut rng = StdRng::seed_from_u64(3);
        let shift = Augment {
            shift_px: 3,
            ..Augment::NONE
        };
        let mut moved = 0;
        for _ in 0..20 {
            let mut out = image.clone();
            shift.apply(&mut out, size, &mut rng);
            // Every value is one of the original row's values, and a row stays a gradient.
            assert!(out.iter().all(|v| image.contains(v)));
            if out != image {
                moved += 1;
            }
        }
        assert!(moved >= 15, "only {moved} of 20 images moved");
    }

    #[test]
    fn jitter_changes_colours_within_bounds() {
        let size = 8;
        let image = gradient_image(size);
        let mut rng = StdRng::seed_from_u64(4);
        let mut out = image.clone();
        Augment {
            shift_px: 0,
            ..Augment::default()
        }
        .apply(&mut out, size, &mut rng);
        assert_ne!(out, image);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        let biggest = out
            .iter()
            .zip(&image)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(biggest < 0.35, "jitter moved a value by {biggest}");
    }
}
