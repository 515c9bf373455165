//! The ROS 2 bridge over DDS (ros2-client on RustDDS; no ROS install):
//! `joint_states`, camera images and the URDF (`robot_description`,
//! transient-local, as robot_state_publisher serves it) and the anomaly
//! monitor's `status` go out as ROS 2
//! topics; `joint_command` comes in. A Zenoh key `so100/x` is the ROS 2
//! topic `/so100/x`, as the standard Zenoh–ROS 2 bridge maps them, so
//! `ros2 topic echo /so100/joint_states` and RViz see the arm.
//!
//! Built for ROS 2 Jazzy by default; build with `--no-default-features
//! --features humble` for Humble. RustDDS discovers peers by multicast:
//! the machine needs a multicast-capable interface (on one machine with
//! only loopback, turn multicast on for `lo`).

use std::sync::atomic::AtomicBool;

use super::NodeError;
use crate::params::Params;
use crate::session::Node;

/// Runs the bridge until `stop`.
#[cfg(any(feature = "jazzy", feature = "humble"))]
pub fn run(node: &Node, params: &Params, stop: &AtomicBool) -> Result<String, NodeError> {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use ros2_client::context::ContextOptions;
    use ros2_client::qos::{Durability, History, WhenFull};
    use ros2_client::{Context, MessageTypeName, Name, NodeName, NodeOptions, QosProfile};
    use sponge_robot::msg::{Image, JointState, StringMsg};

    use crate::topics;

    let namespace = format!("/{}", node.namespace());
    let domain = params.int("domain_id") as u16;
    let context = Context::with_options(ContextOptions::new().domain_id(domain))
        .map_err(|e| format!("ROS 2 (DDS domain {domain}): {e}"))?;
    let mut ros = context
        .new_node(
            NodeName::new(&namespace, "sponge_bridge").map_err(|e| format!("ROS 2 node name: {e}"))?,
            NodeOptions::new().enable_rosout(false),
        )
        .map_err(|e| format!("ROS 2 node: {e}"))?;
    let sensor_qos = QosProfile::publisher_default()
        .reliability_reliable(WhenFull::DEFAULT)
        .durability(Durability::Volatile)
        .history(History::KeepLast { depth: 10 });
    let latched_qos = QosProfile::publisher_default()
        .reliability_reliable(WhenFull::DEFAULT)
        .durability(Durability::TransientLocal)
        .history(History::KeepLast { depth: 1 });
    // The ROS 2 topic of a key: `so100/camera/front/image_raw` is
    // `/so100/camera/front/image_raw` (namespace `/so100/camera/front`).
    let topic = |ros: &ros2_client::Node, topic: &str, package: &str, ty: &str, qos: &QosProfile| {
        let key = node.key(topic)?;
        let (ns, base) = key.rsplit_once('/').unwrap_or(("", key.as_str()));
        let name = Name::new(&format!("/{ns}"), base).map_err(|e| format!("ROS 2 topic /{key}: {e}"))?;
        ros.create_topic(&name, MessageTypeName::new(package, ty), qos)
            .map_err(|e| NodeError::from(format!("ROS 2 topic /{key}: {e}")))
    };

    // Out: joint states, cameras, the URDF.
    let states_topic = topic(
        &ros,
        topics::JOINT_STATES,
        "sensor_msgs",
        "JointState",
        &sensor_qos,
    )?;
    let states_out = ros
        .create_publisher::<JointState>(&states_topic, None)
        .map_err(|e| format!("ROS 2 publisher: {e}"))?;
    let states_in = node.subscriber::<JointState>(topics::JOINT_STATES)?;
    let mut cameras = Vec::new();
    for name in params.list("cameras") {
        let key = topics::camera_image(&name);
        let t = topic(&ros, &key, "sensor_msgs", "Image", &sensor_qos)?;
        let publisher = ros
            .create_publisher::<Image>(&t, None)
            .map_err(|e| format!("ROS 2 publisher: {e}"))?;
        cameras.push((node.subscriber::<Image>(&key)?, publisher));
    }
    let description_topic = topic(&ros, "robot_description", "std_msgs", "String", &latched_qos)?;
    let description = ros
        .create_publisher::<StringMsg>(&description_topic, Some(latched_qos))
        .map_err(|e| format!("ROS 2 publisher: {e}"))?;
    description
        .publish(StringMsg {
            data: sponge_robot::urdf::urdf(),
        })
        .map_err(|e| format!("publishing robot_description: {e:?}"))?;

    // The anomaly monitor's status.
    let status_topic = topic(&ros, topics::STATUS, "std_msgs", "String", &sensor_qos)?;
    let status_out = ros
        .create_publisher::<StringMsg>(&status_topic, None)
        .map_err(|e| format!("ROS 2 publisher: {e}"))?;
    let status_in = node.subscriber::<StringMsg>(topics::STATUS)?;

    // In: joint commands.
    let command_topic = topic(
        &ros,
        topics::JOINT_COMMAND,
        "sensor_msgs",
        "JointState",
        &sensor_qos,
    )?;
    let commands_in = ros
        .create_subscription::<JointState>(&command_topic, None)
        .map_err(|e| format!("ROS 2 subscription: {e}"))?;
    let commands_out = node.publisher::<JointState>(topics::JOINT_COMMAND)?;

    let (mut states, mut images, mut commands, mut failed) = (0u64, 0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        failed += states_in.drain(|state| {
            idle = false;
            match states_out.publish(state) {
                Ok(()) => states += 1,
                Err(_) => failed += 1,
            }
        })?;
        failed += status_in.drain(|message| {
            idle = false;
            if status_out.publish(message).is_err() {
                failed += 1;
            }
        })?;
        for (sub, publisher) in &cameras {
            failed += sub.drain(|image| {
                idle = false;
                match publisher.publish(image) {
                    Ok(()) => images += 1,
                    Err(_) => failed += 1,
                }
            })?;
        }
        loop {
            match commands_in.take() {
                Ok(Some((command, _info))) => {
                    idle = false;
                    commands_out.put(&command)?;
                    commands += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    failed += 1;
                    break;
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(format!(
        "to ROS 2: {states} joint states, {images} images; from ROS 2: {commands} commands; {failed} failed"
    ))
}

/// Without a ROS 2 distribution compiled in, the bridge cannot run.
#[cfg(not(any(feature = "jazzy", feature = "humble")))]
pub fn run(_node: &Node, _params: &Params, _stop: &AtomicBool) -> Result<String, NodeError> {
    Err("this sponge was built without ROS 2: build with the `jazzy` (default) or `humble` feature".into())
}
