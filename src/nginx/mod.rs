//! The nginx glue every mechanism needs, written once.
//!
//! Everything that touches nginx's C structures on behalf of a mechanism lives
//! here behind small, documented functions, so that each mechanism's handler
//! reads as a plain sequence of decisions:
//!
//! * [`ffi`] — the panic guard every `extern "C"` entry point runs inside;
//! * [`conf`] — directive arguments, `[emerg]` reporting, module lookup;
//! * [`phase`] — access-phase registration in the position nginx's own auth
//!   modules occupy;
//! * [`client_body`] — reading the client's body in the access phase
//!   without consuming it, giving the upstream another one;
//! * [`subrequest`] — starting a subrequest (method, args, own body) and
//!   recording its result (status, captured body);
//! * [`delay`] — pausing a request on a timer without blocking the worker;
//! * [`variables`] — variable registration, complex values, storing a value in
//!   the main request;
//! * [`request`] — typed module context and log accessors;
//! * [`response`] — a content handler's own response;
//! * [`headers`] — copying and adding response headers;
//! * [`headers_in`] — removing and adding request headers an upstream sees;
//! * [`args`] — finding and removing query arguments, byte-exactly;
//! * [`bitfield`] — bit-fields of nginx structures, laid out by the C compiler;
//! * [`shm`] — shared memory zones: declaring, initialising, locking;
//! * [`pool`] — pool cleanups (objects that act when a pool ends);
//! * [`upstream`] — wrapping an upstream's peer hooks, parking idle upstream
//!   connections.

/// An nginx call failed; nginx has already logged why where it could (most
/// often a pool allocation failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgxError;

impl core::fmt::Display for NgxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("nginx call failed")
    }
}

pub mod args;
pub mod bitfield;
pub mod client_body;
pub mod conf;
pub mod decimal;
pub mod delay;
pub mod ffi;
pub mod headers;
pub mod headers_in;
pub mod phase;
pub mod pool;
pub mod request;
pub mod response;
pub mod shm;
pub mod subrequest;
pub mod upstream;
pub mod variables;
