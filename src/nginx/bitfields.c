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

/* Every bit-field the module touches: X(type, name, field). */
#define AUTHGATE_BITFIELDS(X)                                                 \
    X(ngx_http_request_t, request, header_only)                             \
    X(ngx_http_request_t, request, subrequest_in_memory)                    \
    X(ngx_http_request_t, request, valid_unparsed_uri)                      \
    X(ngx_http_request_t, request, internal)                                \
    X(ngx_http_request_t, request, count)                                   \
    X(ngx_http_request_t, request, discard_body)                            \
    X(ngx_http_request_t, request, preserve_body)                           \
    X(ngx_http_headers_in_t, headers_in, chunked)                           \
    X(ngx_http_upstream_t, upstream, header_sent)                           \
    X(ngx_http_upstream_t, upstream, buffering)                             \
    X(ngx_http_upstream_t, upstream, keepalive)                             \
    X(ngx_http_upstream_t, upstream, request_body_sent)                     \
    X(ngx_event_pipe_t, pipe, upstream_error)                               \
    X(ngx_event_pipe_t, pipe, upstream_eof)                                 \
    X(ngx_event_pipe_t, pipe, upstream_done)                                \
    X(ngx_event_t, event, eof)                                              \
    X(ngx_event_t, event, error)                                            \
    X(ngx_event_t, event, timedout)                                         \
    X(ngx_event_t, event, timer_set)                                        \
    X(ngx_event_t, event, ready)                                            \
    X(ngx_event_t, event, delayed)                                          \
    X(ngx_event_t, event, posted)                                           \
    X(ngx_connection_t, connection, idle)                                   \
    X(ngx_connection_t, connection, close)                                  \
    X(ngx_peer_connection_t, peer, cached)                                  \
    X(ngx_buf_t, buf, temporary)                                            \
    X(ngx_buf_t, buf, memory)                                               \
    X(ngx_buf_t, buf, mmap)                                                 \
    X(ngx_buf_t, buf, in_file)                                              \
    X(ngx_buf_t, buf, last_buf)                                             \
    X(ngx_buf_t, buf, last_in_chain)                                        \
    X(ngx_slab_pool_t, slab_pool, log_nomem)                                \
    X(ngx_variable_value_t, vv, no_cacheable)                               \
    X(ngx_variable_value_t, vv, escape)

#if (NGX_SSL)
#define AUTHGATE_SSL_BITFIELDS(X)                                             \
    X(ngx_ssl_connection_t, ssl, no_wait_shutdown)                          \
    X(ngx_ssl_connection_t, ssl, no_send_shutdown)
#else
#define AUTHGATE_SSL_BITFIELDS(X)
#endif

#define AUTHGATE_ACCESSORS(type, name, field)                                 \
    unsigned authgate_bf_##name##_##field(const type *p)                      \
    {                                                                         \
        return p->field;                                                      \
    }                                                                         \
    void authgate_bf_##name##_set_##field(type *p, unsigned v)                \
    {                                                                         \
        p->field = v;                                                         \
    }

AUTHGATE_BITFIELDS(AUTHGATE_ACCESSORS)
AUTHGATE_SSL_BITFIELDS(AUTHGATE_ACCESSORS)

#ifdef AUTHGATE_BITFIELD_PROBE

/*
 * Built and run by build.rs (when the build machine runs what it builds):
 * prints, for each one-bit field, the byte offset and mask the C compiler
 * gave it, so that the Rust side can read and write it inline instead of
 * calling the accessors above. Wider fields print nothing (the Rust side
 * then calls the accessor).
 */
#include <stdio.h>

#define AUTHGATE_PROBE(type, name, field)                                     \
    {                                                                         \
        type            v;                                                    \
        unsigned char  *b = (unsigned char *) &v;                             \
        size_t          i, at = 0, set = 0;                                   \
        unsigned        bits = 0;                                             \
                                                                              \
        memset(&v, 0, sizeof(v));                                             \
        v.field = ~0u;                                                        \
        for (i = 0; i < sizeof(v); i++) {                                     \
            if (b[i]) {                                                       \
                at = i;                                                       \
                set++;                                                        \
                bits = b[i];                                                  \
            }                                                                 \
        }                                                                     \
        if (set == 1 && (bits & (bits - 1)) == 0) {                           \
            printf("authgate_bf_%s_%s %zu %u\n", #name, #field, at, bits);    \
        }                                                                     \
    }

int
main(void)
{
    AUTHGATE_BITFIELDS(AUTHGATE_PROBE)
    AUTHGATE_SSL_BITFIELDS(AUTHGATE_PROBE)
    return 0;
}

#endif
