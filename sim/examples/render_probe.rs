//! Renders a few environments and writes their images as PPM files.
use sponge_sim::render::{RenderConfig, Renderer};
use sponge_sim::{Env, EnvConfig};

fn main() {
    let size: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(96);
    let n: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let t0 = std::time::Instant::now();
    let mut renderer = Renderer::new(RenderConfig {
        envs: n,
        image_size: size,
        wrist_camera: std::env::args().nth(3).is_some(),
    })
    .expect("renderer");
    println!("renderer up in {:?}", t0.elapsed());
    let envs: Vec<Env> = (0..n as u64).map(|s| Env::new(EnvConfig::default(), s)).collect();
    let refs: Vec<&Env> = envs.iter().collect();
    renderer.render(&refs).expect("render");
    let t1 = std::time::Instant::now();
    let mut images = renderer.render(&refs).expect("render");
    println!("second render {:?}", t1.elapsed());
    let t0 = std::time::Instant::now();
    for _ in 0..40 {
        images = renderer.render(&refs).expect("render");
    }
    println!("40 renders of {n} envs in {:?}", t0.elapsed());
    for (e, cams) in images.iter().enumerate() {
        for (c, img) in cams.iter().enumerate() {
            let mut f = format!("P6 {size} {size} 255\n").into_bytes();
            f.extend_from_slice(img);
            std::fs::write(format!("/tmp/render_{e}_{c}.ppm"), f).expect("write");
        }
    }
}
