"""An independent Zenoh client (eclipse-zenoh, and Cyclone DDS's IDL
for CDR; none of sponge's code)
joins a running `sponge launch` and decodes what the twin publishes:
sensor_msgs/JointState on so100/joint_states and sensor_msgs/Image on
so100/camera/front/image_raw, both as CDR, as a ROS 2 tool would see them.

Usage: zenoh_client.py ENDPOINT   (the launch's router, e.g. tcp/127.0.0.1:7447)
"""

import math
import sys
import threading
import time

import zenoh
from ros_types import zenoh_client_config, JOINTS, Checks, Image, JointState

check = Checks()


def main():
    endpoint = sys.argv[1]
    config = zenoh_client_config(endpoint)
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
sys.exit(check.finish())
