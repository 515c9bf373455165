//! The real-robot path end to end over pseudo-terminals: two emulated arms
//! (leader and follower), motor setup, calibration driven by scripted moves
//! of the emulated servos, then teleop; and its fault behaviour.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed set-up should panic the test"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sponge_drivers::arm::{Arm, OnStop, Role, SafetyConfig};
use sponge_drivers::calibrate::{CalibrationGuide, HOMED_MIDDLE, calibrate, write_calibration};
use sponge_drivers::emulator::{EmulatedServo, Emulator, EmulatorConfig, Faults};
use sponge_drivers::protocol::register as reg;
use sponge_drivers::setup::setup_motor;
use sponge_drivers::teleop::{TeleopConfig, teleop};
use sponge_drivers::{Bus, BusConfig, Error};
use sponge_robot::calibration::{ArmCalibration, RAD_PER_TICK};
use sponge_robot::joint::{Joint, NUM_JOINTS};

fn link(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sponge-e2e-{}-{name}", std::process::id()))
}

fn port(emulator: &Emulator) -> &str {
    emulator.link().to_str().expect("utf-8 temp path")
}

/// Physical encoder positions of each joint's middle on the scripted arms.
const LEADER_MIDDLE: [f64; NUM_JOINTS] = [1900.0, 2300.0, 1700.0, 2500.0, 2048.0, 1800.0];
const FOLLOWER_MIDDLE: [f64; NUM_JOINTS] = [2200.0, 1800.0, 2400.0, 1600.0, 2100.0, 2000.0];
/// How far each joint is swept either side of its middle, ticks.
const SWEEP: f64 = 900.0;

/// Plays a person calibrating: moves the emulated servos by hand.
struct ScriptedPerson<'a> {
    emulator: &'a Emulator,
    middle: [f64; NUM_JOINTS],
    step: usize,
}

impl ScriptedPerson<'_> {
    fn pose(&self, raw: impl Fn(usize) -> f64) {
        let mut bus = self.emulator.bus();
        for joint in Joint::ALL {
            let servo = bus.servo_mut(joint.motor_id()).expect("servo present");
            servo.move_by_hand(raw(joint.index()));
        }
    }
}

impl CalibrationGuide for ScriptedPerson<'_> {
    fn middle_pose(&mut self) -> sponge_drivers::Result<()> {
        self.pose(|i| self.middle[i]);
        Ok(())
    }

    fn sweeping(&mut self, _: &[i32; NUM_JOINTS], _: &[i32; NUM_JOINTS], _: &[i32; NUM_JOINTS]) -> bool {
        // Down to −SWEEP, up to +SWEEP, back to the middle, dwelling at each end.
        let phase = match self.step {
            0..10 => -(self.step as f64) / 10.0,
            10..15 => -1.0,
            15..35 => -1.0 + (self.step - 15) as f64 / 10.0,
            35..40 => 1.0,
            40..50 => 1.0 - (self.step - 40) as f64 / 10.0,
            _ => return true,
        };
        self.pose(|i| self.middle[i] + phase * SWEEP);
        self.step += 1;
        false
    }
}

/// Sets up all six motors of an arm one at a time, as a person plugs them
/// in: each starts factory-fresh (ID 1), the first at 115200 baud.
fn set_up_motors(emulator: &Emulator) {
    let mut done: Vec<EmulatedServo> = Vec::new();
    for (n, joint) in Joint::ALL.iter().rev().enumerate() {
        let mut fresh = EmulatedServo::new(1, 2048);
        if n == 0 {
            fresh.write(reg::LOCK.address, &[0]);
            fresh.write(reg::BAUD_RATE.address, &[4]);
        }
        emulator.bus().servos = vec![fresh];
        let report = setup_motor(port(emulator), *joint).expect("setup succeeds");
        assert_eq!(report.old_id, 1);
        assert_eq!(report.old_baud, if n == 0 { 115_200 } else { 1_000_000 });
        done.push(emulator.bus().servos.pop().expect("servo still there"));
    }
    done.sort_by_key(EmulatedServo::id);
    let ids: Vec<u8> = done.iter().map(EmulatedServo::id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    emulator.bus().servos = done;
}

fn calibrated_arm(name: &str, middle: [f64; NUM_JOINTS], with_setup: bool) -> (Emulator, ArmCalibration) {
    let emulator = Emulator::start(&link(name), EmulatorConfig::default()).expect("emulator");
    if with_setup {
        set_up_motors(&emulator);
    }
    let mut bus = Bus::open(port(&emulator), BusConfig::default()).expect("bus");
    let mut person = ScriptedPerson {
        emulator: &emulator,
        middle,
        step: 0,
    };
    let calibration = calibrate(&mut bus, &mut person).expect("calibration succeeds");
    (emulator, calibration)
}

fn track_error_ticks(
    leader: &[f64; NUM_JOINTS],
    follower: &[f64; NUM_JOINTS],
    calibration: &ArmCalibration,
) -> f64 {
    Joint::ALL
        .iter()
        .map(|joint| {
            let i = joint.index();
            let rad_per_tick = if *joint == Joint::Gripper {
                let motor = calibration.motor(*joint);
                joint.limits().span_rad() / f64::from(motor.range_max - motor.range_min)
            } else {
                RAD_PER_TICK
            };
            (leader[i] - follower[i]).abs() / rad_per_tick
        })
        .fold(0.0, f64::max)
}

#[test]
fn setup_calibrate_and_teleop_for_ten_seconds() {
    let (leader_emu, leader_cal) = calibrated_arm("leader", LEADER_MIDDLE, true);
    let (follower_emu, follower_cal) = calibrated_arm("follower", FOLLOWER_MIDDLE, false);

    // Half-turn homing: each middle reads 2047; the sweep sets the range.
    for joint in Joint::ALL {
        let motor = leader_cal.motor(joint);
        assert_eq!(
            motor.homing_offset,
            LEADER_MIDDLE[joint.index()] as i32 - HOMED_MIDDLE,
            "{joint}"
        );
        if joint != Joint::WristRoll {
            assert!(
                (i32::from(motor.range_min) - (HOMED_MIDDLE - SWEEP as i32)).abs() <= 1,
                "{joint}"
            );
            assert!(
                (i32::from(motor.range_max) - (HOMED_MIDDLE + SWEEP as i32)).abs() <= 1,
                "{joint}"
            );
        }
    }
    // The files round-trip, in LeRobot's format.
    let dir = std::env::temp_dir().join(format!("sponge-e2e-cal-{}", std::process::id()));
    leader_cal.save(&dir.join("leader.json")).unwrap();
    assert_eq!(
        ArmCalibration::load(&dir.join("leader.json")).unwrap(),
        leader_cal
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let mut leader = Arm::connect(
        port(&leader_emu),
        Role::Leader,
        leader_cal,
        SafetyConfig::default(),
    )
    .unwrap();
    let mut follower = Arm::connect(
        port(&follower_emu),
        Role::Follower,
        follower_cal.clone(),
        SafetyConfig::default(),
    )
    .unwrap();
    follower.enable_torque().unwrap();

    let stop = AtomicBool::new(false);
    let moving_for = Duration::from_secs(7);
    let mut settled_error: f64 = 0.0;
    let stats = std::thread::scope(|scope| {
        scope.spawn(|| {
            // A person moving the leader smoothly, then letting go.
            let start = Instant::now();
            while start.elapsed() < moving_for {
                let t = start.elapsed().as_secs_f64();
                let mut bus = leader_emu.bus();
                for joint in Joint::ALL {
                    let i = joint.index();
                    let raw = LEADER_MIDDLE[i] + 500.0 * (0.6 * t + i as f64).sin();
                    bus.servo_mut(joint.motor_id()).unwrap().move_by_hand(raw);
                }
                drop(bus);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let config = TeleopConfig {
            fps: 60.0,
            duration: Some(Duration::from_secs(10)),
        };
        let started = Instant::now();
        teleop(&mut leader, &mut follower, config, &stop, |stats| {
            if started.elapsed() > moving_for + Duration::from_secs(2) {
                settled_error = settled_error.max(track_error_ticks(
                    &stats.leader_rad,
                    &stats.follower_rad,
                    &follower_cal,
                ));
            }
        })
        .expect("teleop runs")
    });
    println!("teleop: {stats:?}; settled tracking error {settled_error:.2} ticks");
    assert!(stats.cycles > 550, "{stats:?}");
    assert!((stats.rate_hz - 60.0).abs() < 3.0, "{stats:?}");
    assert_eq!(stats.leader_errors + stats.follower_errors, 0, "{stats:?}");
    assert!(
        settled_error <= 2.0,
        "follower off by {settled_error} ticks once settled"
    );
}

fn nominal_pair(
    name: &str,
    leader_faults: Faults,
    follower_faults: Faults,
    safety: SafetyConfig,
) -> (Emulator, Emulator, Arm, Arm) {
    let leader_emu = Emulator::start(&link(&format!("{name}-l")), EmulatorConfig::default()).unwrap();
    let follower_emu = Emulator::start(&link(&format!("{name}-f")), EmulatorConfig::default()).unwrap();
    let calibration = ArmCalibration::nominal();
    for emulator in [&leader_emu, &follower_emu] {
        let mut bus = Bus::open(port(emulator), BusConfig::default()).unwrap();
        write_calibration(&mut bus, &calibration).unwrap();
    }
    let leader = Arm::connect(
        port(&leader_emu),
        Role::Leader,
        calibration.clone(),
        SafetyConfig::default(),
    )
    .unwrap();
    let mut follower = Arm::connect(port(&follower_emu), Role::Follower, calibration, safety).unwrap();
    follower.enable_torque().unwrap();
    leader_emu.bus().set_faults(leader_faults);
    follower_emu.bus().set_faults(follower_faults);
    (leader_emu, follower_emu, leader, follower)
}

#[test]
fn teleop_keeps_running_with_ten_percent_corrupted_replies() {
    let corrupt = Faults {
        corrupt_rate: 0.1,
        ..Faults::default()
    };
    let (leader_emu, follower_emu, mut leader, mut follower) =
        nominal_pair("corrupt", corrupt.clone(), corrupt, SafetyConfig::default());
    let stop = AtomicBool::new(false);
    let config = TeleopConfig {
        fps: 60.0,
        duration: Some(Duration::from_secs(3)),
    };
    let stats = teleop(&mut leader, &mut follower, config, &stop, |_| {}).expect("no fatal error");
    let retries = leader.bus().stats.retries + follower.bus().stats.retries;
    println!("with 10% corrupt replies: {stats:?}, {retries} retries");
    assert!(stats.cycles > 150, "{stats:?}");
    assert!(retries > 20, "corruption was retried: {retries}");
    assert!(leader_emu.bus().stats.corrupted > 20 && follower_emu.bus().stats.corrupted > 20);
}

#[test]
fn follower_holds_within_250_ms_when_the_leader_stops() {
    let (leader_emu, follower_emu, mut leader, mut follower) = nominal_pair(
        "watchdog",
        Faults::default(),
        Faults::default(),
        SafetyConfig::default(),
    );
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let config = TeleopConfig {
        fps: 60.0,
        duration: Some(Duration::from_millis(1500)),
    };
    let stats = teleop(&mut leader, &mut follower, config, &stop, |_| {
        if started.elapsed() > Duration::from_millis(500) && leader_emu.bus().faults().drop_rate == 0.0 {
            leader_emu.bus().set_faults(Faults {
                drop_rate: 1.0,
                ..Faults::default()
            });
        }
    })
    .unwrap();
    println!("leader silenced: {stats:?}");
    assert_eq!(stats.holds, 1, "{stats:?}");
    assert!(
        stats.hold_after_ms <= 250.0,
        "held {} ms after the last command",
        stats.hold_after_ms
    );
    // Holding: every goal equals the present position, torque on.
    let bus = follower_emu.bus();
    for servo in &bus.servos {
        assert_eq!(servo.get(reg::TORQUE_ENABLE), 1);
        assert_eq!(servo.get(reg::GOAL_POSITION), servo.present_position());
    }
}

#[test]
fn unplugged_leader_stops_teleop_within_a_second_with_follower_torque_off() {
    let (mut leader_emu, follower_emu, mut leader, mut follower) = nominal_pair(
        "unplug",
        Faults::default(),
        Faults::default(),
        SafetyConfig {
            on_stop: OnStop::TorqueOff,
            ..SafetyConfig::default()
        },
    );
    let stop = AtomicBool::new(false);
    let config = TeleopConfig {
        fps: 60.0,
        duration: Some(Duration::from_secs(5)),
    };
    let mut unplugged_at: Option<Instant> = None;
    let result = std::thread::scope(|scope| {
        let handle = scope.spawn(|| teleop(&mut leader, &mut follower, config, &stop, |_| {}));
        std::thread::sleep(Duration::from_millis(500));
        unplugged_at = Some(Instant::now());
        leader_emu.vanish();
        handle.join().expect("teleop thread")
    });
    let err = result.expect_err("teleop stops");
    let took = unplugged_at.expect("unplugged").elapsed();
    println!("unplugged: {err} after {took:?}");
    assert!(matches!(err, Error::Port { .. }), "{err}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    stop.store(true, Ordering::SeqCst);
    for servo in &follower_emu.bus().servos {
        assert_eq!(
            servo.get(reg::TORQUE_ENABLE),
            0,
            "servo {} torque off",
            servo.id()
        );
    }
}

#[test]
fn overheating_motor_stops_the_follower_and_is_named() {
    let (_leader_emu, follower_emu, mut leader, mut follower) = nominal_pair(
        "overheat",
        Faults::default(),
        Faults::default(),
        SafetyConfig::default(),
    );
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let config = TeleopConfig {
        fps: 60.0,
        duration: Some(Duration::from_secs(3)),
    };
    let result = teleop(&mut leader, &mut follower, config, &stop, |_| {
        if started.elapsed() > Duration::from_millis(300) && follower_emu.bus().faults().error_bits.is_empty()
        {
            follower_emu
                .bus()
                .set_faults(Faults::parse(&["overheat=4"]).unwrap());
        }
    });
    let err = result.expect_err("an overheating motor ends teleop");
    assert!(matches!(err, Error::Servo { id: 4, .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("wrist_flex") && message.contains("overheating"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        started.elapsed()
    );
    for servo in &follower_emu.bus().servos {
        assert_eq!(
            servo.get(reg::TORQUE_ENABLE),
            0,
            "servo {} torque off",
            servo.id()
        );
    }
}
