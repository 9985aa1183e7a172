//! nginx-authgate: authentication and authorization for open-source nginx,
//! as one dynamic module library.
//!
//! Each mechanism is its own nginx module in its own folder; `nginx/` holds
//! the glue they share. This file only lists the modules for nginx.

pub mod auth_request;
pub mod nginx;

#[cfg(not(test))]
use auth_request::ngx_http_authgate_auth_request_module;

// The table nginx reads from the library at `load_module`. Compiled out of
// unit tests, which link without nginx.
#[cfg(not(test))]
ngx::ngx_modules!(ngx_http_authgate_auth_request_module);
