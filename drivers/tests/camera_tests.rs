//! Camera conversion and timing on frames generated here (no camera exists
//! on the test machines; capture itself is not exercised).

use std::path::Path;
use std::time::Duration;

use sponge_drivers::camera::convert::{mjpeg_to_rgb, resize_rgb, yuyv_to_rgb};
use sponge_drivers::camera::{Camera, CameraConfig, Decision, FramePacer};

/// BT.601 limited range, RGB → YCbCr, written out from the standard's coefficients.
fn rgb_to_ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    [y.round() as u8, cb.round() as u8, cr.round() as u8]
}

const COLOURS: [[u8; 3]; 8] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 255],
    [0, 0, 0],
    [128, 128, 128],
    [230, 120, 30],
    [40, 90, 200],
];

#[test]
fn yuyv_colours_come_back_as_rgb() {
    // Two pixels of each colour per YUYV pair, one colour per pair, 16 x 1, rows padded to 40 bytes.
    let (width, stride) = (16u32, 40usize);
    let mut yuyv = vec![0u8; stride * 2];
    for row in 0..2 {
        for (i, colour) in COLOURS.iter().enumerate() {
            let [y, cb, cr] = rgb_to_ycbcr(*colour);
            yuyv[row * stride + i * 4..row * stride + i * 4 + 4].copy_from_slice(&[y, cb, y, cr]);
        }
    }
    let rgb = yuyv_to_rgb(&yuyv, width, 2, stride).unwrap();
    for (i, colour) in COLOURS.iter().enumerate() {
        for px in [2 * i, 2 * i + 1, 16 + 2 * i] {
            let got = &rgb[px * 3..px * 3 + 3];
            for c in 0..3 {
                assert!(
                    (i32::from(got[c]) - i32::from(colour[c])).abs() <= 2,
                    "{colour:?} came back {got:?}"
                );
            }
        }
    }
}

#[test]
fn short_or_odd_yuyv_frames_are_errors() {
    let err = yuyv_to_rgb(&[0; 100], 16, 16, 32).unwrap_err().to_string();
    assert!(err.contains("100 bytes") && err.contains("16x16"), "{err}");
    assert!(yuyv_to_rgb(&[0; 100], 3, 1, 6).is_err(), "odd width");
}

fn test_image(width: usize, height: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            rgb.extend_from_slice(&[
                (x * 255 / width) as u8,
                (y * 255 / height) as u8,
                ((x + y) % 64 * 4) as u8,
            ]);
        }
    }
    rgb
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// Removes the DHT (Huffman table) segments, as UVC cameras' Motion-JPEG does.
fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            out.extend_from_slice(&jpeg[i..]);
            return out;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

#[test]
fn motion_jpeg_decodes_with_and_without_huffman_tables() {
    let (width, height) = (64usize, 48usize);
    let original = test_image(width, height);
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(
            &original,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    let (rgb, w, h) = mjpeg_to_rgb(&jpeg).unwrap();
    assert_eq!((w, h), (64, 48));
    let quality = psnr(&rgb, &original);
    assert!(quality > 30.0, "PSNR {quality:.1} dB");

    let stripped = strip_huffman_tables(&jpeg);
    assert!(
        stripped.len() < jpeg.len(),
        "the encoder wrote Huffman tables to strip"
    );
    let (rgb, _, _) = mjpeg_to_rgb(&stripped).unwrap();
    assert!(
        psnr(&rgb, &original) > 20.0,
        "standard tables stand in for the missing ones"
    );

    let err = mjpeg_to_rgb(&jpeg[..jpeg.len() / 3]).err().map(|e| e.to_string());
    assert!(
        err.is_some_and(|e| e.contains("does not decode")),
        "truncated JPEG is an error"
    );
}

#[test]
fn resize_keeps_flat_colour_and_averages_edges() {
    let flat = [200u8, 100, 50].repeat(8 * 6);
    assert_eq!(resize_rgb(&flat, 8, 6, 4, 3), [200u8, 100, 50].repeat(12));
    // Two columns, black and white, halved: one grey column.
    let stripes = [[0u8; 3], [255u8; 3]].concat().repeat(2);
    let half = resize_rgb(&stripes, 2, 2, 1, 1);
    assert!((i32::from(half[0]) - 128).abs() <= 1, "{half:?}");
    let image = test_image(10, 10);
    assert_eq!(resize_rgb(&image, 10, 10, 10, 10), image);
}

fn offer_all(pacer: &mut FramePacer, times_ms: impl Iterator<Item = f64>) -> usize {
    times_ms
        .filter(|t| pacer.offer(Duration::from_secs_f64(t / 1e3)) == Decision::Keep)
        .count()
}

#[test]
fn pacing_halves_a_faster_camera_and_keeps_a_matching_one() {
    let mut pacer = FramePacer::new(15.0);
    let kept = offer_all(&mut pacer, (0..300).map(|i| f64::from(i) * 1000.0 / 30.0));
    assert!((149..=151).contains(&kept), "kept {kept} of 300 at 30 -> 15 fps");
    assert_eq!(pacer.late, 0);

    // 30 fps camera with ±3 ms jitter, 30 fps requested: every frame kept.
    let mut pacer = FramePacer::new(30.0);
    let jitter = [0.0, 3.0, -3.0, 1.5, -2.0];
    let kept = offer_all(
        &mut pacer,
        (0..300).map(|i| f64::from(i) * 1000.0 / 30.0 + jitter[i as usize % 5]),
    );
    assert_eq!(kept, 300);
}

#[test]
fn pacing_counts_gaps_when_the_camera_falls_behind() {
    let mut pacer = FramePacer::new(30.0);
    // 100 ms of nothing after frame 10.
    let times = (0..30).map(|i| f64::from(i) * 33.3 + if i > 10 { 100.0 } else { 0.0 });
    assert_eq!(offer_all(&mut pacer, times), 30);
    assert_eq!(pacer.late, 1);
}

#[test]
fn missing_camera_is_a_clear_error() {
    let config = CameraConfig {
        width: 96,
        height: 96,
        fps: 30.0,
    };
    let err = Camera::open(Path::new("/dev/video-sponge-none"), config)
        .err()
        .expect("no camera here");
    let message = err.to_string();
    assert!(
        message.contains("no camera at /dev/video-sponge-none"),
        "{message}"
    );
}
