//! cells-http: the HTTP toolkit every HTTP protocol crate shares: credentials from headers
//! (`extract`), the REST error body (`error`), our accept loop (`listener`), conditional
//! requests and ranges, browser sessions and CSRF tokens, user-content hardening, bounded XML,
//! the request log, the encodings (`encoding`), and HTTPS (`tls`).

pub mod encoding;
pub mod error;
pub mod extract;
pub mod html;
pub mod listener;
pub mod precondition;
pub mod range;
pub mod request_log;
pub mod session;
pub mod tls;
pub mod user_content;
pub mod xml;
