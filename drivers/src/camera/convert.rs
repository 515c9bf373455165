//! Pixel conversions from what USB cameras send (YUYV 4:2:2, Motion JPEG)
//! to packed RGB8, and resizing.

use crate::{Error, Result};

fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One BT.601 limited-range YCbCr sample to RGB (fixed point, 8 fraction bits).
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(cb) - 128;
    let e = i32::from(cr) - 128;
    [
        clamp_u8((c + 409 * e + 128) >> 8),
        clamp_u8((c - 100 * d - 208 * e + 128) >> 8),
        clamp_u8((c + 516 * d + 128) >> 8),
    ]
}

/// YUYV (`Y0 U Y1 V` per two pixels, rows `stride` bytes apart) to RGB8.
pub fn yuyv_to_rgb(yuyv: &[u8], width: u32, height: u32, stride: usize) -> Result<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    if w % 2 != 0 || stride < w * 2 || yuyv.len() < stride * h.saturating_sub(1) + w * 2 {
        return Err(Error::Camera(format!(
            "YUYV frame of {} bytes does not hold {width}x{height} with {stride}-byte rows",
            yuyv.len()
        )));
    }
    let mut rgb = vec![0u8; w * h * 3];
    for (row, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let line = &yuyv[row * stride..row * stride + w * 2];
        for (pair, px) in line.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
            let (y0, u, y1, v) = (pair[0], pair[1], pair[2], pair[3]);
            px[..3].copy_from_slice(&ycbcr_to_rgb(y0, u, v));
            px[3..].copy_from_slice(&ycbcr_to_rgb(y1, u, v));
        }
    }
    Ok(rgb)
}

/// A Motion-JPEG frame (a JPEG, often without Huffman tables) to RGB8 and its size.
pub fn mjpeg_to_rgb(jpeg: &[u8]) -> Result<(Vec<u8>, u32, u32)> {
    // A frame cut short on the USB link would otherwise decode to grey.
    let end = jpeg.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if !jpeg[..end].ends_with(&[0xFF, 0xD9]) {
        return Err(Error::Camera(format!(
            "Motion-JPEG frame of {} bytes does not decode: truncated (no end-of-image marker)",
            jpeg.len()
        )));
    }
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB);
    let patched = super::huffman::with_default_tables(jpeg);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(patched.as_deref().unwrap_or(jpeg), options);
    let rgb = decoder.decode().map_err(|e| {
        Error::Camera(format!(
            "Motion-JPEG frame of {} bytes does not decode: {e:?}",
            jpeg.len()
        ))
    })?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| Error::Camera("Motion-JPEG frame has no size".into()))?;
    Ok((rgb, u32::from(width as u16), u32::from(height as u16)))
}

/// Bilinear resize of an RGB8 image.
pub fn resize_rgb(rgb: &[u8], width: u32, height: u32, out_width: u32, out_height: u32) -> Vec<u8> {
    let (w, h, ow, oh) = (
        width as usize,
        height as usize,
        out_width as usize,
        out_height as usize,
    );
    if (w, h) == (ow, oh) {
        return rgb.to_vec();
    }
    let mut out = vec![0u8; ow * oh * 3];
    let scale_x = w as f32 / ow as f32;
    let scale_y = h as f32 / oh as f32;
    for oy in 0..oh {
        let sy = ((oy as f32 + 0.5) * scale_y - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, fy) = (sy.floor() as usize, sy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for ox in 0..ow {
            let sx = ((ox as f32 + 0.5) * scale_x - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, fx) = (sx.floor() as usize, sx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for c in 0..3 {
                let p = |x: usize, y: usize| f32::from(rgb[(y * w + x) * 3 + c]);
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                out[(oy * ow + ox) * 3 + c] = (top * (1.0 - fy) + bottom * fy).round() as u8;
            }
        }
    }
    out
}
