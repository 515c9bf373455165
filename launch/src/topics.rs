//! Topic names, relative to the robot namespace (the ROS 2 topic without
//! its leading `/`, as the standard Zenoh–ROS 2 bridge maps them).

/// `sensor_msgs/JointState` (rad, rad/s): follower or twin → all.
pub const JOINT_STATES: &str = "joint_states";
/// `sensor_msgs/JointState` (positions): teleop or policy → follower or twin.
pub const JOINT_COMMAND: &str = "joint_command";
/// `trajectory_msgs/JointTrajectory`: policy → executor.
pub const ACTION_CHUNK: &str = "action_chunk";
/// `sensor_msgs/JointState`: leader arm → teleop.
pub const LEADER_JOINT_STATES: &str = "leader/joint_states";
/// `std_msgs/String`: user → policy, recorder.
pub const TASK: &str = "task";
/// `std_msgs/String`: anomaly monitor → executor, people ("ok …", "alarm: …"); people → monitor and executor ("resume").
pub const STATUS: &str = "status";

/// `sensor_msgs/Image` (rgb8) of camera `name`: camera or twin → policy, recorder.
pub fn camera_image(name: &str) -> String {
    format!("camera/{name}/image_raw")
}
