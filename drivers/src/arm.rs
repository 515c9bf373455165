//! An SO-100 arm on a servo bus: the follower (driven) or the leader (read
//! only, moved by hand), in `sponge-robot`'s units, with the follower's
//! safety rules:
//!
//! * goals are clamped to the joint limits and the calibrated range;
//! * each goal moves a joint at most `max_step_rad` from the last goal;
//! * [`Arm::watchdog`] holds the arm when no goal came for `watchdog`;
//! * overheat, over-current or overload on any motor turns torque off and
//!   returns an error naming the motor;
//! * when the arm is dropped (or [`Arm::shutdown`] runs) torque goes off, or
//!   the arm holds its position if so configured.

use std::time::{Duration, Instant};

use sponge_robot::calibration::ArmCalibration;
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};

use crate::protocol::register::{self as reg, Register, STS3215_MODEL};
use crate::{Bus, BusConfig, Error, Result};

/// Which arm of a teleoperation pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Driven by goals; torque on.
    Follower,
    /// Moved by a person; torque off, only read.
    Leader,
}

/// What the follower does when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStop {
    /// Torque off: the arm goes limp (it may sag).
    #[default]
    TorqueOff,
    /// Hold the present position with torque on.
    Hold,
}

/// Safety settings of a follower. The watchdog period defaults to 200 ms so
/// that, with the time a failing read takes to be noticed, the arm holds
/// within 250 ms of the last command.
#[derive(Debug, Clone, Copy)]
pub struct SafetyConfig {
    /// Largest change of any joint's goal in one command, radians.
    pub max_step_rad: f64,
    /// Hold the arm when no goal arrives for this long.
    pub watchdog: Duration,
    /// What to do on shutdown.
    pub on_stop: OnStop,
}

impl Default for SafetyConfig {
    fn default() -> SafetyConfig {
        SafetyConfig {
            max_step_rad: 0.2,
            watchdog: Duration::from_millis(200),
            on_stop: OnStop::TorqueOff,
        }
    }
}

/// A full reading of the arm's sensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmState {
    /// Joint angles, rad.
    pub position_rad: JointVector,
    /// Joint velocities, rad/s.
    pub velocity_rad_s: JointVector,
    /// Load as a fraction of full torque, signed (−1..1).
    pub load: JointVector,
    /// Motor current, A (about 6.5 mA a unit).
    pub current_a: JointVector,
    /// Motor temperature, °C.
    pub temperature_c: JointVector,
    /// Supply voltage at each motor, V.
    pub voltage_v: JointVector,
}

/// Servo IDs of the six joints, in joint order.
const IDS: [u8; NUM_JOINTS] = [1, 2, 3, 4, 5, 6];

/// An SO-100 arm on its bus.
pub struct Arm {
    bus: Bus,
    role: Role,
    calibration: ArmCalibration,
    safety: SafetyConfig,
    last_goal_rad: Option<JointVector>,
    last_command: Instant,
    holding: bool,
    shut_down: bool,
}

impl Arm {
    /// Connects to the arm on `port`: checks that all six motors answer and
    /// are STS3215s, that their EEPROM matches `calibration`, and configures
    /// them for `role` (the follower stays torque-off until
    /// [`enable_torque`](Self::enable_torque)).
    pub fn connect(port: &str, role: Role, calibration: ArmCalibration, safety: SafetyConfig) -> Result<Arm> {
        calibration.validate()?;
        let bus = Bus::open(port, BusConfig::default())?;
        let mut arm = Arm {
            bus,
            role,
            calibration,
            safety,
            last_goal_rad: None,
            last_command: Instant::now(),
            holding: false,
            shut_down: false,
        };
        arm.check_motors()?;
        arm.check_calibration()?;
        arm.configure()?;
        Ok(arm)
    }

    /// The bus, for diagnostics (statistics, raw access).
    pub fn bus(&mut self) -> &mut Bus {
        &mut self.bus
    }

    /// The calibration in use.
    pub fn calibration(&self) -> &ArmCalibration {
        &self.calibration
    }

    fn check_motors(&mut self) -> Result<()> {
        let mut missing = Vec::new();
        for joint in Joint::ALL {
            if !self.bus.ping(joint.motor_id())? {
                missing.push(format!("{} (ID {})", joint, joint.motor_id()));
            }
        }
        if !missing.is_empty() {
            return Err(Error::Arm(format!(
                "no answer from {} on {}: check the cables and power, or run `sponge motors scan --port {}`",
                missing.join(", "),
                self.bus.path(),
                self.bus.path()
            )));
        }
        let models = self.bus.sync_read(reg::MODEL_NUMBER, &IDS)?;
        for (joint, model) in Joint::ALL.iter().zip(models) {
            if model != i32::from(STS3215_MODEL) {
                return Err(Error::Arm(format!(
                    "{joint} (ID {}) is model {model}, not an STS3215 ({STS3215_MODEL})",
                    joint.motor_id()
                )));
            }
        }
        Ok(())
    }

    fn check_calibration(&mut self) -> Result<()> {
        let offsets = self.bus.sync_read(reg::HOMING_OFFSET, &IDS)?;
        let mins = self.bus.sync_read(reg::MIN_POSITION_LIMIT, &IDS)?;
        let maxs = self.bus.sync_read(reg::MAX_POSITION_LIMIT, &IDS)?;
        let mut mismatches = Vec::new();
        for (i, joint) in Joint::ALL.iter().enumerate() {
            let motor = self.calibration.motor(*joint);
            let file = (
                motor.homing_offset,
                i32::from(motor.range_min),
                i32::from(motor.range_max),
            );
            let eeprom = (offsets[i], mins[i], maxs[i]);
            if file != eeprom {
                mismatches.push(format!(
                    "{joint}: file has offset {} range {}..{}, motor has offset {} range {}..{}",
                    file.0, file.1, file.2, eeprom.0, eeprom.1, eeprom.2
                ));
            }
        }
        if mismatches.is_empty() {
            return Ok(());
        }
        Err(Error::Arm(format!(
            "the calibration does not match the motors' EEPROM (another arm, or calibrated since?): {}. \
             Run `sponge calibrate` for this arm",
            mismatches.join("; ")
        )))
    }

    fn write_all(&mut self, register: Register, value: i32) -> Result<()> {
        self.bus.sync_write(register, &IDS.map(|id| (id, value)))
    }

    fn configure(&mut self) -> Result<()> {
        self.write_all(reg::TORQUE_ENABLE, 0)?;
        self.write_all(reg::LOCK, 0)?;
        self.write_all(reg::RETURN_DELAY_TIME, 0)?;
        self.write_all(reg::MAXIMUM_ACCELERATION, 254)?;
        self.write_all(reg::ACCELERATION, 254)?;
        if self.role == Role::Follower {
            self.write_all(reg::OPERATING_MODE, 0)?;
            self.write_all(reg::P_COEFFICIENT, 16)?;
            self.write_all(reg::I_COEFFICIENT, 0)?;
            self.write_all(reg::D_COEFFICIENT, 32)?;
            // Keeps the gripper from burning out when it squeezes.
            let gripper = Joint::Gripper.motor_id();
            self.bus.write(gripper, reg::MAX_TORQUE_LIMIT, 500)?;
            self.bus.write(gripper, reg::PROTECTION_CURRENT, 250)?;
            self.bus.write(gripper, reg::OVERLOAD_TORQUE, 25)?;
        }
        // Read back one value to make sure the writes landed.
        let acceleration = self.bus.sync_read(reg::ACCELERATION, &IDS)?;
        if let Some(i) = acceleration.iter().position(|a| *a != 254) {
            return Err(Error::Arm(format!(
                "{} did not take its configuration (Acceleration reads {})",
                Joint::ALL[i],
                acceleration[i]
            )));
        }
        Ok(())
    }

    /// Stops the arm if any motor reports overheat, over-current or overload.
    fn check_status(&mut self) -> Result<()> {
        let Some(joint) = Joint::ALL
            .into_iter()
            .find(|j| self.bus.last_status(j.motor_id()).is_dangerous())
        else {
            return Ok(());
        };
        let status = self.bus.last_status(joint.motor_id());
        if self.role == Role::Follower {
            // Best effort: the error below is what matters.
            let _ = self.disable_torque();
        }
        Err(Error::Servo {
            id: joint.motor_id(),
            status,
            what: format!("{joint} was stopped, torque off; let it cool or free it before going on"),
        })
    }

    /// Joint angles, rad.
    pub fn read_positions(&mut self) -> Result<JointVector> {
        let ticks = self.bus.sync_read(reg::PRESENT_POSITION, &IDS)?;
        self.check_status()?;
        let ticks: [u16; NUM_JOINTS] = std::array::from_fn(|i| ticks[i].clamp(0, 4095) as u16);
        Ok(self.calibration.ticks_to_rad(&ticks))
    }

    /// Every sensor of every motor.
    pub fn read_state(&mut self) -> Result<ArmState> {
        let position_rad = self.read_positions()?;
        let rad_per_tick = sponge_robot::calibration::RAD_PER_TICK;
        let velocity = self.bus.sync_read(reg::PRESENT_VELOCITY, &IDS)?;
        let load = self.bus.sync_read(reg::PRESENT_LOAD, &IDS)?;
        let current = self.bus.sync_read(reg::PRESENT_CURRENT, &IDS)?;
        let temperature = self.bus.sync_read(reg::PRESENT_TEMPERATURE, &IDS)?;
        let voltage = self.bus.sync_read(reg::PRESENT_VOLTAGE, &IDS)?;
        self.check_status()?;
        let direction: JointVector =
            std::array::from_fn(|i| self.calibration.motors[i].direction(Joint::ALL[i]));
        Ok(ArmState {
            position_rad,
            velocity_rad_s: std::array::from_fn(|i| direction[i] * f64::from(velocity[i]) * rad_per_tick),
            load: std::array::from_fn(|i| direction[i] * f64::from(load[i]) / 1000.0),
            current_a: std::array::from_fn(|i| f64::from(current[i]) * 0.0065),
            temperature_c: std::array::from_fn(|i| f64::from(temperature[i])),
            voltage_v: std::array::from_fn(|i| f64::from(voltage[i]) * 0.1),
        })
    }

    /// Turns torque on, first setting each goal to the present position so
    /// that nothing jumps.
    pub fn enable_torque(&mut self) -> Result<()> {
        if self.role == Role::Leader {
            return Err(Error::Arm(
                "the leader arm is moved by hand: its torque stays off".into(),
            ));
        }
        self.goals_to_present()?;
        self.write_all(reg::TORQUE_ENABLE, 1)?;
        self.write_all(reg::LOCK, 1)?;
        self.last_command = Instant::now();
        self.holding = false;
        Ok(())
    }

    /// Turns torque off (the arm goes limp), and makes sure: a sync write
    /// gets no reply, so Torque_Enable is read back and any motor still on
    /// gets an acknowledged write.
    pub fn disable_torque(&mut self) -> Result<()> {
        self.write_all(reg::TORQUE_ENABLE, 0)?;
        let torque = self.bus.sync_read(reg::TORQUE_ENABLE, &IDS)?;
        for (id, on) in IDS.iter().zip(torque) {
            if on != 0 {
                self.bus.write(*id, reg::TORQUE_ENABLE, 0)?;
            }
        }
        self.write_all(reg::LOCK, 0)
    }

    /// Sends a goal: clamped to the limits, each joint moved at most
    /// `max_step_rad` from the last goal. Returns the goal actually sent.
    pub fn send_goal(&mut self, goal_rad: &JointVector) -> Result<JointVector> {
        if self.role == Role::Leader {
            return Err(Error::Arm("goals go to the follower, not the leader".into()));
        }
        if let Some(joint) = Joint::ALL.into_iter().find(|j| !goal_rad[j.index()].is_finite()) {
            return Err(Error::Arm(format!("goal for {joint} is not a number")));
        }
        self.check_status()?;
        let step = self.safety.max_step_rad;
        let mut sent = *goal_rad;
        for joint in Joint::ALL {
            let i = joint.index();
            let mut q = joint.limits().clamp(goal_rad[i]);
            if let Some(last) = self.last_goal_rad {
                q = q.clamp(last[i] - step, last[i] + step);
            }
            sent[i] = q;
        }
        let ticks = self.calibration.rad_to_ticks(&sent);
        let goals: Vec<(u8, i32)> = IDS
            .iter()
            .copied()
            .zip(ticks.iter().map(|t| i32::from(*t)))
            .collect();
        self.bus.sync_write(reg::GOAL_POSITION, &goals)?;
        // What the motors were really told, after the calibrated-range clamp.
        let sent = self.calibration.ticks_to_rad(&ticks);
        self.last_goal_rad = Some(sent);
        self.last_command = Instant::now();
        self.holding = false;
        Ok(sent)
    }

    /// Holds the present position (torque stays on).
    pub fn hold(&mut self) -> Result<()> {
        self.goals_to_present()?;
        self.holding = true;
        Ok(())
    }

    /// Sets every goal to the present position: the arm stays where it is.
    fn goals_to_present(&mut self) -> Result<()> {
        let present = self.bus.sync_read(reg::PRESENT_POSITION, &IDS)?;
        let goals: Vec<(u8, i32)> = IDS.iter().copied().zip(present.iter().copied()).collect();
        self.bus.sync_write(reg::GOAL_POSITION, &goals)?;
        let ticks: [u16; NUM_JOINTS] = std::array::from_fn(|i| present[i].clamp(0, 4095) as u16);
        self.last_goal_rad = Some(self.calibration.ticks_to_rad(&ticks));
        Ok(())
    }

    /// Time since the last goal was sent.
    pub fn since_last_command(&self) -> Duration {
        self.last_command.elapsed()
    }

    /// Call every cycle: holds the arm once no goal has come for the
    /// watchdog period. Returns whether the arm is holding.
    pub fn watchdog(&mut self) -> Result<bool> {
        if self.role == Role::Follower && !self.holding && self.last_command.elapsed() >= self.safety.watchdog
        {
            self.hold()?;
        }
        Ok(self.holding)
    }

    /// Stops the arm as configured (torque off, or hold). Idempotent.
    pub fn shutdown(&mut self) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        match (self.role, self.safety.on_stop) {
            (Role::Follower, OnStop::Hold) => self.hold(),
            _ => self.disable_torque(),
        }
    }
}

impl Drop for Arm {
    fn drop(&mut self) {
        // Best effort: the port may be gone, and there is no one left to tell.
        let _ = self.shutdown();
    }
}
