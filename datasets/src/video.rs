//! Video through ffmpeg: encoding an episode's RGB frames, concatenating
//! episodes into one file per camera, copying an episode's segment out
//! without re-encoding, decoding a segment back to RGB, and probing frame
//! counts. LeRobot's defaults: AV1 (SVT-AV1), yuv420p, a
//! keyframe every 2 frames, CRF 30; H.264 (CRF 23, no B-frames) for large
//! frames recorded live, or when no AV1 encoder is there.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use crate::{Error, Result};

/// A video codec sponge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// AV1 through libsvtav1 (LeRobot's default).
    Av1,
    /// H.264 through libx264.
    H264,
}

impl Codec {
    /// The name info.json records (`video.codec`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Av1 => "av1",
            Codec::H264 => "h264",
        }
    }

    fn encoder(self) -> &'static str {
        match self {
            Codec::Av1 => "libsvtav1",
            Codec::H264 => "libx264",
        }
    }
}

fn video_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Video {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The codecs the installed ffmpeg can encode, found once.
fn encodable() -> &'static [Codec] {
    static FOUND: OnceLock<Vec<Codec>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let Ok(output) = Command::new("ffmpeg")
            .args(["-hide_banner", "-encoders"])
            .output()
        else {
            return Vec::new();
        };
        let encoders = String::from_utf8_lossy(&output.stdout);
        [Codec::Av1, Codec::H264]
            .into_iter()
            .filter(|c| encoders.contains(c.encoder()))
            .collect()
    })
}

/// Largest frame (in pixels) encoded as AV1 by default: SVT-AV1 encodes
/// about 29 frames/s of 640x480 on one core here, too slow to record two
/// such cameras live; H.264 does about 250.
pub const AV1_DEFAULT_MAX_PIXELS: u32 = 320 * 240;

/// Smallest width or height SVT-AV1 encodes.
pub const AV1_MIN_SIDE: u32 = 64;

/// The codec for cameras of at most `max_pixels` pixels and no side under
/// `min_side`: `wanted` if given, else AV1 (LeRobot's default) for
/// training-size frames and H.264 for larger (or tiny) ones, each only if
/// ffmpeg can encode it.
pub fn choose_codec(wanted: Option<Codec>, min_side: u32, max_pixels: u32) -> Result<Codec> {
    if wanted == Some(Codec::Av1) && min_side < AV1_MIN_SIDE {
        return Err(Error::Usage(format!(
            "AV1 (SVT-AV1) needs frames at least {AV1_MIN_SIDE} pixels wide and high; a camera has a {min_side}-pixel side: \
             use H.264 or PNG storage"
        )));
    }
    let available = encodable();
    let preferred = match wanted {
        Some(codec) => vec![codec],
        None if max_pixels <= AV1_DEFAULT_MAX_PIXELS && min_side >= AV1_MIN_SIDE => {
            vec![Codec::Av1, Codec::H264]
        }
        None => vec![Codec::H264],
    };
    preferred
        .into_iter()
        .find(|c| available.contains(c))
        .ok_or_else(|| {
            Error::Usage(format!(
                "no {} encoder: ffmpeg with libsvtav1 or libx264 is needed for video cameras \
             (apt-get install ffmpeg), or store cameras as PNG images",
                wanted.map_or("video", Codec::name)
            ))
        })
}

/// An ffmpeg process encoding RGB frames into an mp4.
pub struct VideoEncoder {
    child: Child,
    stdin: Option<ChildStdin>,
    path: std::path::PathBuf,
    frame_bytes: usize,
    /// Frames written so far.
    pub frames: u64,
}

impl VideoEncoder {
    /// Starts encoding `width` × `height` RGB frames at `fps` into `path`.
    pub fn start(path: &Path, width: u32, height: u32, fps: u32, codec: Codec) -> Result<VideoEncoder> {
        let mut command = Command::new("ffmpeg");
        command
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
            ])
            .args([
                "-s",
                &format!("{width}x{height}"),
                "-r",
                &fps.to_string(),
                "-i",
                "-",
            ])
            .args([
                "-c:v",
                codec.encoder(),
                "-pix_fmt",
                "yuv420p",
                "-g",
                "2",
                "-crf",
                "30",
            ]);
        if codec == Codec::Av1 {
            // 12 is SVT-AV1's fastest preset at these sizes.
            command.args(["-crf", "30", "-preset", "12", "-svtav1-params", "lp=1"]);
        } else {
            // No B-frames: their reordering delay shifts timestamps, and a shift
            // survives concatenation as a one-frame offset in later episodes.
            // CRF 23 (x264's default) is about the quality of SVT-AV1's 30.
            command.args(["-crf", "23", "-preset", "veryfast", "-bf", "0"]);
        }
        let mut child = command
            .args(["-f", "mp4"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                video_error(
                    path,
                    format!("cannot run ffmpeg ({e}); install it: apt-get install ffmpeg"),
                )
            })?;
        let stdin = child.stdin.take();
        Ok(VideoEncoder {
            child,
            stdin,
            path: path.to_path_buf(),
            frame_bytes: width as usize * height as usize * 3,
            frames: 0,
        })
    }

    /// Encodes one frame.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        if rgb.len() != self.frame_bytes {
            return Err(Error::Usage(format!(
                "frame has {} bytes, the video needs {}",
                rgb.len(),
                self.frame_bytes
            )));
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(video_error(&self.path, "encoder already finished"));
        };
        if stdin.write_all(rgb).is_err() {
            return Err(self.failure("ffmpeg stopped accepting frames"));
        }
        self.frames += 1;
        Ok(())
    }

    fn failure(&mut self, what: &str) -> Error {
        self.stdin.take();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            // Best effort: the message is what matters.
            let _ = pipe.read_to_string(&mut stderr);
        }
        let _ = self.child.wait();
        video_error(&self.path, format!("{what}: {}", stderr.trim()))
    }

    /// Finishes the file.
    pub fn finish(mut self) -> Result<()> {
        self.stdin.take();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| video_error(&self.path, e.to_string()))?;
        if !status.success() {
            return Err(video_error(
                &self.path,
                format!("ffmpeg failed ({status}): {}", stderr.trim()),
            ));
        }
        Ok(())
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        // An encoder dropped unfinished (discarded episode): stop ffmpeg.
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run(command: &mut Command, path: &Path) -> Result<Vec<u8>> {
    let output = command.output().map_err(|e| {
        video_error(
            path,
            format!("cannot run {:?} ({e}); install ffmpeg", command.get_program()),
        )
    })?;
    if !output.status.success() {
        return Err(video_error(
            path,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(output.stdout)
}

/// ffmpeg, quiet but for errors, overwriting its output.
fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-y"]);
    command
}

/// Joins `parts` (same codec and size; each with its frame count) into
/// `out` without re-encoding, each part starting exactly at the frames
/// before it over `fps`. (Left to itself, ffmpeg starts each part at the
/// previous one's container duration, which mp4 rounds up to the
/// millisecond: the parts would drift later by a fraction of a frame per
/// join, a whole frame after some 50 episodes, and frames read by
/// timestamp would come from the wrong episode.)
pub fn concat(parts: &[(&Path, u64)], fps: u32, out: &Path) -> Result<()> {
    let mut list = out.as_os_str().to_owned();
    list.push(".concat");
    list.push(crate::commit::TMP_SUFFIX);
    let list = std::path::PathBuf::from(list);
    // ffmpeg resolves relative entries against the list's own folder: list absolute paths.
    let mut text = String::new();
    for (part, frames) in parts {
        let absolute = std::path::absolute(part).map_err(|e| Error::io(part, e))?;
        text.push_str(&format!(
            "file '{}'\nduration {:.9}\n",
            absolute.display().to_string().replace('\'', "'\\''"),
            *frames as f64 / f64::from(fps.max(1))
        ));
    }
    std::fs::write(&list, text).map_err(|e| Error::io(&list, e))?;
    let result = run(
        ffmpeg()
            .args(["-f", "concat", "-safe", "0", "-i"])
            .arg(&list)
            .args(["-c", "copy", "-f", "mp4"])
            .arg(out),
        out,
    );
    // The list is scratch.
    let _ = std::fs::remove_file(&list);
    result.map(|_| ())
}

/// Copies `frames` frames starting at `from_s` seconds out of `path` into
/// `out`, without re-encoding. The segment must start on a keyframe, as
/// every episode in a file written here does (each is encoded on its own,
/// then joined). A segment that does not start on a keyframe would come out
/// starting at the one before, and a file's end can leave it short, so a
/// caller that must be exact compares decoded frames (merge does).
pub fn extract(path: &Path, from_s: f64, frames: u64, fps: u32, out: &Path) -> Result<()> {
    // A quarter frame late: the keyframe at or before that is the first
    // frame wanted, whatever the rounding of `from_s`. Stream copy keeps the
    // packets from that keyframe on.
    let seek = from_s + 0.25 / f64::from(fps);
    run(
        ffmpeg()
            .args(["-ss", &format!("{seek:.6}"), "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-c", "copy", "-frames:v", &frames.to_string()])
            .args(["-avoid_negative_ts", "make_zero", "-f", "mp4"])
            .arg(out),
        path,
    )
    .map(|_| ())
}

/// Decodes `frames` RGB frames of `width` × `height` starting at `from_s` seconds.
pub fn decode(
    path: &Path,
    from_s: f64,
    frames: usize,
    width: u32,
    height: u32,
    fps: u32,
) -> Result<Vec<Vec<u8>>> {
    // Half a frame early, so rounding never skips the first frame wanted.
    let seek = (from_s - 0.5 / f64::from(fps)).max(0.0);
    let raw = run(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-ss",
                &format!("{seek:.6}"),
                "-i",
            ])
            .arg(path)
            .args([
                "-frames:v",
                &frames.to_string(),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ]),
        path,
    )?;
    let frame_bytes = width as usize * height as usize * 3;
    if raw.len() != frames * frame_bytes {
        return Err(video_error(
            path,
            format!(
                "expected {frames} frames of {width}x{height} from {from_s:.3} s, got {} bytes ({} frames)",
                raw.len(),
                raw.len() / frame_bytes.max(1)
            ),
        ));
    }
    Ok(raw.chunks_exact(frame_bytes).map(<[u8]>::to_vec).collect())
}

/// The presentation times of a video file's frames, seconds, in order.
pub fn frame_times(path: &Path) -> Result<Vec<f64>> {
    let out = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(path),
        path,
    )?;
    let mut times = String::from_utf8_lossy(&out)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim()
                .trim_end_matches(',')
                .parse::<f64>()
                .map_err(|_| video_error(path, format!("bad packet time {line:?} from ffprobe")))
        })
        .collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// What [`probe`] found in a video file.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProbe {
    /// Codec name (`av1`, `h264`, …).
    pub codec: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Video packets (frames) in the file.
    pub frames: u64,
}

/// Reads a video file's codec, size and frame count.
pub fn probe(path: &Path) -> Result<VideoProbe> {
    let out = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,nb_read_packets",
                "-of",
                "csv=p=0",
            ])
            .arg(path),
        path,
    )?;
    let text = String::from_utf8_lossy(&out);
    let fields: Vec<&str> = text.trim().split(',').collect();
    let [codec, width, height, frames] = fields.as_slice() else {
        return Err(video_error(
            path,
            format!("no video stream (ffprobe said {:?})", text.trim()),
        ));
    };
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| video_error(path, format!("bad ffprobe field {s:?}")))
    };
    Ok(VideoProbe {
        codec: (*codec).to_owned(),
        width: number(width)? as u32,
        height: number(height)? as u32,
        frames: number(frames)?,
    })
}
