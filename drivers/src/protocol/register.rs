//! The STS3215 control table: every register with its address, size, memory
//! area, access and encoding. Multi-byte values are little-endian; some are
//! sign-magnitude (one bit is the sign, the others the magnitude).

use std::fmt;

use crate::{Error, Result};

/// Which memory a register lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Kept across power cycles; written only while `Lock` is 0.
    Eeprom,
    /// Lost at power off.
    Ram,
}

/// A register of the control table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// Name, as in Feetech's and LeRobot's tables.
    pub name: &'static str,
    /// Address.
    pub address: u8,
    /// Size in bytes (1 or 2).
    pub size: u8,
    /// Memory area.
    pub area: Area,
    /// Whether the host may write it.
    pub writable: bool,
    /// Sign bit for sign-magnitude registers.
    pub sign_bit: Option<u8>,
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (address {})", self.name, self.address)
    }
}

macro_rules! registers {
    ($($konst:ident = $name:literal, $addr:literal, $size:literal, $area:ident, $rw:ident $(, sign $bit:literal)?;)*) => {
        $(
            #[doc = concat!("`", $name, "`, address ", stringify!($addr), ", ", stringify!($size), " byte(s).")]
            pub const $konst: Register = Register {
                name: $name,
                address: $addr,
                size: $size,
                area: Area::$area,
                writable: registers!(@rw $rw),
                sign_bit: registers!(@sign $($bit)?),
            };
        )*
        /// Every register, by address.
        pub const ALL: &[Register] = &[$($konst),*];
    };
    (@rw rw) => { true };
    (@rw ro) => { false };
    (@sign $bit:literal) => { Some($bit) };
    (@sign) => { None };
}

registers! {
    FIRMWARE_MAJOR = "Firmware_Major_Version", 0, 1, Eeprom, ro;
    FIRMWARE_MINOR = "Firmware_Minor_Version", 1, 1, Eeprom, ro;
    MODEL_NUMBER = "Model_Number", 3, 2, Eeprom, ro;
    ID = "ID", 5, 1, Eeprom, rw;
    BAUD_RATE = "Baud_Rate", 6, 1, Eeprom, rw;
    RETURN_DELAY_TIME = "Return_Delay_Time", 7, 1, Eeprom, rw;
    RESPONSE_STATUS_LEVEL = "Response_Status_Level", 8, 1, Eeprom, rw;
    MIN_POSITION_LIMIT = "Min_Position_Limit", 9, 2, Eeprom, rw;
    MAX_POSITION_LIMIT = "Max_Position_Limit", 11, 2, Eeprom, rw;
    MAX_TEMPERATURE_LIMIT = "Max_Temperature_Limit", 13, 1, Eeprom, rw;
    MAX_VOLTAGE_LIMIT = "Max_Voltage_Limit", 14, 1, Eeprom, rw;
    MIN_VOLTAGE_LIMIT = "Min_Voltage_Limit", 15, 1, Eeprom, rw;
    MAX_TORQUE_LIMIT = "Max_Torque_Limit", 16, 2, Eeprom, rw;
    PHASE = "Phase", 18, 1, Eeprom, rw;
    UNLOADING_CONDITION = "Unloading_Condition", 19, 1, Eeprom, rw;
    LED_ALARM_CONDITION = "LED_Alarm_Condition", 20, 1, Eeprom, rw;
    P_COEFFICIENT = "P_Coefficient", 21, 1, Eeprom, rw;
    D_COEFFICIENT = "D_Coefficient", 22, 1, Eeprom, rw;
    I_COEFFICIENT = "I_Coefficient", 23, 1, Eeprom, rw;
    MINIMUM_STARTUP_FORCE = "Minimum_Startup_Force", 24, 2, Eeprom, rw;
    CW_DEAD_ZONE = "CW_Dead_Zone", 26, 1, Eeprom, rw;
    CCW_DEAD_ZONE = "CCW_Dead_Zone", 27, 1, Eeprom, rw;
    PROTECTION_CURRENT = "Protection_Current", 28, 2, Eeprom, rw;
    ANGULAR_RESOLUTION = "Angular_Resolution", 30, 1, Eeprom, rw;
    HOMING_OFFSET = "Homing_Offset", 31, 2, Eeprom, rw, sign 11;
    OPERATING_MODE = "Operating_Mode", 33, 1, Eeprom, rw;
    PROTECTIVE_TORQUE = "Protective_Torque", 34, 1, Eeprom, rw;
    PROTECTION_TIME = "Protection_Time", 35, 1, Eeprom, rw;
    OVERLOAD_TORQUE = "Overload_Torque", 36, 1, Eeprom, rw;
    TORQUE_ENABLE = "Torque_Enable", 40, 1, Ram, rw;
    ACCELERATION = "Acceleration", 41, 1, Ram, rw;
    GOAL_POSITION = "Goal_Position", 42, 2, Ram, rw, sign 15;
    GOAL_TIME = "Goal_Time", 44, 2, Ram, rw;
    GOAL_VELOCITY = "Goal_Velocity", 46, 2, Ram, rw, sign 15;
    TORQUE_LIMIT = "Torque_Limit", 48, 2, Ram, rw;
    LOCK = "Lock", 55, 1, Ram, rw;
    PRESENT_POSITION = "Present_Position", 56, 2, Ram, ro, sign 15;
    PRESENT_VELOCITY = "Present_Velocity", 58, 2, Ram, ro, sign 15;
    PRESENT_LOAD = "Present_Load", 60, 2, Ram, ro, sign 10;
    PRESENT_VOLTAGE = "Present_Voltage", 62, 1, Ram, ro;
    PRESENT_TEMPERATURE = "Present_Temperature", 63, 1, Ram, ro;
    STATUS = "Status", 65, 1, Ram, ro;
    MOVING = "Moving", 66, 1, Ram, ro;
    PRESENT_CURRENT = "Present_Current", 69, 2, Ram, ro;
    MAXIMUM_ACCELERATION = "Maximum_Acceleration", 85, 1, Ram, rw;
}

/// Bit rates selected by the `Baud_Rate` register, by index (Feetech STS;
/// indices above 4 differ between sources).
pub const BAUD_RATES: [u32; 8] = [
    1_000_000, 500_000, 250_000, 128_000, 115_200, 76_800, 57_600, 38_400,
];

/// Size of the emulated register memory (covers every address above).
pub const MEMORY_SIZE: usize = 128;

/// The model number an STS3215 reports.
pub const STS3215_MODEL: u16 = 777;

/// Encodes a signed value as sign-magnitude with the sign at `sign_bit`.
pub fn encode_sign_magnitude(value: i32, sign_bit: u8) -> Result<u16> {
    let max = (1i32 << sign_bit) - 1;
    if value.abs() > max {
        return Err(Error::Protocol(format!(
            "{value} does not fit in sign-magnitude with the sign at bit {sign_bit} (|value| ≤ {max})"
        )));
    }
    let magnitude = value.unsigned_abs() as u16;
    Ok(if value < 0 {
        magnitude | (1 << sign_bit)
    } else {
        magnitude
    })
}

/// Decodes a sign-magnitude value with the sign at `sign_bit`; bits above the sign are ignored.
pub fn decode_sign_magnitude(raw: u16, sign_bit: u8) -> i32 {
    let magnitude = i32::from(raw & ((1u16 << sign_bit) - 1));
    if raw & (1 << sign_bit) != 0 {
        -magnitude
    } else {
        magnitude
    }
}

impl Register {
    /// The register at `address`, if one starts there.
    pub fn at(address: u8) -> Option<Register> {
        ALL.iter().copied().find(|r| r.address == address)
    }

    /// A value encoded as the bytes the servo stores.
    pub fn encode(&self, value: i32) -> Result<Vec<u8>> {
        let raw = match self.sign_bit {
            Some(bit) => {
                encode_sign_magnitude(value, bit).map_err(|e| Error::Protocol(format!("{self}: {e}")))?
            }
            None => {
                let max = if self.size == 1 { 0xFF } else { 0xFFFF };
                u16::try_from(value)
                    .ok()
                    .filter(|v| i32::from(*v) <= max)
                    .ok_or_else(|| Error::Protocol(format!("{self}: {value} is outside 0..={max}")))?
            }
        };
        Ok(raw.to_le_bytes()[..usize::from(self.size)].to_vec())
    }

    /// The value of the bytes the servo returned (exactly `size` of them).
    pub fn decode(&self, bytes: &[u8]) -> Result<i32> {
        let raw = match (self.size, bytes) {
            (1, [b]) => u16::from(*b),
            (2, [lo, hi]) => u16::from_le_bytes([*lo, *hi]),
            _ => {
                return Err(Error::Protocol(format!(
                    "{self}: expected {} bytes, got {}",
                    self.size,
                    bytes.len()
                )));
            }
        };
        Ok(match self.sign_bit {
            Some(bit) => decode_sign_magnitude(raw, bit),
            None => i32::from(raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_do_not_overlap_and_fit_in_memory() {
        for pair in ALL.windows(2) {
            assert!(
                pair[0].address + pair[0].size <= pair[1].address,
                "{} / {}",
                pair[0],
                pair[1]
            );
        }
        let last = ALL[ALL.len() - 1];
        assert!(usize::from(last.address + last.size) <= MEMORY_SIZE);
        assert_eq!(Register::at(56), Some(PRESENT_POSITION));
        assert_eq!(Register::at(57), None);
    }
}
