//! Two nodes in separate Zenoh sessions on loopback (no scouting, explicit
//! endpoints): typed messages arrive intact under the design's keys, and a
//! payload that is not the expected CDR is an error that names the key.

use std::time::Duration;

use sponge_launch::{Error, Node, SessionConfig, topics};
use sponge_robot::msg::{Header, Image, JointState, RosMessage, Time};

fn pair() -> (Node, Node) {
    sponge_launch::bench::loopback_pair().expect("two nodes on loopback")
}

/// Publishes until the subscriber has something (discovery takes a moment).
fn deliver<T: RosMessage + Clone>(
    publisher: &sponge_launch::Publisher<T>,
    subscriber: &sponge_launch::Subscriber<T>,
    message: &T,
) -> T {
    for _ in 0..100 {
        publisher.put(message).expect("put");
        if let Some(got) = subscriber.recv_timeout(Duration::from_millis(50)).expect("recv") {
            return got;
        }
    }
    panic!("nothing arrived on {}", subscriber.key());
}

#[test]
fn joint_states_and_images_cross_sessions_intact() {
    let (a, b) = pair();
    let publisher = a
        .publisher::<JointState>(topics::JOINT_STATES)
        .expect("publisher");
    let subscriber = b.subscriber::<JointState>("/joint_states").expect("subscriber");
    assert_eq!(publisher.key(), "so100/joint_states");
    assert_eq!(subscriber.key(), "so100/joint_states");
    let q = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6];
    let sent = JointState::from_positions(Time::now(), &q);
    let got = deliver(&publisher, &subscriber, &sent);
    assert_eq!(got.name, sent.name);
    assert_eq!(got.positions().expect("six joints"), q);

    let topic = topics::camera_image("front");
    let images = a.publisher::<Image>(&topic).expect("publisher");
    let received = b.subscriber::<Image>(&topic).expect("subscriber");
    let pixels: Vec<u8> = (0..640 * 480 * 3).map(|i| (i % 251) as u8).collect();
    let frame = Image::rgb8(Header::default(), 640, 480, pixels.clone()).expect("image");
    let got = deliver(&images, &received, &frame);
    assert_eq!((got.width, got.height, got.encoding.as_str()), (640, 480, "rgb8"));
    assert!(got.data == pixels, "image bytes changed on the way");
}

#[test]
fn a_payload_that_is_not_the_type_is_an_error_naming_the_key() {
    let (a, b) = pair();
    let subscriber = b
        .subscriber::<JointState>(topics::JOINT_COMMAND)
        .expect("subscriber");
    use sponge_launch::zenoh::Wait;
    let raw = a
        .session()
        .declare_publisher("so100/joint_command")
        .wait()
        .expect("raw publisher");
    let mut error = None;
    for _ in 0..100 {
        raw.put(vec![1u8, 2, 3]).wait().expect("put");
        match subscriber.recv_timeout(Duration::from_millis(50)) {
            Ok(None) => continue,
            Ok(Some(m)) => panic!("garbage decoded as {m:?}"),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    match error {
        Some(Error::Decode { key, type_name, .. }) => {
            assert_eq!(key, "so100/joint_command");
            assert_eq!(type_name, JointState::TYPE_NAME);
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn bad_topics_and_endpoints_are_refused() {
    let (a, _b) = pair();
    assert!(matches!(
        a.publisher::<JointState>("joint states"),
        Err(Error::BadTopic(_))
    ));
    assert!(matches!(
        a.subscriber::<JointState>("a//b"),
        Err(Error::BadTopic(_))
    ));
    let bad = Node::open(&SessionConfig {
        connect: vec!["no-transport-here".into()],
        multicast_scouting: false,
        ..SessionConfig::default()
    });
    assert!(bad.is_err(), "an endpoint without a transport should be refused");
}
