//! One emulated STS3215: its register memory and its motion.

use crate::protocol::register::{self as reg, Area, MEMORY_SIZE, Register, STS3215_MODEL};
use crate::protocol::{ServoStatus, register::decode_sign_magnitude};

/// Encoder ticks per turn.
const TICKS: f64 = 4096.0;
/// No-load speed, ticks/s (about 0.222 s per 60°).
pub const MAX_SPEED_TICKS_S: f64 = TICKS / 6.0 / 0.222;
/// `Acceleration` register unit, ticks/s².
const ACCELERATION_UNIT: f64 = 100.0;
/// Acceleration when the register is 0 ("as fast as it can").
const MAX_ACCELERATION_TICKS_S2: f64 = 150_000.0;
/// Longest physics sub-step, seconds.
const MAX_SUBSTEP_S: f64 = 0.001;
/// Ambient temperature, °C.
const AMBIENT_C: f64 = 28.0;

/// One emulated servo.
#[derive(Debug, Clone)]
pub struct EmulatedServo {
    memory: [u8; MEMORY_SIZE],
    /// Physical encoder position, ticks (continuous, 0..4096 wraps).
    raw_position: f64,
    /// Ticks/s.
    velocity: f64,
    /// °C.
    temperature: f64,
    /// Load in 0.1 % of full torque, signed.
    load: f64,
    /// Bits forced on by fault injection.
    forced_status: u8,
    /// A REG_WRITE waiting for ACTION.
    registered: Option<(u8, Vec<u8>)>,
}

impl EmulatedServo {
    /// A servo with factory settings, the given ID, at `raw_position` ticks.
    pub fn new(id: u8, raw_position: u16) -> EmulatedServo {
        let mut servo = EmulatedServo {
            memory: [0; MEMORY_SIZE],
            raw_position: f64::from(raw_position),
            velocity: 0.0,
            temperature: AMBIENT_C,
            load: 0.0,
            forced_status: 0,
            registered: None,
        };
        servo.factory_reset(id);
        servo
    }

    fn factory_reset(&mut self, id: u8) {
        let defaults: &[(Register, i32)] = &[
            (reg::FIRMWARE_MAJOR, 3),
            (reg::FIRMWARE_MINOR, 10),
            (reg::MODEL_NUMBER, i32::from(STS3215_MODEL)),
            (reg::ID, i32::from(id)),
            (reg::BAUD_RATE, 0),
            (reg::RETURN_DELAY_TIME, 0),
            (reg::RESPONSE_STATUS_LEVEL, 1),
            (reg::MIN_POSITION_LIMIT, 0),
            (reg::MAX_POSITION_LIMIT, 4095),
            (reg::MAX_TEMPERATURE_LIMIT, 70),
            (reg::MAX_VOLTAGE_LIMIT, 140),
            (reg::MIN_VOLTAGE_LIMIT, 40),
            (reg::MAX_TORQUE_LIMIT, 1000),
            (reg::PHASE, 12),
            (reg::UNLOADING_CONDITION, 44),
            (reg::LED_ALARM_CONDITION, 47),
            (reg::P_COEFFICIENT, 32),
            (reg::D_COEFFICIENT, 32),
            (reg::I_COEFFICIENT, 0),
            (reg::MINIMUM_STARTUP_FORCE, 16),
            (reg::CW_DEAD_ZONE, 1),
            (reg::CCW_DEAD_ZONE, 1),
            (reg::PROTECTION_CURRENT, 500),
            (reg::ANGULAR_RESOLUTION, 1),
            (reg::HOMING_OFFSET, 0),
            (reg::OPERATING_MODE, 0),
            (reg::PROTECTIVE_TORQUE, 20),
            (reg::PROTECTION_TIME, 200),
            (reg::OVERLOAD_TORQUE, 80),
            (reg::TORQUE_ENABLE, 0),
            (reg::ACCELERATION, 0),
            (reg::GOAL_TIME, 0),
            (reg::GOAL_VELOCITY, 0),
            (reg::TORQUE_LIMIT, 1000),
            (reg::LOCK, 1),
            (reg::PRESENT_VOLTAGE, 74),
            (reg::MAXIMUM_ACCELERATION, 0),
        ];
        for (register, value) in defaults {
            self.store(*register, *value);
        }
        self.update_present();
        self.store(reg::GOAL_POSITION, self.present_position());
    }

    fn store(&mut self, register: Register, value: i32) {
        // Values here come from this file's own table and sensors, always in range.
        if let Ok(bytes) = register.encode(value) {
            let at = usize::from(register.address);
            self.memory[at..at + bytes.len()].copy_from_slice(&bytes);
        }
    }

    /// The current value of `register`.
    pub fn get(&self, register: Register) -> i32 {
        let at = usize::from(register.address);
        register
            .decode(&self.memory[at..at + usize::from(register.size)])
            .unwrap_or(0)
    }

    /// The servo's ID.
    pub fn id(&self) -> u8 {
        self.memory[usize::from(reg::ID.address)]
    }

    /// Baud rate the servo listens at.
    pub fn baud(&self) -> u32 {
        let index = usize::from(self.memory[usize::from(reg::BAUD_RATE.address)]);
        reg::BAUD_RATES.get(index).copied().unwrap_or(0)
    }

    /// Whether it answers instructions other than PING and READ.
    pub fn replies_to_writes(&self) -> bool {
        self.get(reg::RESPONSE_STATUS_LEVEL) != 0
    }

    /// Return delay, seconds.
    pub fn return_delay_s(&self) -> f64 {
        f64::from(self.get(reg::RETURN_DELAY_TIME)) * 2e-6
    }

    fn homing_offset(&self) -> i32 {
        let at = usize::from(reg::HOMING_OFFSET.address);
        decode_sign_magnitude(u16::from_le_bytes([self.memory[at], self.memory[at + 1]]), 11)
    }

    fn torque_on(&self) -> bool {
        self.get(reg::TORQUE_ENABLE) != 0
    }

    /// `Present_Position` as the servo reports it: physical ticks less the
    /// homing offset, wrapped to 0..4095.
    pub fn present_position(&self) -> i32 {
        (self.raw_position.round() as i32 - self.homing_offset()).rem_euclid(4096)
    }

    /// Physical encoder position, ticks.
    pub fn raw_position(&self) -> f64 {
        self.raw_position
    }

    /// Moves the output shaft by hand (only while torque is off; a servo
    /// holding torque resists).
    pub fn move_by_hand(&mut self, raw_position: f64) {
        if !self.torque_on() {
            self.raw_position = raw_position.rem_euclid(TICKS);
            self.update_present();
            self.store(reg::GOAL_POSITION, self.present_position());
        }
    }

    /// Forces error bits on (fault injection); 0 clears them.
    pub fn force_status(&mut self, bits: u8) {
        self.forced_status = bits;
        if ServoStatus(bits).is_dangerous() {
            self.store(reg::TORQUE_ENABLE, 0);
        }
    }

    /// The status byte of the next reply.
    pub fn status(&self) -> ServoStatus {
        let mut bits = self.forced_status;
        if self.temperature > f64::from(self.get(reg::MAX_TEMPERATURE_LIMIT)) {
            bits |= ServoStatus::OVERHEAT;
        }
        ServoStatus(bits)
    }

    /// READ: `len` bytes at `addr`, or `None` past the table.
    pub fn read(&mut self, addr: u8, len: u8) -> Option<Vec<u8>> {
        let (start, end) = (usize::from(addr), usize::from(addr) + usize::from(len));
        (end <= MEMORY_SIZE).then(|| self.memory[start..end].to_vec())
    }

    /// WRITE `data` at `addr`. Read-only bytes are left alone, and EEPROM
    /// bytes while `Lock` is 1. Returns false past the table.
    pub fn write(&mut self, addr: u8, data: &[u8]) -> bool {
        let start = usize::from(addr);
        if start + data.len() > MEMORY_SIZE {
            return false;
        }
        let locked = self.get(reg::LOCK) != 0;
        let torque_was_on = self.torque_on();
        for (i, byte) in data.iter().enumerate() {
            let at = start + i;
            let register = reg::ALL
                .iter()
                .find(|r| usize::from(r.address) <= at && at < usize::from(r.address + r.size));
            let Some(register) = register else { continue };
            if !register.writable || (register.area == Area::Eeprom && locked) {
                continue;
            }
            self.memory[at] = *byte;
        }
        if torque_was_on && !self.torque_on() {
            self.velocity = 0.0;
        }
        true
    }

    /// REG_WRITE: hold a write for ACTION.
    pub fn reg_write(&mut self, addr: u8, data: &[u8]) {
        self.registered = Some((addr, data.to_vec()));
    }

    /// ACTION: apply a held write.
    pub fn action(&mut self) {
        if let Some((addr, data)) = self.registered.take() {
            self.write(addr, &data);
        }
    }

    /// REBOOT: RAM back to power-on values (torque off, holding nothing).
    pub fn reboot(&mut self) {
        self.store(reg::TORQUE_ENABLE, 0);
        self.store(reg::LOCK, 1);
        self.velocity = 0.0;
        self.registered = None;
        self.store(reg::GOAL_POSITION, self.present_position());
    }

    /// RESET: factory settings, keeping the ID.
    pub fn reset(&mut self) {
        let id = self.id();
        self.factory_reset(id);
    }

    /// Advances the motion by `dt_s` seconds.
    pub fn step(&mut self, dt_s: f64) {
        let mut left = dt_s.max(0.0);
        while left > 0.0 {
            let dt = left.min(MAX_SUBSTEP_S);
            self.substep(dt);
            left -= dt;
        }
        self.update_present();
    }

    fn substep(&mut self, dt: f64) {
        let heating = AMBIENT_C + self.load.abs() * 0.03;
        self.temperature += (heating - self.temperature) * (dt / 60.0);
        if !self.torque_on() {
            self.velocity = 0.0;
            self.load = 0.0;
            self.store(reg::GOAL_POSITION, self.present_position());
            return;
        }
        let (min, max) = (
            self.get(reg::MIN_POSITION_LIMIT),
            self.get(reg::MAX_POSITION_LIMIT),
        );
        let mut goal = self.get(reg::GOAL_POSITION);
        if max > min {
            goal = goal.clamp(min, max);
        }
        // Goal is in the reported frame; the motor works in physical ticks.
        let target = f64::from(goal + self.homing_offset());
        let error = target - self.raw_position;
        let speed = match self.get(reg::GOAL_VELOCITY).unsigned_abs() {
            0 => MAX_SPEED_TICKS_S,
            v => f64::from(v).min(MAX_SPEED_TICKS_S),
        };
        let acceleration = match self.get(reg::ACCELERATION) {
            0 => MAX_ACCELERATION_TICKS_S2,
            a => f64::from(a) * ACCELERATION_UNIT,
        };
        let wanted = error.signum() * speed.min((2.0 * acceleration * error.abs()).sqrt());
        let change = (wanted - self.velocity).clamp(-acceleration * dt, acceleration * dt);
        self.velocity += change;
        let before = error;
        self.raw_position += self.velocity * dt;
        let after = target - self.raw_position;
        if after.abs() < 0.5 || before.signum() != after.signum() {
            self.raw_position = target;
            self.velocity = 0.0;
        }
        let p = f64::from(self.get(reg::P_COEFFICIENT));
        let limit = f64::from(self.get(reg::TORQUE_LIMIT).min(self.get(reg::MAX_TORQUE_LIMIT)));
        self.load = (after * p / 8.0 + change / dt * 0.002).clamp(-limit, limit);
    }

    fn update_present(&mut self) {
        self.store(reg::PRESENT_POSITION, self.present_position());
        let velocity = self.velocity.round().clamp(-32767.0, 32767.0) as i32;
        self.store(reg::PRESENT_VELOCITY, velocity);
        self.store(reg::PRESENT_LOAD, self.load.round().clamp(-1023.0, 1023.0) as i32);
        self.store(reg::PRESENT_CURRENT, (self.load.abs() * 0.3).round() as i32);
        self.store(
            reg::PRESENT_TEMPERATURE,
            self.temperature.round().clamp(0.0, 255.0) as i32,
        );
        let moving = self.velocity.abs() > 1.0;
        self.store(reg::MOVING, i32::from(moving));
        self.store(reg::STATUS, i32::from(self.status().0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_goal_at_bounded_speed() {
        let mut servo = EmulatedServo::new(1, 1000);
        servo.write(reg::TORQUE_ENABLE.address, &[1]);
        servo.write(
            reg::GOAL_POSITION.address,
            &reg::GOAL_POSITION.encode(3000).unwrap(),
        );
        servo.step(0.1);
        let after_100ms = servo.present_position();
        // At most the no-load speed: 0.1 s · 3075 ticks/s ≈ 307 ticks.
        assert!(after_100ms > 1000 && after_100ms <= 1000 + 308, "{after_100ms}");
        servo.step(2.0);
        assert_eq!(servo.present_position(), 3000);
        assert_eq!(servo.get(reg::MOVING), 0);
    }

    #[test]
    fn homing_offset_shifts_the_reported_position() {
        let mut servo = EmulatedServo::new(1, 1500);
        servo.write(reg::LOCK.address, &[0]);
        servo.write(
            reg::HOMING_OFFSET.address,
            &reg::HOMING_OFFSET.encode(-500).unwrap(),
        );
        assert_eq!(servo.present_position(), 2000);
        servo.write(
            reg::HOMING_OFFSET.address,
            &reg::HOMING_OFFSET.encode(1600).unwrap(),
        );
        assert_eq!(servo.present_position(), (1500 - 1600i32).rem_euclid(4096));
    }

    #[test]
    fn eeprom_is_locked_and_read_only_registers_stay() {
        let mut servo = EmulatedServo::new(1, 2048);
        servo.write(reg::ID.address, &[7]);
        assert_eq!(servo.id(), 1, "Lock = 1 protects the EEPROM");
        servo.write(reg::LOCK.address, &[0]);
        servo.write(reg::ID.address, &[7]);
        assert_eq!(servo.id(), 7);
        servo.write(reg::MODEL_NUMBER.address, &[0, 0]);
        assert_eq!(servo.get(reg::MODEL_NUMBER), 777);
    }

    #[test]
    fn position_limits_bound_the_goal() {
        let mut servo = EmulatedServo::new(1, 2048);
        servo.write(reg::LOCK.address, &[0]);
        servo.write(
            reg::MAX_POSITION_LIMIT.address,
            &reg::MAX_POSITION_LIMIT.encode(2500).unwrap(),
        );
        servo.write(reg::TORQUE_ENABLE.address, &[1]);
        servo.write(
            reg::GOAL_POSITION.address,
            &reg::GOAL_POSITION.encode(4000).unwrap(),
        );
        servo.step(3.0);
        assert_eq!(servo.present_position(), 2500);
    }

    #[test]
    fn holding_servo_resists_hands_and_free_one_follows() {
        let mut servo = EmulatedServo::new(1, 2048);
        servo.move_by_hand(1000.0);
        assert_eq!(servo.present_position(), 1000);
        servo.write(reg::TORQUE_ENABLE.address, &[1]);
        servo.move_by_hand(3000.0);
        assert_eq!(servo.present_position(), 1000);
    }

    #[test]
    fn overload_fault_drops_torque() {
        let mut servo = EmulatedServo::new(1, 2048);
        servo.write(reg::TORQUE_ENABLE.address, &[1]);
        servo.force_status(ServoStatus::OVERLOAD);
        assert_eq!(servo.get(reg::TORQUE_ENABLE), 0);
        assert!(servo.status().is_dangerous());
    }
}
