//! Packets compared byte for byte with packets worked out by hand from the
//! protocol (`CHK = !(ID + LEN + INST + ΣP) & 0xFF`), sign-magnitude at its
//! edges, and the parser against arbitrary byte streams.

use proptest::prelude::*;
use sponge_drivers::protocol::register::{
    GOAL_POSITION, HOMING_OFFSET, PRESENT_LOAD, PRESENT_POSITION, decode_sign_magnitude,
    encode_sign_magnitude,
};
use sponge_drivers::protocol::{
    BROADCAST_ID, Frame, FrameParser, InstructionPacket, Parsed, ServoStatus, StatusPacket,
};

#[test]
fn ping_matches_reference_example() {
    // Reference: ping ID 1 = FF FF 01 02 01 FB.
    assert_eq!(
        InstructionPacket::ping(1).to_bytes().unwrap(),
        [0xFF, 0xFF, 0x01, 0x02, 0x01, 0xFB]
    );
}

#[test]
fn read_matches_reference_example() {
    // Reference: read Present_Position (56 = 0x38, 2 bytes) of ID 1 = FF FF 01 04 02 38 02 BE.
    let packet = InstructionPacket::read(1, PRESENT_POSITION.address, PRESENT_POSITION.size);
    assert_eq!(
        packet.to_bytes().unwrap(),
        [0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE]
    );
}

#[test]
fn write_goal_position() {
    // 2048 = 0x0800, little-endian 00 08; LEN = 3 params + 2 = 5;
    // sum 01+05+03+2A+00+08 = 0x3B, !0x3B = 0xC4.
    let packet = InstructionPacket::write(1, 42, &GOAL_POSITION.encode(2048).unwrap());
    assert_eq!(
        packet.to_bytes().unwrap(),
        [0xFF, 0xFF, 0x01, 0x05, 0x03, 0x2A, 0x00, 0x08, 0xC4]
    );
}

#[test]
fn reg_write_and_action() {
    // 1000 = 0x03E8 → E8 03; sum 02+05+04+2A+E8+03 = 0x120 → 0x20, !0x20 = 0xDF.
    let packet = InstructionPacket::reg_write(2, 42, &[0xE8, 0x03]);
    assert_eq!(
        packet.to_bytes().unwrap(),
        [0xFF, 0xFF, 0x02, 0x05, 0x04, 0x2A, 0xE8, 0x03, 0xDF]
    );
    // Broadcast ACTION: sum FE+02+05 = 0x105 → 0x05, !0x05 = 0xFA.
    let action = InstructionPacket::action(BROADCAST_ID);
    assert_eq!(action.to_bytes().unwrap(), [0xFF, 0xFF, 0xFE, 0x02, 0x05, 0xFA]);
}

#[test]
fn reboot() {
    // sum 03+02+08 = 0x0D, !0x0D = 0xF2.
    assert_eq!(
        InstructionPacket::reboot(3).to_bytes().unwrap(),
        [0xFF, 0xFF, 0x03, 0x02, 0x08, 0xF2]
    );
}

#[test]
fn sync_read_of_six_positions() {
    // LEN = N + 4 = 10; sum FE+0A+82+38+02+(1+..+6 = 0x15) = 0x1D9 → 0xD9, !0xD9 = 0x26.
    let packet = InstructionPacket::sync_read(56, 2, &[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        packet.to_bytes().unwrap(),
        [0xFF, 0xFF, 0xFE, 0x0A, 0x82, 0x38, 0x02, 1, 2, 3, 4, 5, 6, 0x26]
    );
}

#[test]
fn sync_write_of_two_goals() {
    // LEN = (2 + 1) · 2 + 4 = 10; sum FE+0A+83+2A+02+01+00+08+02+E8+03 = 0x2AD → 0xAD, !0xAD = 0x52.
    let packet = InstructionPacket::sync_write(42, 2, &[(1, &[0x00, 0x08]), (2, &[0xE8, 0x03])]).unwrap();
    assert_eq!(
        packet.to_bytes().unwrap(),
        [
            0xFF, 0xFF, 0xFE, 0x0A, 0x83, 0x2A, 0x02, 0x01, 0x00, 0x08, 0x02, 0xE8, 0x03, 0x52
        ]
    );
    assert!(InstructionPacket::sync_write(42, 2, &[(1, &[0x00])]).is_err());
}

#[test]
fn status_packets() {
    // Ping reply of ID 1: sum 01+02+00 = 3, !3 = 0xFC.
    let ping = StatusPacket {
        id: 1,
        status: ServoStatus(0),
        params: vec![],
    };
    assert_eq!(ping.to_bytes().unwrap(), [0xFF, 0xFF, 0x01, 0x02, 0x00, 0xFC]);
    // Position 2048 of ID 1: sum 01+04+00+00+08 = 0x0D, !0x0D = 0xF2.
    let read = StatusPacket {
        id: 1,
        status: ServoStatus(0),
        params: vec![0x00, 0x08],
    };
    assert_eq!(
        read.to_bytes().unwrap(),
        [0xFF, 0xFF, 0x01, 0x04, 0x00, 0x00, 0x08, 0xF2]
    );
}

#[test]
fn sign_magnitude_edges() {
    // Homing_Offset: sign bit 11, magnitude ≤ 2047.
    assert_eq!(encode_sign_magnitude(2047, 11).unwrap(), 0x07FF);
    assert_eq!(encode_sign_magnitude(-2047, 11).unwrap(), 0x0FFF);
    assert_eq!(encode_sign_magnitude(-1, 11).unwrap(), 0x0801);
    assert_eq!(encode_sign_magnitude(0, 11).unwrap(), 0x0000);
    assert!(encode_sign_magnitude(2048, 11).is_err());
    assert!(encode_sign_magnitude(-2048, 11).is_err());
    assert_eq!(HOMING_OFFSET.encode(-1024).unwrap(), [0x00, 0x0C]);
    // Positions and velocities: sign bit 15.
    assert_eq!(encode_sign_magnitude(32767, 15).unwrap(), 0x7FFF);
    assert_eq!(encode_sign_magnitude(-32767, 15).unwrap(), 0xFFFF);
    assert!(encode_sign_magnitude(32768, 15).is_err());
    // Present_Load: sign bit 10.
    assert_eq!(decode_sign_magnitude(0x07FF, 10), -1023);
    assert_eq!(decode_sign_magnitude(0x03FF, 10), 1023);
    assert_eq!(PRESENT_LOAD.decode(&[0x0A, 0x04]).unwrap(), -10);
    // "Negative zero" reads as zero.
    assert_eq!(decode_sign_magnitude(0x8000, 15), 0);
    for value in -2047..=2047 {
        assert_eq!(
            decode_sign_magnitude(encode_sign_magnitude(value, 11).unwrap(), 11),
            value
        );
    }
}

#[test]
fn unsigned_registers_reject_out_of_range_values() {
    assert!(sponge_drivers::protocol::register::ID.encode(256).is_err());
    assert!(
        sponge_drivers::protocol::register::TORQUE_LIMIT
            .encode(-1)
            .is_err()
    );
    assert!(PRESENT_POSITION.decode(&[1]).is_err());
}

fn drain(parser: &mut FrameParser) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(parsed) = parser.poll_at_end() {
        if let Parsed::Frame(frame) = parsed {
            frames.push(frame);
        }
    }
    frames
}

fn arbitrary_status() -> impl Strategy<Value = StatusPacket> {
    (0u8..=0xFD, any::<u8>(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(id, status, params)| {
        StatusPacket {
            id,
            status: ServoStatus(status),
            params,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// The parser never panics, whatever arrives, in whatever pieces.
    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
        let mut parser = FrameParser::new();
        let cut = cut.min(bytes.len());
        parser.push(&bytes[..cut]);
        while parser.poll().is_some() {}
        parser.push(&bytes[cut..]);
        let frames = drain(&mut parser);
        prop_assert!(frames.iter().all(|f| f.params.len() <= 248));
        prop_assert_eq!(parser.pending(), 0);
    }

    /// Valid packets separated by noise (bytes that cannot start a header)
    /// all come out, in order.
    #[test]
    fn parser_recovers_packets_from_noise(
        packets in prop::collection::vec(arbitrary_status(), 1..6),
        noise in prop::collection::vec(prop::collection::vec(0u8..0xFF, 0..20), 6),
    ) {
        let mut stream = Vec::new();
        for (packet, noise) in packets.iter().zip(&noise) {
            stream.extend_from_slice(noise);
            packet.write_into(&mut stream).unwrap();
        }
        let mut parser = FrameParser::new();
        parser.push(&stream);
        let frames = drain(&mut parser);
        let expected: Vec<Frame> = packets
            .iter()
            .map(|p| Frame { id: p.id, kind: p.status.0, params: p.params.clone() })
            .collect();
        prop_assert_eq!(frames, expected);
    }

    /// A corrupted packet (any byte changed) followed by a good one: a
    /// reader that rejects frames it did not expect still finds the good
    /// one (with a LEN one too high, the corrupted packet plus the good
    /// one's first byte checksums correctly, so rejection is needed).
    #[test]
    fn parser_resyncs_after_a_corrupted_packet(
        bad in arbitrary_status(),
        good in arbitrary_status(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut stream = bad.to_bytes().unwrap();
        let i = at.index(stream.len());
        stream[i] ^= flip;
        let corrupted_len = stream.len();
        good.write_into(&mut stream).unwrap();
        let mut parser = FrameParser::new();
        parser.push(&stream);
        let good_frame = Frame { id: good.id, kind: good.status.0, params: good.params.clone() };
        let mut found = false;
        while let Some(parsed) = parser.poll_at_end() {
            match parsed {
                Parsed::Frame(frame) if frame == good_frame => found = true,
                Parsed::Frame(_) => prop_assert!(parser.reject_last()),
                Parsed::Skipped { .. } => {}
            }
        }
        prop_assert!(found, "lost the good packet after corrupting byte {} of {}", i, corrupted_len);
    }
}
