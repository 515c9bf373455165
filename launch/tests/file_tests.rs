//! Launch files: arguments, overrides, substitution, defaults, and errors
//! that point at the right place.

use std::path::Path;

use sponge_launch::Restart;
use sponge_launch::file::{LaunchError, line_column, parse};
use sponge_launch::nodes::NodeKind;
use sponge_launch::params::Value;

const FILE: &str = r#"# A twin and a teleop node.
# Second line of the description.
[args]
seed = 4
rate = 60
record = false
name = "front"

[session]
namespace = "arm_2"
connect = ["tcp/10.0.0.2:7447"]
multicast_scouting = false

[[node]]
name = "twin"
kind = "twin"
restart = "on-failure"
params = { seed = "${seed}", rate_hz = "${rate}", camera = false }

[[node]]
name = "teleop"
kind = "teleop"
namespace = "other"
restart = "always"
remap = { "/leader/joint_states" = "joint_command_in" }
enabled = "${record}"

[[node]]
name = "bridge"
kind = "ros2_bridge"
params = { cameras = ["${name}", "cam_${name}"] }
"#;

fn load(text: &str, overrides: &[&str]) -> Result<sponge_launch::LaunchFile, LaunchError> {
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    parse(Path::new("test.toml"), text, &overrides)
}

fn diagnostic(text: &str) -> (usize, usize, String) {
    match load(text, &[]) {
        Err(LaunchError::At(d)) => (d.line, d.column, d.message),
        other => panic!("expected a diagnostic, got {other:?}"),
    }
}

#[test]
fn arguments_are_substituted_with_their_types_and_defaults_fill_the_rest() {
    let file = load(FILE, &[]).expect("valid");
    assert_eq!(
        file.description,
        "A twin and a teleop node.\nSecond line of the description."
    );
    assert_eq!(file.session.namespace, "arm_2");
    assert_eq!(file.session.connect, vec!["tcp/10.0.0.2:7447".to_owned()]);
    assert!(!file.session.multicast_scouting);

    let twin = file.node("twin").expect("twin");
    assert_eq!(twin.kind, NodeKind::Twin);
    assert_eq!(twin.restart, Restart::OnFailure);
    assert_eq!(twin.namespace, "arm_2");
    assert_eq!(twin.params.get("seed"), Some(&Value::Int(4)));
    assert_eq!(twin.params.get("rate_hz"), Some(&Value::Int(60)));
    assert_eq!(twin.params.get("camera"), Some(&Value::Bool(false)));
    // Not in the file: the kind's default.
    assert_eq!(twin.params.get("watchdog_ms"), Some(&Value::Int(200)));
    assert_eq!(twin.params.get("max_step_deg"), Some(&Value::Float(8.6)));

    let teleop = file.node("teleop").expect("teleop");
    assert_eq!(teleop.namespace, "other");
    assert_eq!(teleop.restart, Restart::Always);
    assert!(!teleop.enabled);
    assert_eq!(
        teleop.remaps.get("leader/joint_states").map(String::as_str),
        Some("joint_command_in")
    );

    let bridge = file.node("bridge").expect("bridge");
    assert_eq!(bridge.restart, Restart::Never);
    assert_eq!(
        bridge.params.get("cameras"),
        Some(&Value::StrList(vec!["front".into(), "cam_front".into()]))
    );
}

#[test]
fn command_line_overrides_take_the_type_of_the_default() {
    let file = load(FILE, &["seed=11", "record=true", "name=wrist"]).expect("valid");
    assert_eq!(
        file.node("twin").expect("twin").params.get("seed"),
        Some(&Value::Int(11))
    );
    assert!(file.node("teleop").expect("teleop").enabled);
    assert_eq!(
        file.node("bridge").expect("bridge").params.get("cameras"),
        Some(&Value::StrList(vec!["wrist".into(), "cam_wrist".into()]))
    );
    for (bad, why) in [
        ("seed=eleven", "expected a whole number"),
        ("record=yes", "expected true or false"),
        ("speed=3", "'speed' is not an argument"),
        ("seed", "not key=value"),
    ] {
        match load(FILE, &[bad]) {
            Err(LaunchError::Override(message)) => assert!(message.contains(why), "{bad}: {message}"),
            other => panic!("{bad}: expected an override error, got {other:?}"),
        }
    }
    // A value that breaks a node's rules is caught where the node uses it.
    match load(FILE, &["rate=7"]) {
        Err(LaunchError::At(d)) => assert!(d.message.contains("must divide 240"), "{}", d.message),
        other => panic!("expected a diagnostic, got {other:?}"),
    }
}

#[test]
fn errors_point_at_the_offending_place() {
    let (line, column, message) =
        diagnostic("[[node]]\nname = \"a\"\nkind = \"twin\"\nrestart = \"sometimes\"\n");
    assert_eq!((line, column), (4, 11));
    assert!(message.contains("never, on-failure, always"), "{message}");

    let (line, column, message) =
        diagnostic("[[node]]\nname = \"a\"\nkind = \"twin\"\nparams = { seed = 1, sede = 2 }\n");
    assert_eq!((line, column), (4, 22));
    assert!(
        message.contains("'sede' is not a parameter of a twin node"),
        "{message}"
    );

    let (line, column, message) =
        diagnostic("[[node]]\nname = \"a\"\nkind = \"twin\"\nparams = { seed = \"${nope}\" }\n");
    assert_eq!((line, column), (4, 19));
    assert!(message.contains("names no argument"), "{message}");

    let (line, _, message) = diagnostic("[[node]]\nname = \"a\"\nkind = \"follower\"\n");
    assert_eq!(line, 3);
    assert!(message.contains("needs the parameter 'port'"), "{message}");

    let (line, column, message) =
        diagnostic("[[node]]\nname = \"a\"\nkind = \"teleop\"\n[[node]]\nname = \"a\"\nkind = \"teleop\"\n");
    assert_eq!((line, column), (5, 8));
    assert!(message.contains("a second node called 'a'"), "{message}");

    let (line, column, message) =
        diagnostic("[session]\nconnect = [\"10.0.0.2\"]\n[[node]]\nname = \"a\"\nkind = \"teleop\"\n");
    assert_eq!((line, column), (2, 11));
    assert!(message.contains("not a Zenoh endpoint"), "{message}");

    let (line, column, message) = diagnostic("[[node]]\nname = \"a\"\nkind = \"teleop\"\ncolour = 3\n");
    assert_eq!((line, column), (4, 1));
    assert!(message.contains("unknown field `colour`"), "{message}");

    let (_, _, message) = diagnostic("[args]\nx = 1\n");
    assert!(message.contains("no [[node]]"), "{message}");
}

#[test]
fn line_column_counts_characters_not_bytes() {
    let text = "ab\n«é» x\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 3), (2, 1));
    let x = text.find('x').expect("x");
    assert_eq!(line_column(text, x), (2, 5));
}

#[test]
fn the_launch_files_track_the_spill_as_eval_does_by_default() {
    let default = sponge_policy::place::DEFAULT_TRACK_M;
    let spec = sponge_launch::nodes::NodeKind::Policy
        .params()
        .iter()
        .find(|p| p.name == "perception_track_m")
        .expect("the policy node's perception_track_m");
    let node_default: f64 = spec.default.expect("a default").parse().expect("a number");
    assert_eq!(node_default, default);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["sim_autonomy.toml", "real_autonomy.toml", "remote_policy.toml"] {
        let file = sponge_launch::file::load(&root.join(name), &[]).expect("the launch file loads");
        let arg = file.args.get("perception_track").and_then(toml::Value::as_float);
        assert_eq!(arg, Some(default), "{name}'s perception_track");
    }
}
