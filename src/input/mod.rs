//! Where the bytes come from: standard input, a file or a URL
//! ([`source`]), read by libav through a custom AVIO context ([`avio`]) into
//! the [`buffer`] that the TS packager cuts from; libav's own log messages
//! ([`avlog`]); what a hot standby reads while it waits ([`standby`]).

pub(crate) mod avio;
pub mod avlog;
pub mod buffer;
pub mod source;
pub mod standby;

pub use buffer::{lock, InputBuffer};
