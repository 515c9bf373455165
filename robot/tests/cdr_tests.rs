//! CDR encodings compared with bytes worked out by hand from the CDR rules:
//! a 4-byte encapsulation header (00 01 = little-endian CDR, two option
//! bytes), then the body, where each primitive is aligned to its own size
//! counted from the body's start; strings are a u32 length that counts a
//! terminating NUL, then the bytes and the NUL; sequences are a u32 count
//! then the elements.

use sponge_robot::msg::{Header, Image, JointState, RosMessage, StringMsg, Time};

const LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

fn with_header(body: &[u8]) -> Vec<u8> {
    let mut bytes = LE.to_vec();
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn joint_state_encodes_to_hand_worked_bytes() {
    let msg = JointState {
        header: Header {
            stamp: Time { sec: 1, nanosec: 2 },
            frame_id: "a".into(),
        },
        name: vec!["j".into(), "kk".into()],
        position: vec![1.0, -2.5],
        velocity: vec![],
        effort: vec![0.5],
    };
    #[rustfmt::skip]
    let body: &[u8] = &[
        0x01, 0, 0, 0,                  //  0 stamp.sec = 1
        0x02, 0, 0, 0,                  //  4 stamp.nanosec = 2
        0x02, 0, 0, 0, b'a', 0,         //  8 frame_id: length 2 ("a" + NUL)
        0, 0,                           // 14 pad to 16 for the u32 count
        0x02, 0, 0, 0,                  // 16 name: 2 strings
        0x02, 0, 0, 0, b'j', 0,         // 20 "j"
        0, 0,                           // 26 pad to 28
        0x03, 0, 0, 0, b'k', b'k', 0,   // 28 "kk"
        0,                              // 35 pad to 36
        0x02, 0, 0, 0,                  // 36 position: 2 doubles, first at 40 (aligned)
        0, 0, 0, 0, 0, 0, 0xF0, 0x3F,   // 40 1.0  = 0x3FF0000000000000
        0, 0, 0, 0, 0, 0, 0x04, 0xC0,   // 48 -2.5 = 0xC004000000000000
        0, 0, 0, 0,                     // 56 velocity: empty
        0x01, 0, 0, 0,                  // 60 effort: 1 double at 64
        0, 0, 0, 0, 0, 0, 0xE0, 0x3F,   // 64 0.5  = 0x3FE0000000000000
    ];
    let bytes = msg.to_cdr().unwrap();
    assert_eq!(bytes, with_header(body));
    assert_eq!(JointState::from_cdr(&bytes).unwrap(), msg);
}

#[test]
fn double_after_odd_string_is_padded_to_eight() {
    let msg = JointState {
        header: Header {
            stamp: Time::default(),
            frame_id: "abcd".into(),
        },
        name: vec![],
        position: vec![0.25],
        velocity: vec![],
        effort: vec![],
    };
    #[rustfmt::skip]
    let body: &[u8] = &[
        0, 0, 0, 0, 0, 0, 0, 0,                 //  0 stamp
        0x05, 0, 0, 0, b'a', b'b', b'c', b'd', 0, //  8 frame_id, ends at 17
        0, 0, 0,                                // 17 pad to 20
        0, 0, 0, 0,                             // 20 name: empty
        0x01, 0, 0, 0,                          // 24 position: 1 double
        0, 0, 0, 0,                             // 28 pad to 32 (8-byte alignment)
        0, 0, 0, 0, 0, 0, 0xD0, 0x3F,           // 32 0.25 = 0x3FD0000000000000
        0, 0, 0, 0,                             // 40 velocity: empty
        0, 0, 0, 0,                             // 44 effort: empty
    ];
    let bytes = msg.to_cdr().unwrap();
    assert_eq!(bytes, with_header(body));
    assert_eq!(JointState::from_cdr(&bytes).unwrap(), msg);
}

#[test]
fn image_encodes_to_hand_worked_bytes() {
    let msg = Image::rgb8(
        Header {
            stamp: Time { sec: 5, nanosec: 7 },
            frame_id: "cam".into(),
        },
        2,
        1,
        vec![1, 2, 3, 4, 5, 6],
    )
    .unwrap();
    #[rustfmt::skip]
    let body: &[u8] = &[
        0x05, 0, 0, 0,                          //  0 stamp.sec
        0x07, 0, 0, 0,                          //  4 stamp.nanosec
        0x04, 0, 0, 0, b'c', b'a', b'm', 0,     //  8 frame_id "cam"
        0x01, 0, 0, 0,                          // 16 height
        0x02, 0, 0, 0,                          // 20 width
        0x05, 0, 0, 0, b'r', b'g', b'b', b'8', 0, // 24 encoding "rgb8", ends at 33
        0x00,                                   // 33 is_bigendian
        0, 0,                                   // 34 pad to 36
        0x06, 0, 0, 0,                          // 36 step = 2 * 3
        0x06, 0, 0, 0,                          // 40 data: 6 bytes
        1, 2, 3, 4, 5, 6,                       // 44 pixels
    ];
    let bytes = msg.to_cdr().unwrap();
    assert_eq!(bytes, with_header(body));
    assert_eq!(Image::from_cdr(&bytes).unwrap(), msg);
}

#[test]
fn big_endian_payloads_decode() {
    let bytes = [0x00, 0x00, 0x00, 0x00, 0, 0, 0, 3, b'h', b'i', 0];
    assert_eq!(StringMsg::from_cdr(&bytes).unwrap().data, "hi");
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    let good = StringMsg { data: "hello".into() }.to_cdr().unwrap();
    assert!(
        StringMsg::from_cdr(&[])
            .unwrap_err()
            .to_string()
            .contains("shorter")
    );
    let mut wrong_id = good.clone();
    wrong_id[1] = 0x07;
    assert!(
        StringMsg::from_cdr(&wrong_id)
            .unwrap_err()
            .to_string()
            .contains("representation")
    );
    for cut in 4..good.len() {
        assert!(StringMsg::from_cdr(&good[..cut]).is_err(), "truncated at {cut}");
    }
    // Sequence counts far beyond the payload: an error, and no huge allocation.
    let mut huge = JointState::default().to_cdr().unwrap();
    // Header 4 + stamp 8 + frame_id (4 + NUL, padded to 16) = the name count at 20.
    huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(JointState::from_cdr(&huge).is_err());
    let mut image = Image::rgb8(Header::default(), 1, 1, vec![9, 9, 9])
        .unwrap()
        .to_cdr()
        .unwrap();
    let count_at = image.len() - 3 - 4;
    image[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Image::from_cdr(&image).is_err());
}

#[test]
fn type_names_follow_ros2() {
    assert_eq!(JointState::TYPE_NAME, "sensor_msgs/msg/JointState");
    assert_eq!(JointState::dds_type_name(), "sensor_msgs::msg::dds_::JointState_");
}

#[test]
fn joint_state_positions_are_found_by_name() {
    let q = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    let mut msg = JointState::from_positions(Time::now(), &q);
    msg.name.reverse();
    msg.position.reverse();
    assert_eq!(msg.positions().unwrap(), q);
    msg.name.pop();
    assert!(msg.positions().is_err());
}

#[test]
fn effort_is_found_by_name_and_missing_when_not_a_number_or_not_one_per_joint() {
    use sponge_robot::joint::Joint;
    let mut msg = JointState::from_positions(Time::now(), &[0.0; 6]);
    assert_eq!(msg.effort_of(Joint::Gripper), None, "no efforts at all");
    msg.name.reverse();
    msg.effort = vec![0.25, 0.1, f64::NAN, 0.0, 0.0, 0.0];
    assert_eq!(msg.effort_of(Joint::Gripper), Some(0.25));
    assert_eq!(msg.effort_of(Joint::WristRoll), Some(0.1));
    assert_eq!(msg.effort_of(Joint::WristFlex), None, "NaN: not measured");
    msg.effort.pop();
    assert_eq!(msg.effort_of(Joint::Gripper), None, "five efforts for six names");
}
