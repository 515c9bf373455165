"""A ROS 2 DDS participant in its own process (Eclipse Cyclone DDS from
PyPI; no ROS install and none of sponge's code) checks sponge's ROS 2
bridge as a ROS 2 tool would see it:

* sensor_msgs/JointState on /so100/joint_states: the six joint names, and
  the same values, stamp for stamp, as Zenoh carries on so100/joint_states;
* std_msgs/String on /so100/robot_description (transient local, as
  robot_state_publisher serves it): the SO-100's URDF;
* a sensor_msgs/JointState it publishes on /so100/joint_command arrives on
  Zenoh at so100/joint_command.

Usage: ros2_subscriber.py ENDPOINT   (the launch's Zenoh router)
Run it where DDS can discover by multicast (tests/python/run puts it in a
network namespace whose loopback has multicast on).
"""

import sys
import threading
import time

import zenoh
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from ros_types import zenoh_client_config, JOINTS, Checks, Header, JointState, String, Time

check = Checks()


def cdr_joint_state(payload):
    """Decodes the CDR of a JointState from Zenoh (little-endian, as ROS 2 writes it)."""
    return JointState.deserialize(payload)


def main():
    endpoint = sys.argv[1]
    config = zenoh_client_config(endpoint)
    by_stamp = {}
    commands_seen = []
    lock = threading.Lock()

    def on_state(sample):
        m = cdr_joint_state(sample.payload.to_bytes())
        with lock:
            by_stamp[(m.header.stamp.sec, m.header.stamp.nanosec)] = m

    def on_command(sample):
        m = cdr_joint_state(sample.payload.to_bytes())
        with lock:
            commands_seen.append(m)

    reliable = Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.Durability.Volatile,
                   Policy.History.KeepLast(10))
    latched = Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.Durability.TransientLocal,
                  Policy.History.KeepLast(1))
    dp = DomainParticipant(0)
    states_reader = DataReader(dp, Topic(dp, "rt/so100/joint_states", JointState), qos=reliable)
    description_reader = DataReader(dp, Topic(dp, "rt/so100/robot_description", String), qos=latched)
    command_writer = DataWriter(dp, Topic(dp, "rt/so100/joint_command", JointState), qos=reliable)

    with zenoh.open(config) as session:
        session.declare_subscriber("so100/joint_states", on_state)
        session.declare_subscriber("so100/joint_command", on_command)
        dds_states, description = [], None
        command = JointState(Header(Time(int(time.time()), 5), "from_ros"), JOINTS,
                             [0.1, -0.2, 0.3, -0.4, 0.5, 0.05], [], [])
        deadline = time.time() + 40
        while time.time() < deadline:
            dds_states += list(states_reader.take(N=100))
            if description is None:
                got = description_reader.take(N=1)
                if got:
                    description = got[0]
            command_writer.write(command)
            with lock:
                from_ros = [c for c in commands_seen if c.header.frame_id == "from_ros"]
            if len(dds_states) >= 60 and description is not None and from_ros:
                break
            time.sleep(0.05)
        time.sleep(0.3)

    with lock:
        check(len(dds_states) >= 60, f"received {len(dds_states)} JointState samples over DDS")
        check(description is not None and "<robot" in description.data and "shoulder_pan" in description.data,
              "robot_description holds the URDF"
              + (f" ({len(description.data)} characters)" if description is not None else " (none came)"))
        if not dds_states:
            return
        check(all(list(s.name) == JOINTS for s in dds_states), "every JointState names the six joints in order")
        matched = [s for s in dds_states if (s.header.stamp.sec, s.header.stamp.nanosec) in by_stamp]
        check(len(matched) >= 0.9 * len(dds_states),
              f"{len(matched)} of {len(dds_states)} DDS samples match a Zenoh sample by stamp")
        same = all(list(s.position) == list(by_stamp[(s.header.stamp.sec, s.header.stamp.nanosec)].position)
                   for s in matched)
        check(same and matched, "their positions are the same values, bit for bit")
        first, last = dds_states[0].position, dds_states[-1].position
        check(max(abs(a - b) for a, b in zip(first, last)) > 1e-3, "the arm moves")
        from_ros = [c for c in commands_seen if c.header.frame_id == "from_ros"]
        check(bool(from_ros) and list(from_ros[0].position) == list(command.position),
              f"a joint_command published over DDS arrived on Zenoh ({len(from_ros)} times)")


main()
sys.exit(check.finish())
