//! A streaming packet parser that resynchronises after garbage.
//!
//! Bytes go in as they arrive; frames come out as soon as they are complete
//! and their checksum holds. Anything else (bytes before a header, a bad
//! length, a bad checksum) is skipped one byte at a time, so a valid packet
//! that follows garbage, or is embedded in it, is still found.
//!
//! One corruption fools any checksum-only parser: a LEN byte one too high
//! makes the packet plus the next packet's first `FF` checksum correctly
//! (the sum grows by 1 + the old checksum, which leaves 0, whose checksum
//! is `FF`). A caller that knows what it expects (the bus knows each reply's
//! ID and length) calls [`FrameParser::reject_last`] on a frame that does
//! not fit, and the parser rescans from the byte after its header.

use super::packet::{HEADER, MAX_LEN, checksum};

/// A checksummed packet: instruction or status, framing removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Servo ID.
    pub id: u8,
    /// Fifth byte: the instruction (host → servo) or the error bits (servo → host).
    pub kind: u8,
    /// Parameters.
    pub params: Vec<u8>,
}

/// What the parser found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete, valid packet.
    Frame(Frame),
    /// Bytes skipped while looking for one, and why.
    Skipped {
        /// How many bytes.
        bytes: usize,
        /// Why they were skipped.
        reason: SkipReason,
    },
}

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No `FF FF` header there.
    NoHeader,
    /// A header with an impossible LEN byte.
    BadLength,
    /// A complete packet whose checksum failed.
    BadChecksum,
    /// The stream ended inside a packet.
    Truncated,
}

/// Incremental parser over a byte stream.
#[derive(Debug, Default)]
pub struct FrameParser {
    buf: Vec<u8>,
    start: usize,
    last_frame_start: Option<usize>,
}

impl FrameParser {
    /// An empty parser.
    pub fn new() -> FrameParser {
        FrameParser::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.last_frame_start = None;
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held but not yet consumed.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Forgets everything held.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.last_frame_start = None;
    }

    /// Takes back the frame just returned (before any further
    /// [`push`](Self::push)): its bytes are rescanned from the one after its
    /// first header byte. Returns whether there was a frame to take back.
    pub fn reject_last(&mut self) -> bool {
        match self.last_frame_start.take() {
            Some(start) => {
                self.start = start + 1;
                true
            }
            None => false,
        }
    }

    /// The next frame or skipped run; `None` when more bytes are needed.
    pub fn poll(&mut self) -> Option<Parsed> {
        self.parse(false)
    }

    /// Like [`next`](Self::poll), but the stream has ended (a read timed
    /// out): a packet still incomplete is given up one byte at a time, so
    /// that a valid packet inside it can be found.
    pub fn poll_at_end(&mut self) -> Option<Parsed> {
        self.parse(true)
    }

    fn skip(&mut self, bytes: usize, reason: SkipReason) -> Option<Parsed> {
        self.last_frame_start = None;
        self.start += bytes;
        Some(Parsed::Skipped { bytes, reason })
    }

    fn parse(&mut self, at_end: bool) -> Option<Parsed> {
        let data = &self.buf[self.start..];
        let Some(offset) = data.windows(2).position(|w| w == HEADER) else {
            // Keep a trailing FF: it may be the first half of a header.
            let keep = usize::from(!at_end && data.last() == Some(&0xFF));
            let garbage = data.len() - keep;
            if garbage == 0 {
                return None;
            }
            return self.skip(garbage, SkipReason::NoHeader);
        };
        if offset > 0 {
            return self.skip(offset, SkipReason::NoHeader);
        }
        let incomplete = |parser: &mut FrameParser| {
            if at_end {
                parser.skip(1, SkipReason::Truncated)
            } else {
                None
            }
        };
        if data.len() < 4 {
            return incomplete(self);
        }
        let (id, len) = (data[2], data[3]);
        if id == 0xFF {
            // FF FF FF: the header starts one byte later.
            return self.skip(1, SkipReason::NoHeader);
        }
        if !(2..=MAX_LEN).contains(&len) {
            return self.skip(1, SkipReason::BadLength);
        }
        let total = 4 + usize::from(len);
        if data.len() < total {
            return incomplete(self);
        }
        if checksum(&data[2..total - 1]) != data[total - 1] {
            return self.skip(1, SkipReason::BadChecksum);
        }
        let frame = Frame {
            id,
            kind: data[4],
            params: data[5..total - 1].to_vec(),
        };
        self.last_frame_start = Some(self.start);
        self.start += total;
        Some(Parsed::Frame(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parser: &mut FrameParser, at_end: bool) -> Vec<Frame> {
        let mut out = Vec::new();
        loop {
            let next = if at_end {
                parser.poll_at_end()
            } else {
                parser.poll()
            };
            match next {
                Some(Parsed::Frame(f)) => out.push(f),
                Some(Parsed::Skipped { .. }) => {}
                None => return out,
            }
        }
    }

    #[test]
    fn waits_for_bytes_split_anywhere() {
        let packet = [0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE];
        for split in 0..packet.len() {
            let mut parser = FrameParser::new();
            parser.push(&packet[..split]);
            assert!(frames(&mut parser, false).is_empty(), "split {split}");
            parser.push(&packet[split..]);
            let got = frames(&mut parser, false);
            assert_eq!(got.len(), 1, "split {split}");
            assert_eq!(got[0].params, [0x38, 0x02]);
        }
    }

    #[test]
    fn finds_a_packet_after_a_false_header_at_end_of_stream() {
        // A false header whose LEN promises more bytes than ever come, then a real ping reply.
        let mut parser = FrameParser::new();
        parser.push(&[0xFF, 0xFF, 0x03, 0x40, 0x00, 0xFF, 0xFF, 0x01, 0x02, 0x00, 0xFC]);
        assert!(frames(&mut parser, false).is_empty());
        let got = frames(&mut parser, true);
        assert_eq!(
            got,
            [Frame {
                id: 1,
                kind: 0,
                params: vec![]
            }]
        );
    }

    #[test]
    fn triple_ff_is_a_header_shifted_by_one() {
        let mut parser = FrameParser::new();
        parser.push(&[0xFF, 0xFF, 0xFF, 0x01, 0x02, 0x00, 0xFC]);
        assert_eq!(frames(&mut parser, false).len(), 1);
    }
}
