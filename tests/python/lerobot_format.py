"""pyarrow and pandas (not our code) read datasets written by sponge, and
the files' column names and types are those of LeRobot's v3.0 format
(shared/reference/lerobot-dataset-v3.md).

Usage: python lerobot_format.py VIDEO_DATASET PNG_DATASET
"""

import json
import pathlib
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(("ok    " if condition else "FAIL  ") + name + (f": {detail}" if detail else ""))


def is_float_vector(t, n):
    return (pa.types.is_fixed_size_list(t) and t.list_size == n and pa.types.is_float32(t.value_type)) or (
        pa.types.is_list(t) and pa.types.is_float32(t.value_type)
    )


def check_dataset(root, camera_dtype):
    root = pathlib.Path(root)
    info = json.loads((root / "meta/info.json").read_text())
    for key in ["codebase_version", "robot_type", "fps", "total_episodes", "total_frames", "total_tasks",
                "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
                "splits", "features"]:
        check(f"{root.name}: info.json has {key}", key in info)
    check(f"{root.name}: codebase_version v3.0", info["codebase_version"] == "v3.0")
    check(f"{root.name}: splits", info["splits"] == {"train": f"0:{info['total_episodes']}"}, info["splits"])
    camera = info["features"]["observation.images.front"]
    check(f"{root.name}: camera dtype {camera_dtype}", camera["dtype"] == camera_dtype, camera["dtype"])
    check(f"{root.name}: camera names", camera["names"] == ["height", "width", "channels"])
    if camera_dtype == "video":
        for key in ["video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map",
                    "video.fps", "video.channels", "has_audio"]:
            check(f"{root.name}: video info has {key}", key in camera["info"])
    names = info["features"]["action"]["names"]
    check(f"{root.name}: joint names", names[0] == "shoulder_pan.pos" and names[5] == "gripper.pos", names)

    data_files = sorted((root / "data").glob("chunk-*/file-*.parquet"))
    check(f"{root.name}: data files", len(data_files) >= 1)
    table = pa.concat_tables([pq.read_table(f) for f in data_files])
    schema = table.schema
    check(f"{root.name}: rows = total_frames", table.num_rows == info["total_frames"], table.num_rows)
    check(f"{root.name}: action float32[6]", is_float_vector(schema.field("action").type, 6), schema.field("action").type)
    check(f"{root.name}: observation.state float32[6]", is_float_vector(schema.field("observation.state").type, 6))
    check(f"{root.name}: timestamp float32", pa.types.is_float32(schema.field("timestamp").type))
    for name in ["frame_index", "episode_index", "index", "task_index"]:
        check(f"{root.name}: {name} int64", pa.types.is_int64(schema.field(name).type), schema.field(name).type)
    check(f"{root.name}: next.reward float32", pa.types.is_float32(schema.field("next.reward").type))
    check(f"{root.name}: next.done bool", pa.types.is_boolean(schema.field("next.done").type))
    if camera_dtype == "image":
        t = schema.field("observation.images.front").type
        check(f"{root.name}: image struct<bytes, path>", pa.types.is_struct(t) and t.field("bytes").type == pa.binary(), t)
        png = table.column("observation.images.front")[0].as_py()["bytes"]
        check(f"{root.name}: image bytes are PNG", png[:8] == b"\x89PNG\r\n\x1a\n")
    else:
        check(f"{root.name}: no video column in the parquet", "observation.images.front" not in schema.names)
    frame = table.column("frame_index").to_pylist()
    ts = table.column("timestamp").to_pylist()
    check(f"{root.name}: timestamps = frame_index / fps",
          all(abs(t - f / info["fps"]) < 1e-4 for t, f in zip(ts, frame)))
    check(f"{root.name}: global index contiguous", table.column("index").to_pylist() == list(range(table.num_rows)))

    episodes = pa.concat_tables([pq.read_table(f) for f in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))])
    for name in ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                 "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"]:
        check(f"{root.name}: episodes {name} int64", pa.types.is_int64(episodes.schema.field(name).type))
    tasks_type = episodes.schema.field("tasks").type
    check(f"{root.name}: episodes tasks list<string>", pa.types.is_list(tasks_type) and pa.types.is_string(tasks_type.value_type))
    if camera_dtype == "video":
        for name in ["chunk_index", "file_index", "from_timestamp", "to_timestamp"]:
            check(f"{root.name}: episodes videos/.../{name}", f"videos/observation.images.front/{name}" in episodes.schema.names)
        # LeRobot finds a frame by its time and refuses one more than 0.1 ms off:
        # every episode's first frame must be shown at its from_timestamp (ffprobe's packet times).
        froms = episodes.column("videos/observation.images.front/from_timestamp").to_pylist()
        files = episodes.column("videos/observation.images.front/file_index").to_pylist()
        for file_index in sorted(set(files)):
            video = root / f"videos/observation.images.front/chunk-000/file-{file_index:03d}.mp4"
            probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                                    "-of", "csv=p=0", str(video)], capture_output=True, text=True)
            shown = sorted(float(line.strip().rstrip(",")) for line in probe.stdout.splitlines() if line.strip())
            starts = [f for f, i in zip(froms, files) if i == file_index]
            off = [(f, min(shown, key=lambda t: abs(t - f))) for f in starts]
            check(f"{root.name}: file {file_index}: every episode starts on a frame within 0.1 ms",
                  probe.returncode == 0 and all(abs(t - f) < 1e-4 for f, t in off),
                  str([(round(f, 6), round(t, 6)) for f, t in off if abs(t - f) >= 1e-4][:3]))
    check(f"{root.name}: episodes stats columns", "stats/action/mean" in episodes.schema.names)
    lengths = episodes.column("length").to_pylist()
    check(f"{root.name}: episode lengths sum to total_frames", sum(lengths) == info["total_frames"])

    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    check(f"{root.name}: tasks index is the task text", tasks.index.name == "task" and "task_index" in tasks.columns,
          f"index {tasks.index.name}, columns {list(tasks.columns)}")
    check(f"{root.name}: task indices", sorted(tasks["task_index"]) == list(range(info["total_tasks"])))

    stats = json.loads((root / "meta/stats.json").read_text())
    for feature in ["action", "observation.state", "observation.images.front", "timestamp"]:
        for stat in ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]:
            check(f"{root.name}: stats {feature} {stat}", stat in stats.get(feature, {}))
    shape = pd.Series(stats["observation.images.front"]["mean"]).apply(lambda v: (len(v), len(v[0])))
    check(f"{root.name}: image stats shape (3, 1, 1)", len(shape) == 3 and all(s == (1, 1) for s in shape))


if __name__ == "__main__":
    check_dataset(sys.argv[1], "video")
    check_dataset(sys.argv[2], "image")
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)
