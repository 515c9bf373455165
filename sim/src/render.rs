//! Headless rendering of many twins at once with Bevy.
//!
//! One Bevy app holds a copy of every environment's scene (table with its
//! dirt, arm, sponge, cameras), each on its own render layer so that no
//! camera sees a neighbour, and lit through its own materials. Every camera draws into its own
//! tile of one shared image; one update draws them all, and a render-world
//! system copies that image back to the CPU before the update returns, so
//! [`Renderer::render`] is synchronous and deterministic.
//!
//! It runs on whatever Vulkan (or Metal, DX12) adapter wgpu finds: a GPU
//! where there is one, Mesa's lavapipe (software Vulkan) otherwise.

use std::f32::consts::FRAC_PI_2;
use std::sync::{Arc, Mutex};

use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::asset::RenderAssetUsages;
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{ClearColorConfig, RenderTarget, Viewport};
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::image::ImageSampler;
use bevy::pbr::{Material, MaterialPlugin};
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::AsBindGroup;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CommandEncoderDescriptor, Extent3d, MapMode, PollType,
    TexelCopyBufferInfo, TexelCopyBufferLayout, TextureDimension, TextureFormat, TextureUsages,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::view::Msaa;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::shader::Shader;
use bevy::shader::ShaderRef;
use bevy::window::ExitCondition;
use nalgebra::{Isometry3, Vector3};
use sponge_robot::model::{COLLIDERS, Link, NUM_LINKS, Shape};

use crate::env::{Appearance, Env};
use crate::spill::{CELL_M, GRID_NX, GRID_NY, GRID_X0_M, GRID_Y0_M};

/// Cameras see no further than this, metres.
const FAR_M: f32 = 3.0;
/// Table top size and centre (base frame), as in the physics.
const TABLE_SIZE_M: [f32; 2] = [1.0, 0.8];
const TABLE_CENTRE_M: [f32; 2] = [0.0, -0.3];
const TABLE_THICKNESS_M: f32 = 0.03;
/// The table texture's size in texels: one per dirt cell.
const TABLE_TEXELS: [usize; 2] = [200, 160];
/// Where the dirt grid starts in the table texture (column, row).
const GRID_IN_TABLE: [usize; 2] = [
    ((GRID_X0_M - (TABLE_CENTRE_M[0] - 0.5 * TABLE_SIZE_M[0]) as f64) / CELL_M).round() as usize,
    ((GRID_Y0_M - (TABLE_CENTRE_M[1] - 0.5 * TABLE_SIZE_M[1]) as f64) / CELL_M).round() as usize,
];
/// Nominal front camera position and aim point (base frame), metres.
const FRONT_EYE_M: [f32; 3] = [0.30, -0.50, 0.40];
const FRONT_AIM_M: [f32; 3] = [0.0, -0.13, 0.03];
/// Nominal front camera vertical field of view, degrees (each episode
/// varies it a little, [`Appearance::random`]).
pub const FRONT_FOV_DEG: f32 = 50.0;

/// The front camera's nominal eye, aim point (base frame, metres) and
/// vertical field of view (degrees), for turning places on the table into
/// places in its pictures and back (each episode moves it by up to 2.5 cm
/// and widens or narrows it by up to 2°).
pub fn front_camera() -> ([f64; 3], [f64; 3], f64) {
    let f = |v: [f32; 3]| v.map(f64::from);
    (f(FRONT_EYE_M), f(FRONT_AIM_M), f64::from(FRONT_FOV_DEG))
}

/// Errors from the renderer.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No graphics adapter could be opened.
    #[error(
        "no graphics adapter for rendering: install Mesa's software Vulkan \
         (`sudo apt-get install mesa-vulkan-drivers`) or a GPU driver ({0})"
    )]
    NoAdapter(String),
    /// Bevy refused to set the scene up or stopped with an error.
    #[error("rendering failed: {0}")]
    Bevy(String),
    /// More environments than the renderer was built for.
    #[error("{given} environments given to a renderer built for {capacity}")]
    TooManyEnvs {
        /// Environments given.
        given: usize,
        /// Environments the renderer holds.
        capacity: usize,
    },
    /// The image copied back had the wrong size.
    #[error("the rendered image came back with {got} bytes, expected {expected}")]
    Readback {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderConfig {
    /// How many environments are drawn in one update.
    pub envs: usize,
    /// Image width and height, pixels.
    pub image_size: u32,
    /// Whether each environment has a wrist camera besides the front one.
    pub wrist_camera: bool,
}

impl RenderConfig {
    /// Cameras per environment.
    pub fn cameras_per_env(&self) -> usize {
        1 + self.wrist_camera as usize
    }
}

/// The twin's surface shader (see `shaders/twin.wgsl`).
const TWIN_SHADER: Handle<Shader> = bevy::asset::uuid_handle!("5d0f7f3e-3a57-4d0c-9a43-58b1f3f0c2d1");

/// A surface of the twin: a colour times a texture, lit by the slot's own
/// light (so that neighbouring environments' lights never mix).
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub(crate) struct TwinMaterial {
    #[uniform(0)]
    params: TwinParams,
    #[texture(1)]
    #[sampler(2)]
    texture: Handle<Image>,
}

/// The uniform block of [`TwinMaterial`] (linear colours, display units).
#[derive(Debug, Clone, Copy, Default, bevy::render::render_resource::ShaderType)]
pub(crate) struct TwinParams {
    colour: Vec4,
    light_position: Vec4,
    light: Vec4,
    ambient: Vec4,
}

impl Material for TwinMaterial {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(TWIN_SHADER)
    }
}

/// Display units: a white surface facing the light head-on at 1 m under
/// this many lux comes out at full brightness.
const FULL_SCALE_LUX: f32 = 7000.0;
/// Ambient brightness (cd/m²) that alone gives full brightness.
const FULL_SCALE_AMBIENT: f32 = 2000.0;

/// Bytes copied back from the GPU after each update (shared with the render world).
#[derive(Resource, Clone)]
struct Readback {
    atlas: Handle<Image>,
    pixels: Arc<Mutex<Vec<u8>>>,
}

/// One environment's entities and assets in the Bevy world.
pub(crate) struct Slot {
    pub(crate) root: Entity,
    links: [Entity; NUM_LINKS],
    sponge: Entity,
    /// Every material of the slot (they all carry its light), sponge and table first.
    materials: Vec<Handle<TwinMaterial>>,
    table_image: Handle<Image>,
    cameras: Vec<Entity>,
    /// Seed and sponge size the slot's looks were last set up for.
    episode: Option<(u64, [f64; 3], u32)>,
    /// Dirt left per spill when the table was last drawn.
    drawn_dirt: Vec<f64>,
}

/// Renders batches of environments.
pub struct Renderer {
    app: App,
    config: RenderConfig,
    columns: u32,
    atlas_size: [u32; 2],
    readback: Readback,
    slots: Vec<Slot>,
}

impl Renderer {
    /// Builds the renderer: opens the graphics adapter and builds one scene per environment.
    pub fn new(config: RenderConfig) -> Result<Renderer, RenderError> {
        let tiles = (config.envs.max(1) * config.cameras_per_env()) as u32;
        let columns = (tiles as f64).sqrt().ceil() as u32;
        let rows = tiles.div_ceil(columns);
        let atlas_size = [columns * config.image_size, rows * config.image_size];

        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(bevy::render::RenderPlugin {
                    synchronous_pipeline_compilation: true,
                    ..default()
                })
                .disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>()
                .disable::<TerminalCtrlCHandlerPlugin>(),
        );
        add_twin_material(&mut app)?;
        // Wait for the adapter and device (opened asynchronously), then finish the plugins.
        let started = std::time::Instant::now();
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
            std::thread::sleep(std::time::Duration::from_millis(1));
            if started.elapsed().as_secs() > 120 {
                return Err(RenderError::NoAdapter("timed out opening it".into()));
            }
        }
        app.finish();
        app.cleanup();
        if app.get_sub_app(RenderApp).is_none() {
            return Err(RenderError::NoAdapter("the render app did not start".into()));
        }

        let mut atlas =
            Image::new_target_texture(atlas_size[0], atlas_size[1], TextureFormat::Rgba8UnormSrgb, None);
        atlas.texture_descriptor.usage |= TextureUsages::COPY_SRC;
        let atlas = app.world_mut().resource_mut::<Assets<Image>>().add(atlas);
        let readback = Readback {
            atlas: atlas.clone(),
            pixels: Arc::new(Mutex::new(Vec::new())),
        };
        if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
            render_app.insert_resource(readback.clone());
            render_app.add_systems(
                Render,
                copy_atlas_back
                    .after(RenderSystems::Render)
                    .before(RenderSystems::Cleanup),
            );
        }

        let slots = (0..config.envs)
            .map(|i| {
                let mut slot = build_slot(app.world_mut(), i);
                spawn_tile_cameras(app.world_mut(), &mut slot, &config, i, columns, &atlas);
                slot
            })
            .collect();
        let mut renderer = Renderer {
            app,
            config,
            columns,
            atlas_size,
            readback,
            slots,
        };
        // The first update compiles the pipelines; check the adapter works.
        renderer.app.update();
        renderer.take_pixels()?;
        Ok(renderer)
    }

    /// The configuration.
    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    /// The graphics adapter in use, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Cpu, Vulkan)".
    pub fn adapter(&self) -> String {
        self.app
            .get_sub_app(RenderApp)
            .and_then(|app| {
                app.world()
                    .get_resource::<bevy::render::renderer::RenderAdapterInfo>()
            })
            .map(|info| format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend))
            .unwrap_or_else(|| "unknown adapter".into())
    }

    /// Renders `envs` (at most `config().envs`) as they are now: for each
    /// environment, one RGB8 image per camera (front, then wrist), row-major,
    /// `image_size`² × 3 bytes.
    pub fn render(&mut self, envs: &[&Env]) -> Result<Vec<Vec<Vec<u8>>>, RenderError> {
        if envs.len() > self.slots.len() {
            return Err(RenderError::TooManyEnvs {
                given: envs.len(),
                capacity: self.slots.len(),
            });
        }
        let mut changed = false;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let env = envs.get(i).copied();
            changed |= update_slot(self.app.world_mut(), slot, env);
        }
        if changed {
            // A slot's new textures and material settings reach the GPU one
            // update after they change: draw once more so that the first
            // image of an episode already shows it.
            self.app.update();
            self.take_pixels()?;
        }
        self.app.update();
        let pixels = self.take_pixels()?;
        let s = self.config.image_size as usize;
        let cams = self.config.cameras_per_env();
        let row_bytes = self.atlas_size[0] as usize * 4;
        Ok((0..envs.len())
            .map(|e| {
                (0..cams)
                    .map(|c| {
                        let tile = (e * cams + c) as u32;
                        let (tx, ty) = ((tile % self.columns) as usize, (tile / self.columns) as usize);
                        let mut out = Vec::with_capacity(s * s * 3);
                        for y in 0..s {
                            let start = (ty * s + y) * row_bytes + tx * s * 4;
                            for px in pixels[start..start + s * 4].chunks_exact(4) {
                                out.extend_from_slice(&px[..3]);
                            }
                        }
                        out
                    })
                    .collect()
            })
            .collect())
    }

    fn take_pixels(&mut self) -> Result<Vec<u8>, RenderError> {
        let expected = (self.atlas_size[0] * self.atlas_size[1] * 4) as usize;
        let pixels = std::mem::take(&mut *self.readback.pixels.lock().unwrap_or_else(|e| e.into_inner()));
        if pixels.len() != expected {
            return Err(RenderError::Readback {
                got: pixels.len(),
                expected,
            });
        }
        Ok(pixels)
    }
}

/// Adds the twin's material and its shader to an app.
pub(crate) fn add_twin_material(app: &mut App) -> Result<(), RenderError> {
    app.add_plugins(MaterialPlugin::<TwinMaterial>::default());
    app.world_mut()
        .resource_mut::<Assets<Shader>>()
        .insert(
            TWIN_SHADER.id(),
            Shader::from_wgsl(include_str!("shaders/twin.wgsl"), "sponge_sim/shaders/twin.wgsl"),
        )
        .map_err(|e| RenderError::Bevy(format!("could not add the twin shader: {e}")))
}

/// Render world: copies the atlas into a mappable buffer, waits for it and
/// hands the rows (without wgpu's row padding) to the main world.
fn copy_atlas_back(
    readback: Res<Readback>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    mut buffer: Local<Option<(Buffer, u64)>>,
) {
    let Some(gpu) = images.get(&readback.atlas) else {
        return;
    };
    let size = gpu.texture_descriptor.size;
    let row = size.width as u64 * 4;
    let padded_row = row.div_ceil(256) * 256;
    let bytes = padded_row * size.height as u64;
    if buffer.as_ref().is_none_or(|(_, b)| *b != bytes) {
        *buffer = Some((
            device.create_buffer(&BufferDescriptor {
                label: Some("sponge atlas readback"),
                size: bytes,
                usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            bytes,
        ));
    }
    let Some((buffer, _)) = buffer.as_ref() else {
        return;
    };
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor::default());
    encoder.copy_texture_to_buffer(
        gpu.texture.as_image_copy(),
        TexelCopyBufferInfo {
            buffer,
            layout: TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded_row as u32),
                rows_per_image: None,
            },
        },
        Extent3d {
            width: size.width,
            height: size.height,
            depth_or_array_layers: 1,
        },
    );
    queue.submit([encoder.finish()]);
    let slice = buffer.slice(..);
    slice.map_async(MapMode::Read, |_| {});
    if device.poll(PollType::wait_indefinitely()).is_err() {
        buffer.unmap();
        return;
    }
    {
        let data = slice.get_mapped_range();
        let mut out = readback.pixels.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        out.reserve((row * size.height as u64) as usize);
        for y in 0..size.height as u64 {
            let start = (y * padded_row) as usize;
            out.extend_from_slice(&data[start..start + row as usize]);
        }
    }
    buffer.unmap();
}

/// Base frame (z up, metres) to the slot's Bevy frame: done by the root entity.
fn transform_of(iso: &Isometry3<f64>) -> Transform {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Transform {
        translation: Vec3::new(t.x as f32, t.y as f32, t.z as f32),
        rotation: Quat::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32).normalize(),
        scale: Vec3::ONE,
    }
}

/// Builds slot `index`'s scene (no cameras) on render layer `index + 1`.
pub(crate) fn build_slot(world: &mut World, index: usize) -> Slot {
    let mut meshes = world.resource_mut::<Assets<Mesh>>();
    let table_mesh = meshes.add(Cuboid::new(TABLE_SIZE_M[0], TABLE_SIZE_M[1], TABLE_THICKNESS_M));
    let sponge_mesh = meshes.add(Cuboid::new(1.0, 1.0, 1.0));
    let part_meshes: Vec<(Link, Handle<Mesh>, Transform)> = COLLIDERS
        .iter()
        .map(|c| match c.shape {
            Shape::Cuboid {
                centre_m,
                half_extents_m: h,
            } => (
                c.link,
                meshes.add(Cuboid::new(
                    2.0 * h[0] as f32,
                    2.0 * h[1] as f32,
                    2.0 * h[2] as f32,
                )),
                Transform::from_xyz(centre_m[0] as f32, centre_m[1] as f32, centre_m[2] as f32),
            ),
            Shape::Capsule { a_m, b_m, radius_m } => {
                let a = Vec3::new(a_m[0] as f32, a_m[1] as f32, a_m[2] as f32);
                let b = Vec3::new(b_m[0] as f32, b_m[1] as f32, b_m[2] as f32);
                let axis = b - a;
                (
                    c.link,
                    meshes.add(
                        Capsule3d::new(radius_m as f32, axis.length())
                            .mesh()
                            .rings(1)
                            .latitudes(6)
                            .longitudes(12),
                    ),
                    Transform::from_translation(0.5 * (a + b))
                        .with_rotation(Quat::from_rotation_arc(Vec3::Y, axis.normalize_or(Vec3::Y))),
                )
            }
        })
        .collect();

    let filled = |w: u32, h: u32| {
        let mut image = Image::new_fill(
            Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            &[255, 255, 255, 255],
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::default(),
        );
        image.sampler = ImageSampler::linear();
        image
    };
    let mut images = world.resource_mut::<Assets<Image>>();
    let white = images.add(filled(1, 1));
    let table_image = images.add(filled(TABLE_TEXELS[0] as u32, TABLE_TEXELS[1] as u32));

    let mut materials = world.resource_mut::<Assets<TwinMaterial>>();
    let mut material = |colour: [f32; 3], texture: &Handle<Image>| {
        let c = Color::srgb(colour[0], colour[1], colour[2]).to_linear();
        materials.add(TwinMaterial {
            params: TwinParams {
                colour: Vec4::new(c.red, c.green, c.blue, 1.0),
                ..default()
            },
            texture: texture.clone(),
        })
    };
    let sponge_material = material([1.0; 3], &white);
    let table_material = material([1.0; 3], &table_image);
    let printed = material([0.92, 0.9, 0.85], &white);
    let servo = material([0.08, 0.08, 0.09], &white);

    // Every slot's scene sits at the origin on its own render layer, so
    // that an episode renders the same whichever slot it lands in.
    let layer = RenderLayers::layer(index + 1);
    let root = world
        .spawn((
            Transform::from_rotation(Quat::from_rotation_x(-FRAC_PI_2)),
            Visibility::default(),
        ))
        .id();
    world.spawn((
        Mesh3d(table_mesh),
        MeshMaterial3d(table_material.clone()),
        Transform::from_xyz(TABLE_CENTRE_M[0], TABLE_CENTRE_M[1], -0.5 * TABLE_THICKNESS_M),
        layer.clone(),
        ChildOf(root),
    ));
    let links: [Entity; NUM_LINKS] = std::array::from_fn(|_| {
        world
            .spawn((Transform::default(), Visibility::default(), ChildOf(root)))
            .id()
    });
    for (k, (link, mesh, transform)) in part_meshes.into_iter().enumerate() {
        let material = if k % 2 == 0 {
            printed.clone()
        } else {
            servo.clone()
        };
        world.spawn((
            Mesh3d(mesh),
            MeshMaterial3d(material),
            transform,
            layer.clone(),
            ChildOf(links[link.index()]),
        ));
    }
    let sponge = world
        .spawn((
            Mesh3d(sponge_mesh),
            MeshMaterial3d(sponge_material.clone()),
            Transform::default(),
            layer.clone(),
            ChildOf(root),
        ))
        .id();
    Slot {
        root,
        links,
        sponge,
        materials: vec![sponge_material, table_material, printed, servo],
        table_image,
        cameras: Vec::new(),
        episode: None,
        drawn_dirt: Vec::new(),
    }
}

/// Spawns slot `index`'s cameras, each drawing into its tile of the atlas.
fn spawn_tile_cameras(
    world: &mut World,
    slot: &mut Slot,
    config: &RenderConfig,
    index: usize,
    columns: u32,
    atlas: &Handle<Image>,
) {
    let root = slot.root;
    let layer = RenderLayers::layer(index + 1);
    slot.cameras = (0..config.cameras_per_env())
        .map(|c| {
            let tile = (index * config.cameras_per_env() + c) as u32;
            let s = config.image_size;
            world
                .spawn((
                    Camera3d::default(),
                    Camera {
                        order: tile as isize,
                        viewport: Some(Viewport {
                            physical_position: UVec2::new((tile % columns) * s, (tile / columns) * s),
                            physical_size: UVec2::new(s, s),
                            ..default()
                        }),
                        clear_color: if tile == 0 {
                            ClearColorConfig::Custom(Color::srgb(0.2, 0.2, 0.22))
                        } else {
                            ClearColorConfig::None
                        },
                        ..default()
                    },
                    RenderTarget::Image(atlas.clone().into()),
                    Projection::Perspective(PerspectiveProjection {
                        fov: 50f32.to_radians(),
                        near: 0.01,
                        far: FAR_M,
                        aspect_ratio: 1.0,
                        ..default()
                    }),
                    Msaa::Off,
                    Tonemapping::None,
                    Transform::default(),
                    layer.clone(),
                    ChildOf(root),
                ))
                .id()
        })
        .collect();
}

/// Puts a slot's scene in the state of `env` (or hides it); true when it
/// started showing a new episode.
pub(crate) fn update_slot(world: &mut World, slot: &mut Slot, env: Option<&Env>) -> bool {
    let Some(env) = env else {
        if let Some(mut v) = world.get_mut::<Visibility>(slot.root) {
            *v = Visibility::Hidden;
        }
        for &camera in &slot.cameras {
            if let Some(mut c) = world.get_mut::<Camera>(camera) {
                c.is_active = false;
            }
        }
        slot.episode = None;
        return false;
    };
    if let Some(mut v) = world.get_mut::<Visibility>(slot.root) {
        *v = Visibility::Inherited;
    }
    for &camera in &slot.cameras {
        if let Some(mut c) = world.get_mut::<Camera>(camera) {
            c.is_active = true;
        }
    }
    let arm = env.arm();
    let sponge_size = arm.params().sponge_size_m;
    let episode = (env.seed(), sponge_size, env.looks_version());
    let new_episode = slot.episode != Some(episode);
    if new_episode {
        set_looks(world, slot, env.appearance());
        slot.episode = Some(episode);
        slot.drawn_dirt.clear();
    }
    // Arm and sponge.
    let poses = arm.link_poses();
    for (entity, pose) in slot.links.iter().zip(poses.iter()) {
        if let Some(mut t) = world.get_mut::<Transform>(*entity) {
            *t = transform_of(pose);
        }
    }
    let centre = arm.sponge_centre();
    if let Some(mut t) = world.get_mut::<Transform>(slot.sponge) {
        *t = transform_of(&centre).with_scale(Vec3::new(
            sponge_size[0] as f32,
            sponge_size[1] as f32,
            sponge_size[2] as f32,
        ));
    }
    // Wrist camera: on the gripper, behind the jaws, looking along them.
    if let Some(&wrist) = slot.cameras.get(1) {
        let gripper = poses[Link::Gripper.index()];
        let eye = gripper * nalgebra::Point3::new(0.0, -0.03, 0.065);
        let aim = gripper * nalgebra::Point3::new(0.0, -0.25, -0.01);
        let up = gripper * Vector3::z();
        if let Some(mut t) = world.get_mut::<Transform>(wrist) {
            *t = Transform::from_xyz(eye.x as f32, eye.y as f32, eye.z as f32).looking_at(
                Vec3::new(aim.x as f32, aim.y as f32, aim.z as f32),
                Vec3::new(up.x as f32, up.y as f32, up.z as f32),
            );
        }
    }
    // Dirt: redraw the table where the spills are when any spill changed.
    let dirt: Vec<f64> = env.scene().spills.iter().map(|s| s.remaining()).collect();
    if dirt != slot.drawn_dirt {
        let appearance = env.appearance();
        let mut images = world.resource_mut::<Assets<Image>>();
        if let Some(mut image) = images.get_mut(&slot.table_image)
            && let Some(data) = image.data.as_mut()
        {
            for iy in 0..GRID_NY {
                for ix in 0..GRID_NX {
                    let mut c = table_texel_colour(appearance, GRID_IN_TABLE[0] + ix, GRID_IN_TABLE[1] + iy);
                    for spill in &env.scene().spills {
                        let a = (spill.kind.opacity() as f32 * spill.dirt[iy * GRID_NX + ix]).clamp(0.0, 1.0);
                        for (c, s) in c.iter_mut().zip(spill.colour) {
                            *c = *c * (1.0 - a) + s * a;
                        }
                    }
                    put_texel(data, GRID_IN_TABLE[0] + ix, GRID_IN_TABLE[1] + iy, c);
                }
            }
        }
        slot.drawn_dirt = dirt;
    }
    new_episode
}

/// Writes an sRGB colour into texel (column, row) of the table texture.
fn put_texel(data: &mut [u8], column: usize, row: usize, c: [f32; 3]) {
    let p = 4 * (row * TABLE_TEXELS[0] + column);
    for k in 0..3 {
        data[p + k] = (c[k].clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    data[p + 3] = 255;
}

/// The bare table's colour at texel (column, row) of its texture.
fn table_texel_colour(appearance: &Appearance, column: usize, row: usize) -> [f32; 3] {
    let x = TABLE_CENTRE_M[0] - 0.5 * TABLE_SIZE_M[0] + (column as f32 + 0.5) * CELL_M as f32;
    let y = TABLE_CENTRE_M[1] - 0.5 * TABLE_SIZE_M[1] + (row as f32 + 0.5) * CELL_M as f32;
    table_colour_at(appearance, x, y)
}

/// The table's colour (sRGB) at base-frame (x, y): its base colour with a
/// wood-like grain from the episode's pattern seed.
pub fn table_colour_at(appearance: &Appearance, x: f32, y: f32) -> [f32; 3] {
    let seed = appearance.table_pattern_seed;
    let f1 = 18.0 + (seed % 17) as f32;
    let f2 = 5.0 + (seed / 17 % 11) as f32;
    let phase = (seed % 1000) as f32 * 0.006_283;
    let grain = (f1 * y + 0.8 * (f2 * x + phase).sin()).sin() * 0.6 + (2.3 * f1 * y + phase).sin() * 0.4;
    let shade = 1.0 + appearance.table_grain * grain;
    appearance.table_colour.map(|c| c * shade)
}

/// Sets what changes only between episodes: colours, light, camera pose, bare table.
fn set_looks(world: &mut World, slot: &Slot, appearance: &Appearance) {
    let mut images = world.resource_mut::<Assets<Image>>();
    if let Some(mut image) = images.get_mut(&slot.table_image)
        && let Some(data) = image.data.as_mut()
    {
        for row in 0..TABLE_TEXELS[1] {
            for column in 0..TABLE_TEXELS[0] {
                put_texel(data, column, row, table_texel_colour(appearance, column, row));
            }
        }
    }
    // Key light: about a metre away in the episode's direction, in Bevy's
    // frame (y up): base (x, y, z) is Bevy (x, z, −y).
    let d = Vec3::from_array(appearance.light_direction).normalize_or(Vec3::Z);
    let distance = 1.2;
    let p = Vec3::new(TABLE_CENTRE_M[0], -0.25, 0.0) + distance * d;
    let light_position = Vec3::new(p.x, p.z, -p.y);
    let lc = Color::srgb(
        appearance.light_colour[0],
        appearance.light_colour[1],
        appearance.light_colour[2],
    )
    .to_linear();
    // Irradiance at 1 m of a source giving `light_lux` at `distance`.
    let strength = appearance.light_lux * distance * distance / FULL_SCALE_LUX;
    let light = Vec4::new(lc.red * strength, lc.green * strength, lc.blue * strength, 1.0);
    let ambient = appearance.ambient / FULL_SCALE_AMBIENT;
    let sponge = Color::srgb(
        appearance.sponge_colour[0],
        appearance.sponge_colour[1],
        appearance.sponge_colour[2],
    )
    .to_linear();
    let mut materials = world.resource_mut::<Assets<TwinMaterial>>();
    for (k, handle) in slot.materials.iter().enumerate() {
        if let Some(mut m) = materials.get_mut(handle) {
            m.params.light_position = light_position.extend(1.0);
            m.params.light = light;
            m.params.ambient = Vec4::new(ambient, ambient, ambient, 1.0);
            if k == 0 {
                m.params.colour = Vec4::new(sponge.red, sponge.green, sponge.blue, 1.0);
            }
        }
    }
    if let Some(&front) = slot.cameras.first() {
        let o = appearance.camera_offset_m;
        let eye = Vec3::from_array(FRONT_EYE_M) + Vec3::from_array(o);
        if let Some(mut t) = world.get_mut::<Transform>(front) {
            *t = Transform::from_translation(eye).looking_at(Vec3::from_array(FRONT_AIM_M), Vec3::Z);
        }
        if let Some(mut p) = world.get_mut::<Projection>(front)
            && let Projection::Perspective(p) = &mut *p
        {
            p.fov = appearance.camera_fov_deg.to_radians();
        }
    }
}
