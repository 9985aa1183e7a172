/*
 * Bit-field accessors for the nginx structures the module touches, compiled
 * by the C compiler against the very nginx headers the module is built for
 * (see build.rs and src/nginx/bitfield.rs).
 *
 * Why in C: the layout of C bit-fields is the C compiler's to decide, and the
 * accessors bindgen 0.72 generates get it wrong whenever a run of bit-fields
 * starts right after a member smaller than the bit-fields' unit. nginx 1.29.x
 * put `in_port_t port` before ngx_http_request_t's bit-fields, which shifted
 * every bindgen accessor from `uri_changes` on by two bits: a subrequest's
 * `header_only` set through bindgen set `chunked` instead, and on nginx 1.30
 * an auth subrequest's body went to the client in place of the response.
 *
 * One getter and one setter per field, named authgate_bf_<struct>_<field>
 * and authgate_bf_<struct>_set_<field>; the Rust side declares the same
 * list. Nothing here calls into nginx: these are plain memory accesses.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_pipe.h>
#include <ngx_http.h>

#define AUTHGATE_BITFIELD(type, name, field)                                  \
    unsigned authgate_bf_##name##_##field(const type *p)                      \
    {                                                                         \
        return p->field;                                                      \
    }                                                                         \
    void authgate_bf_##name##_set_##field(type *p, unsigned v)                \
    {                                                                         \
        p->field = v;                                                         \
    }

AUTHGATE_BITFIELD(ngx_http_request_t, request, header_only)
AUTHGATE_BITFIELD(ngx_http_request_t, request, subrequest_in_memory)
AUTHGATE_BITFIELD(ngx_http_request_t, request, valid_unparsed_uri)
AUTHGATE_BITFIELD(ngx_http_request_t, request, internal)
/* the main request's reference count (count:16): read as a number */
AUTHGATE_BITFIELD(ngx_http_request_t, request, count)

AUTHGATE_BITFIELD(ngx_http_headers_in_t, headers_in, chunked)

AUTHGATE_BITFIELD(ngx_http_upstream_t, upstream, header_sent)
AUTHGATE_BITFIELD(ngx_http_upstream_t, upstream, buffering)
AUTHGATE_BITFIELD(ngx_http_upstream_t, upstream, keepalive)
AUTHGATE_BITFIELD(ngx_http_upstream_t, upstream, request_body_sent)

AUTHGATE_BITFIELD(ngx_event_pipe_t, pipe, upstream_error)
AUTHGATE_BITFIELD(ngx_event_pipe_t, pipe, upstream_eof)
AUTHGATE_BITFIELD(ngx_event_pipe_t, pipe, upstream_done)

AUTHGATE_BITFIELD(ngx_event_t, event, eof)
AUTHGATE_BITFIELD(ngx_event_t, event, error)
AUTHGATE_BITFIELD(ngx_event_t, event, timedout)
AUTHGATE_BITFIELD(ngx_event_t, event, timer_set)
AUTHGATE_BITFIELD(ngx_event_t, event, ready)
AUTHGATE_BITFIELD(ngx_event_t, event, delayed)

AUTHGATE_BITFIELD(ngx_connection_t, connection, idle)
AUTHGATE_BITFIELD(ngx_connection_t, connection, close)

AUTHGATE_BITFIELD(ngx_peer_connection_t, peer, cached)

AUTHGATE_BITFIELD(ngx_buf_t, buf, temporary)
AUTHGATE_BITFIELD(ngx_buf_t, buf, memory)
AUTHGATE_BITFIELD(ngx_buf_t, buf, mmap)
AUTHGATE_BITFIELD(ngx_buf_t, buf, last_buf)
AUTHGATE_BITFIELD(ngx_buf_t, buf, last_in_chain)

AUTHGATE_BITFIELD(ngx_slab_pool_t, slab_pool, log_nomem)

AUTHGATE_BITFIELD(ngx_variable_value_t, vv, no_cacheable)
AUTHGATE_BITFIELD(ngx_variable_value_t, vv, escape)

#if (NGX_SSL)
AUTHGATE_BITFIELD(ngx_ssl_connection_t, ssl, no_wait_shutdown)
AUTHGATE_BITFIELD(ngx_ssl_connection_t, ssl, no_send_shutdown)
#endif
