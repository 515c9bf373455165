"""A dataset in LeRobot's v3.0 layout, written here with pyarrow, pandas
and ffmpeg the way LeRobot writes it (variable-length float lists, nested
image statistics, a pandas-indexed tasks file, episodes concatenated in one
AV1 video), must validate in sponge and read back field for field.

Usage: python lerobot_written.py SPONGE_BINARY WORK_DIR
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(("ok    " if condition else "FAIL  ") + name + (f": {detail}" if detail else ""))


FPS, W, H = 30, 80, 64
LENGTHS = [7, 11]
TASKS = ["Pick up the cube", "wipe the spill"]
NAMES = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]


def frame_image(episode, frame):
    # Flat colour per frame: easy to check after lossy coding.
    value = 40 + 30 * episode + 10 * frame
    return np.full((H, W, 3), value, dtype=np.uint8)


def build(root):
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "data/chunk-000").mkdir(parents=True)
    video_dir = root / "videos/observation.images.laptop/chunk-000"
    video_dir.mkdir(parents=True)

    rows = {k: [] for k in ["action", "observation.state", "timestamp", "frame_index", "episode_index", "index", "task_index"]}
    raw = bytearray()
    index = 0
    for e, length in enumerate(LENGTHS):
        for f in range(length):
            rows["action"].append([float(e * 100 + f + j + 0.5) for j in range(6)])
            rows["observation.state"].append([float(e * 100 + f + j) for j in range(6)])
            rows["timestamp"].append(f / FPS)
            rows["frame_index"].append(f)
            rows["episode_index"].append(e)
            rows["index"].append(index)
            rows["task_index"].append(e)
            raw += frame_image(e, f).tobytes()
            index += 1
    # LeRobot through HF datasets: float32 lists (here variable-length), int64 scalars.
    table = pa.table({
        "action": pa.array(rows["action"], type=pa.list_(pa.float32())),
        "observation.state": pa.array(rows["observation.state"], type=pa.list_(pa.float32())),
        "timestamp": pa.array(rows["timestamp"], type=pa.float32()),
        "frame_index": pa.array(rows["frame_index"], type=pa.int64()),
        "episode_index": pa.array(rows["episode_index"], type=pa.int64()),
        "index": pa.array(rows["index"], type=pa.int64()),
        "task_index": pa.array(rows["task_index"], type=pa.int64()),
    })
    pq.write_table(table, root / "data/chunk-000/file-000.parquet")

    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                    "-r", str(FPS), "-i", "-", "-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30",
                    str(video_dir / "file-000.mp4")], input=bytes(raw), check=True)

    tasks = pd.DataFrame({"task_index": list(range(len(TASKS)))}, index=pd.Index(TASKS, name="task"))
    tasks.to_parquet(root / "meta/tasks.parquet")

    starts = np.cumsum([0] + LENGTHS[:-1]).tolist()
    image_stat = [[[0.5]], [[0.5]], [[0.5]]]
    episodes = pd.DataFrame({
        "episode_index": list(range(len(LENGTHS))),
        "tasks": [[t] for t in TASKS],
        "length": LENGTHS,
        "data/chunk_index": [0, 0],
        "data/file_index": [0, 0],
        "dataset_from_index": starts,
        "dataset_to_index": [s + n for s, n in zip(starts, LENGTHS)],
        "videos/observation.images.laptop/chunk_index": [0, 0],
        "videos/observation.images.laptop/file_index": [0, 0],
        "videos/observation.images.laptop/from_timestamp": [s / FPS for s in starts],
        "videos/observation.images.laptop/to_timestamp": [(s + n) / FPS for s, n in zip(starts, LENGTHS)],
        "meta/episodes/chunk_index": [0, 0],
        "meta/episodes/file_index": [0, 0],
        "stats/action/mean": [[1.0] * 6, [2.0] * 6],
        "stats/observation.images.laptop/mean": [image_stat, image_stat],
    })
    episodes.to_parquet(root / "meta/episodes/chunk-000/file-000.parquet")

    vector = {"dtype": "float32", "shape": [6], "names": NAMES}
    scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": "v3.0", "robot_type": "so100_follower", "fps": FPS,
        "total_episodes": len(LENGTHS), "total_frames": sum(LENGTHS), "total_tasks": len(TASKS),
        "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "splits": {"train": f"0:{len(LENGTHS)}"},
        "features": {
            "action": vector, "observation.state": vector,
            "observation.images.laptop": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"],
                                          "info": {"video.height": H, "video.width": W, "video.codec": "av1",
                                                   "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                                   "video.fps": FPS, "video.channels": 3, "has_audio": False}},
            "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
            "index": scalar("int64"), "task_index": scalar("int64"),
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    stat = lambda n: {"min": [0.0] * n, "max": [1.0] * n, "mean": [0.5] * n, "std": [0.1] * n, "count": [sum(LENGTHS)],
                      "q01": [0.0] * n, "q10": [0.1] * n, "q50": [0.5] * n, "q90": [0.9] * n, "q99": [1.0] * n}
    stats = {name: stat(6) for name in ["action", "observation.state"]}
    stats.update({name: stat(1) for name in ["timestamp", "frame_index", "episode_index", "index", "task_index"]})
    stats["observation.images.laptop"] = {k: ([[[v]] for v in vals] if k != "count" else vals)
                                          for k, vals in stat(3).items()}
    (root / "meta/stats.json").write_text(json.dumps(stats, indent=4))


def environment(episode, frame):
    return [float(episode * 10 + frame) + 0.25, -float(frame)]


def build_v21(root):
    """LeRobot v2.1: one parquet and one mp4 per episode, jsonl metadata."""
    (root / "meta").mkdir(parents=True)
    (root / "data/chunk-000").mkdir(parents=True)
    video_dir = root / "videos/chunk-000/observation.images.laptop"
    video_dir.mkdir(parents=True)
    index = 0
    for e, length in enumerate(LENGTHS):
        frames = range(length)
        table = pa.table({
            "action": pa.array([[float(e * 100 + f + j + 0.5) for j in range(6)] for f in frames], type=pa.list_(pa.float32())),
            "observation.state": pa.array([[float(e * 100 + f + j) for j in range(6)] for f in frames], type=pa.list_(pa.float32())),
            "timestamp": pa.array([f / FPS for f in frames], type=pa.float32()),
            "frame_index": pa.array(list(frames), type=pa.int64()),
            "episode_index": pa.array([e] * length, type=pa.int64()),
            "index": pa.array(list(range(index, index + length)), type=pa.int64()),
            "task_index": pa.array([e] * length, type=pa.int64()),
            # As in LeRobot's simulation datasets (PushT, ALOHA): a state of the scene.
            "observation.environment_state": pa.array([environment(e, f) for f in frames], type=pa.list_(pa.float32())),
            # A feature sponge's datasets do not record: named in a warning.
            "observation.velocity": pa.array([[0.0] * 6 for _ in frames], type=pa.list_(pa.float32())),
        })
        index += length
        pq.write_table(table, root / f"data/chunk-000/episode_{e:06d}.parquet")
        raw = b"".join(frame_image(e, f).tobytes() for f in frames)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                        "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "2", "-bf", "0",
                        str(video_dir / f"episode_{e:06d}.mp4")], input=raw, check=True)
    with open(root / "meta/episodes.jsonl", "w") as f:
        for e, length in enumerate(LENGTHS):
            f.write(json.dumps({"episode_index": e, "tasks": [TASKS[e]], "length": length}) + "\n")
    with open(root / "meta/tasks.jsonl", "w") as f:
        for i, task in enumerate(TASKS):
            f.write(json.dumps({"task_index": i, "task": task}) + "\n")
    motors = {"dtype": "float32", "shape": [6], "names": {"motors": NAMES}}
    scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": "v2.1", "robot_type": "so100", "fps": FPS, "total_episodes": len(LENGTHS),
        "total_frames": sum(LENGTHS), "total_tasks": len(TASKS), "total_videos": len(LENGTHS), "total_chunks": 1,
        "chunks_size": 1000, "splits": {"train": f"0:{len(LENGTHS)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "action": motors, "observation.state": motors,
            "observation.environment_state": {"dtype": "float32", "shape": [2], "names": None},
            "observation.velocity": motors,
            "observation.images.laptop": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"],
                                          "info": {"video.fps": FPS, "video.codec": "h264"}},
            "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
            "index": scalar("int64"), "task_index": scalar("int64"),
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def check_episodes(sponge, root, label):
    for e, length in enumerate(LENGTHS):
        shown = subprocess.run([sponge, "dataset", "show", str(root), "--episode", str(e), "--json"],
                               capture_output=True, text=True)
        check(f"{label}: episode {e} reads", shown.returncode == 0, shown.stderr)
        if shown.returncode != 0:
            continue
        got = json.loads(shown.stdout)
        check(f"{label}: episode {e} task", got["task"] == TASKS[e] and got["task_index"] == e, got["task"])
        check(f"{label}: episode {e} state", got["observation.state"] == [[float(e * 100 + f + j) for j in range(6)] for f in range(length)])
        check(f"{label}: episode {e} action", got["action"] == [[e * 100 + f + j + 0.5 for j in range(6)] for f in range(length)])
        check(f"{label}: episode {e} timestamps", all(abs(t - f / FPS) < 1e-6 for f, t in enumerate(got["timestamp"])))
        means = got["image_means"].get("observation.images.laptop", [])
        expected = [float(frame_image(e, f).mean()) for f in range(length)]
        check(f"{label}: episode {e} video frames decoded in step", len(means) == length and
              all(abs(m - x) < 3.0 for m, x in zip(means, expected)), f"{[round(m) for m in means]} vs {expected}")


def main(sponge, work):
    root = pathlib.Path(work) / "lerobot-written"
    build(root)
    validate = subprocess.run([sponge, "dataset", "validate", str(root)], capture_output=True, text=True)
    check("sponge validates the LeRobot-layout dataset", validate.returncode == 0, validate.stdout + validate.stderr)
    info = subprocess.run([sponge, "dataset", "info", str(root)], capture_output=True, text=True)
    check("sponge dataset info reads it", info.returncode == 0 and "episodes     2" in info.stdout, info.stdout + info.stderr)
    check_episodes(sponge, root, "v3.0 by LeRobot's rules")

    old = pathlib.Path(work) / "lerobot-v21"
    build_v21(old)
    new = pathlib.Path(work) / "converted-v30"
    converted = subprocess.run([sponge, "dataset", "convert", str(old), "--out", str(new)], capture_output=True, text=True)
    check("sponge converts v2.1 to v3.0", converted.returncode == 0, converted.stdout + converted.stderr)
    check("the conversion names the feature it does not carry",
          "not carried over" in converted.stderr and "observation.velocity" in converted.stderr
          and "environment_state" not in converted.stderr, converted.stderr)
    validate = subprocess.run([sponge, "dataset", "validate", str(new)], capture_output=True, text=True)
    check("the converted dataset validates", validate.returncode == 0, validate.stdout + validate.stderr)
    check_episodes(sponge, new, "converted from v2.1")
    for e, length in enumerate(LENGTHS):
        shown = subprocess.run([sponge, "dataset", "show", str(new), "--episode", str(e), "--json"],
                               capture_output=True, text=True)
        got = json.loads(shown.stdout) if shown.returncode == 0 else {}
        check(f"converted from v2.1: episode {e} environment state carried over",
              got.get("observation.environment_state") == [environment(e, f) for f in range(length)],
              str(got.get("observation.environment_state"))[:200])
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
