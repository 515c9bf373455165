"""An independent Zenoh client (eclipse-zenoh, pycdr2; none of sponge's code)
joins a running `sponge launch` and decodes what the twin publishes:
sensor_msgs/JointState on so100/joint_states and sensor_msgs/Image on
so100/camera/front/image_raw, both as CDR, as a ROS 2 tool would see them.

Usage: zenoh_client.py ENDPOINT   (the launch's router, e.g. tcp/127.0.0.1:7447)
"""

import json
import math
import sys
import threading
import time
from dataclasses import dataclass

import zenoh
from pycdr2 import IdlStruct
from pycdr2.types import float64, int32, sequence, uint8, uint32


@dataclass
class Time(IdlStruct, typename="builtin_interfaces/msg/Time"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs/msg/Header"):
    stamp: Time
    frame_id: str


@dataclass
class JointState(IdlStruct, typename="sensor_msgs/msg/JointState"):
    header: Header
    name: sequence[str]
    position: sequence[float64]
    velocity: sequence[float64]
    effort: sequence[float64]


@dataclass
class Image(IdlStruct, typename="sensor_msgs/msg/Image"):
    header: Header
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")


def main():
    endpoint = sys.argv[1]
    config = zenoh.Config()
    config.insert_json5("mode", json.dumps("client"))
    config.insert_json5("connect/endpoints", json.dumps([endpoint]))
    config.insert_json5("scouting/multicast/enabled", "false")
    states, images = [], []
    lock = threading.Lock()

    def on_state(sample):
        with lock:
            states.append(JointState.deserialize(sample.payload.to_bytes()))

    def on_image(sample):
        with lock:
            images.append(Image.deserialize(sample.payload.to_bytes()))

    with zenoh.open(config) as session:
        session.declare_subscriber("so100/joint_states", on_state)
        session.declare_subscriber("so100/camera/front/image_raw", on_image)
        deadline = time.time() + 30
        while time.time() < deadline:
            with lock:
                if len(states) >= 60 and len(images) >= 10:
                    break
            time.sleep(0.1)

    with lock:
        check(len(states) >= 60, f"received {len(states)} JointState messages")
        check(len(images) >= 10, f"received {len(images)} Image messages")
        if not states or not images:
            return
        s = states[-1]
        check(list(s.name) == JOINTS, f"joint names {list(s.name)}")
        check(len(s.position) == 6 and all(math.isfinite(p) and abs(p) < math.pi for p in s.position),
              f"positions (rad) {[round(p, 3) for p in s.position]}")
        check(s.header.stamp.sec > 1_600_000_000, f"stamp {s.header.stamp.sec}.{s.header.stamp.nanosec:09d}")
        first, last = states[0].position, states[-1].position
        check(max(abs(a - b) for a, b in zip(first, last)) > 1e-3, "the arm moves between the first and last state")
        im = images[-1]
        check((im.width, im.height, im.encoding) == (96, 96, "rgb8"), f"image {im.width}x{im.height} {im.encoding}")
        check(im.step == 3 * im.width and len(im.data) == im.step * im.height,
              f"image step {im.step}, {len(im.data)} bytes")
        check(len(set(bytes(im.data))) > 16, f"image has {len(set(bytes(im.data)))} distinct byte values (a rendered scene)")


main()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
