//! Node parameters: what each node kind accepts, and the checked values.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A whole number.
    Int,
    /// A number (a whole number is accepted too).
    Float,
    /// `true` or `false`.
    Bool,
    /// Text.
    Str,
    /// A path to a file or folder that must exist.
    ExistingPath,
    /// A list of texts.
    StrList,
    /// One of the listed texts.
    Choice(&'static [&'static str]),
}

impl ParamType {
    /// How the type reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int => "a whole number".into(),
            ParamType::Float => "a number".into(),
            ParamType::Bool => "true or false".into(),
            ParamType::Str => "a string".into(),
            ParamType::ExistingPath => "a path (string) to something that exists".into(),
            ParamType::StrList => "a list of strings (or one string, comma-separated)".into(),
            ParamType::Choice(options) => format!("one of {}", options.join(", ")),
        }
    }
}

/// One parameter a node kind accepts.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Its name in the launch file.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// Its default, as TOML (`None`: the parameter is required unless `optional`).
    pub default: Option<&'static str>,
    /// Whether it may be left out with no default.
    pub optional: bool,
    /// What it does.
    pub help: &'static str,
}

impl ParamSpec {
    /// A required parameter.
    pub const fn required(name: &'static str, ty: ParamType, help: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default: None,
            optional: false,
            help,
        }
    }

    /// A parameter with a default (written as TOML).
    pub const fn with_default(
        name: &'static str,
        ty: ParamType,
        default: &'static str,
        help: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default: Some(default),
            optional: false,
            help,
        }
    }

    /// A parameter that may be left out.
    pub const fn optional(name: &'static str, ty: ParamType, help: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default: None,
            optional: true,
            help,
        }
    }
}

/// A checked parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Whole number.
    Int(i64),
    /// Number.
    Float(f64),
    /// Flag.
    Bool(bool),
    /// Text (also paths and choices).
    Str(String),
    /// List of texts.
    StrList(Vec<String>),
}

/// Checks `value` against `ty`; the error says what was expected.
pub fn check(value: &toml::Value, ty: ParamType) -> Result<Value, String> {
    let wrong = || format!("expected {}, found {}", ty.describe(), describe_value(value));
    Ok(match (ty, value) {
        (ParamType::Int, toml::Value::Integer(i)) => Value::Int(*i),
        (ParamType::Float, toml::Value::Integer(i)) => Value::Float(*i as f64),
        (ParamType::Float, toml::Value::Float(f)) => Value::Float(*f),
        (ParamType::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (ParamType::Str, toml::Value::String(s)) => Value::Str(s.clone()),
        (ParamType::ExistingPath, toml::Value::String(s)) => {
            if !std::path::Path::new(s).exists() {
                return Err(format!("no such file or folder: {s}"));
            }
            Value::Str(s.clone())
        }
        (ParamType::Choice(options), toml::Value::String(s)) => {
            if !options.contains(&s.as_str()) {
                return Err(format!("'{s}' is not {}", ty.describe()));
            }
            Value::Str(s.clone())
        }
        // "front,wrist" (from a command-line argument) is a list too; "" is none.
        (ParamType::StrList, toml::Value::String(s)) => Value::StrList(
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        (ParamType::StrList, toml::Value::Array(items)) => Value::StrList(
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(wrong()),
    })
}

/// "a string ("abc")", "an integer (5)" and so on.
pub fn describe_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("a string ({s:?})"),
        toml::Value::Integer(i) => format!("a whole number ({i})"),
        toml::Value::Float(f) => format!("a number ({f})"),
        toml::Value::Boolean(b) => format!("a boolean ({b})"),
        toml::Value::Datetime(d) => format!("a date ({d})"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A node's checked parameters, defaults filled in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, Value>,
}

impl Params {
    /// Parameters from checked values.
    pub fn new(values: BTreeMap<String, Value>) -> Params {
        Params { values }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A whole-number parameter (0 when absent: the schema makes it present).
    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }

    /// A number parameter.
    pub fn float(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(Value::Float(f)) => *f,
            Some(Value::Int(i)) => *i as f64,
            _ => 0.0,
        }
    }

    /// A flag parameter.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    /// A text parameter, if set.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A path parameter, if set.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.str(name).map(PathBuf::from)
    }

    /// A list parameter (empty when absent).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::StrList(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}
