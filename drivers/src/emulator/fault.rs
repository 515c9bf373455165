//! Faults the emulator injects on demand.

use std::str::FromStr;

use crate::protocol::ServoStatus;

/// What can go wrong on the emulated bus.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Fraction of replies never sent.
    pub drop_rate: f64,
    /// Fraction of replies with one byte changed.
    pub corrupt_rate: f64,
    /// Fraction of reply batches sent late, by [`Faults::late_by_s`].
    pub late_rate: f64,
    /// How late a late reply batch is, seconds ([`Faults::LATE_BY_S`] when
    /// unset). A little over the bus's timeout makes the reply arrive while
    /// the client waits for the answer to its next request.
    pub late_by: Option<f64>,
    /// Error bits forced on servos: `(id, bits)`.
    pub error_bits: Vec<(u8, u8)>,
    /// Seconds after start when the port disappears (adapter unplugged).
    pub vanish_after_s: Option<f64>,
}

impl Faults {
    /// How late a late reply is, seconds: far beyond any sane timeout.
    pub const LATE_BY_S: f64 = 0.05;

    /// How late a late reply batch is, seconds.
    pub fn late_by_s(&self) -> f64 {
        self.late_by.unwrap_or(Self::LATE_BY_S)
    }

    /// Adds one `KIND=VALUE` fault: `drop=RATE`, `corrupt=RATE`,
    /// `late=RATE` (RATE in 0..1), `late-by=SECONDS`, `overheat=ID`,
    /// `overload=ID`, `voltage=ID`, `vanish=SECONDS`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (kind, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("fault {spec:?} is not KIND=VALUE"))?;
        let rate = || -> Result<f64, String> {
            f64::from_str(value)
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("fault {spec:?}: rate must be a number in 0..1"))
        };
        let id = || -> Result<u8, String> {
            u8::from_str(value).map_err(|_| format!("fault {spec:?}: expected a servo ID"))
        };
        let seconds = || -> Result<f64, String> {
            f64::from_str(value)
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("fault {spec:?}: expected seconds"))
        };
        match kind {
            "drop" => self.drop_rate = rate()?,
            "corrupt" => self.corrupt_rate = rate()?,
            "late" => self.late_rate = rate()?,
            "overheat" => self.error_bits.push((id()?, ServoStatus::OVERHEAT)),
            "overload" => self.error_bits.push((id()?, ServoStatus::OVERLOAD)),
            "voltage" => self.error_bits.push((id()?, ServoStatus::VOLTAGE)),
            "late-by" => self.late_by = Some(seconds()?),
            "vanish" => self.vanish_after_s = Some(seconds()?),
            _ => {
                return Err(format!(
                    "unknown fault kind {kind:?}: expected drop, corrupt, late, late-by, overheat, overload, voltage or vanish"
                ));
            }
        }
        Ok(())
    }

    /// Parses a list of `KIND=VALUE` specs.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for spec in specs {
            faults.add(spec.as_ref())?;
        }
        Ok(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_rejects_nonsense() {
        let faults = Faults::parse(&[
            "drop=0.1",
            "corrupt=0.05",
            "late=0",
            "overheat=3",
            "vanish=2.5",
            "late-by=0.008",
        ])
        .unwrap();
        assert_eq!(faults.drop_rate, 0.1);
        assert_eq!(faults.late_by_s(), 0.008);
        assert_eq!(Faults::default().late_by_s(), Faults::LATE_BY_S);
        assert_eq!(faults.error_bits, [(3, ServoStatus::OVERHEAT)]);
        assert_eq!(faults.vanish_after_s, Some(2.5));
        for bad in [
            "drop",
            "drop=2",
            "melt=1",
            "overheat=x",
            "vanish=-1",
            "late-by=soon",
            "late-by=inf",
        ] {
            assert!(Faults::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
