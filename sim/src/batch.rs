//! Many environments stepped together: physics in parallel on rayon's
//! threads, then every camera of every environment rendered in one Bevy
//! update. The gym-style API of [`Env`] with images, for one environment
//! (`VecEnv::new(config, 1, …)`) or many.

use rayon::prelude::*;
use sponge_robot::joint::JointVector;

use crate::env::{Env, EnvConfig, Observation, Step};
use crate::render::{RenderConfig, RenderError, Renderer};

/// A batch of environments sharing one renderer.
pub struct VecEnv {
    config: EnvConfig,
    envs: Vec<Env>,
    renderer: Option<Renderer>,
}

impl VecEnv {
    /// `n` environments (seeded 0..n until reset); with `render`, each
    /// observation carries the cameras' images.
    pub fn new(config: EnvConfig, n: usize, render: bool) -> Result<VecEnv, RenderError> {
        let renderer = if render {
            Some(Renderer::new(RenderConfig {
                envs: n,
                image_size: config.image_size,
                wrist_camera: config.wrist_camera,
            })?)
        } else {
            None
        };
        let envs = (0..n as u64).map(|seed| Env::new(config.clone(), seed)).collect();
        Ok(VecEnv {
            config,
            envs,
            renderer,
        })
    }

    /// How many environments there are.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// The configuration every environment runs with.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// The graphics adapter rendering the cameras, if rendering.
    pub fn adapter(&self) -> Option<String> {
        self.renderer.as_ref().map(Renderer::adapter)
    }

    /// The environments.
    pub fn envs(&self) -> &[Env] {
        &self.envs
    }

    /// The environments, for changing them (an expert acting, tests).
    pub fn envs_mut(&mut self) -> &mut [Env] {
        &mut self.envs
    }

    /// Starts a new episode in every environment (`seeds[i]` for environment `i`).
    pub fn reset(&mut self, seeds: &[u64]) -> Result<Vec<Observation>, RenderError> {
        for (env, &seed) in self.envs.iter_mut().zip(seeds) {
            env.reset(seed);
        }
        let mut observations: Vec<Observation> = self.envs.iter().map(Env::observe).collect();
        self.attach_images(observations.iter_mut())?;
        Ok(observations)
    }

    /// Starts a new episode in environment `i` only, without rendering.
    pub fn reset_one(&mut self, i: usize, seed: u64) {
        if let Some(env) = self.envs.get_mut(i) {
            env.reset(seed);
        }
    }

    /// Steps every environment with its action, in parallel, then renders them all.
    pub fn step(&mut self, actions: &[JointVector]) -> Result<Vec<Step>, RenderError> {
        let mut steps: Vec<Step> = self
            .envs
            .par_iter_mut()
            .zip(actions.par_iter())
            .map(|(env, action)| env.step(action))
            .collect();
        self.attach_images(steps.iter_mut().map(|s| &mut s.observation))?;
        Ok(steps)
    }

    /// The current observation of every environment (rendered when rendering).
    pub fn observe(&mut self) -> Result<Vec<Observation>, RenderError> {
        let mut observations: Vec<Observation> = self.envs.iter().map(Env::observe).collect();
        self.attach_images(observations.iter_mut())?;
        Ok(observations)
    }

    fn attach_images<'a>(
        &mut self,
        observations: impl Iterator<Item = &'a mut Observation>,
    ) -> Result<(), RenderError> {
        let Some(renderer) = self.renderer.as_mut() else {
            return Ok(());
        };
        let refs: Vec<&Env> = self.envs.iter().collect();
        let images = renderer.render(&refs)?;
        for ((observation, mut images), env) in observations.zip(images).zip(&self.envs) {
            if let Some(front) = images.first_mut() {
                cover(front, self.config.image_size as usize, env.camera_cover());
            }
            observation.images = images;
        }
        Ok(())
    }
}

/// Darkens the left `fraction` of an RGB8 picture, as a hand or a cloth in
/// front of the lens would, with a soft edge.
fn cover(image: &mut [u8], size: usize, fraction: f32) {
    if fraction <= 0.0 || size == 0 {
        return;
    }
    let edge = fraction * size as f32;
    for (p, px) in image.chunks_exact_mut(3).enumerate() {
        let x = (p % size) as f32;
        let shade = ((edge - x) / 4.0).clamp(0.0, 1.0);
        for (c, dark) in px.iter_mut().zip([52.0f32, 40.0, 36.0]) {
            *c = (f32::from(*c) * (1.0 - shade) + dark * shade).round() as u8;
        }
    }
}
