//! The ROS 2 message types that `sponge` sends over Zenoh and DDS, as serde
//! structs whose fields are in the `.msg` files' order, so that their CDR
//! encoding is what ROS 2 sends.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::joint::{Joint, JointVector, NUM_JOINTS};
use crate::{Error, Result, cdr};

/// A ROS 2 message type.
pub trait RosMessage: Serialize + DeserializeOwned {
    /// The ROS 2 type name, e.g. `sensor_msgs/msg/JointState`.
    const TYPE_NAME: &'static str;

    /// The DDS type name, e.g. `sensor_msgs::msg::dds_::JointState_`.
    fn dds_type_name() -> String {
        let mut parts = Self::TYPE_NAME.split('/');
        let (Some(package), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Self::TYPE_NAME.to_owned();
        };
        format!("{package}::{kind}::dds_::{name}_")
    }

    /// Little-endian CDR with the encapsulation header.
    fn to_cdr(&self) -> Result<Vec<u8>> {
        cdr::encode(self)
    }

    /// Decodes CDR with the encapsulation header.
    fn from_cdr(bytes: &[u8]) -> Result<Self> {
        cdr::decode(bytes)
    }
}

/// `builtin_interfaces/msg/Time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub sec: i32,
    /// Nanoseconds within the second.
    pub nanosec: u32,
}

impl Time {
    /// The current wall-clock time.
    pub fn now() -> Time {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time::from_duration(since_epoch)
    }

    /// A time `since_epoch` after the epoch (seconds saturate at `i32::MAX`).
    pub fn from_duration(since_epoch: std::time::Duration) -> Time {
        Time {
            sec: i32::try_from(since_epoch.as_secs()).unwrap_or(i32::MAX),
            nanosec: since_epoch.subsec_nanos(),
        }
    }

    /// Seconds as a float.
    pub fn as_secs_f64(&self) -> f64 {
        f64::from(self.sec) + f64::from(self.nanosec) * 1e-9
    }
}

/// `builtin_interfaces/msg/Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Duration {
    /// Whole seconds.
    pub sec: i32,
    /// Nanoseconds within the second.
    pub nanosec: u32,
}

impl Duration {
    /// A duration of `seconds` (non-negative).
    pub fn from_secs_f64(seconds: f64) -> Duration {
        let whole = seconds.floor();
        Duration {
            sec: whole as i32,
            nanosec: ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32,
        }
    }

    /// Seconds as a float.
    pub fn as_secs_f64(&self) -> f64 {
        f64::from(self.sec) + f64::from(self.nanosec) * 1e-9
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Header {
    /// Acquisition time.
    pub stamp: Time,
    /// Frame the data is expressed in.
    pub frame_id: String,
}

/// `sensor_msgs/msg/JointState`: positions in rad, velocities in rad/s,
/// efforts in N·m.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JointState {
    /// Stamp and frame.
    pub header: Header,
    /// Joint names.
    pub name: Vec<String>,
    /// Positions, rad.
    pub position: Vec<f64>,
    /// Velocities, rad/s (may be empty).
    pub velocity: Vec<f64>,
    /// Efforts, N·m (may be empty).
    pub effort: Vec<f64>,
}

impl RosMessage for JointState {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/JointState";
}

impl JointState {
    /// The six SO-100 joints at `q_rad`, named, with no velocity or effort.
    pub fn from_positions(stamp: Time, q_rad: &JointVector) -> JointState {
        JointState {
            header: Header {
                stamp,
                frame_id: String::new(),
            },
            name: Joint::ALL.iter().map(|j| j.name().to_owned()).collect(),
            position: q_rad.to_vec(),
            velocity: Vec::new(),
            effort: Vec::new(),
        }
    }

    /// The six SO-100 joint positions, found by name in any order.
    pub fn positions(&self) -> Result<JointVector> {
        if self.name.len() != self.position.len() {
            return Err(Error::Cdr(format!(
                "JointState has {} names but {} positions",
                self.name.len(),
                self.position.len()
            )));
        }
        let mut q = [f64::NAN; NUM_JOINTS];
        for (name, position) in self.name.iter().zip(&self.position) {
            let joint: Joint = name.parse()?;
            q[joint.index()] = *position;
        }
        if let Some(missing) = Joint::ALL.iter().find(|j| q[j.index()].is_nan()) {
            return Err(Error::UnknownJoint(format!("{missing} missing from JointState")));
        }
        Ok(q)
    }

    /// The effort of `joint` (N·m), if the message has one per name and
    /// that one is a number (NaN: not measured).
    pub fn effort_of(&self, joint: Joint) -> Option<f64> {
        if self.effort.len() != self.name.len() {
            return None;
        }
        self.name
            .iter()
            .zip(&self.effort)
            .find(|(name, _)| name.parse::<Joint>().is_ok_and(|j| j == joint))
            .map(|(_, &e)| e)
            .filter(|e| e.is_finite())
    }
}

/// `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Image {
    /// Stamp and camera frame.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding, e.g. `rgb8`.
    pub encoding: String,
    /// 1 if multi-byte pixel values are big-endian.
    pub is_bigendian: u8,
    /// Bytes per row.
    pub step: u32,
    /// Pixels, row-major.
    #[serde(with = "cdr_bytes")]
    pub data: Vec<u8>,
}

impl RosMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
}

impl Image {
    /// An `rgb8` image of `width` × `height` from row-major RGB bytes.
    pub fn rgb8(header: Header, width: u32, height: u32, data: Vec<u8>) -> Result<Image> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(Error::Cdr(format!(
                "rgb8 image {width}x{height} needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Image {
            header,
            height,
            width,
            encoding: "rgb8".to_owned(),
            is_bigendian: 0,
            step: width * 3,
            data,
        })
    }
}

/// Serde for a CDR `sequence<uint8>`, written in one block.
///
/// cdr-encoding writes `serialize_bytes` as the bare bytes with no length,
/// while its reader expects a sequence, a u32 count first. So the writer
/// here emits the count and then the bare bytes (as a two-element tuple,
/// which CDR lays out with no framing), and the reader reads a sequence.
/// This is the CDR layout only: other serde formats are not meant for these
/// messages.
mod cdr_bytes {
    use serde::ser::SerializeTuple;
    use serde::{Deserialize, Deserializer, Serializer};

    struct Bare<'a>(&'a [u8]);

    impl serde::Serialize for Bare<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let count = u32::try_from(data.len())
            .map_err(|_| serde::ser::Error::custom("byte sequence longer than u32::MAX"))?;
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&count)?;
        tuple.serialize_element(&Bare(data))?;
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(deserializer)
    }
}

/// `trajectory_msgs/msg/JointTrajectoryPoint`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JointTrajectoryPoint {
    /// Positions, rad.
    pub positions: Vec<f64>,
    /// Velocities, rad/s (may be empty).
    pub velocities: Vec<f64>,
    /// Accelerations, rad/s² (may be empty).
    pub accelerations: Vec<f64>,
    /// Efforts, N·m (may be empty).
    pub effort: Vec<f64>,
    /// When to reach this point, from the trajectory's stamp.
    pub time_from_start: Duration,
}

/// `trajectory_msgs/msg/JointTrajectory`: an action chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JointTrajectory {
    /// Stamp (start time of the chunk) and frame.
    pub header: Header,
    /// Joint names, one per position column.
    pub joint_names: Vec<String>,
    /// The points.
    pub points: Vec<JointTrajectoryPoint>,
}

impl RosMessage for JointTrajectory {
    const TYPE_NAME: &'static str = "trajectory_msgs/msg/JointTrajectory";
}

/// `std_msgs/msg/String`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StringMsg {
    /// The text.
    pub data: String,
}

impl RosMessage for StringMsg {
    const TYPE_NAME: &'static str = "std_msgs/msg/String";
}
