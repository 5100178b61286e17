//! The skeleton of a stand-in server (the Messages API here, the test support's Telegram): a listener on 127.0.0.1:0, a thread per
//! connection, and a stop on drop (so no probe or test leaves a server behind).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// What a stand-in server does with its connections.
pub trait Served: Send + Sync + 'static {
    /// The flag its handlers watch; set when the server is dropped.
    fn stop_flag(&self) -> &AtomicBool;
    /// Serves one connection (on its own thread).
    fn serve(&self, stream: TcpStream);
    /// Called once the stop flag is set (e.g. to wake long polls).
    fn on_stop(&self) {}
}

/// A running server; dropping it stops it.
pub struct Loopback<S: Served> {
    pub addr: SocketAddr,
    pub shared: Arc<S>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl<S: Served> Loopback<S> {
    /// Binds 127.0.0.1 on a free port and serves on background threads named after `name`.
    pub fn start(name: &str, shared: S) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(shared);
        let sh = Arc::clone(&shared);
        let conn_name = format!("{name}-conn");
        let accept_thread = thread::Builder::new().name(format!("{name}-accept")).spawn(move || {
            for conn in listener.incoming() {
                if sh.stop_flag().load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let sh = Arc::clone(&sh);
                let _ = thread::Builder::new().name(conn_name.clone()).spawn(move || sh.serve(stream));
            }
        })?;
        Ok(Self { addr, shared, accept_thread: Some(accept_thread) })
    }
}

impl<S: Served> Drop for Loopback<S> {
    fn drop(&mut self) {
        self.shared.stop_flag().store(true, Ordering::SeqCst);
        self.shared.on_stop();
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}
