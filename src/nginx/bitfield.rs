//! Bit-fields of nginx structures, read and written by C code compiled
//! against the nginx the module is built for (`bitfields.c`, built by
//! build.rs), never through bindgen's accessors.
//!
//! bindgen 0.72 (what nginx-sys 0.5 uses) misplaces a run of bit-fields that
//! starts right after a member smaller than the bit-fields' storage unit: it
//! starts the unit at that member's end instead of sharing the aligned unit
//! with it, so every field that C moves to the next unit (because it would
//! straddle one) lands some bits early. nginx 1.29 added `in_port_t port`
//! before `ngx_http_request_t`'s bit-fields; from `uri_changes` on, bindgen's
//! accessors are two bits off there. Setting `header_only` on an auth
//! subrequest set `chunked` instead, and on nginx 1.30/1.31 the subrequest's
//! body reached the client in place of the response.
//!
//! Policy: every bit-field the module touches is listed here and accessed
//! through these functions (ci/test.sh checks that no bindgen bit-field
//! accessor is called elsewhere). The one exception is
//! `ngx_variable_value_t`, whose bit-fields open the structure: bindgen gets
//! those right, the unit tests below check them against C, and
//! `variables::set_found` relies on that layout for its fast path.
//!
//! The accessors are plain memory accesses; the references make them safe.
//! build.rs also runs `bitfields.c` as a probe (when the build machine can
//! run what it builds) that prints each one-bit field's byte and mask as the
//! C compiler laid it out; the accessors then read and write that byte
//! inline, at no call cost. Cross-compiled, and for wider fields, they call
//! the C functions. A unit test checks every inline accessor against C.

#![allow(clippy::missing_safety_doc)]

use core::ffi::c_uint;

/// Where the C compiler put each one-bit field, from build.rs's probe.
mod positions {
    include!(concat!(env!("OUT_DIR"), "/bitfield_positions.rs"));
}

macro_rules! bitfields {
    ($(
        $(#[$meta:meta])*
        pub mod $module:ident for $ty:ty {
            $($field:ident / $set:ident => $c_get:ident / $c_set:ident;)+
        }
    )+) => {$(
        $(#[$meta])*
        pub mod $module {
            use super::c_uint;
            #[allow(unused_imports)]
            use nginx_sys::*;

            extern "C" {
                $(
                    fn $c_get(p: *const $ty) -> c_uint;
                    fn $c_set(p: *mut $ty, v: c_uint);
                )+
            }

            $(
                #[inline]
                pub fn $field(p: &$ty) -> bool {
                    match super::positions::$c_get {
                        // SAFETY: `byte` is inside `*p`: the probe found the
                        // field's bit there in a value of this very type.
                        Some((byte, mask)) => unsafe {
                            *(p as *const $ty).cast::<u8>().add(byte) & mask != 0
                        },
                        // SAFETY: a plain read of a live structure's
                        // bit-field, laid out by the C compiler that
                        // compiled nginx's headers.
                        None => unsafe { $c_get(p) != 0 },
                    }
                }

                #[inline]
                pub fn $set(p: &mut $ty, on: bool) {
                    match super::positions::$c_get {
                        // SAFETY: as in the getter; `p` is held exclusively,
                        // and only the field's own bit of that byte changes.
                        Some((byte, mask)) => unsafe {
                            let b = (p as *mut $ty).cast::<u8>().add(byte);
                            *b = if on { *b | mask } else { *b & !mask };
                        },
                        // SAFETY: a plain write of a bit-field of a structure
                        // we hold exclusively.
                        None => unsafe { $c_set(p, c_uint::from(on)) },
                    }
                }
            )+

            /// Every field's inline path agrees with the C accessor.
            #[cfg(test)]
            #[allow(dead_code)]
            pub fn check_against_c() {
                $(
                    // SAFETY: all-zero bytes are a valid value of these
                    // plain C structures.
                    let mut v: $ty = unsafe { core::mem::zeroed() };
                    $set(&mut v, true);
                    // SAFETY: reading the field just written.
                    assert_eq!(unsafe { $c_get(&v) }, 1, concat!(stringify!($field), ": set inline, read by C"));
                    $set(&mut v, false);
                    // SAFETY: as above.
                    assert_eq!(unsafe { $c_get(&v) }, 0, concat!(stringify!($field), ": cleared inline"));
                    // SAFETY: writing a field of a value we own.
                    unsafe { $c_set(&mut v, 1) };
                    assert!($field(&v), concat!(stringify!($field), ": set by C, read inline"));
                )+
            }
        }
    )+};
}

bitfields! {
    /// `ngx_http_request_t`.
    pub mod request for ngx_http_request_t {
        header_only / set_header_only
            => authgate_bf_request_header_only / authgate_bf_request_set_header_only;
        subrequest_in_memory / set_subrequest_in_memory
            => authgate_bf_request_subrequest_in_memory / authgate_bf_request_set_subrequest_in_memory;
        valid_unparsed_uri / set_valid_unparsed_uri
            => authgate_bf_request_valid_unparsed_uri / authgate_bf_request_set_valid_unparsed_uri;
        internal / set_internal
            => authgate_bf_request_internal / authgate_bf_request_set_internal;
        discard_body / set_discard_body
            => authgate_bf_request_discard_body / authgate_bf_request_set_discard_body;
        preserve_body / set_preserve_body
            => authgate_bf_request_preserve_body / authgate_bf_request_set_preserve_body;
    }

    /// `ngx_http_headers_in_t`.
    pub mod headers_in for ngx_http_headers_in_t {
        chunked / set_chunked => authgate_bf_headers_in_chunked / authgate_bf_headers_in_set_chunked;
    }

    /// `ngx_http_upstream_t`.
    pub mod upstream for ngx_http_upstream_t {
        header_sent / set_header_sent
            => authgate_bf_upstream_header_sent / authgate_bf_upstream_set_header_sent;
        buffering / set_buffering
            => authgate_bf_upstream_buffering / authgate_bf_upstream_set_buffering;
        keepalive / set_keepalive
            => authgate_bf_upstream_keepalive / authgate_bf_upstream_set_keepalive;
        request_body_sent / set_request_body_sent
            => authgate_bf_upstream_request_body_sent / authgate_bf_upstream_set_request_body_sent;
    }

    /// `ngx_event_pipe_t`.
    pub mod pipe for ngx_event_pipe_t {
        upstream_error / set_upstream_error
            => authgate_bf_pipe_upstream_error / authgate_bf_pipe_set_upstream_error;
        upstream_eof / set_upstream_eof
            => authgate_bf_pipe_upstream_eof / authgate_bf_pipe_set_upstream_eof;
        upstream_done / set_upstream_done
            => authgate_bf_pipe_upstream_done / authgate_bf_pipe_set_upstream_done;
    }

    /// `ngx_event_t`.
    pub mod event for ngx_event_t {
        eof / set_eof => authgate_bf_event_eof / authgate_bf_event_set_eof;
        error / set_error => authgate_bf_event_error / authgate_bf_event_set_error;
        timedout / set_timedout => authgate_bf_event_timedout / authgate_bf_event_set_timedout;
        timer_set / set_timer_set => authgate_bf_event_timer_set / authgate_bf_event_set_timer_set;
        ready / set_ready => authgate_bf_event_ready / authgate_bf_event_set_ready;
        delayed / set_delayed => authgate_bf_event_delayed / authgate_bf_event_set_delayed;
        posted / set_posted => authgate_bf_event_posted / authgate_bf_event_set_posted;
    }

    /// `ngx_connection_t`.
    pub mod connection for ngx_connection_t {
        idle / set_idle => authgate_bf_connection_idle / authgate_bf_connection_set_idle;
        close / set_close => authgate_bf_connection_close / authgate_bf_connection_set_close;
    }

    /// `ngx_peer_connection_t`.
    pub mod peer for ngx_peer_connection_t {
        cached / set_cached => authgate_bf_peer_cached / authgate_bf_peer_set_cached;
    }

    /// `ngx_buf_t`.
    pub mod buf for ngx_buf_t {
        temporary / set_temporary => authgate_bf_buf_temporary / authgate_bf_buf_set_temporary;
        memory / set_memory => authgate_bf_buf_memory / authgate_bf_buf_set_memory;
        mmap / set_mmap => authgate_bf_buf_mmap / authgate_bf_buf_set_mmap;
        in_file / set_in_file => authgate_bf_buf_in_file / authgate_bf_buf_set_in_file;
        last_buf / set_last_buf => authgate_bf_buf_last_buf / authgate_bf_buf_set_last_buf;
        last_in_chain / set_last_in_chain
            => authgate_bf_buf_last_in_chain / authgate_bf_buf_set_last_in_chain;
    }

    /// `ngx_slab_pool_t`.
    pub mod slab_pool for ngx_slab_pool_t {
        log_nomem / set_log_nomem
            => authgate_bf_slab_pool_log_nomem / authgate_bf_slab_pool_set_log_nomem;
    }

    /// `ngx_variable_value_t`: only for the layout check below.
    pub mod variable_value for ngx_variable_value_t {
        no_cacheable / set_no_cacheable
            => authgate_bf_vv_no_cacheable / authgate_bf_vv_set_no_cacheable;
        escape / set_escape => authgate_bf_vv_escape / authgate_bf_vv_set_escape;
    }

    /// `ngx_ssl_connection_t`.
    #[cfg(ngx_feature = "ssl")]
    pub mod ssl for ngx_ssl_connection_t {
        no_wait_shutdown / set_no_wait_shutdown
            => authgate_bf_ssl_no_wait_shutdown / authgate_bf_ssl_set_no_wait_shutdown;
        no_send_shutdown / set_no_send_shutdown
            => authgate_bf_ssl_no_send_shutdown / authgate_bf_ssl_set_no_send_shutdown;
    }
}

extern "C" {
    fn authgate_bf_request_count(p: *const nginx_sys::ngx_http_request_t) -> c_uint;
}

/// `r->count`: the references to a main request (its own, one per
/// subrequest not yet finalised, a body being read, an internal redirect
/// under way, …).
#[inline]
pub fn request_count(r: &nginx_sys::ngx_http_request_t) -> u32 {
    // SAFETY: a plain read of a live request's bit-field.
    unsafe { authgate_bf_request_count(r) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nginx_sys::{ngx_http_request_t, ngx_variable_value_t};

    fn zeroed<T>() -> T {
        // SAFETY: the nginx structures used here are plain C data for which
        // all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }

    fn bytes<T>(v: &T) -> &[u8] {
        // SAFETY: reading the bytes of a live, fully initialised value.
        unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
    }

    /// The inline accessors (probe positions) agree with the C compiler.
    #[test]
    fn inline_accessors_agree_with_c() {
        request::check_against_c();
        headers_in::check_against_c();
        upstream::check_against_c();
        pipe::check_against_c();
        event::check_against_c();
        connection::check_against_c();
        peer::check_against_c();
        buf::check_against_c();
        slab_pool::check_against_c();
        variable_value::check_against_c();
        #[cfg(ngx_feature = "ssl")]
        ssl::check_against_c();
    }

    /// The probe found every one-bit field this build is native for.
    #[test]
    fn probe_found_the_one_bit_fields() {
        assert!(positions::authgate_bf_request_header_only.is_some());
        assert!(positions::authgate_bf_buf_last_buf.is_some());
        assert!(
            positions::authgate_bf_request_count.is_none(),
            "count is 16 bits wide"
        );
    }

    /// The C accessors set exactly one bit and read back what they set.
    #[test]
    fn c_accessors_set_one_bit_each() {
        let mut r: ngx_http_request_t = zeroed();
        request::set_header_only(&mut r, true);
        assert!(request::header_only(&r));
        assert!(!request::subrequest_in_memory(&r));
        assert_eq!(bytes(&r).iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        request::set_header_only(&mut r, false);
        assert!(bytes(&r).iter().all(|&b| b == 0));
    }

    /// What `variables::set_found` relies on: bindgen's accessors for
    /// `ngx_variable_value_t` agree with the C compiler's layout.
    #[test]
    fn variable_value_layout_agrees_with_c() {
        let mut c: ngx_variable_value_t = zeroed();
        let mut b: ngx_variable_value_t = zeroed();
        variable_value::set_no_cacheable(&mut c, true);
        b.set_no_cacheable(1);
        assert_eq!(bytes(&c), bytes(&b));
        let mut c: ngx_variable_value_t = zeroed();
        let mut b: ngx_variable_value_t = zeroed();
        variable_value::set_escape(&mut c, true);
        b.set_escape(1);
        assert_eq!(bytes(&c), bytes(&b));
    }
}
