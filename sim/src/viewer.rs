//! `sponge sim view`: the twin in a window, driven from the keyboard.
//!
//! The window shows one environment from an orbit camera (drag with the
//! left mouse button to turn, scroll to zoom). The keys move the sponge's
//! face in the base frame (the arm follows through IK, sponge flat):
//! W/S along −y/+y (away from / towards the base), A/D along −x/+x, Q/E
//! down/up; R starts the next seed's episode; Esc closes. The title bar
//! reads the task, how much of the named spills is wiped, the sponge's
//! force and the joint angles.

use std::path::PathBuf;

use bevy::app::AppExit;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::window::PrimaryWindow;
use nalgebra::Point3;
use sponge_robot::ik::{IkTarget, solve};
use sponge_robot::joint::Joint;
use sponge_robot::model::Tool;

use crate::env::{Env, EnvConfig};

use crate::render::{RenderError, Slot, add_twin_material, build_slot, update_slot};
/// Keys, for [`ViewerOptions::hold`].
pub use bevy::prelude::KeyCode;

/// What the viewer opens.
#[derive(Debug, Clone, Default)]
pub struct ViewerOptions {
    /// Episode seed.
    pub seed: u64,
    /// Save a screenshot of the window here after `frames` frames, then close (for checks).
    pub screenshot: Option<PathBuf>,
    /// Frames to run before the screenshot.
    pub frames: u32,
    /// Hold this key down for the whole run (for checks), e.g. "S".
    pub hold: Option<KeyCode>,
}

/// Speed the keys move the sponge at, metres per second.
const KEY_SPEED_M_S: f64 = 0.08;

#[derive(Resource)]
struct Twin {
    env: Env,
    slot: Slot,
    /// Commanded sponge-face centre, base frame.
    target: Point3<f64>,
    seed: u64,
    /// Simulated time not yet stepped, seconds.
    pending_s: f64,
    orbit: Orbit,
    camera: Entity,
    frames: u32,
    options: ViewerOptions,
}

/// The orbit camera, about a point above the work area (base frame, z up).
#[derive(Debug, Clone, Copy)]
struct Orbit {
    yaw: f32,
    pitch: f32,
    distance: f32,
}

/// Opens the window and runs until it is closed.
pub fn run(options: ViewerOptions) -> Result<(), RenderError> {
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "sponge twin".into(),
            resolution: (1024, 768).into(),
            ..default()
        }),
        ..default()
    }));
    add_twin_material(&mut app)?;
    let env = Env::new(
        EnvConfig {
            end_on_success: false,
            time_limit_s: 1e9,
            ..EnvConfig::default()
        },
        options.seed,
    );
    let world = app.world_mut();
    let slot = build_slot(world, 0);
    let camera = world
        .spawn((
            Camera3d::default(),
            bevy::camera::visibility::RenderLayers::layer(1),
            Transform::default(),
            ChildOf(slot.root),
        ))
        .id();
    let target = env.arm().sponge_face().translation.vector.into();
    world.insert_resource(Twin {
        env,
        slot,
        target,
        seed: options.seed,
        pending_s: 0.0,
        orbit: Orbit {
            yaw: -2.2,
            pitch: 0.6,
            distance: 0.9,
        },
        camera,
        frames: 0,
        options,
    });
    app.add_systems(Update, (drive, sync).chain());
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(RenderError::Bevy(format!("the viewer stopped with code {code}"))),
    }
}

/// Keyboard and mouse: move the target, turn and zoom the camera, step the twin.
#[allow(clippy::too_many_arguments)]
fn drive(
    mut twin: ResMut<Twin>,
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    time: Res<Time>,
    mut exit: MessageWriter<AppExit>,
    mut commands: Commands,
) {
    let twin = &mut *twin;
    let dt = time.delta_secs_f64().min(0.1);
    let held = |k: KeyCode| keys.pressed(k) || twin.options.hold == Some(k);
    if keys.just_pressed(KeyCode::Escape) {
        exit.write(AppExit::Success);
    }
    if keys.just_pressed(KeyCode::KeyR) {
        twin.seed += 1;
        twin.env.reset(twin.seed);
        twin.target = twin.env.arm().sponge_face().translation.vector.into();
    }
    let step = KEY_SPEED_M_S * dt;
    let moves = [
        (KeyCode::KeyW, [0.0, -step, 0.0]),
        (KeyCode::KeyS, [0.0, step, 0.0]),
        (KeyCode::KeyA, [-step, 0.0, 0.0]),
        (KeyCode::KeyD, [step, 0.0, 0.0]),
        (KeyCode::KeyQ, [0.0, 0.0, -step]),
        (KeyCode::KeyE, [0.0, 0.0, step]),
    ];
    for (key, d) in moves {
        if held(key) {
            twin.target.x += d[0];
            twin.target.y += d[1];
            twin.target.z = (twin.target.z + d[2]).clamp(-0.02, 0.3);
        }
    }
    if buttons.pressed(MouseButton::Left) {
        twin.orbit.yaw -= 0.005 * motion.delta.x;
        twin.orbit.pitch = (twin.orbit.pitch + 0.005 * motion.delta.y).clamp(0.05, 1.5);
    }
    twin.orbit.distance = (twin.orbit.distance * (1.0 - 0.1 * scroll.delta.y)).clamp(0.3, 3.0);

    // Step the twin in real time at its control rate.
    let control_dt = 1.0 / twin.env.config().fps as f64;
    twin.pending_s += dt;
    while twin.pending_s >= control_dt {
        twin.pending_s -= control_dt;
        let extra = twin.env.arm().params().sponge_face_extra_depth_m();
        let ik = IkTarget {
            position_in_base_m: Point3::new(twin.target.x, twin.target.y, twin.target.z + extra),
            pitch_rad: std::f64::consts::FRAC_PI_2,
            roll_rad: None,
        };
        let goal = match solve(&ik, twin.env.arm().goal(), Tool::SpongeFace) {
            Ok(q) => q,
            Err(_) => {
                // Out of reach: stay where the arm can go.
                twin.target = twin.env.arm().sponge_face().translation.vector.into();
                *twin.env.arm().goal()
            }
        };
        twin.env.step(&goal);
    }

    twin.frames += 1;
    if let Some(path) = twin.options.screenshot.clone() {
        if twin.frames == twin.options.frames {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path));
        }
        if twin.frames >= twin.options.frames + 30 {
            exit.write(AppExit::Success);
        }
    }
}

/// Puts the scene, the camera and the title in step with the twin.
fn sync(world: &mut World) {
    world.resource_scope(|world, mut twin: Mut<Twin>| {
        let twin = &mut *twin;
        update_slot(world, &mut twin.slot, Some(&twin.env));
        let o = twin.orbit;
        let centre = Vec3::new(0.0, -0.15, 0.05);
        let eye = centre
            + o.distance
                * Vec3::new(
                    o.pitch.cos() * o.yaw.cos(),
                    o.pitch.cos() * o.yaw.sin(),
                    o.pitch.sin(),
                );
        if let Some(mut t) = world.get_mut::<Transform>(twin.camera) {
            *t = Transform::from_translation(eye).looking_at(centre, Vec3::Z);
        }
        let q = twin.env.arm().joint_positions();
        let joints: Vec<String> = Joint::ALL
            .iter()
            .map(|j| format!("{} {:.0}°", j.name(), q[j.index()].to_degrees()))
            .collect();
        let title = format!(
            "sponge twin, seed {}: '{}', {:.0}% wiped, {:.1} N | {} | WASD QE move, drag turns, R next seed",
            twin.seed,
            twin.env.scene().instruction,
            100.0 * twin.env.scene().target_fraction_cleaned(),
            twin.env.last_force_n(),
            joints.join(", ")
        );
        let mut windows = world.query_filtered::<&mut Window, With<PrimaryWindow>>();
        if let Ok(mut window) = windows.single_mut(world)
            && window.title != title
        {
            window.title = title;
        }
    });
}
