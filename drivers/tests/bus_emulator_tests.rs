//! The bus against the emulator, over real pseudo-terminals.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sponge_drivers::emulator::{Emulator, EmulatorConfig, Faults};
use sponge_drivers::protocol::ServoStatus;
use sponge_drivers::protocol::register as reg;
use sponge_drivers::{Bus, BusConfig, Error};

const IDS: [u8; 6] = [1, 2, 3, 4, 5, 6];

fn link(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sponge-{}-{name}", std::process::id()))
}

fn start(name: &str, faults: Faults) -> (Emulator, Bus) {
    let config = EmulatorConfig {
        faults,
        seed: 7,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(&link(name), config).expect("emulator starts");
    let bus = Bus::open(
        emulator.link().to_str().expect("utf-8 temp path"),
        BusConfig::default(),
    )
    .expect("bus opens");
    (emulator, bus)
}

#[test]
fn reads_writes_and_moves_servos() {
    let (emulator, mut bus) = start("basic", Faults::default());
    for id in IDS {
        assert!(bus.ping(id).unwrap(), "servo {id} answers");
    }
    assert!(!bus.ping(7).unwrap(), "no servo 7");
    assert_eq!(bus.read(3, reg::MODEL_NUMBER).unwrap(), 777);
    assert_eq!(bus.sync_read(reg::PRESENT_POSITION, &IDS).unwrap(), [2048; 6]);

    bus.sync_write(reg::TORQUE_ENABLE, &IDS.map(|id| (id, 1)))
        .unwrap();
    let goals: Vec<(u8, i32)> = IDS.iter().map(|id| (*id, 1500 + i32::from(*id) * 100)).collect();
    bus.sync_write(reg::GOAL_POSITION, &goals).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let positions = bus.sync_read(reg::PRESENT_POSITION, &IDS).unwrap();
        if positions.iter().zip(&goals).all(|(p, (_, g))| p == g) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "servos did not reach their goals: {positions:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(emulator.bus().stats.garbage_bytes, 0);
    assert_eq!(bus.stats.corrupt, 0, "a clean bus delivers clean replies");
}

#[test]
fn read_only_registers_and_bad_values_are_refused_before_sending() {
    let (_emulator, mut bus) = start("refuse", Faults::default());
    let err = bus.write(1, reg::PRESENT_POSITION, 5).unwrap_err();
    assert!(
        err.to_string().contains("Present_Position") && err.to_string().contains("read-only"),
        "{err}"
    );
    let err = bus.write(1, reg::HOMING_OFFSET, 3000).unwrap_err();
    assert!(err.to_string().contains("Homing_Offset"), "{err}");
    assert_eq!(bus.stats.sent, 0);
}

#[test]
fn servos_at_another_baud_rate_stay_silent() {
    let (_emulator, mut bus) = start("baud", Faults::default());
    bus.set_baud(500_000).unwrap();
    assert!(!bus.ping(1).unwrap());
    assert!(bus.broadcast_ping(Duration::from_millis(20)).unwrap().is_empty());
    bus.set_baud(1_000_000).unwrap();
    assert_eq!(bus.broadcast_ping(Duration::from_millis(20)).unwrap(), IDS);
}

#[test]
fn ten_percent_corrupted_replies_are_retried() {
    let faults = Faults {
        corrupt_rate: 0.1,
        ..Faults::default()
    };
    let (emulator, mut bus) = start("faults", faults);
    let mut failed = 0;
    for _ in 0..300 {
        match bus.sync_read(reg::PRESENT_POSITION, &IDS) {
            // Never a wrong value: corrupt replies are rejected, not misread.
            Ok(positions) => assert_eq!(positions, [2048; 6]),
            Err(e) => {
                assert!(matches!(e, Error::Timeout { .. }), "{e}");
                failed += 1;
            }
        }
    }
    let stats = emulator.bus().stats;
    assert!(stats.corrupted > 100, "{stats:?}");
    assert!(bus.stats.retries > 50, "{:?}", bus.stats);
    // Four attempts each: a servo fails a cycle with probability 0.1^4.
    assert!(failed <= 3, "{failed} of 300 cycles failed");
}

#[test]
fn a_reply_that_comes_after_its_timeout_is_never_taken_for_the_next_answer() {
    // Every reply 8 ms late: past the bus's timeout (about 5 ms), so without
    // care each lands while the bus waits for the answer to a later request.
    let faults = Faults::parse(&["late=1", "late-by=0.008"]).unwrap();
    let (emulator, mut bus) = start("late", faults);
    let limits = |register| -> Vec<i32> {
        let mut emulated = emulator.bus();
        IDS.iter()
            .map(|id| emulated.servo_mut(*id).expect("servo").get(register))
            .collect()
    };
    let (mins, maxs) = (limits(reg::MIN_POSITION_LIMIT), limits(reg::MAX_POSITION_LIMIT));
    assert!(mins.iter().zip(&maxs).all(|(min, max)| min != max));
    let mut answered = 0;
    for _ in 0..4 {
        // The calibration check's reads: either the right value or a timeout.
        for (register, truth) in [(reg::MIN_POSITION_LIMIT, &mins), (reg::MAX_POSITION_LIMIT, &maxs)] {
            match bus.sync_read(register, &IDS) {
                Ok(values) => {
                    assert_eq!(&values, truth, "SYNC_READ of {register}");
                    answered += 1;
                }
                Err(e) => assert!(matches!(e, Error::Timeout { .. }), "{e}"),
            }
            match bus.read(2, register) {
                Ok(value) => {
                    assert_eq!(value, truth[1], "READ of {register}");
                    answered += 1;
                }
                Err(e) => assert!(matches!(e, Error::Timeout { .. }), "{e}"),
            }
        }
    }
    // A retry of the same request takes the late reply: the reads still work.
    assert!(answered >= 8, "{answered} of 16 reads answered; {:?}", bus.stats);
    assert!(
        bus.stats.stale > 0,
        "late replies were discarded: {:?}",
        bus.stats
    );

    emulator.bus().set_faults(Faults::default());
    assert_eq!(bus.sync_read(reg::MAX_POSITION_LIMIT, &IDS).unwrap(), maxs);
    assert_eq!(bus.sync_read(reg::MIN_POSITION_LIMIT, &IDS).unwrap(), mins);
}

#[test]
fn servo_error_bits_are_reported_by_servo() {
    let faults = Faults::parse(&["overload=3"]).unwrap();
    let (_emulator, mut bus) = start("errbits", faults);
    bus.sync_read(reg::PRESENT_POSITION, &IDS).unwrap();
    assert_eq!(bus.last_status(3), ServoStatus(ServoStatus::OVERLOAD));
    assert!(bus.last_status(2).is_ok());
    let err = bus.write(3, reg::GOAL_POSITION, 2000).unwrap_err();
    assert!(matches!(err, Error::Servo { id: 3, .. }), "{err}");
    assert!(
        err.to_string().contains("servo 3") && err.to_string().contains("overload"),
        "{err}"
    );
}

#[test]
fn unplugged_port_is_a_clear_error_within_a_second() {
    let (mut emulator, mut bus) = start("vanish", Faults::default());
    assert!(bus.ping(1).unwrap());
    emulator.vanish();
    assert!(!emulator.link().exists(), "link removed");
    let started = Instant::now();
    let err = loop {
        match bus.sync_read(reg::PRESENT_POSITION, &IDS) {
            Err(e) => break e,
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(1)),
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Port { .. }), "{err}");
    assert!(err.to_string().contains("unplugged"), "{err}");
}

#[test]
fn missing_port_is_named() {
    let err = Bus::open("/dev/does-not-exist-sponge", BusConfig::default())
        .err()
        .expect("no such port");
    assert!(err.to_string().contains("/dev/does-not-exist-sponge"), "{err}");
}
