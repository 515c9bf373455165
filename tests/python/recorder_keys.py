"""The recorder's keys, typed on a real terminal (a pseudo-terminal) as a
person would: → ends an episode early and skips the reset, ← throws an
episode away and records it again, Esc saves and stops.

Usage: recorder_keys.py SPONGE WORKDIR
"""

import json
import os
import pty
import select
import subprocess
import sys
import time

from ros_types import Checks

check = Checks()
RIGHT, LEFT, ESC = b"\x1b[C", b"\x1b[D", b"\x1b"


def main():
    sponge, work = sys.argv[1], sys.argv[2]
    out = os.path.join(work, "keys-dataset")
    launch = os.path.join(work, "keys.toml")
    with open(launch, "w") as f:
        f.write(f"""# The twin and a recorder driven from the keyboard.
[session]
multicast_scouting = false

[[node]]
name = "twin"
kind = "twin"
params = {{ camera = true, camera_size = 64 }}

[[node]]
name = "recorder"
kind = "recorder"
params = {{ out = "{out}", episodes = 2, episode_s = 60.0, reset_s = 60.0, cameras = ["front"] }}
""")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sponge, "launch", launch], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    os.close(slave)
    lines = []
    buffered = b""

    def wait_for(text, timeout=60):
        nonlocal buffered
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                line = line.decode(errors="replace")
                lines.append(line)
                if text in line:
                    return line
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffered += chunk
        raise SystemExit(f"no line with {text!r}; output:\n" + "\n".join(lines))

    try:
        wait_for("episode 1 of 2")
        time.sleep(1.0)
        os.write(master, RIGHT)                      # end episode 1 after about a second
        saved = wait_for("saved episode 0")
        wait_for("reset the scene")
        os.write(master, RIGHT)                      # skip the 60 s reset
        wait_for("episode 2 of 2")
        time.sleep(0.5)
        os.write(master, LEFT)                       # throw episode 2 away
        wait_for("recording it again")
        wait_for("episode 2 of 2")
        time.sleep(0.7)
        os.write(master, ESC)                        # save episode 2 and stop
        wait_for("saved episode 1")
        wait_for("recorder ended (exit code 0)")
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.close(master)

    frames = int(saved.split("(")[1].split(" ")[0])
    check(15 <= frames <= 60, f"→ ended episode 0 after {frames} frames (about 1 s at 30 fps, not 60 s)")
    with open(os.path.join(out, "meta", "info.json")) as f:
        info = json.load(f)
    check(info["total_episodes"] == 2, f"{info['total_episodes']} episodes saved: the one redone with ← counts once")
    valid = subprocess.run([sponge, "dataset", "validate", out], capture_output=True, text=True)
    check(valid.returncode == 0, f"the dataset validates: {valid.stdout.strip() or valid.stderr.strip()}")
    check(proc.returncode == 0, f"sponge launch stopped cleanly on Ctrl-C (exit code {proc.returncode})")


main()
sys.exit(check.finish())
