//! `sponge bench zenoh`: what the node runtime costs on one machine.

use std::time::{Duration, Instant};

use sponge_robot::msg::{Header, Image, JointState, Time};

use crate::session::{Error, Node, Publisher, SessionConfig, Subscriber};

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Messages measured.
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst.
    pub max_us: f64,
}

/// The figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ZenohReport {
    /// JointState publish-to-receive latency.
    pub joint_state: Latency,
    /// 640×480 rgb8 Image publish-to-receive latency.
    pub image: Latency,
    /// Camera stream: frames sent at 30 Hz.
    pub stream_sent: u64,
    /// Of those, frames received.
    pub stream_received: u64,
}

/// Two sessions joined over loopback TCP, as two nodes of one machine are.
///
/// The port is found by binding port 0 and letting it go, so another process
/// (or another test's Zenoh session, which listens on ephemeral ports) can
/// take it before the listener opens: a port found taken is given up for a
/// fresh one, a few times, before the error is returned.
pub fn loopback_pair() -> Result<(Node, Node), Error> {
    let mut tries = 0;
    let (a, endpoint) = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::Config(format!("no free loopback port: {e}")))?;
        let endpoint = format!("tcp/127.0.0.1:{port}");
        match Node::open(&SessionConfig {
            listen: vec![endpoint.clone()],
            multicast_scouting: false,
            ..SessionConfig::default()
        }) {
            Ok(node) => break (node, endpoint),
            Err(e) if tries < 4 && e.to_string().contains("already in use") => tries += 1,
            Err(e) => return Err(e),
        }
    };
    let b = Node::open(&SessionConfig {
        connect: vec![endpoint],
        multicast_scouting: false,
        ..SessionConfig::default()
    })?;
    Ok((a, b))
}

fn percentiles(mut us: Vec<f64>) -> Latency {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| {
        us.get(((us.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Latency {
        samples: us.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: us.last().copied().unwrap_or(f64::NAN),
    }
}

/// Sends `count` messages `gap` apart, each stamped when sent, and times their arrival.
fn latency<T: sponge_robot::msg::RosMessage>(
    publisher: &Publisher<T>,
    subscriber: &Subscriber<T>,
    count: usize,
    gap: Duration,
    make: impl Fn(u64) -> T,
    sent_ns: impl Fn(&T) -> u64,
) -> Result<Latency, Error> {
    // Wait until the route is up.
    let ready = Instant::now();
    loop {
        publisher.put(&make(0))?;
        if subscriber.recv_timeout(Duration::from_millis(50))?.is_some() {
            break;
        }
        if ready.elapsed() > Duration::from_secs(10) {
            return Err(Error::Zenoh(
                "the two sessions did not connect within 10 s".into(),
            ));
        }
    }
    while subscriber.try_recv()?.is_some() {}
    let clock = Instant::now();
    let mut us = Vec::with_capacity(count);
    for _ in 0..count {
        let now_ns = clock.elapsed().as_nanos() as u64;
        publisher.put(&make(now_ns))?;
        if let Some(message) = subscriber.recv_timeout(Duration::from_secs(1))? {
            let received_ns = clock.elapsed().as_nanos() as u64;
            us.push((received_ns.saturating_sub(sent_ns(&message))) as f64 / 1e3);
        }
        std::thread::sleep(gap);
    }
    Ok(percentiles(us))
}

fn stamp_of(ns: u64) -> Time {
    Time::from_duration(Duration::from_nanos(ns))
}

fn ns_of(time: &Time) -> u64 {
    (time.as_secs_f64() * 1e9).round() as u64
}

/// Runs the benchmark: `messages` JointStates, 200 images, then a 30 Hz
/// stream of 640×480 frames for `stream_seconds`.
pub fn run(messages: usize, stream_seconds: f64) -> Result<ZenohReport, Error> {
    let (a, b) = loopback_pair()?;
    let q = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6];
    let joint_state = latency(
        &a.publisher::<JointState>(crate::topics::JOINT_STATES)?,
        &b.subscriber::<JointState>(crate::topics::JOINT_STATES)?,
        messages,
        Duration::from_micros(500),
        |ns| JointState::from_positions(stamp_of(ns), &q),
        |m| ns_of(&m.header.stamp),
    )?;
    let topic = crate::topics::camera_image("front");
    let pixels: Vec<u8> = (0..640 * 480 * 3).map(|i| (i % 253) as u8).collect();
    let frame = |ns: u64| {
        Image::rgb8(
            Header {
                stamp: stamp_of(ns),
                frame_id: "front_camera".into(),
            },
            640,
            480,
            pixels.clone(),
        )
        .unwrap_or_default()
    };
    let images_out = a.publisher::<Image>(&topic)?;
    let images_in = b.subscriber::<Image>(&topic)?;
    let image = latency(
        &images_out,
        &images_in,
        200,
        Duration::from_millis(5),
        frame,
        |m| ns_of(&m.header.stamp),
    )?;
    // The camera stream: 30 Hz, counted at the far end.
    while images_in.try_recv()?.is_some() {}
    let period = Duration::from_secs_f64(1.0 / 30.0);
    let started = Instant::now();
    let mut next = started;
    let (mut sent, mut received) = (0u64, 0u64);
    while started.elapsed().as_secs_f64() < stream_seconds {
        images_out.put(&frame(sent))?;
        sent += 1;
        next += period;
        while Instant::now() < next {
            if images_in
                .recv_timeout(next.saturating_duration_since(Instant::now()))?
                .is_some()
            {
                received += 1;
            }
        }
    }
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(500) {
        if images_in.recv_timeout(Duration::from_millis(50))?.is_some() {
            received += 1;
        }
    }
    Ok(ZenohReport {
        joint_state,
        image,
        stream_sent: sent,
        stream_received: received,
    })
}
