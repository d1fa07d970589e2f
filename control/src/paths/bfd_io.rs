//! The path controller's BFD traffic: sessions' packets punted by the
//! workers (validated, matched to their session, fed to its state
//! machine) and the packets the sessions send, through the slow path.

use super::*;

impl PathControl {
    pub(super) fn on_bfd<P: Packet>(&mut self, h: &punt::Header, pkt: P, now: Duration) {
        let refuse = |s: &mut Self, why: &'static str| *s.refused.by_reason.entry(why).or_default() += 1;
        let Some((src, dst_port, ttl, payload)) = crate::slowpath::udp_datagram(pkt.data(), h.l2_len as usize) else {
            return refuse(self, "malformed");
        };
        let r = match Repr::parse(payload) {
            Ok(r) => r,
            Err(e) => return refuse(self, e.name()),
        };
        let multihop = dst_port == bfd::MULTIHOP_PORT;
        let found = if r.your_disc != 0 {
            self.bfd.iter().position(|b| b.session.local_disc == r.your_disc)
        } else {
            self.bfd.iter().position(|b| b.peer == src.ip() && b.multihop == multihop)
        };
        let Some(b) = found else { return refuse(self, "no_session") };
        if self.bfd[b].peer != src.ip() || self.bfd[b].multihop != multihop {
            return refuse(self, "wrong_peer");
        }
        // RFC 5881 §5: single hop only from a neighbour that sent with TTL 255.
        if !multihop && ttl != 255 {
            return refuse(self, "ttl");
        }
        if let Some(c) = self.bfd[b].session.receive(&r, now) {
            self.on_bfd_change(b, c.to, now);
        }
    }

    pub(super) fn on_bfd_change(&mut self, b: usize, to: State, now: Duration) {
        let s = &self.bfd[b];
        let diag = bfd::diag::name(s.session.diag);
        let msg = format!("bfd {} ({}): {} at {:.3} s ({diag})", s.name, s.peer, to.name(), now.as_secs_f64());
        tracing::info!(bfd = %s.name, state = to.name(), "{msg}");
        crate::events::emit("bfd", msg, serde_json::json!({ "bfd": s.name, "peer": s.peer.to_string(), "state": to.name(), "diag": diag }));
    }

    pub(super) fn send_bfd<P: Packet>(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        slow: &mut SlowPath<P>,
        b: usize,
        p: &Repr,
        at: Instant,
    ) {
        let s = &self.bfd[b];
        let port = if s.multihop { bfd::MULTIHOP_PORT } else { bfd::SINGLE_HOP_PORT };
        let to = SocketAddr::new(s.peer, port);
        let ip = if to.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
        let src_port = s.src_port;
        let r = slow.originate(io, to.ip(), ip + udp::HEADER_LEN + bfd::LEN, at, |src, buf| {
            let _ = p.emit(&mut buf[ip + udp::HEADER_LEN..]);
            emit_ip_udp_ttl(src, src_port, to, 255, buf)
        });
        if r.is_err() {
            self.bfd[b].send_failures += 1;
        }
    }
}
