//! BFD control packets (RFC 5880 §4.1), carried in UDP to port 3784
//! (single hop, RFC 5881) or 4784 (multihop, RFC 5883).
//!
//! ```text
//!  0: Vers(3) Diag(5) | 1: Sta(2) P F C A D M | 2: Detect Mult | 3: Length
//!  4: My Discriminator   8: Your Discriminator
//! 12: Desired Min TX Interval (µs)  16: Required Min RX Interval (µs)
//! 20: Required Min Echo RX Interval (µs)
//! ```
//!
//! [`Repr::parse`] applies every reception check of RFC 5880 §6.8.6 that
//! needs no session state; the session applies the rest.

use super::{Error, Result};

pub const SINGLE_HOP_PORT: u16 = 3784;
pub const MULTIHOP_PORT: u16 = 4784;
/// Length of a control packet without authentication.
pub const LEN: usize = 24;
pub const VERSION: u8 = 1;

/// Session states (`Sta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    pub fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "admin-down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// Diagnostic codes (RFC 5880 §4.1).
pub mod diag {
    pub const NONE: u8 = 0;
    pub const DETECT_EXPIRED: u8 = 1;
    pub const ECHO_FAILED: u8 = 2;
    pub const NEIGHBOR_DOWN: u8 = 3;
    pub const FORWARDING_RESET: u8 = 4;
    pub const PATH_DOWN: u8 = 5;
    pub const CONCAT_PATH_DOWN: u8 = 6;
    pub const ADMIN_DOWN: u8 = 7;
    pub const REVERSE_CONCAT_PATH_DOWN: u8 = 8;

    pub fn name(d: u8) -> &'static str {
        match d {
            NONE => "none",
            DETECT_EXPIRED => "control-detection-time-expired",
            ECHO_FAILED => "echo-function-failed",
            NEIGHBOR_DOWN => "neighbor-signaled-session-down",
            FORWARDING_RESET => "forwarding-plane-reset",
            PATH_DOWN => "path-down",
            CONCAT_PATH_DOWN => "concatenated-path-down",
            ADMIN_DOWN => "administratively-down",
            REVERSE_CONCAT_PATH_DOWN => "reverse-concatenated-path-down",
            _ => "unknown",
        }
    }
}

mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CPI: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// A control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub diag: u8,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a control packet is discarded (RFC 5880 §6.8.6), for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Truncated,
    Version,
    Length,
    DetectMult,
    Multipoint,
    MyDiscZero,
    YourDiscZero,
    /// The A bit: authentication is not configured here.
    Auth,
    /// Poll and Final both set.
    PollFinal,
}

impl Refused {
    pub fn name(self) -> &'static str {
        match self {
            Refused::Truncated => "truncated",
            Refused::Version => "version",
            Refused::Length => "length",
            Refused::DetectMult => "detect_mult",
            Refused::Multipoint => "multipoint",
            Refused::MyDiscZero => "my_discriminator",
            Refused::YourDiscZero => "your_discriminator",
            Refused::Auth => "authentication",
            Refused::PollFinal => "poll_final",
        }
    }
}

impl Repr {
    /// Parses and validates a UDP payload.
    pub fn parse(b: &[u8]) -> core::result::Result<Repr, Refused> {
        if b.len() < LEN {
            return Err(Refused::Truncated);
        }
        if b[0] >> 5 != VERSION {
            return Err(Refused::Version);
        }
        let flags = b[1] & 0x3f;
        let len = b[3] as usize;
        // The A bit allows a longer packet; we carry no authentication.
        if flags & flag::AUTH != 0 {
            return Err(Refused::Auth);
        }
        if len < LEN || len > b.len() {
            return Err(Refused::Length);
        }
        if b[2] == 0 {
            return Err(Refused::DetectMult);
        }
        if flags & flag::MULTIPOINT != 0 {
            return Err(Refused::Multipoint);
        }
        if flags & flag::POLL != 0 && flags & flag::FINAL != 0 {
            return Err(Refused::PollFinal);
        }
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let r = Repr {
            diag: b[0] & 0x1f,
            state: State::from_bits(b[1] >> 6),
            poll: flags & flag::POLL != 0,
            final_: flags & flag::FINAL != 0,
            cpi: flags & flag::CPI != 0,
            demand: flags & flag::DEMAND != 0,
            detect_mult: b[2],
            my_disc: u(4),
            your_disc: u(8),
            desired_min_tx_us: u(12),
            required_min_rx_us: u(16),
            required_min_echo_rx_us: u(20),
        };
        if r.my_disc == 0 {
            return Err(Refused::MyDiscZero);
        }
        if r.your_disc == 0 && !matches!(r.state, State::Down | State::AdminDown) {
            return Err(Refused::YourDiscZero);
        }
        Ok(r)
    }

    /// Writes the packet into `b[..LEN]`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..LEN).ok_or(Error::Truncated)?;
        b[0] = VERSION << 5 | (self.diag & 0x1f);
        b[1] = (self.state as u8) << 6
            | if self.poll { flag::POLL } else { 0 }
            | if self.final_ { flag::FINAL } else { 0 }
            | if self.cpi { flag::CPI } else { 0 }
            | if self.demand { flag::DEMAND } else { 0 };
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as FRR's bfdd sends it while Down with its slow start
    /// timers: version 1, no diag, Down, mult 3, my disc 0x82f8_3cf3,
    /// your 0, 1 s / 1 s / 50 ms (the layout tshark decodes for it).
    const FRR_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x82, 0xf8, 0x3c, 0xf3, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x00, 0xc3, 0x50,
    ];

    #[test]
    fn parses_and_reemits_a_real_packet() {
        let r = Repr::parse(&FRR_DOWN).unwrap();
        assert_eq!(r.state, State::Down);
        assert_eq!(r.detect_mult, 3);
        assert_eq!(r.my_disc, 0x82f8_3cf3);
        assert_eq!(r.your_disc, 0);
        assert_eq!((r.desired_min_tx_us, r.required_min_rx_us, r.required_min_echo_rx_us), (1_000_000, 1_000_000, 50_000));
        let mut out = [0u8; LEN];
        r.emit(&mut out).unwrap();
        assert_eq!(out, FRR_DOWN);
    }

    #[test]
    fn flags_round_trip() {
        let r = Repr {
            diag: diag::DETECT_EXPIRED,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: true,
            demand: false,
            detect_mult: 5,
            my_disc: 7,
            your_disc: 9,
            desired_min_tx_us: 10_000,
            required_min_rx_us: 20_000,
            required_min_echo_rx_us: 0,
        };
        let mut b = [0u8; LEN];
        r.emit(&mut b).unwrap();
        assert_eq!(b[0], 0x21);
        assert_eq!(b[1], 0xc0 | 0x20 | 0x08);
        assert_eq!(Repr::parse(&b).unwrap(), r);
    }

    #[test]
    fn refuses_every_bad_field() {
        let good = FRR_DOWN;
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            b
        };
        assert_eq!(Repr::parse(&good[..23]), Err(Refused::Truncated));
        assert_eq!(Repr::parse(&with(0, 0x40)), Err(Refused::Version));
        assert_eq!(Repr::parse(&with(3, 23)), Err(Refused::Length));
        assert_eq!(Repr::parse(&with(3, 25)), Err(Refused::Length));
        assert_eq!(Repr::parse(&with(2, 0)), Err(Refused::DetectMult));
        assert_eq!(Repr::parse(&with(1, 0x41)), Err(Refused::Multipoint));
        assert_eq!(Repr::parse(&with(1, 0x44)), Err(Refused::Auth));
        assert_eq!(Repr::parse(&with(1, 0x70)), Err(Refused::PollFinal));
        let mut zero = good;
        zero[4..8].fill(0);
        assert_eq!(Repr::parse(&zero), Err(Refused::MyDiscZero));
        // Your discriminator 0 is allowed only in Down and AdminDown.
        assert_eq!(Repr::parse(&with(1, 0xc0)), Err(Refused::YourDiscZero));
        assert_eq!(Repr::parse(&with(1, 0x80)), Err(Refused::YourDiscZero));
        assert!(Repr::parse(&with(1, 0x00)).is_ok());
    }
}
