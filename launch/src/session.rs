//! A node's Zenoh session and its typed publishers and subscribers.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use sponge_robot::msg::RosMessage;
use zenoh::Wait;
use zenoh::handlers::FifoChannelHandler;
use zenoh::sample::Sample;

/// Errors of the node runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Zenoh configuration was refused (bad endpoint and the like).
    #[error("zenoh configuration: {0}")]
    Config(String),
    /// Zenoh failed (opening the session, declaring, sending, receiving).
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A topic or namespace that cannot be a Zenoh key.
    #[error("'{0}' is not a valid topic: use names like `joint_states` or `camera/front/image_raw`")]
    BadTopic(String),
    /// A payload that is not the CDR of the expected message type.
    #[error("undecodable {type_name} on '{key}': {reason}")]
    Decode {
        /// The key it arrived on.
        key: String,
        /// The type expected there.
        type_name: &'static str,
        /// What was wrong.
        reason: String,
    },
}

fn zenoh_error(e: impl std::fmt::Display) -> Error {
    Error::Zenoh(e.to_string())
}

/// How a node joins the Zenoh network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Robot namespace, the first part of every key.
    pub namespace: String,
    /// Endpoints to connect to, e.g. `tcp/192.168.1.20:7447` (another machine).
    pub connect: Vec<String>,
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7447`.
    pub listen: Vec<String>,
    /// Whether to find peers by multicast scouting (on one machine or one
    /// LAN nothing else is needed; turn it off for tests and fixed set-ups).
    pub multicast_scouting: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            namespace: "so100".into(),
            connect: Vec::new(),
            listen: Vec::new(),
            multicast_scouting: true,
        }
    }
}

/// Whether `topic` is a usable topic or namespace: `/`-separated parts of
/// letters, digits and `_`.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic
            .split('/')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

fn open_session(config: &SessionConfig, mode: &str) -> Result<zenoh::Session, Error> {
    let mut zc = zenoh::Config::default();
    let json = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(",")
        )
    };
    let set = |zc: &mut zenoh::Config, key: &str, value: String| {
        zc.insert_json5(key, &value)
            .map_err(|e| Error::Config(format!("{key} = {value}: {e}")))
    };
    set(&mut zc, "mode", format!("{mode:?}"))?;
    set(&mut zc, "connect/endpoints", json(&config.connect))?;
    if !config.listen.is_empty() {
        set(&mut zc, "listen/endpoints", json(&config.listen))?;
    }
    set(
        &mut zc,
        "scouting/multicast/enabled",
        config.multicast_scouting.to_string(),
    )?;
    zenoh::open(zc).wait().map_err(zenoh_error)
}

/// A Zenoh router for the nodes of one launch: it listens on
/// `config.listen`, connects to `config.connect`, and routes between the
/// node processes that connect to it (and keeps routing while one of them
/// restarts). Dropping it closes it.
pub fn open_router(config: &SessionConfig) -> Result<zenoh::Session, Error> {
    open_session(config, "router")
}

/// One node's session: peer mode, embedded, no router needed.
pub struct Node {
    session: zenoh::Session,
    namespace: String,
    remaps: BTreeMap<String, String>,
}

impl Node {
    /// Opens a session as `config` says.
    pub fn open(config: &SessionConfig) -> Result<Node, Error> {
        if !valid_topic(&config.namespace) {
            return Err(Error::BadTopic(config.namespace.clone()));
        }
        let session = open_session(config, "peer")?;
        Ok(Node {
            session,
            namespace: config.namespace.clone(),
            remaps: BTreeMap::new(),
        })
    }

    /// Renames topics: a topic the node asks for that is a key of `remaps`
    /// is replaced by its value (`joint_command` → `leader/joint_states`).
    pub fn with_remaps(mut self, remaps: BTreeMap<String, String>) -> Node {
        self.remaps = remaps;
        self
    }

    /// The key of `topic` under this node's namespace (a leading `/` is
    /// dropped; remaps applied).
    pub fn key(&self, topic: &str) -> Result<String, Error> {
        let topic = topic.strip_prefix('/').unwrap_or(topic);
        let topic = self.remaps.get(topic).map_or(topic, String::as_str);
        if !valid_topic(topic) {
            return Err(Error::BadTopic(topic.to_owned()));
        }
        Ok(format!("{}/{topic}", self.namespace))
    }

    /// The robot namespace of its keys.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A publisher of `T` on `topic`.
    pub fn publisher<T: RosMessage>(&self, topic: &str) -> Result<Publisher<T>, Error> {
        let key = self.key(topic)?;
        let inner = self
            .session
            .declare_publisher(key.clone())
            .wait()
            .map_err(zenoh_error)?;
        Ok(Publisher {
            inner,
            key,
            _type: PhantomData,
        })
    }

    /// A subscriber of `T` on `topic`, queueing what arrives until read.
    pub fn subscriber<T: RosMessage>(&self, topic: &str) -> Result<Subscriber<T>, Error> {
        let key = self.key(topic)?;
        let inner = self
            .session
            .declare_subscriber(key.clone())
            .wait()
            .map_err(zenoh_error)?;
        Ok(Subscriber {
            inner,
            key,
            _type: PhantomData,
        })
    }

    /// The Zenoh session, for what the typed API does not cover.
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }
}

/// Publishes one message type on one key.
pub struct Publisher<T> {
    inner: zenoh::pubsub::Publisher<'static>,
    key: String,
    _type: PhantomData<fn(T)>,
}

impl<T: RosMessage> Publisher<T> {
    /// Sends `message` as CDR.
    pub fn put(&self, message: &T) -> Result<(), Error> {
        let bytes = message
            .to_cdr()
            .map_err(|e| Error::Zenoh(format!("encoding for {}: {e}", self.key)))?;
        self.inner.put(bytes).wait().map_err(zenoh_error)
    }

    /// The key it publishes on.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Receives one message type from one key.
pub struct Subscriber<T> {
    inner: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    key: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: RosMessage> Subscriber<T> {
    /// The next message, waiting up to `timeout`; `None` when none came.
    /// A payload that does not decode is an error naming the key; the
    /// subscriber stays usable.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        match self.inner.recv_timeout(timeout).map_err(zenoh_error)? {
            Some(sample) => self.decode(&sample).map(Some),
            None => Ok(None),
        }
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Result<Option<T>, Error> {
        match self.inner.try_recv().map_err(zenoh_error)? {
            Some(sample) => self.decode(&sample).map(Some),
            None => Ok(None),
        }
    }

    /// Takes everything queued: `each` sees every message that decodes, in
    /// order. Returns how many payloads did not decode (they are skipped).
    pub fn drain(&self, mut each: impl FnMut(T)) -> Result<u64, Error> {
        let mut undecodable = 0;
        loop {
            match self.try_recv() {
                Ok(Some(message)) => each(message),
                Ok(None) => return Ok(undecodable),
                Err(Error::Decode { .. }) => undecodable += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The newest message queued, older ones dropped (undecodable ones skipped).
    pub fn newest(&self) -> Result<Option<T>, Error> {
        let mut newest = None;
        self.drain(|m| newest = Some(m))?;
        Ok(newest)
    }

    /// The key it listens on.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn decode(&self, sample: &Sample) -> Result<T, Error> {
        T::from_cdr(&sample.payload().to_bytes()).map_err(|e| Error::Decode {
            key: self.key.clone(),
            type_name: T::TYPE_NAME,
            reason: e.to_string(),
        })
    }
}
