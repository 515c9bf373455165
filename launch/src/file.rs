//! Launch files: which nodes to run, with what parameters, on which
//! session, restarted how. TOML, checked before anything runs; every error
//! points at the file, line and column it is about.
//!
//! ```toml
//! # What this set-up is for, and the one command that runs it.
//! [args]                      # overridable: sponge launch FILE seed=3
//! seed = 0
//!
//! [session]                   # optional; these are the defaults
//! namespace = "so100"
//! connect = []                # e.g. ["tcp/192.168.1.20:7447"]
//! listen = []
//! multicast_scouting = true
//!
//! [[node]]
//! name = "twin"
//! kind = "twin"
//! restart = "on-failure"      # never | on-failure | always
//! enabled = true              # false: only `--node twin` runs it
//! required = false            # true: the launch stops when this node ends
//! namespace = "so100"         # optional, else the session's
//! remap = { joint_command = "leader/joint_states" }
//! params = { seed = "${seed}", camera = true }
//! ```
//!
//! A string that is exactly `"${name}"` becomes the argument's value with
//! its type; `${name}` inside a longer string is replaced by its text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::nodes::NodeKind;
use crate::params::{self, Params, Value};
use crate::session::SessionConfig;

/// An error in a launch file, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The launch file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a launch file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something in the file is wrong.
    #[error("{0}")]
    At(Diagnostic),
    /// A `key=value` from the command line is wrong.
    #[error("command line: {0}")]
    Override(String),
}

/// When the launcher starts a node again after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Never (the default).
    #[default]
    Never,
    /// When it fails (non-zero exit or killed by a signal).
    OnFailure,
    /// Whenever it exits, until the launch stops.
    Always,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        })
    }
}

impl Restart {
    fn parse(s: &str) -> Option<Restart> {
        match s {
            "never" => Some(Restart::Never),
            "on-failure" => Some(Restart::OnFailure),
            "always" => Some(Restart::Always),
            _ => None,
        }
    }
}

/// One node of a launch file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Unique name in the file.
    pub name: String,
    /// What it runs.
    pub kind: NodeKind,
    /// Robot namespace of its topics.
    pub namespace: String,
    /// Topic renames: the node's topic → the topic it really uses.
    pub remaps: BTreeMap<String, String>,
    /// Restart policy.
    pub restart: Restart,
    /// Parameters, defaults filled in.
    pub params: Params,
    /// Whether the launcher starts it (`--node` runs it either way).
    pub enabled: bool,
    /// Whether the whole launch stops when it ends for good (a recorder
    /// that has recorded its episodes).
    pub required: bool,
}

/// A checked launch file.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The comment at its top (what it is for).
    pub description: String,
    /// The session every node joins.
    pub session: SessionConfig,
    /// The arguments after overrides.
    pub args: BTreeMap<String, toml::Value>,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
}

impl LaunchFile {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    args: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    session: Option<RawSession>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    namespace: Option<Spanned<toml::Value>>,
    connect: Option<Spanned<toml::Value>>,
    listen: Option<Spanned<toml::Value>>,
    multicast_scouting: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    kind: Spanned<String>,
    namespace: Option<Spanned<toml::Value>>,
    #[serde(default)]
    remap: BTreeMap<Spanned<String>, Spanned<String>>,
    restart: Option<Spanned<String>>,
    enabled: Option<Spanned<toml::Value>>,
    required: Option<Spanned<toml::Value>>,
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// Reads and checks the launch file at `path`, with `overrides`
/// (`key=value` for its `[args]`) applied.
pub fn load(path: &Path, overrides: &[String]) -> Result<LaunchFile, LaunchError> {
    let text = std::fs::read_to_string(path).map_err(|source| LaunchError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, overrides)
}

/// Checks launch-file `text` (read from `path`).
pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<LaunchFile, LaunchError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        LaunchError::At(Diagnostic {
            file: path.to_owned(),
            line,
            column,
            message,
        })
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        at(e.span().unwrap_or(0..0), message)
    })?;

    // Arguments, then the command line's overrides.
    let mut args: BTreeMap<String, toml::Value> = BTreeMap::new();
    for (key, value) in &raw.args {
        if matches!(value.get_ref(), toml::Value::Array(_) | toml::Value::Table(_)) {
            return Err(at(
                value.span(),
                format!("argument '{}' must be a string, number or boolean", key.get_ref()),
            ));
        }
        args.insert(key.get_ref().clone(), value.get_ref().clone());
    }
    for spec in overrides {
        let (key, text_value) = spec
            .split_once('=')
            .ok_or_else(|| LaunchError::Override(format!("'{spec}' is not key=value")))?;
        let Some(default) = args.get(key) else {
            let known: Vec<&str> = args.keys().map(String::as_str).collect();
            return Err(LaunchError::Override(format!(
                "'{key}' is not an argument of {} (its arguments: {})",
                path.display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        };
        let value = override_value(default, text_value)
            .map_err(|e| LaunchError::Override(format!("{key}={text_value}: {e}")))?;
        args.insert(key.to_owned(), value);
    }
    let substitute =
        |value: &Spanned<toml::Value>| substitute(value.get_ref(), &args).map_err(|e| at(value.span(), e));
    let namespace = |v: &Spanned<toml::Value>| match substitute(v)? {
        toml::Value::String(s) if crate::session::valid_topic(&s) => Ok(s),
        other => Err(at(
            v.span(),
            format!(
                "namespace must be a name like \"so100\", found {}",
                params::describe_value(&other)
            ),
        )),
    };
    let flag = |v: &Spanned<toml::Value>, what: &str| match substitute(v)? {
        toml::Value::Boolean(b) => Ok(b),
        other => Err(at(
            v.span(),
            format!(
                "{what}: expected true or false, found {}",
                params::describe_value(&other)
            ),
        )),
    };

    // The session.
    let mut session = SessionConfig::default();
    if let Some(raw_session) = &raw.session {
        if let Some(v) = &raw_session.namespace {
            session.namespace = namespace(v)?;
        }
        for (field, target) in [
            (&raw_session.connect, &mut session.connect),
            (&raw_session.listen, &mut session.listen),
        ] {
            if let Some(v) = field {
                let value = substitute(v)?;
                *target = match params::check(&value, params::ParamType::StrList) {
                    Ok(Value::StrList(items)) => items,
                    Ok(_) => Vec::new(),
                    Err(e) => return Err(at(v.span(), format!("endpoints: {e}"))),
                };
                if let Some(bad) = target.iter().find(|e| !e.contains('/')) {
                    return Err(at(
                        v.span(),
                        format!("'{bad}' is not a Zenoh endpoint (like \"tcp/192.168.1.20:7447\")"),
                    ));
                }
            }
        }
        if let Some(v) = &raw_session.multicast_scouting {
            session.multicast_scouting = flag(v, "multicast_scouting")?;
        }
    }

    // The nodes.
    if raw.node.is_empty() {
        return Err(at(0..0, "no [[node]] in the file: nothing to launch".into()));
    }
    let mut names = BTreeSet::new();
    let mut nodes = Vec::new();
    for raw_node in &raw.node {
        let raw_node = raw_node.get_ref();
        let name = raw_node.name.get_ref();
        if !crate::session::valid_topic(name) || name.contains('/') {
            return Err(at(
                raw_node.name.span(),
                format!("node name '{name}': use letters, digits and _"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at(raw_node.name.span(), format!("a second node called '{name}'")));
        }
        let kind = NodeKind::parse(raw_node.kind.get_ref()).ok_or_else(|| {
            at(
                raw_node.kind.span(),
                format!(
                    "unknown node kind '{}' (kinds: {})",
                    raw_node.kind.get_ref(),
                    NodeKind::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let restart = match &raw_node.restart {
            Some(r) => Restart::parse(r.get_ref()).ok_or_else(|| {
                at(
                    r.span(),
                    format!(
                        "restart '{}' is not one of never, on-failure, always",
                        r.get_ref()
                    ),
                )
            })?,
            None => Restart::Never,
        };
        let node_namespace = match &raw_node.namespace {
            Some(v) => namespace(v)?,
            None => session.namespace.clone(),
        };
        let enabled = match &raw_node.enabled {
            Some(v) => flag(v, "enabled")?,
            None => true,
        };
        let required = match &raw_node.required {
            Some(v) => flag(v, "required")?,
            None => false,
        };
        let mut remaps = BTreeMap::new();
        for (from, to) in &raw_node.remap {
            for topic in [from, to] {
                let t = topic.get_ref().strip_prefix('/').unwrap_or(topic.get_ref());
                if !crate::session::valid_topic(t) {
                    return Err(at(
                        topic.span(),
                        format!("'{}' is not a topic name", topic.get_ref()),
                    ));
                }
            }
            let strip = |s: &str| s.strip_prefix('/').unwrap_or(s).to_owned();
            remaps.insert(strip(from.get_ref()), strip(to.get_ref()));
        }

        // Parameters against the kind's schema.
        let schema = kind.params();
        let mut values = BTreeMap::new();
        for (key, raw_value) in &raw_node.params {
            let Some(spec) = schema.iter().find(|s| s.name == key.get_ref()) else {
                return Err(at(
                    key.span(),
                    format!(
                        "'{}' is not a parameter of a {} node (its parameters: {})",
                        key.get_ref(),
                        kind.name(),
                        schema.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            let value = substitute(raw_value)?;
            let checked = params::check(&value, spec.ty)
                .map_err(|e| at(raw_value.span(), format!("parameter '{}': {e}", spec.name)))?;
            values.insert(spec.name.to_owned(), checked);
        }
        for spec in schema {
            if values.contains_key(spec.name) {
                continue;
            }
            match spec.default {
                Some(default) => {
                    let value: toml::Value =
                        toml::from_str::<BTreeMap<String, toml::Value>>(&format!("v = {default}"))
                            .ok()
                            .and_then(|mut t| t.remove("v"))
                            .unwrap_or(toml::Value::String(default.into()));
                    if let Ok(checked) = params::check(&value, spec.ty) {
                        values.insert(spec.name.to_owned(), checked);
                    }
                }
                None if spec.optional => {}
                None => {
                    return Err(at(
                        raw_node.kind.span(),
                        format!(
                            "a {} node needs the parameter '{}' ({}: {})",
                            kind.name(),
                            spec.name,
                            spec.ty.describe(),
                            spec.help
                        ),
                    ));
                }
            }
        }
        let params = Params::new(values);
        kind.check(&params).map_err(|e| {
            at(
                raw_node.kind.span(),
                format!("{} node '{name}': {e}", kind.name()),
            )
        })?;
        nodes.push(NodeSpec {
            name: name.clone(),
            kind,
            namespace: node_namespace,
            remaps,
            restart,
            params,
            enabled,
            required,
        });
    }

    Ok(LaunchFile {
        path: path.to_owned(),
        description: top_comment(text),
        session,
        args,
        nodes,
    })
}

/// Line and column (from 1, in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The first block of `#` comment lines.
fn top_comment(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of `key=text` on the command line, of the default's type.
fn override_value(default: &toml::Value, text: &str) -> Result<toml::Value, String> {
    Ok(match default {
        toml::Value::Integer(_) => toml::Value::Integer(
            text.parse()
                .map_err(|_| format!("expected a whole number, found '{text}'"))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            text.parse()
                .map_err(|_| format!("expected a number, found '{text}'"))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            text.parse()
                .map_err(|_| format!("expected true or false, found '{text}'"))?,
        ),
        _ => toml::Value::String(text.to_owned()),
    })
}

/// Replaces `${name}` in strings (recursively in lists and tables).
fn substitute(value: &toml::Value, args: &BTreeMap<String, toml::Value>) -> Result<toml::Value, String> {
    let lookup = |name: &str| {
        args.get(name).ok_or_else(|| {
            format!(
                "'${{{name}}}' names no argument (this file's [args]: {})",
                if args.is_empty() {
                    "none".to_owned()
                } else {
                    args.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            )
        })
    };
    Ok(match value {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && !name.contains('}')
            {
                return lookup(name).cloned();
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed '${{' in {s:?}"))?;
                match lookup(&after[..end])? {
                    toml::Value::String(text) => out.push_str(text),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            toml::Value::String(out)
        }
        toml::Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|item| substitute(item, args))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => toml::Value::Table(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, args)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
