//! The anomaly monitor: at each check, how far what is seen is from what
//! the world model expected, and from what the joints, the colours and the
//! camera's view did before, each part in units of how far it went on
//! normal runs. Above the calibrated threshold for `persistence` checks in
//! a row, it raises an alarm, and the executor holds the arm.

use std::collections::VecDeque;
use std::path::Path;

use nalgebra::{Matrix4, Vector4};
use serde::{Deserialize, Serialize};
use sponge_robot::joint::{Joint, JointVector, NUM_JOINTS};
use sponge_robot::kinematics::base_from_tool;
use sponge_robot::model::{SERVO_MAX_SPEED_RAD_S, Tool};

/// The parts of one check's surprise (mean squared errors).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Parts {
    /// Predicted latent against the latent of what is seen.
    pub latent: f32,
    /// Joint state read off the predicted latent against the measured one
    /// (normalised units): the arm did not go where it was sent.
    pub state: f32,
    /// The picture of what is seen, drawn back from its latent, against the
    /// camera's: a scene unlike anything in training.
    pub image: f32,
    /// The picture of the predicted latent against the camera's: the scene
    /// changed in a way the actions do not explain.
    pub expected_image: f32,
    /// The picture seen at the last check, changed as the model expects
    /// (its drawing of the predicted latent less its drawing of the last
    /// one), against the camera's: sharp where the model's own drawings are
    /// blurred, as all that does not move is carried over exactly.
    pub change: f32,
    /// The same over the half of the picture where the model expects the
    /// least change (away from the arm), where the camera should see what
    /// it saw: a camera knocked aside, a spill turning colour.
    pub still: f32,
    /// The same in the worst 8x8 patch, where a local change is not
    /// averaged away.
    pub still_patch: f32,
    /// How far the arm joints ended up from where the servos would have
    /// taken them, summed over the joints and averaged over the control
    /// steps since the last check (radians; see [`Following`]): an arm held
    /// back or shoved.
    #[serde(default)]
    pub following: f32,
    /// The share of the camera's pixels whose colour neither the episode's
    /// first check nor a calibration episode showed, and the check before
    /// showed too (see [`ColourNovelty`]): paint spilt on the table. A
    /// scene whose own look is new (light, a spill's shade) is taken as it
    /// comes at its first check; a colour that shows for one check only (a
    /// shade the arm casts, a blend at an edge) counts nothing. Recorded,
    /// no longer watched: `tint` sees the same paint where it is.
    #[serde(default)]
    pub colour: f32,
    /// How much better the camera's picture matches the episode's first
    /// one moved by a few pixels than where it is, on the first picture's
    /// edges (grey levels of 255; see [`Registration`]): a camera knocked
    /// aside.
    #[serde(default)]
    pub shift: f32,
    /// The share of the gripper servo's load at the episode's first check
    /// that it lost since, on the median of the control steps' readings
    /// since the last check (see [`Grip`]): a sponge let go of. 0 when it
    /// held nothing.
    #[serde(default)]
    pub grip: f32,
    /// The shoulder pan's share of `following`: wiping loads the lift, the
    /// elbow and the wrist against the table, and the servos that press
    /// lag most, but the pan swings the arm freely over it. A hand shoving
    /// the arm aside moves the pan.
    #[serde(default)]
    pub pan: f32,
    /// The share of the episode's first picture's sharpest edges that are
    /// flat now (see [`Registration::check`]): a hand or a cloth over the
    /// lens hides the table's edges, the robot's base and the spills
    /// whatever its colour. The arm passing in front hides some, so the
    /// normal range is as many as the arm hides beyond where it started.
    #[serde(default)]
    pub blind: f32,
    /// As `shift`, for the picture warped about its centre (turned,
    /// stretched or leaned; see [`Registration::view`]): a camera knocked
    /// and still aimed at the middle of the table.
    #[serde(default)]
    pub view: f32,
    /// The share of the camera's pixels whose colour is no blend of the
    /// table's with a colour of the episode's first check, and was not at
    /// the check before either (see [`Tint`]): paint over a spill, even
    /// over a watery one.
    #[serde(default)]
    pub tint: f32,
}

/// How many parts a check has.
pub const PARTS: usize = 15;

impl Parts {
    fn values(&self) -> [f64; PARTS] {
        [
            self.latent,
            self.state,
            self.image,
            self.expected_image,
            self.change,
            self.still,
            self.still_patch,
            self.following,
            self.colour,
            self.shift,
            self.grip,
            self.pan,
            self.blind,
            self.view,
            self.tint,
        ]
        .map(f64::from)
    }

    /// Names of the parts, in [`Calibration::mean`]'s order.
    pub const NAMES: [&'static str; PARTS] = [
        "latent",
        "state",
        "image",
        "expected image",
        "change",
        "still",
        "still patch",
        "following",
        "colour",
        "shift",
        "grip",
        "pan",
        "blind",
        "view",
        "tint",
    ];
}

/// The arm joints the following gap is taken over: all but the gripper,
/// whose jaws stop on the sponge short of where they are sent.
const FOLLOWING_JOINTS: usize = NUM_JOINTS - 1;

/// Proprioception between checks. At every control step each servo's
/// setpoint ramps from where it was towards its command, at most its top
/// speed's worth of a step; this tracks how far the joints end up from
/// where the servos would have taken them, summed over the arm joints and
/// averaged over the steps since the last check. Without a [`Response`]
/// the joint is taken to move with the setpoint; with one (fitted on the
/// calibration's normal runs) it closes a share of its gap to the setpoint
/// and carries on with a share of its last step, as a position-controlled
/// servo does, less what the sponge's drag takes when the setpoints press
/// it into the table (the robot model's forward kinematics of the
/// setpoints, the table at the base's z = 0), and each joint's misses are
/// averaged with their signs before their sizes are summed: a servo's own
/// error about its fitted response goes either way, a block or a hand
/// pushes one way (on the twin's erratic policy runs this caught 14 of 16
/// blocks and 10 of 16 shoves within 1 s against 13 and 8 by the misses'
/// sizes, with no more alarms on normal runs). On a free arm the gap stays
/// small; a blocked arm misses the whole move at every step, a shoved one
/// lands elsewhere.
/// The world model checks only every segment and reads the joints off a
/// latent; this sees every step at the joints' own precision.
#[derive(Debug, Clone)]
pub struct Following {
    max_step_rad: f64,
    response: Option<Response>,
    last_state: Option<JointVector>,
    /// The last step the joints took (known from the second reading on).
    last_move: Option<[f64; FOLLOWING_JOINTS]>,
    /// Where the servos' setpoints are, as far as the commands tell.
    setpoint: Option<[f64; FOLLOWING_JOINTS]>,
    command: Option<JointVector>,
    /// Each joint's misses since the last check, summed (with their signs
    /// against a response, by size against the top-speed model).
    misses: [f64; FOLLOWING_JOINTS],
    steps: usize,
    /// Every step and check since the start, when asked to keep them
    /// ([`Following::keep_trace`]), for fitting a [`Response`].
    trace: Option<Vec<Traced>>,
    /// Control steps after a start that are not judged ([`SETTLE_S`]).
    settle_steps: usize,
    /// Control steps since the start (readings after a command).
    steps_since_start: usize,
}

/// How long after a start (or a resume) the joints' following is not
/// judged: a third of a second, the steps before the first check at 30 Hz.
/// From rest the servos are under way on the policy's first commands,
/// often a jump, and their response is not the one they settle into: on
/// the twin's normal runs the pan missed its fitted move by 0.021 rad a
/// step (root mean square) over the first 12 steps, whatever the gap,
/// against 0.006–0.010 later (300 normal runs, seeds 3, 7 and
/// 10,000,000). Over 1,880 runs (seeds 3–29,000,000; fault runs up to
/// their fault) the first check's `pan` passed its margin 5 times and
/// `following` twice, against 8 times in some 74,000 later checks. A
/// block or a shove at the very start is still caught by the second
/// check, within 1 s.
pub const SETTLE_S: f64 = 1.0 / 3.0;

/// One control step as [`Following`] saw it, per arm joint (radians).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The move the top-speed model expects: the command less where the
    /// joint was, at most a step's worth.
    pub top_speed: [f64; FOLLOWING_JOINTS],
    /// The setpoint after the command less where the joint was.
    pub gap: [f64; FOLLOWING_JOINTS],
    /// The step the joint took before this one.
    pub last_move: [f64; FOLLOWING_JOINTS],
    /// The step it took.
    pub moved: [f64; FOLLOWING_JOINTS],
    /// How far below the table (the base frame's z = 0, where the arm
    /// stands) the setpoints send the sponge's wiping face, metres; 0 above it.
    pub depth: f64,
    /// Within [`SETTLE_S`] of the start: kept for fitting, not judged.
    pub settling: bool,
}

/// What [`Following`] keeps of an episode for fitting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traced {
    /// A control step.
    Step(Step),
    /// A check (the episode's first one too).
    Check,
}

impl Traced {
    /// The step, if this is one.
    pub fn step(&self) -> Option<&Step> {
        match self {
            Traced::Step(step) => Some(step),
            Traced::Check => None,
        }
    }
}

/// How each arm joint follows its servo's setpoint over one control step:
/// it moves `gain` of its gap to the setpoint plus `carry` of its last
/// step; for each metre its setpoints send the sponge's face below the
/// table, it moves `press` more along its gap's sign and closes
/// `pressed_gain` more of its gap. Fitted by least squares on normal runs
/// ([`Response::fit`]); on the twin gain and carry are about 0.3 and 0.4,
/// press -0.5 to -0.9 rad/m on the pan, shoulder and elbow and
/// pressed_gain -4 to -23 per metre: a sponge pressed on the table drags,
/// its friction holding the arm back and slowing it (on the twin's normal
/// runs the pan fell short of the gain/carry move by 0.010 rad a step with
/// the face sent 1–2 cm down, and went 0.0015 rad beyond it when sent
/// nowhere near the table).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Share of the gap to the setpoint closed in one step, per arm joint.
    pub gain: [f64; FOLLOWING_JOINTS],
    /// Share of the last step carried into the next, per arm joint.
    pub carry: [f64; FOLLOWING_JOINTS],
    /// Radians a step per metre the face is sent below the table, along
    /// the gap's sign, per arm joint (negative: held back). Calibrations
    /// from before it was fitted have none, and judge as they were fitted.
    #[serde(default)]
    pub press: [f64; FOLLOWING_JOINTS],
    /// Share of the gap closed in one step more per metre the face is sent
    /// below the table, per arm joint (negative: slowed); none as `press`.
    #[serde(default)]
    pub pressed_gain: [f64; FOLLOWING_JOINTS],
}

/// What [`Response`] weighs for joint `j` of `step`: the gap, the last
/// step, the pressing depth along the gap's sign, and the gap times the
/// depth.
fn regressors(step: &Step, j: usize) -> [f64; 4] {
    let along_gap = if step.gap[j] == 0.0 {
        0.0
    } else {
        step.gap[j].signum()
    };
    [
        step.gap[j],
        step.last_move[j],
        along_gap * step.depth,
        step.gap[j] * step.depth,
    ]
}

impl Response {
    /// The least-squares response over the steps of `traces`; `None` with
    /// fewer than 100 steps or where a joint never moved. Where the face
    /// was never sent below the table, `press` and `pressed_gain` are 0.
    pub fn fit(traces: &[Vec<Traced>]) -> Option<Response> {
        // Normal equations of moved = gain · gap + carry · last_move +
        // press · sign(gap) · depth + pressed_gain · gap · depth, per joint.
        let mut xx = [Matrix4::<f64>::zeros(); FOLLOWING_JOINTS];
        let mut xy = [Vector4::<f64>::zeros(); FOLLOWING_JOINTS];
        let mut n = 0usize;
        for step in traces.iter().flatten().filter_map(Traced::step) {
            n += 1;
            for j in 0..FOLLOWING_JOINTS {
                let x = Vector4::from(regressors(step, j));
                xx[j] += x * x.transpose();
                xy[j] += x * step.moved[j];
            }
        }
        if n < 100 {
            return None;
        }
        let mut response = Response {
            gain: [0.0; FOLLOWING_JOINTS],
            carry: [0.0; FOLLOWING_JOINTS],
            press: [0.0; FOLLOWING_JOINTS],
            pressed_gain: [0.0; FOLLOWING_JOINTS],
        };
        for j in 0..FOLLOWING_JOINTS {
            let (mut a, mut b) = (xx[j], xy[j]);
            // A joint that never moved (or moved only as it carried on)
            // has no gain to find.
            let det = a[(0, 0)] * a[(1, 1)] - a[(0, 1)] * a[(1, 0)];
            if det.abs() <= 1e-12 * (a[(0, 0)] * a[(1, 1)]).max(1e-30) {
                return None;
            }
            // The pressing terms only where the face went below the table
            // (a share of the largest sum, so rounding does not count);
            // without them their rows solve to 0.
            let scale = a.diagonal().iter().fold(0.0f64, |m, v| m.max(*v)).max(1e-30);
            if a[(2, 2)] <= 1e-9 * scale {
                for k in 2..4 {
                    a.row_mut(k).fill(0.0);
                    a.column_mut(k).fill(0.0);
                    a[(k, k)] = 1.0;
                    b[k] = 0.0;
                }
            }
            let solved = a.lu().solve(&b)?;
            response.gain[j] = solved[0];
            response.carry[j] = solved[1];
            response.press[j] = solved[2];
            response.pressed_gain[j] = solved[3];
        }
        response
            .gain
            .iter()
            .chain(&response.carry)
            .chain(&response.press)
            .chain(&response.pressed_gain)
            .all(|v| v.is_finite())
            .then_some(response)
    }

    /// How far each joint ended up from where `response` would have taken
    /// it, with its sign; without one, how far from the top-speed move, by
    /// size.
    fn miss(response: Option<&Response>, step: &Step) -> [f64; FOLLOWING_JOINTS] {
        std::array::from_fn(|j| match response {
            Some(r) => {
                let [gap, last, pressed, pressed_gap] = regressors(step, j);
                step.moved[j]
                    - r.gain[j] * gap
                    - r.carry[j] * last
                    - r.press[j] * pressed
                    - r.pressed_gain[j] * pressed_gap
            }
            None => (step.moved[j] - step.top_speed[j]).abs(),
        })
    }
}

impl Following {
    /// Servos that move at most `max_step_rad` in one control step.
    pub fn new(max_step_rad: f64) -> Following {
        Following {
            max_step_rad,
            response: None,
            last_state: None,
            last_move: None,
            setpoint: None,
            command: None,
            misses: [0.0; FOLLOWING_JOINTS],
            steps: 0,
            trace: None,
            settle_steps: 0,
            steps_since_start: 0,
        }
    }

    /// The SO-100's servos at top speed, commanded `fps` times a second,
    /// not judged for [`SETTLE_S`] after a start.
    pub fn so100(fps: f64) -> Following {
        Following::new(SERVO_MAX_SPEED_RAD_S / fps.max(1.0)).settling_for((fps * SETTLE_S).round() as usize)
    }

    /// Leaves the first `steps` control steps after a start (or a resume)
    /// unjudged (0 for none; the first step is never judged, see
    /// [`Following::measure`]).
    pub fn settling_for(mut self, steps: usize) -> Following {
        self.settle_steps = steps;
        self
    }

    /// Judges the joints by how `response` says they follow (`None`: as
    /// if they moved with the setpoint).
    pub fn with_response(mut self, response: Option<Response>) -> Following {
        self.response = response;
        self
    }

    /// Keeps every step and check from now on ([`Following::take_trace`]).
    pub fn keep_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// What was kept since [`Following::keep_trace`] (empty if nothing).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A command sent to the arm (radians).
    pub fn command(&mut self, q: &JointVector) {
        self.command = Some(*q);
    }

    /// A joint reading (radians). It counts when a command was sent since
    /// the reading before, and the step before that is known: the first
    /// step after the start (or a resume) is not judged, as the joints may
    /// be under way already (on the twin's normal runs that step missed its
    /// fitted move 6 times as far as later ones, and the first check's
    /// `pan` was twice the later checks' on average, 4 of the 8 false
    /// alarms left on 300 normal and 300 fault runs).
    pub fn measure(&mut self, q: &JointVector) {
        if let (Some(before), Some(sent)) = (self.last_state, self.command.take()) {
            self.steps_since_start += 1;
            let limit = self.max_step_rad;
            let setpoint = self.setpoint.get_or_insert(std::array::from_fn(|j| before[j]));
            for (j, s) in setpoint.iter_mut().enumerate() {
                *s += (sent[j] - *s).clamp(-limit, limit);
            }
            if let Some(last_move) = self.last_move {
                let mut sent_to = before;
                sent_to[..FOLLOWING_JOINTS].copy_from_slice(setpoint);
                let step = Step {
                    top_speed: std::array::from_fn(|j| (sent[j] - before[j]).clamp(-limit, limit)),
                    gap: std::array::from_fn(|j| setpoint[j] - before[j]),
                    last_move,
                    moved: std::array::from_fn(|j| q[j] - before[j]),
                    depth: (-base_from_tool(&sent_to, Tool::SpongeFace).translation.z).max(0.0),
                    settling: self.steps_since_start <= self.settle_steps,
                };
                if let Some(trace) = self.trace.as_mut() {
                    trace.push(Traced::Step(step));
                }
                self.add(&step);
            }
        }
        if let Some(before) = self.last_state {
            self.last_move = Some(std::array::from_fn(|j| q[j] - before[j]));
        }
        self.last_state = Some(*q);
    }

    /// Counts one step's miss (none while settling).
    fn add(&mut self, step: &Step) {
        if step.settling {
            return;
        }
        for (sum, miss) in self
            .misses
            .iter_mut()
            .zip(Response::miss(self.response.as_ref(), step))
        {
            *sum += miss;
        }
        self.steps += 1;
    }

    /// Fills `parts.following` and `parts.pan` with what was seen since
    /// the last call, and starts over.
    pub fn report(&mut self, parts: &mut Parts) {
        let mean = |sum: f64| {
            if self.steps == 0 {
                0.0
            } else {
                (sum / self.steps as f64) as f32
            }
        };
        parts.following = mean(self.misses.iter().map(|m| m.abs()).sum());
        parts.pan = mean(self.misses[Joint::ShoulderPan.index()].abs());
        self.misses = [0.0; FOLLOWING_JOINTS];
        self.steps = 0;
        if let Some(trace) = self.trace.as_mut() {
            trace.push(Traced::Check);
        }
    }

    /// What each check of `trace` after its first would have reported
    /// with `response`: `(following, pan)`.
    pub fn replay(trace: &[Traced], response: Option<Response>) -> Vec<(f32, f32)> {
        let mut following = Following::new(0.0).with_response(response);
        let mut reports = Vec::new();
        for traced in trace {
            match traced {
                Traced::Step(step) => following.add(step),
                Traced::Check => {
                    let mut parts = Parts::default();
                    following.report(&mut parts);
                    reports.push((parts.following, parts.pan));
                }
            }
        }
        reports.into_iter().skip(1).collect()
    }

    /// Forgets everything (a new episode, or the arm held and let go);
    /// keeps its response and whether it keeps a trace.
    pub fn reset(&mut self) {
        let trace = self.trace.as_ref().map(|_| Vec::new());
        *self = Following::new(self.max_step_rad)
            .with_response(self.response)
            .settling_for(self.settle_steps);
        self.trace = trace;
    }
}

/// The largest shift [`Registration`] tries, in pixels of its half-size picture.
const MAX_SHIFT: isize = 4;

/// The least change of grey (of 255, over two pixels each way) that
/// [`Registration`] takes for an edge.
const MIN_EDGE: f32 = 20.0;

/// The change of grey across interior pixel `i` of a `side`-wide picture,
/// over two pixels each way.
fn gradient(grey: &[f32], side: usize, i: usize) -> f32 {
    (grey[i + 1] - grey[i - 1]).abs() + (grey[i + side] - grey[i - side]).abs()
}

/// What [`Registration::check`] finds: the parts `shift` and `blind`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Registered {
    /// How much better the picture matches the first one at the shift that
    /// won two checks in a row than where it is (grey levels of 255).
    pub shift: f32,
    /// The same for the picture warped about its centre.
    pub view: f32,
    /// The share of the first picture's edges where the picture is flat.
    pub blind: f32,
}

/// Whether the camera has moved since the episode's first check. Only the
/// arm moves in the scene, so the table's edges, the robot's base and the
/// spills stay where the first picture had them; a camera knocked aside
/// moves them all together. At each check the picture is compared with the
/// first one on the first one's sharpest edges, where it is and moved by up
/// to [`MAX_SHIFT`] pixels each way, keeping the better half of the
/// comparisons (the arm's own edges move on their own): the part is how
/// much the best shift beats none, once about the same shift has won two
/// checks in a row. A knock along the line of sight scales the picture
/// rather than shifting it; trying scales of 0.9–1.1 as well let the arm
/// make a scaled match win twice in a normal run, and the normal largest
/// rose from 0 to 2.2 grey levels. `view` ([`Registration::view`]) catches
/// those instead: small warps about the picture's centre, each held to
/// beating none at every one of the last checks.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The first picture (grey, half size) and its side.
    first: Option<(Vec<f32>, usize)>,
    /// Its sharpest edges: pixel indices.
    edges: Vec<usize>,
    /// The shift that matched best at the check before, if any beat none,
    /// and by how much.
    last_shift: Option<((isize, isize), f32)>,
    /// How much each warp of [`Registration::view`] beat none at the last
    /// checks, oldest first.
    warp_gains: VecDeque<Vec<f32>>,
}

/// The step of a warp's entries (the change to the identity matrix that
/// [`Registration::view`] tries): 0.05, so the farthest edges (some 19
/// pixels from the centre of the half-size picture) move about a pixel a
/// step.
const WARP_STEP: f32 = 0.05;

/// How many steps each way [`Registration::view`] tries on each of a
/// warp's four entries: 2, up to 0.1 (624 warps besides none).
const WARP_LEVELS: i8 = 2;

/// Over how many checks in a row a warp must beat none for
/// [`Registration::view`] to count it: the least of its gains there.
const VIEW_CHECKS: usize = 2;

/// Grey at `(x, y)` of a `side`-wide picture, between pixels by bilinear
/// interpolation, clamped to the picture.
fn sample(grey: &[f32], side: usize, x: f32, y: f32) -> f32 {
    let top = (side - 1) as f32;
    let (x, y) = (x.clamp(0.0, top), y.clamp(0.0, top));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let row = |y: usize| grey[y * side + x0] * (1.0 - fx) + grey[y * side + x1] * fx;
    row(y0) * (1.0 - fy) + row(y1) * fy
}

/// The mean of the smaller half of `errors` (reordering them).
fn better_half_mean(errors: &mut [f32]) -> f32 {
    let half = errors.len().div_ceil(2);
    if half == 0 {
        return 0.0;
    }
    errors.select_nth_unstable_by(half - 1, f32::total_cmp);
    errors[..half].iter().sum::<f32>() / half as f32
}

impl Registration {
    /// Grey at half size, from a square RGB8 frame; with its side.
    fn grey(frame: &[u8]) -> Option<(Vec<f32>, usize)> {
        let side = ((frame.len() / 3) as f64).sqrt() as usize;
        if side < 8 || side * side * 3 != frame.len() {
            return None;
        }
        let half = side / 2;
        let at = |x: usize, y: usize| -> f32 {
            let i = (y * side + x) * 3;
            frame[i..i + 3].iter().map(|&v| f32::from(v)).sum::<f32>() / 3.0
        };
        let grey = (0..half * half)
            .map(|i| {
                let (x, y) = (2 * (i % half), 2 * (i / half));
                (at(x, y) + at(x + 1, y) + at(x, y + 1) + at(x + 1, y + 1)) / 4.0
            })
            .collect();
        Some((grey, half))
    }

    /// Takes a check's camera frame (square RGB8); returns `shift` and
    /// `blind` (both 0 at the first frame of the episode, or for a frame
    /// that is not square).
    pub fn check(&mut self, frame: &[u8]) -> Registered {
        let Some((grey, side)) = Registration::grey(frame) else {
            return Registered::default();
        };
        let Some((first, first_side)) = &self.first else {
            // The sharpest fifth of the interior pixels, if sharp at all.
            let m = MAX_SHIFT as usize + 1;
            let mut edges: Vec<(f32, usize)> = (m..side - m)
                .flat_map(|y| (m..side - m).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let i = y * side + x;
                    (gradient(&grey, side, i), i)
                })
                .collect();
            edges.sort_by(|a, b| b.0.total_cmp(&a.0));
            edges.truncate(edges.len() / 5);
            edges.retain(|&(gradient, _)| gradient >= MIN_EDGE);
            self.edges = edges.into_iter().map(|(_, i)| i).collect();
            self.first = Some((grey, side));
            return Registered::default();
        };
        if *first_side != side || self.edges.is_empty() {
            return Registered::default();
        }
        let mismatch = |dx: isize, dy: isize| -> f32 {
            let mut errors: Vec<f32> = self
                .edges
                .iter()
                .map(|&i| {
                    let moved = (i as isize + dy * side as isize + dx) as usize;
                    (grey[moved] - first[i]).abs()
                })
                .collect();
            better_half_mean(&mut errors)
        };
        let here = mismatch(0, 0);
        let (best, shift) = (-MAX_SHIFT..=MAX_SHIFT)
            .flat_map(|dy| (-MAX_SHIFT..=MAX_SHIFT).map(move |dx| (dx, dy)))
            .map(|(dx, dy)| (mismatch(dx, dy), (dx, dy)))
            .fold((f32::INFINITY, (0, 0)), |a, b| if b.0 < a.0 { b } else { a });
        let gain = (here - best).max(0.0);
        let moved = (gain > 0.0 && shift != (0, 0)).then_some((shift, gain));
        // A knocked camera stays where it was knocked to: the same shift,
        // give or take a pixel, winning at two checks in a row (by the
        // lesser of the two). The arm hiding edges makes some other shift
        // win now and then, seldom twice.
        let steady = match (self.last_shift, moved) {
            (Some((a, before)), Some((b, now))) if (a.0 - b.0).abs() <= 1 && (a.1 - b.1).abs() <= 1 => {
                before.min(now)
            }
            _ => 0.0,
        };
        self.last_shift = moved;
        let view = Registration::view(&self.edges, &mut self.warp_gains, first, &grey, here);
        // The first picture's edges where the picture is flat now: its
        // change of grey there less than half [`MIN_EDGE`].
        let flat = self
            .edges
            .iter()
            .filter(|&&i| gradient(&grey, side, i) < 0.5 * MIN_EDGE)
            .count();
        Registered {
            shift: steady,
            view,
            blind: flat as f32 / self.edges.len() as f32,
        }
    }

    /// How much better `grey` matches `first` warped about the centre than
    /// where it is (`here`, the better-half mismatch unmoved). A camera
    /// knocked and turned back to the same point keeps the middle of the
    /// picture, and the rest turns, stretches or leans around it, which no
    /// shift matches. Each warp's gain over none is kept for the last
    /// [`VIEW_CHECKS`] checks; the part is the largest, over the warps, of
    /// the least of those gains, so a warp must match at every one of those
    /// checks (the arm's own motion makes some warp match now and then,
    /// seldom the same one twice).
    fn view(
        edges: &[usize],
        history: &mut VecDeque<Vec<f32>>,
        first: &[f32],
        grey: &[f32],
        here: f32,
    ) -> f32 {
        let side = grey.len().isqrt();
        let c = (side - 1) as f32 / 2.0;
        let edges: Vec<(f32, f32, f32)> = edges
            .iter()
            .map(|&i| ((i % side) as f32 - c, (i / side) as f32 - c, first[i]))
            .collect();
        // Every warp with entries of -levels..=levels steps, as base-n digits.
        let n = 2 * WARP_LEVELS as usize + 1;
        let warps = (0..n.pow(4))
            .map(|k| [1, n, n * n, n * n * n].map(|place| ((k / place) % n) as i8 - WARP_LEVELS));
        let mut errors = vec![0.0; edges.len()];
        let gains: Vec<f32> = warps
            .filter(|w| *w != [0; 4])
            .map(|warp| {
                let [ux, uy, vx, vy] = warp.map(|l| f32::from(l) * WARP_STEP);
                for (e, &(x, y, was)) in errors.iter_mut().zip(&edges) {
                    let (u, v) = (c + (1.0 + ux) * x + uy * y, c + vx * x + (1.0 + vy) * y);
                    *e = (sample(grey, side, u, v) - was).abs();
                }
                here - better_half_mean(&mut errors)
            })
            .collect();
        history.push_back(gains);
        if history.len() > VIEW_CHECKS {
            history.pop_front();
        }
        if history.len() < VIEW_CHECKS {
            return 0.0;
        }
        (0..history[0].len())
            .map(|w| history.iter().map(|g| g[w]).fold(f32::INFINITY, f32::min))
            .fold(0.0, f32::max)
    }

    /// Forgets the first picture (a new episode, or the arm held and let go).
    pub fn reset(&mut self) {
        *self = Registration::default();
    }
}

/// Levels of each colour channel in [`ColourBins`]: 8, so 512 bins of 32
/// steps of 255 a channel, coarse enough that light and shade within the
/// training range stay in the bins the calibration saw.
const COLOUR_LEVELS: usize = 8;

/// How many colour bins there are.
pub const COLOUR_BINS: usize = COLOUR_LEVELS * COLOUR_LEVELS * COLOUR_LEVELS;

/// A camera frame's colours, binned: `(bin, pixels)` for each bin it has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColourBins(pub Vec<(u16, u32)>);

impl ColourBins {
    /// Bins an RGB8 frame.
    pub fn of(frame: &[u8]) -> ColourBins {
        let mut counts = vec![0u32; COLOUR_BINS];
        let level = |v: u8| usize::from(v) * COLOUR_LEVELS / 256;
        for px in frame.chunks_exact(3) {
            counts[(level(px[0]) * COLOUR_LEVELS + level(px[1])) * COLOUR_LEVELS + level(px[2])] += 1;
        }
        ColourBins(
            counts
                .into_iter()
                .enumerate()
                .filter(|&(_, n)| n > 0)
                .map(|(bin, n)| (bin as u16, n))
                .collect(),
        )
    }

    fn pixels(&self) -> u32 {
        self.0.iter().map(|&(_, n)| n).sum()
    }
}

/// A colour bin and those a level off it in any of the channels: the
/// shades of one colour that light and pose give it.
fn neighbours(bin: usize) -> impl Iterator<Item = usize> {
    let range = |l: usize| l.saturating_sub(1)..=(l + 1).min(COLOUR_LEVELS - 1);
    let [r, g, b] = levels(bin);
    range(r).flat_map(move |r| {
        range(g).flat_map(move |g| range(b).map(move |b| (r * COLOUR_LEVELS + g) * COLOUR_LEVELS + b))
    })
}

/// How many levels apart (of [`COLOUR_LEVELS`]) a bin's channels must be
/// for [`vivid`]: 3, some 96 of 255.
const VIVID_LEVELS: usize = 3;

/// Whether a colour bin is vivid: its channels far apart, as paint and the
/// sponges are, and the table, the arm, the shadows and a watery spill are
/// not.
fn vivid(bin: usize) -> bool {
    let [r, g, b] = levels(bin);
    r.max(g).max(b) - r.min(g).min(b) >= VIVID_LEVELS
}

/// A colour bin's red, green and blue levels (of [`COLOUR_LEVELS`]), as
/// [`ColourBins::of`] numbers them.
fn levels(bin: usize) -> [usize; 3] {
    [
        bin / (COLOUR_LEVELS * COLOUR_LEVELS),
        (bin / COLOUR_LEVELS) % COLOUR_LEVELS,
        bin % COLOUR_LEVELS,
    ]
}

/// One episode's colours, check by check: which colours are new, and
/// whether they stay. A colour is new when the episode's first colour check
/// showed neither it nor a shade of it a level off in a channel (a scene
/// whose own look is new, light or a spill's shade, is taken as it comes,
/// and the arm moving shows its colours in other light) and either few
/// calibration episodes showed it or it is [`vivid`] (two of the four
/// paints are near two of the four sponges' colours, which other episodes
/// showed; this episode's own sponge is in its first check); it counts
/// from the second check in a row that shows it. A colour that flickers
/// for one check (a shade the arm casts in one pose, a blend at an edge) is
/// no spill; paint stays where it was spilt.
#[derive(Debug, Clone)]
pub struct ColourNovelty {
    /// Bins the episode's first colour check showed.
    scene: Vec<bool>,
    /// Bins found new since.
    new: Vec<bool>,
    /// Bins the check before showed.
    before: Vec<bool>,
    checks: usize,
}

impl Default for ColourNovelty {
    fn default() -> ColourNovelty {
        ColourNovelty {
            scene: vec![false; COLOUR_BINS],
            new: vec![false; COLOUR_BINS],
            before: vec![false; COLOUR_BINS],
            checks: 0,
        }
    }
}

impl ColourNovelty {
    /// Takes one check's colours: the share of its pixels in new bins (those
    /// the episode's first check did not show, with their shades, and that
    /// are vivid or that `seen_by`, episodes per bin, counts at most `own`
    /// times) that the check before showed too. 0 at the first check.
    pub fn check(&mut self, bins: &ColourBins, seen_by: &[u16], own: u16) -> f32 {
        self.checks += 1;
        let mut stayed = 0u32;
        for &(bin, n) in &bins.0 {
            let bin = usize::from(bin);
            if self.checks == 1 {
                for near in neighbours(bin) {
                    self.scene[near] = true;
                }
            } else if !self.scene[bin] && (vivid(bin) || seen_by.get(bin).is_none_or(|&e| e <= own)) {
                if self.new[bin] && self.before[bin] {
                    stayed += n;
                }
                self.new[bin] = true;
            }
        }
        self.before.fill(false);
        for &(bin, _) in &bins.0 {
            self.before[usize::from(bin)] = true;
        }
        match bins.pixels() {
            0 => 0.0,
            total => stayed as f32 / total as f32,
        }
    }

    /// Forgets the episode.
    pub fn reset(&mut self) {
        *self = ColourNovelty::default();
    }
}

/// Cells a side of the chromaticity grid [`Tint`] judges colours on (red
/// and green shares of a pixel's r + g + b, each 0 to 1).
const TINT_GRID: usize = 64;

/// The least r + g + b (of 765) of a pixel [`Tint`] judges: darker pixels'
/// shares of red and green are noise (the arm's black, the wall).
const TINT_MIN_SUM: u32 = 120;

/// How near (in red and green shares) a colour must come to a blend of the
/// table's with a colour of the episode's first check to count as one:
/// 0.04, as far as a water spill is from a bare table.
const TINT_REACH: f32 = 0.04;

/// A pixel's red and green shares of its r + g + b, if bright enough to
/// tell: the same under more or less light of one colour, so shade and
/// shadow leave them be.
fn chromaticity(px: &[u8]) -> Option<[f32; 2]> {
    let sum = u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2]);
    (sum >= TINT_MIN_SUM).then(|| [f32::from(px[0]) / sum as f32, f32::from(px[1]) / sum as f32])
}

/// The cell of [`TINT_GRID`] a chromaticity falls in.
fn tint_cell(c: [f32; 2]) -> usize {
    let at = |v: f32| ((v * TINT_GRID as f32) as usize).min(TINT_GRID - 1);
    at(c[0]) * TINT_GRID + at(c[1])
}

/// One episode's pixels whose colour the scene cannot explain, where they
/// are: a colour is explained when it is (within [`TINT_REACH`]) a blend
/// of the table's (the middle colour of the episode's first check) with a
/// colour that check showed anywhere, as a spill wiped thinner is, the
/// sponge's edge against the table, the arm's white and black, shade and
/// shadow. Paint over a spill, even a watery spill tinted by it, is a
/// blend of the table with a colour the first check did not show. It
/// counts a pixel from the second check in a row that finds it
/// unexplained, as paint stays where it was spilt. Unlike
/// [`ColourNovelty`] it needs no calibration colours, and a tint a level
/// off the table's in coarse bins still shows; paint of the scene's own
/// sponge's colour is a blend it explains (a miss).
#[derive(Debug, Clone, Default)]
pub struct Tint {
    /// For each cell of the chromaticity grid, whether the scene explains
    /// it; empty before the episode's first check.
    explained: Vec<bool>,
    /// For each pixel, whether the check before found it unexplained.
    before: Vec<bool>,
}

impl Tint {
    /// Takes the episode's first check (`frame`, RGB8): the table's colour
    /// and the blends that later checks may show.
    pub fn first(&mut self, frame: &[u8]) {
        let mut shown = vec![false; TINT_GRID * TINT_GRID];
        let (mut reds, mut greens) = (Vec::new(), Vec::new());
        for c in frame.chunks_exact(3).filter_map(chromaticity) {
            shown[tint_cell(c)] = true;
            reds.push(f64::from(c[0]));
            greens.push(f64::from(c[1]));
        }
        self.before.clear();
        let (Some(red), Some(green)) = (median(&mut reds), median(&mut greens)) else {
            // Nothing bright enough to go by: nothing to compare with.
            self.explained.clear();
            return;
        };
        let table = [red as f32, green as f32];
        let centre = |cell: usize| {
            let half = 0.5 / TINT_GRID as f32;
            [
                (cell / TINT_GRID) as f32 / TINT_GRID as f32 + half,
                (cell % TINT_GRID) as f32 / TINT_GRID as f32 + half,
            ]
        };
        let ends: Vec<[f32; 2]> = (0..shown.len()).filter(|&c| shown[c]).map(centre).collect();
        self.explained = (0..shown.len())
            .map(|cell| {
                let p = centre(cell);
                ends.iter()
                    .any(|&end| distance_to_segment(p, table, end) <= TINT_REACH)
            })
            .collect();
    }

    /// Takes a later check's `frame`: the share of its pixels the scene
    /// does not explain, and did not at the check before either. 0 before
    /// the first check.
    pub fn check(&mut self, frame: &[u8]) -> f32 {
        if self.explained.is_empty() {
            return 0.0;
        }
        let pixels = frame.len() / 3;
        if self.before.len() != pixels {
            self.before = vec![false; pixels];
        }
        let mut stayed = 0usize;
        for (px, before) in frame.chunks_exact(3).zip(self.before.iter_mut()) {
            let new = chromaticity(px).is_some_and(|c| !self.explained[tint_cell(c)]);
            if new && *before {
                stayed += 1;
            }
            *before = new;
        }
        match pixels {
            0 => 0.0,
            n => stayed as f32 / n as f32,
        }
    }

    /// Forgets the episode.
    pub fn reset(&mut self) {
        *self = Tint::default();
    }
}

/// How far `p` is from the segment from `a` to `b`.
fn distance_to_segment(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let d = [b[0] - a[0], b[1] - a[1]];
    let length2 = d[0] * d[0] + d[1] * d[1];
    let u = if length2 > 0.0 {
        (((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let near = [a[0] + u * d[0], a[1] + u * d[1]];
    ((p[0] - near[0]).powi(2) + (p[1] - near[1]).powi(2)).sqrt()
}

/// For each colour bin, how many of the normal episodes showed it.
fn episodes_per_bin(episodes: &[Vec<ColourBins>]) -> Vec<u16> {
    let mut seen_by = vec![0u16; COLOUR_BINS];
    for checks in episodes {
        let mut here = vec![false; COLOUR_BINS];
        for bins in checks {
            for &(bin, _) in &bins.0 {
                here[usize::from(bin)] = true;
            }
        }
        for (count, _) in seen_by.iter_mut().zip(here).filter(|(_, h)| *h) {
            *count = count.saturating_add(1);
        }
    }
    seen_by
}

/// Sets the `colour` part of normal runs' checks (`parts[e][k]`, the frame
/// binned in `colours[e][k]`): the share of pixels whose bin neither an
/// *other* episode nor the episode's earlier checks showed, as a fresh
/// normal scene is judged against all the calibration episodes. The first
/// check of each episode, which has nothing earlier, is left at 0 (the
/// monitor does not judge it either: see [`Monitor::colour`]). Returns the
/// episodes per bin, for [`Calibration::colours`].
pub fn colour_out_of_episode(parts: &mut [Vec<Parts>], colours: &[Vec<ColourBins>]) -> Vec<u16> {
    let seen_by = episodes_per_bin(colours);
    for (checks, bins) in parts.iter_mut().zip(colours) {
        let mut novelty = ColourNovelty::default();
        for (p, b) in checks.iter_mut().zip(bins) {
            p.colour = novelty.check(b, &seen_by, 1);
        }
    }
    seen_by
}

/// Calibration on normal runs: each part's mean and spread, and the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Mean of each part.
    pub mean: [f64; PARTS],
    /// Standard deviation of each part.
    pub std: [f64; PARTS],
    /// The largest value of each part on normal runs.
    pub max: [f64; PARTS],
    /// Surprise above which a check counts: [`MARGIN`] (each watched part
    /// is measured from its normal mean, in units of the way from there to
    /// its largest normal value).
    pub threshold: f64,
    /// Checks in a row a part must stay above the threshold to raise an
    /// alarm (at least; some parts wait longer: see `Monitor::check`).
    pub persistence: usize,
    /// Checks the calibration saw.
    pub checks: usize,
    /// The largest surprise the calibration saw.
    pub max_seen: f64,
    /// For each colour bin ([`ColourBins`]), how many calibration episodes
    /// showed it; empty when not calibrated on colours.
    #[serde(default)]
    pub colours: Vec<u16>,
    /// How the joints followed their servos on the calibration's runs,
    /// which `following` and `pan` are measured against; `None` (older
    /// calibrations): as if they moved with their setpoints.
    #[serde(default)]
    pub response: Option<Response>,
}

/// The threshold's margin over the largest of each part on normal runs.
pub const MARGIN: f64 = 1.25;

/// The parts the surprise is taken over (indices into [`Parts::NAMES`]):
/// the joint state read off the world model's prediction, the joints'
/// following and the pan's, the gripper's grip, and the camera's tints,
/// shift, warped view and lost edges. `tint` took the place of `colour`
/// (still recorded) on whole runs of the twin (`sponge eval --monitor
/// --shadow`, `scripts/monitor_study.py`; 200 normal runs, seeds 3 and
/// 7,000,000, and 300 fault runs, seeds 5, 6, 8, 9 and 11,000,000): with
/// `tint` watched the unseen spills caught within 1 s rose from 31 to 44 of
/// 50 and the false alarms stayed 14; leaving `colour` out then lost one
/// spill (orange-red paint where the sponge is orange, a blend `tint`
/// explains) and 4 false alarms. Chosen before, on fault runs of the twin
/// (`sponge eval --fault all --seed 4000000`, every check's parts in its
/// JSON):
/// `following` raised the blocked arms caught within 1 s from 3 to 10 of
/// 10 (seeds 5,000,000), `colour` the paint spills from 0 to 4 of 10,
/// `shift` the knocked cameras from 0 to 5 of 9, `grip` the dropped
/// sponges from 0 to 9 of 9; `blind` the covered cameras from 8 to 10 of
/// 10 and `pan` the shoves from 9 of 10 to 9 of 9 (seeds 4,000,000). The
/// world model's drawn pictures (`image`, `expected image`, `still`) are
/// recorded but no longer watched: on seeds 4,000,000 no fault was caught
/// within 1 s by them alone, and on 100 normal episodes they raised 3 of
/// the 5 false alarms. Nor are `latent` (the dynamics' own residual over
/// 128 numbers varies as much as a fault moves it), `change` (the arm's
/// own motion dominates it) and `still patch` (a few pixels of the arm
/// dominate it).
pub const WATCHED: [usize; 8] = [1, 7, 9, 10, 11, 12, 13, 14];

/// The least scale of each part (its normal range, mean to largest, is
/// taken as at least this), for the parts that are 0 on most normal runs,
/// where a handful of calibration episodes cannot show how far they go:
/// `colour`, half a thousandth of the picture (4.6 pixels at 96 × 96, a
/// sixth of a fresh spill; on some 13,000 normal checks of the twin it
/// never left 0); `shift`, half a grey level better on the edges at a
/// steady shift; `grip`, four tenths of the held load lost: a dropped
/// sponge takes all of it (1), while a policy easing its jaw's goal takes
/// up to a third (0.34 within the first second on the twin, where 30
/// calibration episodes showed at most 0.22 and the monitor alarmed on 4
/// of 60 fault runs before their fault with a tenth).
const MIN_SCALE: [f64; PARTS] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005, 0.5, 0.4, 0.0, 0.0, 0.5, 0.0005,
];

/// How much wider than the calibration saw each part's normal range is
/// taken (1: as wide), 1.2 for three parts. `blind`: its normal runs reach
/// a ceiling that few calibration episodes show in full, as the arm passing
/// nearest the camera hides at most some share of the first picture's
/// edges. On 300 normal runs of the twin (seeds 3, 7 and 10,000,000)
/// `blind`'s scores against a 30-episode calibration piled up at 1.30-1.31,
/// just past [`MARGIN`] (4 of the 12 false alarms left), while all 50
/// covered cameras scored at least 1.61 (seeds 5, 6, 8, 9 and 11,000,000).
/// `following` and `pan`: with the pressed sponge in their [`Response`],
/// their normal tails are the policy's hard reversals, which 30 episodes
/// show few of; on the 700 normal and 540 fault runs of seeds 3 to
/// 19,000,000 the wider range gave 496 of 536 faults within 1 s and 18
/// false alarms (`pan` 4, `following` 2) against 498 of 531 and 27 (`pan`
/// 9, `following` 7).
pub const STRETCH: [f64; PARTS] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.0, 1.0, 1.0, 1.2, 1.2, 1.0, 1.0,
];

impl Calibration {
    /// Fits the calibration to the checks of normal runs: a check counts
    /// when a watched part passes its mean by [`MARGIN`] times as much as
    /// the most any normal check did (a quantile as high as the runs allow:
    /// one false alarm per 10 minutes at three checks a second is the
    /// 99.94th percentile). Each part has its own scale, so a part whose
    /// normal spread is narrow is not drowned by one with heavy tails.
    pub fn fit(parts: &[Parts], persistence: usize) -> Result<Calibration, String> {
        if parts.len() < 10 {
            return Err(format!(
                "{} checks are too few to calibrate on (at least 10)",
                parts.len()
            ));
        }
        let n = parts.len() as f64;
        let mut mean = [0.0; PARTS];
        for p in parts {
            for (m, v) in mean.iter_mut().zip(p.values()) {
                *m += v / n;
            }
        }
        let mut std = [0.0; PARTS];
        for p in parts {
            for ((s, v), m) in std.iter_mut().zip(p.values()).zip(mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        let std = std.map(|v: f64| v.sqrt().max(1e-9));
        let mut max = [f64::NEG_INFINITY; PARTS];
        for p in parts {
            for (m, v) in max.iter_mut().zip(p.values()) {
                *m = m.max(v);
            }
        }
        let mut calibration = Calibration {
            mean,
            std,
            max,
            threshold: MARGIN,
            persistence: persistence.max(1),
            checks: parts.len(),
            max_seen: 0.0,
            colours: Vec::new(),
            response: None,
        };
        let max_seen = parts
            .iter()
            .map(|p| calibration.surprise(p))
            .fold(f64::NEG_INFINITY, f64::max);
        calibration.max_seen = max_seen;
        Ok(calibration)
    }

    /// Each watched part's distance above its normal mean, in units of its
    /// largest normal distance (times its [`STRETCH`]; at least a hundredth
    /// of a standard deviation, for a part that never varied, and at least
    /// [`MIN_SCALE`]), with its index.
    fn scores(&self, parts: &Parts) -> impl Iterator<Item = (usize, f64)> {
        let values = parts.values();
        WATCHED.into_iter().map(move |i| {
            let scale = ((self.max[i] - self.mean[i]) * STRETCH[i])
                .max(0.01 * self.std[i])
                .max(MIN_SCALE[i])
                .max(1e-12);
            (i, (values[i] - self.mean[i]) / scale)
        })
    }

    /// The surprise of one check: the largest score of its watched parts
    /// (1 is as surprising as the most surprising normal check).
    pub fn surprise(&self, parts: &Parts) -> f64 {
        self.scores(parts)
            .map(|(_, z)| z)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Checks in a row part `i` (an index into [`Parts::NAMES`]) must stay
    /// above the threshold to raise an alarm: the calibration's
    /// persistence, or the part's own ([`PART_PERSISTENCE`]) where more.
    pub fn persistence_of(&self, i: usize) -> usize {
        self.persistence
            .max(PART_PERSISTENCE.get(i).copied().unwrap_or(1))
    }

    /// Writes the calibration as JSON (`monitor.json` in a world-model run).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads a calibration written by [`Calibration::save`].
    pub fn load(path: &Path) -> Result<Calibration, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e} (calibrate first: sponge wm calibrate)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: {e} (written by another version of sponge? calibrate again: sponge wm calibrate)",
                path.display()
            )
        })
    }
}

/// Checks in a row each part must stay above the threshold to raise an
/// alarm (the calibration's `persistence` where that is more): 2 for
/// `shift` and `view` (and `colour`, should it be watched again), 1 for
/// the rest (`tint` already waits a check per pixel). A knocked camera stays
/// knocked and paint stays where it was spilt, while on normal runs these
/// parts spike for a check (a blend at a spill's edge, the arm filling the
/// picture); a block, a shove or a drop shows at once and a shove is over
/// in half a second. Chosen on whole runs of the twin (`sponge eval
/// --monitor --shadow`, `scripts/monitor_study.py`; 200 normal episodes,
/// seeds 3,000,000 and 7,000,000, and 240 fault runs, seeds 5, 6, 8 and
/// 9,000,000): false alarms fell from 20 to 14 in some 5,000 s of normal
/// running, faults caught within 1 s stayed at 90% (211 of 234 against 212
/// of 236), and each half of those runs showed the same.
const PART_PERSISTENCE: [usize; PARTS] = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 2, 1];

/// One robot's monitor: counts each part's checks above the threshold in a row.
#[derive(Debug, Clone)]
pub struct Monitor {
    calibration: Calibration,
    above: [usize; PARTS],
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The surprise.
    pub surprise: f64,
    /// Whether it raises an alarm (the arm should hold).
    pub alarm: bool,
    /// The most surprising part.
    pub cause: &'static str,
}

impl Monitor {
    /// A monitor with `calibration`.
    pub fn new(calibration: Calibration) -> Monitor {
        Monitor {
            calibration,
            above: [0; PARTS],
        }
    }

    /// Takes one check's parts: an alarm when a watched part has been
    /// above the threshold for its [`PART_PERSISTENCE`] checks in a row;
    /// its cause is the most surprising part that alarms (or, without an
    /// alarm, the most surprising part).
    pub fn check(&mut self, parts: &Parts) -> Verdict {
        let calibration = &self.calibration;
        // The most surprising part, and the most surprising that alarms.
        let mut top = (WATCHED[0], f64::NEG_INFINITY);
        let mut alarming: Option<(usize, f64)> = None;
        for (i, z) in calibration.scores(parts) {
            self.above[i] = if z > calibration.threshold {
                self.above[i] + 1
            } else {
                0
            };
            if z > top.1 {
                top = (i, z);
            }
            if self.above[i] >= calibration.persistence_of(i) && alarming.is_none_or(|(_, best)| z > best) {
                alarming = Some((i, z));
            }
        }
        Verdict {
            surprise: top.1,
            alarm: alarming.is_some(),
            cause: Parts::NAMES[alarming.unwrap_or(top).0],
        }
    }

    /// What it was calibrated with.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Forgets the checks so far (a new episode).
    pub fn reset(&mut self) {
        self.above = [0; PARTS];
    }
}

/// Below this load (a fraction of the stall torque) the gripper holds
/// nothing worth watching.
const MIN_HELD_LOAD: f64 = 0.02;

/// The gripper servo's load between checks, against what it held with at
/// the episode's first check: jaws squeezing a sponge load their servo,
/// and let go of it they do not (on the twin, a tenth of the stall torque
/// falls to 0). An interval is judged on its median reading, so that a
/// policy squeezing harder for a few steps before a drop, or a reading
/// that spikes, does not hide that most of the interval held nothing.
#[derive(Debug, Clone, Default)]
pub struct Grip {
    /// Whether the episode's first check has been.
    anchored: bool,
    /// The load at the first check (or the first reading after it).
    held: Option<f64>,
    last: Option<f64>,
    /// The readings since the last check.
    readings: Vec<f64>,
}

impl Grip {
    /// A load reading (fraction of the stall torque, by magnitude).
    pub fn measure(&mut self, load: f64) {
        let load = load.abs();
        if !load.is_finite() {
            return;
        }
        self.last = Some(load);
        if self.anchored && self.held.is_none() {
            self.held = Some(load);
        }
        self.readings.push(load);
    }

    /// The episode's first check: what it holds now is what later checks
    /// are compared with.
    pub fn first(&mut self) {
        self.anchored = true;
        self.held = self.last;
        self.readings.clear();
    }

    /// Fills `parts.grip` from the readings since the last check, and
    /// starts the next interval.
    pub fn report(&mut self, parts: &mut Parts) {
        parts.grip = match (self.held, median(&mut self.readings)) {
            (Some(held), Some(median)) if held >= MIN_HELD_LOAD => ((held - median) / held).max(0.0) as f32,
            _ => 0.0,
        };
        self.readings.clear();
    }

    /// Forgets the episode.
    pub fn reset(&mut self) {
        *self = Grip::default();
    }
}

/// The middle of `values` (the mean of the two middle ones for an even
/// count; reorders them); `None` when there are none.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

/// The parts one robot's checks take from outside the world model: the
/// joints at every control step ([`Following`]), the camera's view against
/// the episode's first check ([`Registration`]), its colours against the
/// calibration's and the episode's earlier checks' ([`ColourBins`]) and
/// each pixel's against the blends the first check explains ([`Tint`]).
/// One per robot and episode; `sponge eval`, `sponge wm rollout` and the
/// launch monitor node drive it alike.
#[derive(Debug, Clone)]
pub struct Senses {
    following: Following,
    grip: Grip,
    registration: Registration,
    colours: ColourNovelty,
    tint: Tint,
    /// Checks since the episode's first.
    checks: usize,
}

/// How many checks after the episode's first (the world model's anchor)
/// its `state` is not judged: 2, two thirds of a second at 10 steps a
/// check. From rest the arm starts on the policy's first commands (see
/// [`SETTLE_S`]), and the model's joints over those first segments miss
/// more than later: with the world model trained on the policy's own
/// full-length runs as well (2026-12-07), `state` passed its margin on 4
/// of 1,800 first and second checks and on none of some 32,000 later ones
/// (900 runs, seeds 20–32,000,000, fault runs up to their fault), and the
/// calibration's largest `state` was a first check's. A fault at the very
/// start is left to the other parts for that long.
pub const STATE_SETTLE_CHECKS: usize = 2;

impl Senses {
    /// For the SO-100 commanded `fps` times a second.
    pub fn so100(fps: f64) -> Senses {
        Senses {
            following: Following::so100(fps),
            grip: Grip::default(),
            registration: Registration::default(),
            colours: ColourNovelty::default(),
            tint: Tint::default(),
            checks: 0,
        }
    }

    /// Judges the joints' following by `response` (from the calibration;
    /// `None`: as if they moved with their setpoints).
    pub fn with_response(mut self, response: Option<Response>) -> Senses {
        self.following = self.following.with_response(response);
        self
    }

    /// Keeps the joints' steps and the checks, for fitting a [`Response`]
    /// (see [`Following::keep_trace`]).
    pub fn keep_trace(&mut self) {
        self.following.keep_trace();
    }

    /// The steps and checks kept since [`Senses::keep_trace`].
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.following.take_trace()
    }

    /// A command sent to the arm (radians).
    pub fn command(&mut self, q: &JointVector) {
        self.following.command(q);
    }

    /// A joint reading (radians) after the last command, with the gripper
    /// servo's load (a fraction of its stall torque) where the robot reads
    /// it; without, `grip` stays 0.
    pub fn measure(&mut self, q: &JointVector, gripper_load: Option<f64>) {
        self.following.measure(q);
        if let Some(load) = gripper_load {
            self.grip.measure(load);
        }
    }

    /// The episode's first check (the world model's anchor), `frame` the
    /// camera's (square RGB8): what later checks are compared with.
    pub fn first(&mut self, frame: &[u8]) {
        self.checks = 0;
        self.following.report(&mut Parts::default());
        self.grip.first();
        self.registration.check(frame);
        self.tint.first(frame);
    }

    /// A later check: fills `parts`' `following`, `pan`, `grip`, `blind`,
    /// `shift`, `view`, `tint` and `colour` (the last against
    /// `calibration`'s colours; 0 without them, and at the first colour
    /// check of the episode), and sets the world model's `state` to 0 for
    /// the first [`STATE_SETTLE_CHECKS`] checks. Returns the frame's
    /// colours, for calibrating on them.
    pub fn check(
        &mut self,
        parts: &mut Parts,
        frame: &[u8],
        calibration: Option<&Calibration>,
    ) -> ColourBins {
        self.checks += 1;
        if self.checks <= STATE_SETTLE_CHECKS {
            parts.state = 0.0;
        }
        self.following.report(parts);
        self.grip.report(parts);
        let seen = self.registration.check(frame);
        parts.shift = seen.shift;
        parts.blind = seen.blind;
        parts.view = seen.view;
        parts.tint = self.tint.check(frame);
        let bins = ColourBins::of(frame);
        parts.colour = match calibration.filter(|c| !c.colours.is_empty()) {
            Some(c) => self.colours.check(&bins, &c.colours, 0),
            None => 0.0,
        };
        bins
    }

    /// Forgets the episode (a new one, or the arm held and let go).
    pub fn reset(&mut self) {
        self.following.reset();
        self.grip.reset();
        self.registration.reset();
        self.colours.reset();
        self.tint.reset();
        self.checks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(i: usize) -> Parts {
        let wobble = (i as f32 * 0.37).sin();
        Parts {
            latent: 0.2 + 0.02 * wobble,
            state: 0.05 + 0.01 * wobble,
            image: 0.01 + 0.001 * wobble,
            expected_image: 0.012 + 0.001 * wobble,
            ..Parts::default()
        }
    }

    #[test]
    fn normal_checks_stay_quiet_and_a_jump_in_one_part_alarms_after_persistence() {
        let calm: Vec<Parts> = (0..500).map(normal).collect();
        let calibration = Calibration::fit(&calm, 2).expect("enough checks");
        assert!(calibration.threshold >= calibration.max_seen);
        let mut monitor = Monitor::new(calibration);
        for (i, p) in calm.iter().enumerate() {
            assert!(!monitor.check(p).alarm, "false alarm at check {i}");
        }
        // The latent part is recorded, not watched.
        let mut drifting = normal(3);
        drifting.latent = 50.0;
        assert!(!monitor.check(&drifting).alarm);
        let mut blocked = normal(3);
        blocked.state = 0.5;
        let first = monitor.check(&blocked);
        assert!(!first.alarm, "persistence 2 waits for a second check");
        assert_eq!(first.cause, "state");
        assert!(monitor.check(&blocked).alarm);
        monitor.reset();
        assert!(!monitor.check(&blocked).alarm);
        // A part that never moved on normal runs counts from its least scale.
        monitor.reset();
        let mut loosened = normal(3); // a jaw eased: a third of the load
        loosened.grip = 0.3;
        assert!(monitor.check(&loosened).surprise <= 1.0);
        let mut dropped = normal(3);
        dropped.grip = 1.0;
        assert_eq!(monitor.check(&dropped).cause, "grip");
        assert!(monitor.check(&dropped).alarm);
    }

    #[test]
    fn the_first_step_after_the_start_is_not_judged() {
        let at = |x: f64| -> JointVector { [x; NUM_JOINTS] };
        let mut following = Following::new(0.1);
        let mut parts = Parts::default();
        // Under way when watching starts: sent to stay, it moves on.
        following.measure(&at(0.0));
        following.command(&at(0.0));
        following.measure(&at(0.05));
        following.report(&mut parts);
        assert_eq!(parts.following, 0.0);
        // The next step is judged: it moved 0.05 where it was sent to stay.
        following.command(&at(0.05));
        following.measure(&at(0.1));
        following.report(&mut parts);
        assert!(
            (parts.following - 0.05 * FOLLOWING_JOINTS as f32).abs() < 1e-6,
            "{parts:?}"
        );
        // And so after a reset.
        following.reset();
        following.measure(&at(0.0));
        following.command(&at(0.0));
        following.measure(&at(0.05));
        following.report(&mut parts);
        assert_eq!(parts.following, 0.0);
    }

    #[test]
    fn the_first_third_of_a_second_is_not_judged_and_a_block_is_caught_right_after() {
        // Commanded at 30 Hz towards 1 rad on every joint; a free arm
        // closes half its gap a step, a blocked one stays where it is.
        let run = |following: &mut Following, blocked: bool, keep: bool| -> Vec<(f32, f32)> {
            if keep {
                following.keep_trace();
            }
            let mut q: JointVector = [0.0; NUM_JOINTS];
            let mut reports = Vec::new();
            following.measure(&q);
            following.report(&mut Parts::default()); // the episode's first check
            for step in 1..=30 {
                following.command(&[1.0; NUM_JOINTS]);
                if !blocked {
                    q = q.map(|x| x + 0.5 * (1.0 - x));
                }
                following.measure(&q);
                if step % 10 == 0 {
                    let mut parts = Parts::default();
                    following.report(&mut parts);
                    reports.push((parts.following, parts.pan));
                }
            }
            reports
        };
        let mut following = Following::so100(30.0);
        let blocked = run(&mut following, true, true);
        assert_eq!(
            blocked[0],
            (0.0, 0.0),
            "the first check after the start judges nothing"
        );
        assert!(
            blocked[1].1 > 0.05,
            "a blocked pan misses its moves from the second check on: {blocked:?}"
        );
        // The trace keeps the settling steps for fitting, marked, and a
        // replay judges as the monitor did.
        let trace = following.take_trace();
        let steps: Vec<&Step> = trace.iter().filter_map(Traced::step).collect();
        assert_eq!(steps.len(), 29);
        assert_eq!(steps.iter().filter(|s| s.settling).count(), 9);
        assert_eq!(Following::replay(&trace, None), blocked);
        // The same after a reset (the arm held and let go), and the free
        // arm's later checks stay far below the blocked one's.
        following.reset();
        let again = run(&mut following, true, false);
        assert_eq!(again, blocked);
        following.reset();
        let free = run(&mut following, false, false);
        assert!(free[1].1 < blocked[1].1 / 10.0, "{free:?} against {blocked:?}");
        // Without a settling window the first check is judged.
        let mut eager = Following::so100(30.0).settling_for(0);
        assert!(run(&mut eager, true, false)[0].1 > 0.05);
    }

    #[test]
    fn the_world_models_state_is_judged_from_the_third_check_after_the_anchor() {
        let frame = vec![128u8; 16 * 16 * 3];
        let mut senses = Senses::so100(30.0);
        let states = |senses: &mut Senses, n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let mut parts = Parts {
                        state: 0.7,
                        ..Parts::default()
                    };
                    senses.check(&mut parts, &frame, None);
                    parts.state
                })
                .collect()
        };
        senses.first(&frame);
        assert_eq!(states(&mut senses, 4), [0.0, 0.0, 0.7, 0.7]);
        // A new anchor (a new episode, or the arm let go after a hold)
        // starts the count again.
        senses.first(&frame);
        assert_eq!(states(&mut senses, 3), [0.0, 0.0, 0.7]);
        senses.reset();
        assert_eq!(states(&mut senses, 3), [0.0, 0.0, 0.7]);
    }

    #[test]
    fn blind_is_judged_on_a_range_a_fifth_wider_than_the_calibration_saw() {
        let calm: Vec<Parts> = (0..500)
            .map(|i| Parts {
                blind: 0.3 + 0.1 * (i as f32 * 0.37).sin(),
                ..normal(i)
            })
            .collect();
        let calibration = Calibration::fit(&calm, 1).expect("enough checks");
        let (mean, top) = (calibration.mean[12], calibration.max[12]);
        let mut monitor = Monitor::new(calibration);
        let hiding = |score: f64| Parts {
            blind: (mean + score * (top - mean)) as f32,
            ..normal(3)
        };
        // Past the margin on the range the calibration saw (the arm at its
        // nearest), not on the stretched one; a covered camera hides more.
        let near = monitor.check(&hiding(1.4));
        assert!(
            !near.alarm && (near.surprise - 1.4 / 1.2).abs() < 1e-3,
            "{near:?}"
        );
        let covered = monitor.check(&hiding(1.6));
        assert!(covered.alarm && covered.cause == "blind", "{covered:?}");
    }

    #[test]
    fn the_camera_parts_wait_for_a_second_check_and_the_arm_parts_do_not() {
        let calm: Vec<Parts> = (0..500).map(normal).collect();
        let mut monitor = Monitor::new(Calibration::fit(&calm, 1).expect("enough checks"));
        // A view that spikes for one check (the arm filling the picture) is
        // surprising but no alarm; one that stays (a knocked camera) is.
        let knocked = Parts {
            view: 3.0,
            ..normal(3)
        };
        let first = monitor.check(&knocked);
        assert!(first.surprise > 1.25 && !first.alarm, "{first:?}");
        assert!(!monitor.check(&normal(4)).alarm);
        assert!(!monitor.check(&knocked).alarm);
        let second = monitor.check(&knocked);
        assert!(second.alarm && second.cause == "view", "{second:?}");
        // The same for shift.
        let shifted = Parts {
            shift: 3.0,
            ..normal(3)
        };
        monitor.reset();
        assert!(!monitor.check(&shifted).alarm);
        assert!(monitor.check(&shifted).alarm);
        // Paint: `tint` counts only pixels that stayed a check already, so
        // it alarms at once; `colour` is recorded, no longer watched.
        monitor.reset();
        let tinted = Parts {
            tint: 0.01,
            ..normal(3)
        };
        let verdict = monitor.check(&tinted);
        assert!(verdict.alarm && verdict.cause == "tint", "{verdict:?}");
        monitor.reset();
        let coloured = Parts {
            colour: 0.01,
            ..normal(3)
        };
        for _ in 0..3 {
            assert!(!monitor.check(&coloured).alarm);
        }
        // A blocked arm alarms at its first check, and names the part that
        // alarms rather than a camera part still waiting, however surprising.
        monitor.reset();
        let blocked = Parts {
            following: 5.0,
            view: 1000.0,
            ..normal(3)
        };
        let verdict = monitor.check(&blocked);
        assert!(verdict.alarm, "{verdict:?}");
        assert_eq!(verdict.cause, "following");
    }

    #[test]
    fn a_fitted_response_follows_a_lagging_servo_and_shows_a_block_more_plainly() {
        // Servos whose setpoint ramps at 0.05 rad a step and whose joints
        // close 0.3 of their gap to it and carry 0.4 of their last step,
        // with a wobble; the commands jump about, as a policy's do.
        let (gain, carry, limit) = (0.3, 0.4, 0.05);
        let run = |blocked_from: Option<usize>, response: Option<Response>, trace: bool| {
            let mut following = Following::new(limit).with_response(response);
            if trace {
                following.keep_trace();
            }
            let (mut q, mut setpoint, mut last) = ([0.0; NUM_JOINTS], [0.0; NUM_JOINTS], [0.0; NUM_JOINTS]);
            following.measure(&q);
            following.report(&mut Parts::default());
            let mut checks = Vec::new();
            for t in 0..300 {
                let goal: JointVector = std::array::from_fn(|j| {
                    0.4 * ((t as f64) * 0.07 + j as f64).sin() + 0.1 * ((t * (j + 3)) as f64 * 1.3).sin()
                });
                following.command(&goal);
                if blocked_from.is_none_or(|at| t < at) {
                    for j in 0..NUM_JOINTS {
                        setpoint[j] += (goal[j] - setpoint[j]).clamp(-limit, limit);
                        let wobble = 0.001 * ((t * 7 + j) as f64).sin();
                        last[j] = gain * (setpoint[j] - q[j]) + carry * last[j] + wobble;
                        q[j] += last[j];
                    }
                }
                following.measure(&q);
                if t % 10 == 9 {
                    let mut parts = Parts::default();
                    following.report(&mut parts);
                    checks.push(parts.following);
                }
            }
            (checks, following.take_trace())
        };
        let (top_speed, trace) = run(None, None, true);
        let fitted = Response::fit(std::slice::from_ref(&trace)).expect("fits");
        for j in 0..FOLLOWING_JOINTS {
            assert!((fitted.gain[j] - gain).abs() < 0.02, "{fitted:?}");
            assert!((fitted.carry[j] - carry).abs() < 0.02, "{fitted:?}");
        }
        // Replaying the trace is what the senses would have said online.
        let (online, _) = run(None, Some(fitted), false);
        let replayed: Vec<f32> = Following::replay(&trace, Some(fitted))
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(replayed.len(), online.len());
        assert!(replayed.iter().zip(&online).all(|(a, b)| (a - b).abs() < 1e-6));
        let worst = |checks: &[f32]| checks.iter().copied().fold(0.0f32, f32::max);
        // The lag the top-speed model counts as missed, the fitted one expects.
        assert!(
            worst(&online) < 0.2 * worst(&top_speed),
            "{online:?} against {top_speed:?}"
        );
        // A block from step 150: against each model's own normal worst,
        // the fitted response sees it at many times its normal worst.
        let ratio = |response: Option<Response>, normal: &[f32]| {
            let (blocked, _) = run(Some(150), response, false);
            blocked[15] / worst(normal)
        };
        let (with_fit, without) = (ratio(Some(fitted), &online), ratio(None, &top_speed));
        assert!(
            with_fit > 3.0 && with_fit > 2.0 * without,
            "{with_fit} against {without}"
        );
        // Too few steps to fit: none.
        assert_eq!(Response::fit(&[trace[..50].to_vec()]), None);
    }

    #[test]
    fn a_sponge_pressed_on_the_table_holds_the_arm_back_and_the_fitted_press_expects_it() {
        // Joints that close 0.3 of their gap and carry 0.4 of their last
        // step, held back by 1 rad a step and slowed by a share 10 of their
        // gap per metre the face is sent below the table, as the sponge's
        // friction does; the face dips under the table for a third of the
        // steps, as a wiping policy's does.
        let (gain, carry, press, pressed_gain) = (0.3, 0.4, -1.0, -10.0);
        let pressed = {
            let mut last = [0.0; FOLLOWING_JOINTS];
            let mut trace = Vec::new();
            for t in 0..600 {
                let gap: [f64; FOLLOWING_JOINTS] =
                    std::array::from_fn(|j| 0.05 * ((t as f64) * 0.3 + j as f64).sin() + 0.02);
                let depth = (0.012 * ((t as f64) * 0.05).sin() - 0.006).max(0.0);
                let moved: [f64; FOLLOWING_JOINTS] = std::array::from_fn(|j| {
                    gain * gap[j]
                        + carry * last[j]
                        + press * gap[j].signum() * depth
                        + pressed_gain * gap[j] * depth
                        + 0.0005 * ((t * 7 + j) as f64).sin()
                });
                trace.push(Traced::Step(Step {
                    top_speed: gap,
                    gap,
                    last_move: last,
                    moved,
                    depth,
                    settling: false,
                }));
                last = moved;
                if t % 10 == 9 {
                    trace.push(Traced::Check);
                }
            }
            trace
        };
        let fitted = Response::fit(std::slice::from_ref(&pressed)).expect("fits");
        for j in 0..FOLLOWING_JOINTS {
            assert!((fitted.press[j] - press).abs() < 0.1, "{fitted:?}");
            assert!((fitted.pressed_gain[j] - pressed_gain).abs() < 1.0, "{fitted:?}");
            assert!((fitted.gain[j] - gain).abs() < 0.02, "{fitted:?}");
        }
        // Judged without the pressing term, the checks where the face was
        // pressed miss several times further than with it.
        let worst = |response: Response| {
            Following::replay(&pressed, Some(response))
                .iter()
                .map(|r| r.0)
                .fold(0.0f32, f32::max)
        };
        let without = Response {
            press: [0.0; FOLLOWING_JOINTS],
            pressed_gain: [0.0; FOLLOWING_JOINTS],
            ..fitted
        };
        assert!(
            worst(without) > 3.0 * worst(fitted),
            "{} against {}",
            worst(without),
            worst(fitted)
        );
        // Runs that never press fit no pressing term.
        let free: Vec<Traced> = pressed
            .iter()
            .map(|t| match *t {
                Traced::Step(step) => Traced::Step(Step { depth: 0.0, ..step }),
                Traced::Check => Traced::Check,
            })
            .collect();
        let unpressed = Response::fit(&[free]).expect("fits");
        assert_eq!(unpressed.press, [0.0; FOLLOWING_JOINTS]);
        assert_eq!(unpressed.pressed_gain, [0.0; FOLLOWING_JOINTS]);

        // The depth is where the setpoints send the face: the arm folded up
        // holds it well above the table, all arm joints at 0.4 rad send it
        // about 7 cm below (the robot model's forward kinematics).
        let mut following = Following::new(1.0);
        following.keep_trace();
        for q in [
            [0.0; NUM_JOINTS],
            [0.0; NUM_JOINTS],
            [0.0; NUM_JOINTS],
            [0.4, 0.4, 0.4, 0.4, 0.4, 0.0],
        ] {
            following.command(&q);
            following.measure(&q);
        }
        let depths: Vec<f64> = following
            .take_trace()
            .iter()
            .filter_map(|t| t.step().map(|step| step.depth))
            .collect();
        assert_eq!(depths.len(), 2, "{depths:?}");
        assert_eq!(depths[0], 0.0);
        assert!((0.06..0.08).contains(&depths[1]), "{depths:?}");
    }

    #[test]
    fn grip_stays_small_while_the_sponge_is_squeezed_and_shows_a_drop() {
        // Checks every 10 steps; the load wobbles by 5% of itself while
        // held; `drop_at` lets go.
        let run = |held: f64, drop_at: Option<usize>| -> Vec<f32> {
            let mut grip = Grip::default();
            grip.measure(held);
            grip.first();
            let mut checks = Vec::new();
            for t in 0..60 {
                let dropped = drop_at.is_some_and(|at| t >= at);
                let wobble = 1.0 + 0.05 * (t as f64 * 0.7).sin();
                grip.measure(if dropped { 0.0 } else { held * wobble });
                if t % 10 == 9 {
                    let mut parts = Parts::default();
                    grip.report(&mut parts);
                    checks.push(parts.grip);
                }
            }
            checks
        };
        let calm = run(0.1, None);
        assert!(calm.iter().all(|&g| g < 0.05), "{calm:?}");
        let dropped = run(0.1, Some(25));
        assert_eq!(dropped[..2], calm[..2]);
        assert!(
            dropped[2] > 0.4,
            "half the interval without the sponge: {dropped:?}"
        );
        assert!(dropped[3..].iter().all(|&g| g == 1.0), "{dropped:?}");
        // Jaws holding nothing: no part to watch, whatever follows.
        assert!(run(0.005, Some(25)).iter().all(|&g| g == 0.0));
        // The first reading after the first check anchors when none came before.
        let mut grip = Grip::default();
        grip.first();
        grip.measure(f64::NAN);
        grip.measure(0.1);
        grip.measure(0.0);
        grip.measure(f64::INFINITY);
        let mut parts = Parts::default();
        grip.report(&mut parts);
        assert_eq!(parts.grip, 0.5, "a reading that is not a number is skipped");

        // A policy that squeezes three times as hard for the 3 steps before
        // it lets go: the interval's mean load is near what it held at the
        // anchor (grip 0.1), its median is none (CI saw such a run).
        let mut grip = Grip::default();
        grip.measure(0.03);
        grip.first();
        for t in 0..10 {
            grip.measure(if t < 3 { 0.09 } else { 0.0 });
        }
        grip.report(&mut parts);
        assert_eq!(parts.grip, 1.0);
        // One reading that spikes to nothing in a held interval is not a drop.
        for t in 0..10 {
            grip.measure(if t == 4 { 0.0 } else { 0.03 });
        }
        grip.report(&mut parts);
        assert_eq!(parts.grip, 0.0);
    }

    /// Servos that cover `share` of the move they are asked for, at most
    /// `speed` radians a step.
    fn follow(q: &mut JointVector, goal: &JointVector, speed: f64, share: f64) {
        for (a, g) in q.iter_mut().zip(goal) {
            *a += share * (g - *a).clamp(-speed, speed);
        }
    }

    #[test]
    fn following_stays_small_on_a_free_arm_and_shows_a_block_and_a_shove() {
        let goal_at =
            |t: usize| -> JointVector { std::array::from_fn(|j| 0.6 * ((t as f64) * 0.05 + j as f64).sin()) };
        let run = |fault: Option<(&str, usize)>| -> Vec<f32> {
            let mut following = Following::new(0.02);
            let mut q = goal_at(0);
            following.measure(&q);
            let mut checks = Vec::new();
            for t in 0..90 {
                let goal = goal_at(t);
                following.command(&goal);
                match fault {
                    Some(("block", at)) if t >= at => {}
                    _ => follow(&mut q, &goal, 0.02, 0.9),
                }
                if let Some(("shove", at)) = fault
                    && t == at
                {
                    q[0] += 0.2;
                }
                following.measure(&q);
                if t % 10 == 9 {
                    let mut parts = Parts::default();
                    following.report(&mut parts);
                    checks.push(parts.following);
                }
            }
            checks
        };
        let free = run(None);
        let normal = free.iter().copied().fold(0.0f32, f32::max);
        // Lagging by a tenth of each move: at most 0.002 rad a joint a step.
        assert!(normal > 0.0 && normal <= 0.0101, "free arm: {free:?}");
        let blocked = run(Some(("block", 30)));
        assert!(blocked[..3] == free[..3], "before the block nothing differs");
        assert!(blocked[3] > 5.0 * normal, "{blocked:?} against {normal}");
        // A shove of 0.2 rad, averaged over its check's ten steps, and the
        // servos pulling back at their top speed after it.
        let shoved = run(Some(("shove", 45)));
        assert!(shoved[4] > normal + 0.015, "{shoved:?} against {normal}");
        assert!(shoved[3] == free[3]);
        // Readings without a command in between, and a report with no steps, count nothing.
        let mut following = Following::new(0.02);
        following.measure(&[0.0; NUM_JOINTS]);
        following.measure(&[0.5; NUM_JOINTS]);
        let mut parts = Parts::default();
        following.report(&mut parts);
        assert_eq!(parts.following, 0.0);
        following.command(&[0.5; NUM_JOINTS]);
        following.measure(&[0.0; NUM_JOINTS]);
        following.report(&mut parts);
        // The servos would have held at 0.5: five arm joints 0.5 off.
        assert!((parts.following - 2.5).abs() < 1e-6, "{}", parts.following);
        assert!((parts.pan - 0.5).abs() < 1e-6, "{}", parts.pan);
        // The pan's part is the pan's alone: two steps, one with the pan
        // 0.3 off and the elbow 0.1, one with the elbow alone 0.1 off.
        let mut q = [0.0; NUM_JOINTS];
        following.measure(&q);
        following.report(&mut parts);
        for off in [[0.3, 0.0, 0.1, 0.0, 0.0, 0.0], [0.0, 0.0, 0.1, 0.0, 0.0, 0.0]] {
            following.command(&q);
            q = off;
            following.measure(&q);
            q = [0.0; NUM_JOINTS];
            following.measure(&q);
        }
        following.report(&mut parts);
        assert!((parts.pan - 0.15).abs() < 1e-6, "pan {}", parts.pan);
        assert!(
            (parts.following - 0.25).abs() < 1e-6,
            "following {}",
            parts.following
        );
    }

    /// A frame of `colours` in equal shares.
    fn frame(colours: &[[u8; 3]]) -> Vec<u8> {
        (0..100).flat_map(|i| colours[i * colours.len() / 100]).collect()
    }

    #[test]
    fn a_colour_no_calibration_episode_showed_is_counted_and_one_they_showed_is_not() {
        let (grey, orange, brown, green) = ([180, 180, 185], [230, 110, 40], [90, 60, 30], [30, 190, 40]);
        // Three normal episodes: grey table and orange sponge in all, a
        // brown spill in two.
        let colours = vec![
            vec![ColourBins::of(&frame(&[grey, orange, brown]))],
            vec![ColourBins::of(&frame(&[grey, orange, brown]))],
            vec![ColourBins::of(&frame(&[grey, orange]))],
        ];
        let mut parts = vec![vec![Parts::default()]; 3];
        let seen_by = colour_out_of_episode(&mut parts, &colours);
        assert!(
            parts.iter().all(|e| e[0].colour == 0.0),
            "each colour is in another episode too"
        );
        // An episode alone in showing brown, after its first check, counts
        // it from the second check in a row that shows it, as a fresh scene
        // would.
        let lonely = vec![
            vec![
                ColourBins::of(&frame(&[grey, orange])),
                ColourBins::of(&frame(&[grey, orange, brown])),
                ColourBins::of(&frame(&[grey, orange, brown])),
                ColourBins::of(&frame(&[grey, orange, brown])),
            ],
            vec![ColourBins::of(&frame(&[grey, orange])); 4],
        ];
        let mut parts = vec![vec![Parts::default(); 4]; 2];
        colour_out_of_episode(&mut parts, &lonely);
        let shares: Vec<f32> = parts[0].iter().map(|p| p.colour).collect();
        assert!(
            shares[..2] == [0.0, 0.0] && shares[2..].iter().all(|s| (s - 0.34).abs() < 0.011),
            "{shares:?}"
        );
        assert!(parts[1].iter().all(|p| p.colour == 0.0));
        let calibration = Calibration {
            colours: seen_by,
            ..Calibration::fit(&(0..50).map(normal).collect::<Vec<_>>(), 1).expect("fits")
        };
        let mut senses = Senses::so100(30.0);
        let colour = |senses: &mut Senses, frame: &[u8]| {
            let mut parts = Parts::default();
            senses.check(&mut parts, frame, Some(&calibration));
            parts.colour
        };
        let plain = frame(&[grey, orange, brown]);
        // The first check has nothing of its own episode to go by: 0.
        assert_eq!(colour(&mut senses, &frame(&[grey, green])), 0.0);
        senses.reset();
        assert_eq!(colour(&mut senses, &plain), 0.0);
        // Light shifting the known colours a little stays within their bins.
        let dimmer = frame(&[[176, 178, 180], [226, 106, 36], [88, 58, 28]]);
        assert_eq!(colour(&mut senses, &dimmer), 0.0);
        // The sponge turned from the light, a level darker in each channel,
        // is a shade of the scene's own orange, however long it shows.
        let shaded = frame(&[grey, [200, 90, 30], brown]);
        for _ in 0..3 {
            assert_eq!(colour(&mut senses, &shaded), 0.0);
        }
        // A colour that shows for one check only (a shade, an edge) is no spill.
        let magenta = [200, 30, 170];
        assert_eq!(colour(&mut senses, &frame(&[grey, orange, brown, magenta])), 0.0);
        assert_eq!(colour(&mut senses, &plain), 0.0);
        assert_eq!(colour(&mut senses, &frame(&[grey, orange, brown, magenta])), 0.0);
        assert_eq!(colour(&mut senses, &plain), 0.0);
        // Green paint on a fifth of the picture counts from the second
        // check that shows it, for as long as it stays.
        let painted = frame(&[grey, grey, orange, brown, green]);
        assert_eq!(colour(&mut senses, &painted), 0.0);
        for _ in 0..3 {
            assert!((colour(&mut senses, &painted) - 0.2).abs() < 1e-6);
        }
        // The scene's own look is taken as it comes: green in the first
        // check counts nothing later.
        senses.reset();
        for _ in 0..3 {
            assert_eq!(colour(&mut senses, &painted), 0.0);
        }
    }

    #[test]
    fn paint_tinting_a_spill_is_no_blend_of_the_scene_and_wiping_shade_and_the_arm_are() {
        let (grey, orange, brown, green) = ([180, 180, 185], [230, 110, 40], [110, 70, 30], [30, 190, 40]);
        let blend = |a: [u8; 3], b: [u8; 3], share: f32| -> [u8; 3] {
            std::array::from_fn(|i| (f32::from(a[i]) * (1.0 - share) + f32::from(b[i]) * share).round() as u8)
        };
        let shade = |c: [u8; 3], light: f32| c.map(|v| (f32::from(v) * light) as u8);
        let mut tint = Tint::default();
        // Before the first check there is nothing to go by, nor after a
        // first check with no pixel bright enough (a covered lens) or none.
        assert_eq!(tint.check(&frame(&[grey, green])), 0.0);
        for nothing in [frame(&[[5, 5, 5]]), Vec::new()] {
            tint.first(&nothing);
            for _ in 0..2 {
                assert_eq!(tint.check(&frame(&[grey, green])), 0.0);
            }
        }
        // A grey table (most of the picture), an orange sponge and a brown spill.
        tint.first(&frame(&[grey, grey, grey, orange, brown]));
        let mut twice = |colours: &[[u8; 3]]| [tint.check(&frame(colours)), tint.check(&frame(colours))];
        // The spill wiped thinner, the table in shadow, the arm's white and
        // black, the sponge's edge against the table: all blends of the
        // table with the first check's colours, however long they stay.
        let thinner = blend(grey, brown, 0.4);
        assert_eq!(twice(&[grey, grey, thinner, orange, grey]), [0.0, 0.0]);
        assert_eq!(twice(&[shade(grey, 0.55), grey, grey, orange, brown]), [0.0, 0.0]);
        assert_eq!(
            twice(&[[235, 235, 235], [15, 15, 15], grey, orange, brown]),
            [0.0, 0.0]
        );
        assert_eq!(
            twice(&[grey, grey, blend(grey, orange, 0.5), orange, brown]),
            [0.0, 0.0]
        );
        // Green paint over a watery spill, at 45% over the table, is no
        // blend of the scene's: it counts from the second check in a row.
        let tinted = blend(grey, green, 0.45);
        let [first, second] = twice(&[grey, grey, grey, orange, tinted]);
        assert_eq!(first, 0.0);
        assert!((second - 0.2).abs() < 1e-6, "{second}");
        // A colour for one check only (a blend at an edge) counts nothing.
        let magenta = [200, 30, 170];
        assert_eq!(tint.check(&frame(&[grey, grey, grey, orange, brown])), 0.0);
        for _ in 0..3 {
            assert_eq!(tint.check(&frame(&[grey, grey, grey, orange, magenta])), 0.0);
            assert_eq!(tint.check(&frame(&[grey, grey, grey, orange, brown])), 0.0);
        }
        // Too dark to tell: the arm's black in a green light.
        let dark = [10, 60, 12];
        assert_eq!(
            [
                tint.check(&frame(&[grey, dark])),
                tint.check(&frame(&[grey, dark]))
            ],
            [0.0, 0.0]
        );
        // With a green sponge in the scene, the green tint is a blend of its
        // colour with the table's: the part's known miss.
        tint.reset();
        tint.first(&frame(&[grey, grey, grey, green, brown]));
        for _ in 0..3 {
            assert_eq!(tint.check(&frame(&[grey, grey, grey, green, tinted])), 0.0);
        }
    }

    #[test]
    fn a_vivid_colour_counts_even_where_other_episodes_showed_it() {
        let (grey, orange, green, dim) = ([180, 180, 185], [230, 110, 40], [30, 190, 40], [110, 110, 110]);
        // Other episodes showed a green sponge and a dim grey.
        let mut seen_by = vec![0u16; COLOUR_BINS];
        for colour in [grey, orange, green, dim] {
            seen_by[usize::from(ColourBins::of(&colour).0[0].0)] = 3;
        }
        let mut novelty = ColourNovelty::default();
        let check = |novelty: &mut ColourNovelty, colours: &[[u8; 3]]| {
            novelty.check(&ColourBins::of(&frame(colours)), &seen_by, 0)
        };
        assert_eq!(check(&mut novelty, &[grey, orange]), 0.0);
        // Dim grey, two levels off the table's: seen elsewhere, not vivid.
        for _ in 0..3 {
            assert_eq!(check(&mut novelty, &[grey, orange, dim]), 0.0);
        }
        // Green paint, where this episode's sponge is orange.
        assert_eq!(check(&mut novelty, &[grey, orange, green]), 0.0);
        let share = check(&mut novelty, &[grey, orange, green]);
        assert!((share - 0.34).abs() < 0.011, "{share}");
        // With a green sponge in the first check, green paint is its colour.
        let mut novelty = ColourNovelty::default();
        for _ in 0..3 {
            assert_eq!(check(&mut novelty, &[grey, green, orange]), 0.0);
        }
        assert!(vivid(usize::from(ColourBins::of(&green).0[0].0)));
        assert!(!vivid(usize::from(ColourBins::of(&grey).0[0].0)));
    }

    /// A 96×96 scene: a light table with a dark edge along the top and a
    /// brown spill, seen by a camera moved `camera` pixels, and a dark arm
    /// (a block) at `arm`.
    fn scene(camera: (i32, i32), arm: (i32, i32)) -> Vec<u8> {
        let mut frame = Vec::with_capacity(96 * 96 * 3);
        for y in 0..96i32 {
            for x in 0..96i32 {
                let (wx, wy) = (x + camera.0, y + camera.1);
                let mut px = if wy < 30 { [40, 40, 45] } else { [190, 190, 195] };
                if (wx - 60).pow(2) + (wy - 65).pow(2) < 49 {
                    px = [110, 70, 30];
                }
                if (x - arm.0).abs() < 8 && (y - arm.1).abs() < 14 {
                    px = [20, 20, 20];
                }
                frame.extend_from_slice(&px);
            }
        }
        frame
    }

    #[test]
    fn the_arm_moving_is_no_shift_and_the_camera_moving_is() {
        let mut registration = Registration::default();
        assert_eq!(
            registration.check(&scene((0, 0), (30, 50))).shift,
            0.0,
            "the first frame sets the reference"
        );
        let arm_moved = registration.check(&scene((0, 0), (45, 40))).shift;
        assert!(arm_moved < 1.0, "the arm alone moved: {arm_moved}");
        // A knock counts from the second check that finds the same shift.
        let once = registration.check(&scene((6, 4), (45, 40))).shift;
        assert_eq!(once, 0.0, "one check is not yet a knock");
        let knocked = registration.check(&scene((6, 4), (50, 44))).shift;
        assert!(knocked > 10.0, "the camera moved 6 and 4 pixels: {knocked}");
        // The picture back in place, then moved another way: a new shift
        // waits for its second check again.
        assert_eq!(registration.check(&scene((0, 0), (45, 40))).shift, 0.0);
        assert_eq!(registration.check(&scene((-6, 4), (45, 40))).shift, 0.0);
        // The arm moving hides a few of the first picture's edges; a cloth
        // over the left two thirds (as dark as the table's top edge) hides
        // those there.
        let moved = registration.check(&scene((0, 0), (45, 40))).blind;
        assert!(moved < 0.5, "the arm moved: {moved}");
        let mut covered = scene((0, 0), (30, 50));
        for (p, px) in covered.chunks_exact_mut(3).enumerate() {
            if p % 96 < 64 {
                px.copy_from_slice(&[40, 40, 45]);
            }
        }
        let blind = registration.check(&covered).blind;
        assert!(blind > moved + 0.3, "covered: {blind}, the arm moved: {moved}");
        // A new episode starts over; a frame that is not square counts nothing.
        registration.reset();
        assert_eq!(registration.check(&scene((6, 4), (45, 40))).shift, 0.0);
        assert_eq!(registration.check(&[0u8; 30]).shift, 0.0);
        assert_eq!(registration.check(&[0u8; 30]).blind, 0.0);
    }

    /// A tiled table (squares of 12 pixels, two greys) seen by a camera
    /// turned and stretched about the picture's centre, so that the
    /// table's point at `q` shows at pixel `centre + w (q - centre)`, and
    /// a dark arm at `arm`. Each pixel averages 4 × 4 samples, as a
    /// renderer's smoothing does.
    fn warped_scene(w: [[f32; 2]; 2], arm: (i32, i32)) -> Vec<u8> {
        let det = w[0][0] * w[1][1] - w[0][1] * w[1][0];
        let m = [[w[1][1] / det, -w[0][1] / det], [-w[1][0] / det, w[0][0] / det]];
        let c = 47.5;
        let mut frame = Vec::with_capacity(96 * 96 * 3);
        for y in 0..96i32 {
            for x in 0..96i32 {
                let mut light = 0.0;
                for sub in 0..16 {
                    let dx = x as f32 + (sub % 4) as f32 / 4.0 - 0.375 - c;
                    let dy = y as f32 + (sub / 4) as f32 / 4.0 - 0.375 - c;
                    let wx = c + m[0][0] * dx + m[0][1] * dy;
                    let wy = c + m[1][0] * dx + m[1][1] * dy;
                    let tile = (wx / 12.0).floor() + (wy / 12.0).floor();
                    if tile.rem_euclid(2.0) == 0.0 {
                        light += 1.0 / 16.0;
                    }
                }
                let grey = (100.0 + 60.0 * light) as u8;
                let mut px = [grey + 10, grey, grey - 10];
                if (x - arm.0).abs() < 8 && (y - arm.1).abs() < 14 {
                    px = [20, 20, 20];
                }
                frame.extend_from_slice(&px);
            }
        }
        frame
    }

    #[test]
    fn a_camera_turned_about_the_centre_is_a_view_change_and_the_arm_is_not() {
        let still = [[1.0, 0.0], [0.0, 1.0]];
        // Turned by about 6° and squeezed by 5% across: no shift matches it.
        let knocked = [[0.95, 0.1], [-0.1, 1.0]];
        let mut registration = Registration::default();
        assert_eq!(registration.check(&warped_scene(still, (30, 50))).view, 0.0);
        for arm in [(45, 40), (60, 45), (40, 60)] {
            let moved = registration.check(&warped_scene(still, arm)).view;
            assert!(moved < 1.0, "the arm alone moved to {arm:?}: {moved}");
        }
        // One knocked check is not enough: the check before matched unwarped.
        let once = registration.check(&warped_scene(knocked, (45, 40))).view;
        assert!(once < 1.0, "one check is not yet a knock: {once}");
        let twice = registration.check(&warped_scene(knocked, (50, 44)));
        assert!(twice.view > 3.0, "turned and stretched twice: {}", twice.view);
        assert!(
            twice.view > 2.0 * twice.shift,
            "a warp matches better than a shift: view {}, shift {}",
            twice.view,
            twice.shift
        );
        // A new episode starts over.
        registration.reset();
        assert_eq!(registration.check(&warped_scene(knocked, (45, 40))).view, 0.0);
    }

    #[test]
    fn too_few_checks_are_refused_and_the_calibration_round_trips() {
        assert!(Calibration::fit(&[normal(0); 3], 1).is_err());
        let calibration = Calibration::fit(&(0..50).map(normal).collect::<Vec<_>>(), 1).expect("fits");
        let path = std::env::temp_dir().join(format!("sponge-monitor-{}.json", std::process::id()));
        calibration.save(&path).expect("saves");
        let loaded = Calibration::load(&path).expect("loads");
        // JSON keeps floats to within their last digit.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
        for i in 0..PARTS {
            assert!(close(loaded.mean[i], calibration.mean[i]) && close(loaded.std[i], calibration.std[i]));
            assert!(close(loaded.max[i], calibration.max[i]));
        }
        assert!(
            close(loaded.threshold, calibration.threshold) && close(loaded.max_seen, calibration.max_seen)
        );
        assert_eq!(
            (loaded.persistence, loaded.checks),
            (calibration.persistence, calibration.checks)
        );
        assert_eq!(loaded.response, None);
        // A fitted response round-trips; one written before responses were
        // fitted (no field) loads without one; a broken one is refused.
        let response = Response {
            gain: [0.3, 0.31, 0.32, 0.33, 0.34],
            carry: [0.4, 0.41, 0.42, 0.43, 0.44],
            press: [-1.1, -0.7, -1.0, -0.6, 0.0],
            pressed_gain: [-4.0, -5.0, -5.9, -22.7, -3.2],
        };
        Calibration {
            response: Some(response),
            ..calibration.clone()
        }
        .save(&path)
        .expect("saves");
        let with = Calibration::load(&path).expect("loads");
        assert_eq!(with.response, Some(response));
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("reads")).expect("json");
        // One fitted before the pressing term judges as it was fitted: none.
        let fitted = json["response"].as_object_mut().expect("object");
        fitted.remove("press");
        fitted.remove("pressed_gain");
        std::fs::write(&path, json.to_string()).expect("writes");
        let without_press = Calibration::load(&path)
            .expect("loads")
            .response
            .expect("a response");
        assert_eq!(without_press.gain, response.gain);
        assert_eq!(without_press.press, [0.0; FOLLOWING_JOINTS]);
        assert_eq!(without_press.pressed_gain, [0.0; FOLLOWING_JOINTS]);
        json.as_object_mut().expect("object").remove("response");
        std::fs::write(&path, json.to_string()).expect("writes");
        assert_eq!(Calibration::load(&path).expect("older file loads").response, None);
        json["response"] = serde_json::json!({"gain": [0.3, 0.3], "carry": [0.4, 0.4, 0.4, 0.4, 0.4]});
        std::fs::write(&path, json.to_string()).expect("writes");
        let err = Calibration::load(&path).expect_err("two gains for five joints");
        assert!(err.contains("calibrate again"), "{err}");
        // A calibration with fewer parts (an older sponge) is refused with
        // the way out.
        std::fs::write(
            &path,
            r#"{"mean":[0,0,0,0],"std":[1,1,1,1],"threshold":5,"persistence":1,"checks":10,"max_seen":4}"#,
        )
        .expect("writes");
        let err = Calibration::load(&path).expect_err("four parts");
        assert!(
            err.contains("calibrate again") && err.contains("monitor"),
            "{err}"
        );
        // The same for the real calibration of the 14-part monitor before
        // `tint`; the one written with it loads.
        let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench");
        let err = Calibration::load(&bench.join("wm-shadow-monitor.json")).expect_err("14 parts");
        assert!(err.contains("calibrate again"), "{err}");
        let current = Calibration::load(&bench.join("wm-tint-monitor.json")).expect("15 parts");
        assert!(current.response.is_some());
        let _ = std::fs::remove_file(&path);
    }
}
