//! Answering a request with a body the module made (a content handler's
//! response), the way nginx's own small content handlers do.

use nginx_sys::{
    ngx_buf_t, ngx_chain_t, ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header,
    ngx_int_t, ngx_pcalloc, ngx_pnalloc, ngx_str_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_OK,
};

use super::bitfield;

/// Sends `status`, `content_type` and `body` (copied into the request
/// pool) and returns what the content handler returns. For `HEAD`, nginx's
/// header filter marks the request header-only and the body is not sent.
pub fn send(
    r: &mut ngx_http_request_t,
    status: usize,
    content_type: &'static str,
    body: &[u8],
) -> ngx_int_t {
    r.headers_out.status = status;
    r.headers_out.content_length_n = body.len() as i64;
    r.headers_out.content_type = ngx_str_t {
        len: content_type.len(),
        data: content_type.as_ptr().cast_mut(),
    };
    r.headers_out.content_type_len = content_type.len();
    // SAFETY: the live request: nginx sends the headers set above.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || bitfield::request::header_only(r)
    {
        return rc;
    }
    // SAFETY: allocations in the live request pool; the buffer points at
    // memory of that pool holding a copy of `body`.
    unsafe {
        let data = ngx_pnalloc(r.pool, body.len().max(1)).cast::<u8>();
        let b = ngx_pcalloc(r.pool, size_of::<ngx_buf_t>()).cast::<ngx_buf_t>();
        if data.is_null() || b.is_null() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        core::ptr::copy_nonoverlapping(body.as_ptr(), data, body.len());
        (*b).pos = data;
        (*b).last = data.add(body.len());
        bitfield::buf::set_memory(&mut *b, true);
        bitfield::buf::set_last_buf(&mut *b, ptr_eq_main(r));
        bitfield::buf::set_last_in_chain(&mut *b, true);
        let mut out = ngx_chain_t {
            buf: b,
            next: core::ptr::null_mut(),
        };
        ngx_http_output_filter(r, &mut out)
    }
}

fn ptr_eq_main(r: &ngx_http_request_t) -> bool {
    core::ptr::eq(r, r.main)
}
