//! A server thread pinned to the control core: it accepts connections one
//! at a time and hands each to a handler, until dropped. The control
//! socket (`ctl.rs`) serves this way.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A listening socket the loop accepts from.
pub trait Listen: Send + 'static {
    type Conn;
    fn accept_one(&self) -> std::io::Result<Self::Conn>;
}

impl Listen for UnixListener {
    type Conn = std::os::unix::net::UnixStream;
    fn accept_one(&self) -> std::io::Result<Self::Conn> {
        self.accept().map(|(c, _)| c)
    }
}

impl Listen for TcpListener {
    type Conn = std::net::TcpStream;
    fn accept_one(&self) -> std::io::Result<Self::Conn> {
        self.accept().map(|(c, _)| c)
    }
}

/// The running loop; dropping it stops and joins the thread.
pub struct AcceptLoop {
    stop: Arc<AtomicBool>,
    /// Connects to the listener once, so a blocked accept returns.
    wake: Box<dyn Fn() + Send>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptLoop {
    /// Starts thread `name` on `cpu` (when given), serving `listener` with
    /// `handle`, one connection at a time.
    pub fn start<L: Listen>(
        name: &str,
        cpu: Option<usize>,
        listener: L,
        wake: impl Fn() + Send + 'static,
        mut handle: impl FnMut(L::Conn) + Send + 'static,
    ) -> Result<AcceptLoop, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if let Some(id) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                loop {
                    let conn = listener.accept_one();
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        handle(conn);
                    }
                }
            })
            .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
        Ok(AcceptLoop { stop, wake: Box::new(wake), thread: Some(thread) })
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        (self.wake)();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
