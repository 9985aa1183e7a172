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
//! * [`subrequest`] — starting a subrequest (method, args, own body) and
//!   recording its result (status, captured body);
//! * [`delay`] — pausing a request on a timer without blocking the worker;
//! * [`variables`] — variable registration, complex values, storing a value in
//!   the main request;
//! * [`request`] — typed module context and log accessors;
//! * [`headers`] — copying response headers between requests.

/// An nginx call failed; nginx has already logged why where it could (most
/// often a pool allocation failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgxError;

impl core::fmt::Display for NgxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("nginx call failed")
    }
}

pub mod conf;
pub mod delay;
pub mod ffi;
pub mod headers;
pub mod phase;
pub mod request;
pub mod subrequest;
pub mod variables;
